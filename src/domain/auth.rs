//! Passwords and tokens. Used by the node that receives a request, never inside apply.
//!
//! Passwords: PBKDF2-HMAC-SHA256 with a random 16-byte salt per user, compared in constant
//! time. Tokens: `<user>.<expiry>.<key version>.<epoch>.<mac>` where the MAC is HMAC-SHA256
//! under one of the cluster's token keys. The keys live in a file every node reads (0600),
//! never in the replicated log, so a snapshot or a copied log holds no key; a token issued by
//! any node is accepted by every node, and no node keeps sessions. The epoch is the user's
//! token epoch when the token was issued: logging out, a new password or disabling the user
//! moves it on (through the log), which revokes every older token of that user.

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

/// A one-time code for making the first admin: 20 characters of [a-z0-9], about 103 bits.
pub fn new_setup_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..20)
        .map(|_| char::from(ALPHABET[rand::random_range(0..ALPHABET.len())]))
        .collect()
}

/// What the log keeps of a setup code: its SHA-256, never the code.
pub fn setup_code_hash(code: &str) -> [u8; 32] {
    use sha2::Digest;
    Sha256::digest(code.trim().as_bytes()).into()
}

/// Whether `code` is the one whose hash is `expected`, in constant time.
pub fn setup_code_matches(code: &str, expected: &[u8; 32]) -> bool {
    setup_code_hash(code).ct_eq(expected).into()
}

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub user: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The user's token epoch at issue; the token is good only while it is still current.
    pub epoch: u64,
}

/// One token key: tokens name the version they were signed with, so a key can be rotated
/// while tokens signed with the previous one stay good until they expire.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub version: u32,
    pub secret: [u8; 32],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenKey(v{})", self.version)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid")]
    BadSignature,
    #[error("the token expired; log in again")]
    Expired,
    #[error("the token was signed with a key this cluster no longer has; log in again")]
    UnknownKey,
    #[error("the token claims a longer life than this cluster gives; log in again")]
    TooLong,
}

fn mac(key: &[u8; 32], payload: &str) -> HmacSha256 {
    // An HMAC key may have any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

pub fn sign_token(key: &TokenKey, user: &str, epoch: u64, expires_at: u64) -> String {
    let payload = format!("{user}.{expires_at}.{}.{epoch}", key.version);
    let tag = mac(&key.secret, &payload).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(tag))
}

/// What a ticket code names: seat `seat` of booking `booking` in `event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClaims {
    pub event: String,
    pub seat: String,
    pub booking: u64,
}

/// A ticket code: `tk1.<event>.<seat>.<booking number>.<key version>.<tag>`, the tag an HMAC
/// of the rest with the cluster's token key. Five fields before the tag where a token has
/// four, so neither can stand for the other. Any node can check it; nobody without the key
/// can make one. Whether the booking still has the seat is the state's to say.
pub fn sign_ticket(key: &TokenKey, ticket: &TicketClaims) -> String {
    let payload = format!(
        "tk1.{}.{}.{}.{}",
        ticket.event, ticket.seat, ticket.booking, key.version
    );
    let tag = mac(&key.secret, &payload).finalize().into_bytes();
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(&tag[..16]))
}

/// Checks a ticket code's signature (in constant time) with the key it names.
pub fn verify_ticket(
    key: impl Fn(u32) -> Option<[u8; 32]>,
    code: &str,
) -> Result<TicketClaims, TokenError> {
    let (payload, tag) = code.trim().rsplit_once('.').ok_or(TokenError::Malformed)?;
    let parts: Vec<&str> = payload.split('.').collect();
    let ["tk1", event, seat, booking, version] = parts[..] else {
        return Err(TokenError::Malformed);
    };
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    let version: u32 = version.parse().map_err(|_| TokenError::Malformed)?;
    let booking: u64 = booking.parse().map_err(|_| TokenError::Malformed)?;
    let secret = key(version).ok_or(TokenError::UnknownKey)?;
    mac(&secret, payload)
        .verify_truncated_left(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    if tag.len() != 16 {
        return Err(TokenError::BadSignature);
    }
    Ok(TicketClaims {
        event: event.to_string(),
        seat: seat.to_string(),
        booking,
    })
}

/// Checks the signature first (in constant time) with the key the token names, then the
/// expiry against `now_secs`: not past, and not further off than `ttl_secs` (plus a minute
/// for clocks that disagree), whatever the token claims.
pub fn verify_token(
    key: impl Fn(u32) -> Option<[u8; 32]>,
    token: &str,
    now_secs: u64,
    ttl_secs: u64,
) -> Result<Claims, TokenError> {
    const CLOCK_SKEW_SECS: u64 = 60;
    let (payload, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let mut parts = payload.split('.');
    let (Some(user), Some(expires_at), Some(version), Some(epoch), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(TokenError::Malformed);
    };
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| TokenError::Malformed)?;
    let version: u32 = version.parse().map_err(|_| TokenError::Malformed)?;
    let secret = key(version).ok_or(TokenError::UnknownKey)?;
    mac(&secret, payload)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature)?;
    let expires_at: u64 = expires_at.parse().map_err(|_| TokenError::Malformed)?;
    let epoch: u64 = epoch.parse().map_err(|_| TokenError::Malformed)?;
    if expires_at <= now_secs {
        return Err(TokenError::Expired);
    }
    let cap = now_secs
        .saturating_add(ttl_secs)
        .saturating_add(CLOCK_SKEW_SECS);
    if expires_at > cap {
        return Err(TokenError::TooLong);
    }
    Ok(Claims {
        user: user.to_string(),
        expires_at,
        epoch,
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

    const KEY: TokenKey = TokenKey {
        version: 1,
        secret: [7u8; 32],
    };

    fn key_v1(version: u32) -> Option<[u8; 32]> {
        (version == 1).then_some(KEY.secret)
    }

    #[test]
    fn tokens_verify_until_they_expire() {
        let token = sign_token(&KEY, "user1", 4, 1_000);
        let claims = verify_token(key_v1, &token, 999, 3_600).expect("valid");
        assert_eq!((claims.user.as_str(), claims.epoch), ("user1", 4));
        assert_eq!(
            verify_token(key_v1, &token, 1_000, 3_600),
            Err(TokenError::Expired)
        );
    }

    /// A token whose expiry is further off than the TTL allows was not issued by this cluster's
    /// rules, even if its signature holds (an old key, a node with a wrong clock).
    #[test]
    fn an_expiry_past_the_ttl_is_refused() {
        let token = sign_token(&KEY, "user1", 0, u64::MAX);
        assert_eq!(
            verify_token(key_v1, &token, 1_000, 3_600),
            Err(TokenError::TooLong)
        );
    }

    #[test]
    fn a_token_of_an_unknown_key_version_is_refused() {
        let v2 = TokenKey {
            version: 2,
            secret: [9u8; 32],
        };
        let token = sign_token(&v2, "user1", 0, 1_000);
        assert_eq!(
            verify_token(key_v1, &token, 0, 3_600),
            Err(TokenError::UnknownKey)
        );
    }

    #[test]
    fn forged_tokens_are_refused() {
        let token = sign_token(&KEY, "user1", 0, 1_000);
        let other = TokenKey {
            version: 1,
            secret: [8u8; 32],
        };
        let other_key = sign_token(&other, "user1", 0, 1_000);
        assert_eq!(
            verify_token(key_v1, &other_key, 0, 3_600),
            Err(TokenError::BadSignature)
        );
        let promoted = token.replacen("user1", "admin", 1);
        assert_eq!(
            verify_token(key_v1, &promoted, 0, 3_600),
            Err(TokenError::BadSignature)
        );
        let extended = token.replacen("1000", "1001", 1);
        assert_eq!(
            verify_token(key_v1, &extended, 0, 3_600),
            Err(TokenError::BadSignature)
        );
        let old_epoch = token.replacen(".1.0.", ".1.1.", 1);
        assert_ne!(old_epoch, token);
        assert_eq!(
            verify_token(key_v1, &old_epoch, 0, 3_600),
            Err(TokenError::BadSignature)
        );
        for junk in ["", "abc", "a.b", "a.b.c", "a.1.!!!", "a.1.1.1.1.x"] {
            assert!(verify_token(key_v1, junk, 0, 3_600).is_err(), "{junk}");
        }
    }
}
