//! Opaque secrets (authorization codes, refresh tokens, session ids, CSRF tokens): a short
//! prefix that says what the secret is, then 256 random bits. Only their SHA-256 is stored.

use std::fmt;

/// A freshly minted opaque secret. `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(String);

impl OpaqueToken {
    /// Mints a new secret such as `rt_…` for a refresh token.
    #[must_use]
    pub fn generate(prefix: &str) -> Self {
        let bytes = crate::random_bytes::<32>();
        Self(format!("{prefix}_{}", crate::b64url(&bytes)))
    }

    /// The value to hand to its owner, once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The lookup hash stored in the database.
    #[must_use]
    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken(<redacted>)")
    }
}

/// The hex SHA-256 of a presented secret, used to look it up.
#[must_use]
pub fn hash_token(secret: &str) -> String {
    hex(&crate::sha256(secret.as_bytes()))
}

/// A random identifier made of letters and digits (client ids, key ids, user ids).
#[must_use]
pub fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in crate::random_bytes::<64>() {
            // 248 = 4 * 62: rejection sampling keeps the distribution uniform.
            if b < 248 && out.len() < len {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_prefixed_random_and_hidden_in_debug() {
        let a = OpaqueToken::generate("rt");
        let b = OpaqueToken::generate("rt");
        assert!(a.expose().starts_with("rt_"));
        assert_eq!(a.expose().len(), 3 + 43);
        assert_ne!(a, b);
        assert_eq!(format!("{a:?}"), "OpaqueToken(<redacted>)");
        assert_eq!(a.hash(), hash_token(a.expose()));
        assert_eq!(a.hash().len(), 64);
    }

    #[test]
    fn random_alphanumeric_has_requested_length() {
        let id = random_alphanumeric(32);
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
