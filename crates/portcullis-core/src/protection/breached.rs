//! The offline list of breached passwords: 49,233 passwords seen in public breach corpora
//! (zxcvbn's list, shipped in the binary; see `data/common-passwords.txt` for its source
//! and license), optionally extended from a file with one password per line. The 10,000
//! most frequent also serve as the password dictionary.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

static EMBEDDED: &str = include_str!("../../data/common-passwords.txt");

/// How many of the most frequent passwords the dictionary check refuses (Auth0's size).
pub const DICTIONARY_SIZE: usize = 10_000;

/// Password → rank (0 = most frequent), lower-cased.
fn ranks() -> &'static HashMap<&'static str, u32> {
    static RANKS: OnceLock<HashMap<&'static str, u32>> = OnceLock::new();
    RANKS.get_or_init(|| {
        let mut map = HashMap::with_capacity(50_000);
        let mut rank = 0u32;
        for line in EMBEDDED.lines() {
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            map.entry(line).or_insert(rank);
            rank += 1;
        }
        map
    })
}

/// Whether `lower` (already lower-cased) is among the most common passwords.
#[must_use]
pub fn is_common(lower: &str) -> bool {
    ranks()
        .get(lower)
        .is_some_and(|r| (*r as usize) < DICTIONARY_SIZE)
}

/// The breached-password list: the embedded one plus any loaded from a file.
#[derive(Debug, Default)]
pub struct BreachedList {
    extra: HashSet<String>,
}

impl BreachedList {
    /// The embedded list only.
    #[must_use]
    pub fn embedded() -> Self {
        Self::default()
    }

    /// The embedded list and the passwords of `path` (one per line, `#` comments).
    pub fn with_file(path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        let extra = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect();
        Ok(Self { extra })
    }

    /// How many passwords the list holds.
    #[must_use]
    pub fn len(&self) -> usize {
        ranks().len() + self.extra.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `password` (compared without case) has appeared in a breach.
    #[must_use]
    pub fn contains(&self, password: &str) -> bool {
        let lower = password.to_lowercase();
        ranks().contains_key(lower.as_str()) || self.extra.contains(&lower)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_list_is_real_and_ranked() {
        let list = BreachedList::embedded();
        assert!(list.len() > 40_000, "{}", list.len());
        assert!(list.contains("123456"));
        assert!(list.contains("Password"));
        assert!(list.contains("trustno1"));
        assert!(!list.contains("correct horse battery staple"));
        assert!(is_common("qwerty"));
        assert!(!is_common("zz-not-common-zz"));
    }

    #[test]
    fn file_extends_the_list() {
        let path = std::env::temp_dir().join(format!(
            "breached-{}.txt",
            portcullis_crypto::token::random_alphanumeric(8)
        ));
        std::fs::write(&path, "# comment\nHunter2-Special\n").unwrap();
        let list = BreachedList::with_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(list.contains("hunter2-special"));
        assert!(list.contains("123456"));
    }
}
