//! Password hashing with argon2id at OWASP's parameters (m = 19 MiB, t = 2, p = 1).
//!
//! These functions are CPU-bound and slow on purpose: run them on a bounded blocking pool,
//! never on the async runtime (the core crate's `PasswordHasher` does that).

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};
use std::cell::RefCell;
use std::sync::LazyLock;

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

thread_local! {
    /// This thread's argon2 working memory, kept between hashes. A fresh 19 MiB per hash
    /// costs page faults (a third of the hash time), and the C allocator keeps freed blocks
    /// of that size per thread anyway. Callers run hashes on a few fixed threads.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `argon` over this thread's working memory.
///
/// The memory is not wiped afterwards (the crate does not wipe its own either): its blocks
/// are a one-way function of the password and salt, so someone who could read them could
/// as well read the stored hash, and test guesses against that. Each hash overwrites all
/// of them.
fn compute(argon: &Argon2<'_>, password: &[u8], salt: &[u8], out: &mut [u8]) -> bool {
    let blocks = argon.params().block_count();
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() != blocks {
            *memory = vec![Block::default(); blocks];
        }
        argon
            .hash_password_into_with_memory(password, salt, out, memory.as_mut_slice())
            .is_ok()
    })
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
#[must_use]
pub fn hash(password: &str) -> String {
    let argon = argon2();
    let salt_bytes = crate::random_bytes::<16>();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    assert!(
        compute(&argon, password.as_bytes(), &salt_bytes, &mut out),
        "argon2 hashing with valid parameters does not fail"
    );
    PasswordHash {
        algorithm: argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).expect("parameters encode"),
        salt: Some(Salt::new(&salt_bytes).expect("a 16-byte salt is valid")),
        hash: Some(Output::new(&out).expect("a 32-byte output is valid")),
    }
    .to_string()
}

/// Checks `password` against a PHC string, with the parameters the string names.
fn matches(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    // `Output`'s equality is constant-time.
    compute(&argon, password.as_bytes(), salt.as_ref(), &mut out)
        && Output::new(&out).is_ok_and(|computed| &computed == expected)
}

/// A hash of a random password, verified against when the account does not exist so an
/// unknown email costs the same time as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash(&crate::token::random_alphanumeric(32)));

/// Checks `password` against a stored PHC hash; `None` verifies against a dummy hash and
/// always answers `false`.
#[must_use]
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let (phc, real) = match stored {
        Some(h) => (h, true),
        None => (DUMMY_HASH.as_str(), false),
    };
    matches(password, phc) && real
}

/// Warms the dummy hash so the first unknown-user login is not slower than later ones.
/// The working memory goes back to the system afterwards: an idle server holds none.
pub fn warm_up() {
    LazyLock::force(&DUMMY_HASH);
    MEMORY.with_borrow_mut(|memory| *memory = Vec::new());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_use_owasp_parameters() {
        let h = hash("correct horse battery staple");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse battery staple", Some(&h)));
        assert!(!verify("wrong", Some(&h)));
        assert!(!verify("correct horse battery staple", None));
        assert!(!verify("x", Some("not a hash")));
    }

    #[test]
    fn hashes_are_the_crates_phc_strings_both_ways() {
        use argon2::{PasswordHasher, PasswordVerifier};
        let theirs = argon2()
            .hash_password(b"another passphrase")
            .unwrap()
            .to_string();
        assert!(verify("another passphrase", Some(&theirs)));
        assert!(!verify("another passphrasf", Some(&theirs)));
        let ours = hash("another passphrase");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            argon2()
                .verify_password(b"another passphrase", &parsed)
                .is_ok()
        );
        // Other parameters in a stored hash are honoured.
        let light = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"light")
        .unwrap()
        .to_string();
        assert!(verify("light", Some(&light)) && !verify("heavy", Some(&light)));
    }
}
