//! Passwords and tokens. Used by the node that receives a request, never inside apply.
//!
//! Passwords: PBKDF2-HMAC-SHA256 with a random 16-byte salt per user, compared in constant
//! time. Tokens: `<user>.<expiry>.<mac>` where the MAC is HMAC-SHA256 under the cluster's key,
//! which the first leader generated once and replicated through the log; so a token issued by
//! any node is accepted by every node, and no node keeps sessions.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::PasswordHash;

type HmacSha256 = Hmac<Sha256>;

pub fn hash_password(password: &str, iterations: u32) -> PasswordHash {
    let salt: [u8; 16] = rand::random();
    let mut hash = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut hash);
    PasswordHash {
        salt,
        iterations,
        hash,
    }
}

pub fn verify_password(password: &str, stored: &PasswordHash) -> bool {
    let mut hash = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(
        password.as_bytes(),
        &stored.salt,
        stored.iterations,
        &mut hash,
    );
    hash.ct_eq(&stored.hash).into()
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: String,
    /// Unix seconds.
    pub expires_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token expired; log in again")]
    Expired,
}

fn mac(key: &[u8; 32], payload: &str) -> HmacSha256 {
    // An HMAC key may have any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

pub fn sign_token(key: &[u8; 32], user: &str, expires_at: u64) -> String {
    let payload = format!("{user}.{expires_at}");
    let tag = mac(key, &payload).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// Checks the signature first (in constant time), then the expiry against `now_secs`.
pub fn verify_token(key: &[u8; 32], token: &str, now_secs: u64) -> Result<Claims, TokenError> {
    let (payload, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (user, expires_at) = payload.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    mac(key, payload)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let expires_at: u64 = expires_at.parse().map_err(|_| TokenError::Malformed)?;
    if expires_at <= now_secs {
        return Err(TokenError::Expired);
    }
    Ok(Claims {
        user: user.to_string(),
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_password_verifies_and_wrong_one_does_not() {
        let stored = hash_password("mysecret", 1_000);
        assert!(verify_password("mysecret", &stored));
        assert!(!verify_password("mysecret ", &stored));
        assert!(!verify_password("", &stored));
    }

    #[test]
    fn same_password_gets_different_salts() {
        assert_ne!(hash_password("x", 1_000), hash_password("x", 1_000));
    }

    #[test]
    fn tokens_verify_until_they_expire() {
        let key = [7u8; 32];
        let token = sign_token(&key, "user1", 1_000);
        let claims = verify_token(&key, &token, 999).expect("valid");
        assert_eq!(claims.user, "user1");
        assert_eq!(verify_token(&key, &token, 1_000), Err(TokenError::Expired));
    }

    #[test]
    fn forged_tokens_are_refused() {
        let key = [7u8; 32];
        let token = sign_token(&key, "user1", 1_000);
        let other_key = sign_token(&[8u8; 32], "user1", 1_000);
        assert_eq!(
            verify_token(&key, &other_key, 0),
            Err(TokenError::BadSignature)
        );
        let promoted = token.replacen("user1", "admin", 1);
        assert_eq!(
            verify_token(&key, &promoted, 0),
            Err(TokenError::BadSignature)
        );
        let extended = token.replacen("1000", "9999", 1);
        assert_eq!(
            verify_token(&key, &extended, 0),
            Err(TokenError::BadSignature)
        );
        for junk in ["", "abc", "a.b", "a.b.c", "a.1.!!!"] {
            assert!(verify_token(&key, junk, 0).is_err(), "{junk}");
        }
    }
}
