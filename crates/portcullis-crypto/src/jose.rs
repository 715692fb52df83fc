//! JWS signing and verification for ID and access tokens.
//!
//! Key pairs are parsed once (aws-lc-rs) and held for the life of the key: re-parsing a key
//! per signature costs more than the signature itself. Verification goes through
//! `jsonwebtoken`, with the algorithm pinned per key so a token cannot choose it.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256,
    RsaKeyPair,
};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt;

/// A JWS algorithm Portcullis signs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigningAlg {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    /// The JOSE name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::ES256 => "ES256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(Self::RS256),
            "ES256" => Some(Self::ES256),
            "EdDSA" => Some(Self::EdDSA),
            _ => None,
        }
    }

    /// All algorithms, in the order published.
    pub const ALL: [Self; 3] = [Self::RS256, Self::ES256, Self::EdDSA];

    fn jwt_alg(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors from key handling, signing and verification. They carry no key material.
#[derive(Debug, thiserror::Error)]
pub enum JoseError {
    #[error("key generation failed")]
    Generate,
    #[error("the stored private key could not be parsed")]
    BadKey,
    #[error("signing failed")]
    Sign,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature or algorithm is invalid")]
    BadSignature,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A parsed signing key pair with its id and public JWK. `Debug` shows only the id.
pub struct SigningKey {
    kid: String,
    alg: SigningAlg,
    pair: Pair,
    jwk: Value,
    header_b64: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a new key pair; returns it with its PKCS#8 DER encoding for storage.
    pub fn generate(alg: SigningAlg) -> Result<(Self, Vec<u8>), JoseError> {
        use aws_lc_rs::encoding::AsDer;
        let der = match alg {
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .map_err(|_| JoseError::Generate)?;
                pair.as_der()
                    .map_err(|_| JoseError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::ES256 => {
                let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| JoseError::Generate)?;
                pair.to_pkcs8v1()
                    .map_err(|_| JoseError::Generate)?
                    .as_ref()
                    .to_vec()
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::generate().map_err(|_| JoseError::Generate)?;
                pair.to_pkcs8v1()
                    .map_err(|_| JoseError::Generate)?
                    .as_ref()
                    .to_vec()
            }
        };
        let kid = crate::token::random_alphanumeric(20);
        let key = Self::from_pkcs8(&kid, alg, &der)?;
        Ok((key, der))
    }

    /// Parses a stored PKCS#8 private key.
    pub fn from_pkcs8(kid: &str, alg: SigningAlg, der: &[u8]) -> Result<Self, JoseError> {
        let (pair, jwk) = match alg {
            SigningAlg::RS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|_| JoseError::BadKey)?;
                let c = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                let jwk = json!({
                    "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
                    "n": crate::b64url(&c.n), "e": crate::b64url(&c.e),
                });
                (Pair::Rsa(pair), jwk)
            }
            SigningAlg::ES256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| JoseError::BadKey)?;
                let point = pair.public_key().as_ref();
                if point.len() != 65 || point[0] != 4 {
                    return Err(JoseError::BadKey);
                }
                let jwk = json!({
                    "kty": "EC", "use": "sig", "alg": "ES256", "kid": kid, "crv": "P-256",
                    "x": crate::b64url(&point[1..33]), "y": crate::b64url(&point[33..]),
                });
                (Pair::Ec(pair), jwk)
            }
            SigningAlg::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|_| JoseError::BadKey)?;
                let jwk = json!({
                    "kty": "OKP", "use": "sig", "alg": "EdDSA", "kid": kid, "crv": "Ed25519",
                    "x": crate::b64url(pair.public_key().as_ref()),
                });
                (Pair::Ed(pair), jwk)
            }
        };
        let header = json!({ "alg": alg.as_str(), "typ": "JWT", "kid": kid });
        Ok(Self {
            kid: kid.to_owned(),
            alg,
            pair,
            jwk,
            header_b64: crate::b64url(header.to_string().as_bytes()),
        })
    }

    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    #[must_use]
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The public key as a JWK, for `/.well-known/jwks.json`.
    #[must_use]
    pub fn public_jwk(&self) -> &Value {
        &self.jwk
    }

    /// Signs `claims` as a compact JWS with header `{alg, typ: JWT, kid}`.
    pub fn sign_jwt<T: Serialize>(&self, claims: &T) -> Result<String, JoseError> {
        let payload = serde_json::to_vec(claims).map_err(|_| JoseError::Sign)?;
        let mut out = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 400);
        out.push_str(&self.header_b64);
        out.push('.');
        out.push_str(&crate::b64url(&payload));
        let sig = self.sign_raw(out.as_bytes())?;
        out.push('.');
        out.push_str(&crate::b64url(&sig));
        Ok(out)
    }

    fn sign_raw(&self, msg: &[u8]) -> Result<Vec<u8>, JoseError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .map_err(|_| JoseError::Sign)?;
                Ok(sig)
            }
            Pair::Ec(pair) => Ok(pair
                .sign(&rng, msg)
                .map_err(|_| JoseError::Sign)?
                .as_ref()
                .to_vec()),
            Pair::Ed(pair) => Ok(pair.sign(msg).as_ref().to_vec()),
        }
    }
}

/// Verifies tokens against a set of public JWKs, each pinned to its own algorithm.
#[derive(Clone, Default)]
pub struct Verifier {
    keys: HashMap<String, (SigningAlg, jsonwebtoken::DecodingKey)>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Verifier {
    /// Builds a verifier from public JWKs (`kid`, `alg` and key parameters required).
    #[must_use]
    pub fn from_jwks<'a>(jwks: impl IntoIterator<Item = &'a Value>) -> Self {
        let mut keys = HashMap::new();
        for jwk in jwks {
            let (Some(kid), Some(alg)) = (
                jwk.get("kid").and_then(Value::as_str),
                jwk.get("alg")
                    .and_then(Value::as_str)
                    .and_then(SigningAlg::parse),
            ) else {
                continue;
            };
            let s = |k: &str| jwk.get(k).and_then(Value::as_str).unwrap_or_default();
            let key = match alg {
                SigningAlg::RS256 => jsonwebtoken::DecodingKey::from_rsa_components(s("n"), s("e")),
                SigningAlg::ES256 => jsonwebtoken::DecodingKey::from_ec_components(s("x"), s("y")),
                SigningAlg::EdDSA => jsonwebtoken::DecodingKey::from_ed_components(s("x")),
            };
            if let Ok(key) = key {
                keys.insert(kid.to_owned(), (alg, key));
            }
        }
        Self { keys }
    }

    /// Checks the signature and returns the claims. Time, issuer and audience checks are the
    /// caller's, against its own clock.
    pub fn verify(&self, token: &str) -> Result<Value, JoseError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JoseError::Malformed)?;
        let kid = header.kid.ok_or(JoseError::UnknownKey)?;
        let (alg, key) = self.keys.get(&kid).ok_or(JoseError::UnknownKey)?;
        if header.alg != alg.jwt_alg() {
            return Err(JoseError::BadSignature);
        }
        let mut validation = jsonwebtoken::Validation::new(alg.jwt_alg());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<Value>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| JoseError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_signs_and_verifies_and_rejects_tampering() {
        for alg in SigningAlg::ALL {
            let (key, der) = SigningKey::generate(alg).unwrap();
            let reparsed = SigningKey::from_pkcs8(key.kid(), alg, &der).unwrap();
            assert_eq!(reparsed.public_jwk(), key.public_jwk());
            let token = key.sign_jwt(&json!({"sub": "auth0|1", "n": 1})).unwrap();
            let verifier = Verifier::from_jwks([key.public_jwk()]);
            let claims = verifier.verify(&token).unwrap();
            assert_eq!(claims["sub"], "auth0|1");

            let mut parts: Vec<&str> = token.split('.').collect();
            let forged = crate::b64url(br#"{"sub":"auth0|2","n":1}"#);
            parts[1] = &forged;
            assert!(verifier.verify(&parts.join(".")).is_err(), "{alg}");
        }
    }

    #[test]
    fn alg_none_and_unknown_kid_are_refused() {
        let (key, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
        let verifier = Verifier::from_jwks([key.public_jwk()]);
        let header = crate::b64url(
            json!({"alg": "none", "kid": key.kid()})
                .to_string()
                .as_bytes(),
        );
        let body = crate::b64url(b"{\"sub\":\"x\"}");
        assert!(verifier.verify(&format!("{header}.{body}.")).is_err());
        let (other, _) = SigningKey::generate(SigningAlg::ES256).unwrap();
        let token = other.sign_jwt(&json!({"sub": "x"})).unwrap();
        assert!(matches!(
            verifier.verify(&token),
            Err(JoseError::UnknownKey)
        ));
    }
}
