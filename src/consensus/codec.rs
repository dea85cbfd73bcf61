//! How values are stored on disk and sent to peers: postcard bytes behind a CRC32.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes a value with a leading CRC32 (little-endian) of the encoded bytes.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, postcard::Error> {
    let mut out = vec![0u8; 4];
    let out = postcard::to_extend(value, std::mem::take(&mut out))?;
    Ok(seal(out))
}

fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let crc = crc32(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("checksum mismatch: the stored bytes are corrupt")]
    Checksum,
    #[error("too short to hold a checksum")]
    Truncated,
    #[error("cannot decode: {0}")]
    Postcard(#[from] postcard::Error),
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    if bytes.len() < 4 {
        return Err(DecodeError::Truncated);
    }
    let (crc, body) = bytes.split_at(4);
    if crc != crc32(body).to_le_bytes() {
        return Err(DecodeError::Checksum);
    }
    Ok(postcard::from_bytes(body)?)
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn any_flipped_byte_is_caught() {
        let bytes = encode(&("seat", 42u64, vec![1u8, 2, 3])).expect("encode");
        for i in 0..bytes.len() {
            let mut corrupt = bytes.clone();
            corrupt[i] ^= 0x10;
            assert!(
                decode::<(String, u64, Vec<u8>)>(&corrupt).is_err(),
                "byte {i}"
            );
        }
        let back: (String, u64, Vec<u8>) = decode(&bytes).expect("decode");
        assert_eq!(back, ("seat".to_string(), 42, vec![1, 2, 3]));
    }
}
