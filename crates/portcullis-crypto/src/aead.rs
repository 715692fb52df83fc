//! Authenticated encryption of secrets at rest (signing keys, client secrets) under the
//! deployment's master key: AES-256-GCM with a random nonce, the purpose bound in as AAD.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::hkdf;

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum AeadError {
    #[error("the master key must be 32 bytes (64 hex characters)")]
    BadKey,
    #[error(
        "the sealed value is malformed, was sealed under another master key, or was tampered with"
    )]
    Open,
}

/// The master key. `Debug` never prints it.
pub struct MasterKey {
    key: RandomizedNonceKey,
    /// HKDF-SHA256 of the key, for subkeys of one purpose each ([`MasterKey::derive`]).
    prk: hkdf::Prk,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// Version byte written in front of every sealed value.
const VERSION: u8 = 1;

impl MasterKey {
    /// Builds the key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AeadError> {
        if bytes.len() != 32 {
            return Err(AeadError::BadKey);
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| AeadError::BadKey)?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"portcullis master key").extract(bytes);
        Ok(Self { key, prk })
    }

    /// A key of its own for `label`, derived with HKDF-SHA256. Values sealed in bulk at
    /// anyone's request (login transactions) use one, so the random-nonce budget of the key
    /// that seals long-lived secrets is never spent by outside traffic.
    #[must_use]
    pub fn derive(&self, label: &str) -> Self {
        let mut bytes = [0u8; 32];
        self.prk
            .expand(&[label.as_bytes()], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut bytes))
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        Self::from_bytes(&bytes).expect("a derived key is 32 bytes")
    }

    /// Parses the hex form kept in settings and key files (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, AeadError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(AeadError::BadKey);
        }
        let mut bytes = [0u8; 32];
        for (i, chunk) in text.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(chunk).map_err(|_| AeadError::BadKey)?;
            bytes[i] = u8::from_str_radix(s, 16).map_err(|_| AeadError::BadKey)?;
        }
        Self::from_bytes(&bytes)
    }

    /// A new random key in hex, for a first start.
    #[must_use]
    pub fn generate_hex() -> String {
        crate::token::hex(&crate::random_bytes::<32>())
    }

    /// Encrypts `plaintext`; `purpose` (such as `client_secret:<id>`) must match on open.
    pub fn seal(&self, purpose: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut in_out = plaintext.to_vec();
        let nonce = self
            .key
            .seal_in_place_append_tag(Aad::from(purpose.as_bytes()), &mut in_out)
            .expect("AES-GCM sealing does not fail for in-memory buffers");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        out.push(VERSION);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&in_out);
        out
    }

    /// Decrypts a value made by [`MasterKey::seal`] with the same purpose.
    pub fn open(&self, purpose: &str, sealed: &[u8]) -> Result<Vec<u8>, AeadError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
            return Err(AeadError::Open);
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..=NONCE_LEN])
            .map_err(|_| AeadError::Open)?;
        let mut in_out = sealed[1 + NONCE_LEN..].to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(purpose.as_bytes()), &mut in_out)
            .map_err(|_| AeadError::Open)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_same_key_and_purpose() {
        let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let other = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let sealed = key.seal("client_secret:abc", b"s3cret");
        assert_ne!(&sealed[1 + NONCE_LEN..], b"s3cret");
        assert_eq!(key.open("client_secret:abc", &sealed).unwrap(), b"s3cret");
        assert!(key.open("client_secret:xyz", &sealed).is_err());
        assert!(other.open("client_secret:abc", &sealed).is_err());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(key.open("client_secret:abc", &tampered).is_err());
    }

    #[test]
    fn derived_keys_are_stable_and_separate() {
        let hex = MasterKey::generate_hex();
        let key = MasterKey::from_hex(&hex).unwrap();
        let again = MasterKey::from_hex(&hex).unwrap();
        let sealed = key.derive("a").seal("p", b"value");
        assert_eq!(again.derive("a").open("p", &sealed).unwrap(), b"value");
        assert!(key.derive("b").open("p", &sealed).is_err());
        assert!(key.open("p", &sealed).is_err());
    }

    #[test]
    fn bad_master_keys_are_refused() {
        assert!(MasterKey::from_hex("abcd").is_err());
        assert!(MasterKey::from_hex(&"zz".repeat(32)).is_err());
    }
}
