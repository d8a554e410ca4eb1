//! Sealing identity data at rest: AES-256-GCM (aws-lc-rs) with a random
//! nonce per value. The key is `KYC_ENCRYPTION_KEY` (32 bytes, hex or
//! base64) or, without it, derived from `SECRET_KEY` with HKDF-SHA256, so a
//! leaked database alone reveals no ID number or document.
//!
//! Sealed text is `v1:` + base64(nonce ‖ ciphertext ‖ tag).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::hkdf;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

pub struct Sealer {
    key: LessSafeKey,
}

#[derive(Debug, thiserror::Error)]
#[error("sealing failed: {0}")]
pub struct SealError(&'static str);

struct KeyLen;
impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// From 32 raw key bytes.
    pub fn from_key(bytes: &[u8; 32]) -> Result<Sealer, SealError> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| SealError("bad key"))?;
        Ok(Sealer {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Derives the key from the service secret.
    pub fn derive(secret: &[u8]) -> Result<Sealer, SealError> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"amani");
        let prk = salt.extract(secret);
        let okm = prk
            .expand(&[b"kyc-encryption-v1"], KeyLen)
            .map_err(|_| SealError("key derivation"))?;
        let mut key = [0u8; 32];
        okm.fill(&mut key).map_err(|_| SealError("key derivation"))?;
        Sealer::from_key(&key)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| SealError("random nonce"))?;
        let mut data = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .map_err(|_| SealError("encrypt"))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("v1:{}", STANDARD.encode(out)))
    }

    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, SealError> {
        let encoded = sealed.strip_prefix("v1:").ok_or(SealError("unknown format"))?;
        let raw = STANDARD.decode(encoded).map_err(|_| SealError("not base64"))?;
        if raw.len() < NONCE_LEN {
            return Err(SealError("too short"));
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError("nonce"))?;
        let mut data = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut data)
            .map_err(|_| SealError("decrypt"))?;
        Ok(plaintext.to_vec())
    }
}

/// Parses `KYC_ENCRYPTION_KEY`: 64 hex characters or base64 of 32 bytes.
pub fn parse_key(raw: &str) -> Option<[u8; 32]> {
    let raw = raw.trim();
    let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?
    } else {
        STANDARD.decode(raw).ok()?
    };
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_differ_each_time() {
        let sealer = Sealer::derive(b"secret one").unwrap();
        let a = sealer.seal(b"A1234567890").unwrap();
        let b = sealer.seal(b"A1234567890").unwrap();
        assert_ne!(a, b, "random nonce");
        assert!(!a.contains("A1234567890"));
        assert_eq!(sealer.open(&a).unwrap(), b"A1234567890");
        assert!(Sealer::derive(b"secret two").unwrap().open(&a).is_err());
        // Any flipped bit, in the nonce, the ciphertext or the tag, is refused.
        // (Flip bits of the decoded bytes: swapping a base64 character for a
        // fixed one was no change at all whenever it already was that one.)
        let raw = STANDARD.decode(a.strip_prefix("v1:").unwrap()).unwrap();
        for i in 0..raw.len() {
            let mut tampered = raw.clone();
            tampered[i] ^= 0x01;
            let tampered = format!("v1:{}", STANDARD.encode(&tampered));
            assert!(sealer.open(&tampered).is_err(), "byte {i} flipped and still opened");
        }
    }

    #[test]
    fn keys_parse_from_hex_or_base64() {
        assert_eq!(parse_key(&"ab".repeat(32)), Some([0xab; 32]));
        assert_eq!(parse_key(&STANDARD.encode([7u8; 32])), Some([7u8; 32]));
        assert_eq!(parse_key("short"), None);
    }
}
