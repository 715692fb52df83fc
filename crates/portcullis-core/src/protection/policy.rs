//! The database connection's password policy, with Auth0's levels and options, and the
//! check every new password goes through (signup, reset, change, Management API).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Auth0's `passwordPolicy` levels.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PolicyLevel {
    None,
    Low,
    Fair,
    #[default]
    Good,
    Excellent,
}

impl PolicyLevel {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Low => "low",
            Self::Fair => "fair",
            Self::Good => "good",
            Self::Excellent => "excellent",
        }
    }

    /// The level's own minimum length.
    fn min_length(self) -> usize {
        match self {
            Self::None => 1,
            Self::Low => 6,
            Self::Fair | Self::Good => 8,
            Self::Excellent => 10,
        }
    }

    /// The lowest zxcvbn score (0 to 4) the level accepts.
    fn min_score(self) -> Option<u8> {
        match self {
            Self::None | Self::Low => None,
            Self::Fair => Some(2),
            Self::Good => Some(3),
            Self::Excellent => Some(4),
        }
    }
}

/// The database connection's `options`, as in the Deploy CLI's `databases` entries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default)]
pub struct ConnectionOptions {
    #[serde(rename = "passwordPolicy")]
    pub password_policy: PolicyLevel,
    pub password_complexity_options: ComplexityOptions,
    pub password_history: HistoryOptions,
    pub password_dictionary: DictionaryOptions,
    pub password_no_personal_info: Toggle,
    /// Turns off `/dbconnections/signup` and the signup page.
    pub disable_signup: bool,
    /// Counts failed logins per account and IP (see attack protection).
    pub brute_force_protection: bool,
    /// Refuses logins until the email address is verified (Auth0 does this with an Action).
    pub require_email_verification: bool,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        Self {
            password_policy: PolicyLevel::Good,
            password_complexity_options: ComplexityOptions::default(),
            password_history: HistoryOptions::default(),
            password_dictionary: DictionaryOptions {
                enable: true,
                dictionary: Vec::new(),
            },
            password_no_personal_info: Toggle { enable: true },
            disable_signup: false,
            brute_force_protection: true,
            require_email_verification: false,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ComplexityOptions {
    /// Overrides the level's minimum length (1 to 128).
    #[schemars(range(min = 1, max = 128))]
    pub min_length: Option<u32>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryOptions {
    pub enable: bool,
    /// How many earlier passwords may not be reused (up to 24).
    #[schemars(range(min = 0, max = 24))]
    pub size: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DictionaryOptions {
    pub enable: bool,
    /// Extra words refused besides the 10,000 most common passwords.
    pub dictionary: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Toggle {
    pub enable: bool,
}

impl ConnectionOptions {
    /// Checks the ranges the types cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(n) = self.password_complexity_options.min_length
            && !(1..=128).contains(&n)
        {
            return Err("password_complexity_options.min_length must be 1 to 128".to_owned());
        }
        if self.password_history.size > 24 {
            return Err("password_history.size must be 0 to 24".to_owned());
        }
        Ok(())
    }

    /// How many earlier hashes to keep.
    #[must_use]
    pub fn history_size(&self) -> usize {
        if self.password_history.enable {
            self.password_history.size as usize
        } else {
            0
        }
    }

    fn min_length(&self) -> usize {
        self.password_complexity_options
            .min_length
            .map_or_else(|| self.password_policy.min_length(), |n| n as usize)
    }

    /// The rules shown next to a new-password field.
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        let mut rules = vec![format!("At least {} characters", self.min_length())];
        match self.password_policy {
            PolicyLevel::Fair => rules.push(
                "Lower case letters (a-z), upper case letters (A-Z) and numbers (0-9)".to_owned(),
            ),
            PolicyLevel::Good | PolicyLevel::Excellent => rules.push(
                "At least 3 of: lower case letters, upper case letters, numbers, special characters"
                    .to_owned(),
            ),
            PolicyLevel::None | PolicyLevel::Low => {}
        }
        if self.password_policy == PolicyLevel::Excellent {
            rules.push("No more than 2 identical characters in a row".to_owned());
        }
        if self.password_policy.min_score().is_some() {
            rules.push("Not easy to guess".to_owned());
        }
        if self.password_dictionary.enable {
            rules.push("Not a common password".to_owned());
        }
        if self.password_no_personal_info.enable {
            rules.push("Does not contain your email or name".to_owned());
        }
        if self.history_size() > 0 {
            rules.push(format!(
                "Not one of your last {} passwords",
                self.history_size()
            ));
        }
        rules
    }
}

/// Why a new password was refused, with Auth0's names.
#[derive(Clone, Debug, PartialEq)]
pub enum PasswordRejection {
    /// `invalid_password` (PasswordStrengthError), with Auth0's rule list.
    TooWeak { rules: Value, summary: String },
    /// `password_dictionary_error`.
    Dictionary,
    /// `password_no_user_info_error`.
    PersonalInfo,
    /// `password_history_error`.
    History,
    /// `password_leaked`.
    Leaked,
}

impl PasswordRejection {
    /// Auth0's `code`.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooWeak { .. } => "invalid_password",
            Self::Dictionary => "password_dictionary_error",
            Self::PersonalInfo => "password_no_user_info_error",
            Self::History => "password_history_error",
            Self::Leaked => "password_leaked",
        }
    }

    /// Auth0's error `name`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::TooWeak { .. } => "PasswordStrengthError",
            Self::Dictionary => "PasswordDictionaryError",
            Self::PersonalInfo => "PasswordNoUserInfoError",
            Self::History => "PasswordHistoryError",
            Self::Leaked => "PasswordLeakedError",
        }
    }

    /// What a person reads.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::TooWeak { summary, .. } => summary.clone(),
            Self::Dictionary => "Password is too common.".to_owned(),
            Self::PersonalInfo => "Password contains user information.".to_owned(),
            Self::History => "Password has previously been used.".to_owned(),
            Self::Leaked => {
                "This password has appeared in a data breach. Choose a different one.".to_owned()
            }
        }
    }

    /// The `description` of the JSON error (the rule list for a weak password).
    #[must_use]
    pub fn description(&self) -> Value {
        match self {
            Self::TooWeak { rules, .. } => rules.clone(),
            other => Value::String(other.message()),
        }
    }
}

/// What the policy knows about the person choosing the password.
#[derive(Clone, Copy, Debug, Default)]
pub struct PersonalInfo<'a> {
    pub email: &'a str,
    pub name: &'a str,
}

const SPECIAL: &str = " !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn rule(message: &str, format: Value, code: &str, verified: bool) -> Value {
    json!({"message": message, "format": format, "code": code, "verified": verified})
}

/// Checks `password` against the strength rules, the dictionary and personal data (the
/// history and breach checks need the store and the list: see the services).
pub fn check(
    options: &ConnectionOptions,
    password: &str,
    who: PersonalInfo<'_>,
) -> Result<(), PasswordRejection> {
    if options.password_dictionary.enable {
        let lower = password.to_lowercase();
        if super::breached::is_common(&lower)
            || options
                .password_dictionary
                .dictionary
                .iter()
                .any(|w| w.to_lowercase() == lower)
        {
            return Err(PasswordRejection::Dictionary);
        }
    }
    if options.password_no_personal_info.enable && contains_personal_info(password, who) {
        return Err(PasswordRejection::PersonalInfo);
    }
    strength(options, password, who)
}

fn contains_personal_info(password: &str, who: PersonalInfo<'_>) -> bool {
    let lower = password.to_lowercase();
    let email = who.email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    let mut parts: Vec<&str> = vec![email.as_str(), local];
    let name = who.name.to_lowercase();
    parts.extend(name.split_whitespace());
    parts
        .iter()
        .filter(|p| p.chars().count() >= 3)
        .any(|p| lower.contains(p))
}

fn strength(
    options: &ConnectionOptions,
    password: &str,
    who: PersonalInfo<'_>,
) -> Result<(), PasswordRejection> {
    let level = options.password_policy;
    let min = options.min_length();
    let length_ok = password.chars().count() >= min;
    let lower = password.chars().any(|c| c.is_lowercase());
    let upper = password.chars().any(|c| c.is_uppercase());
    let digit = password.chars().any(|c| c.is_ascii_digit());
    let special = password.chars().any(|c| SPECIAL.contains(c));
    let mut rules = vec![rule(
        "At least %d characters in length",
        json!([min]),
        "lengthAtLeast",
        length_ok,
    )];
    let mut ok = length_ok;
    let item = |message: &str, code: &str, verified: bool| json!({"message": message, "code": code, "verified": verified});
    match level {
        PolicyLevel::Fair => {
            let all = lower && upper && digit;
            ok &= all;
            rules.push(json!({
                "message": "Should contain:", "code": "shouldContain", "verified": all,
                "items": [
                    item("lower case letters (a-z)", "lowerCase", lower),
                    item("upper case letters (A-Z)", "upperCase", upper),
                    item("numbers (i.e. 0-9)", "numbers", digit),
                ],
            }));
        }
        PolicyLevel::Good | PolicyLevel::Excellent => {
            let kinds = [lower, upper, digit, special]
                .iter()
                .filter(|k| **k)
                .count();
            let enough = kinds >= 3;
            ok &= enough;
            rules.push(json!({
                "message": "Contain at least %d of the following %d types of characters:",
                "format": [3, 4], "code": "containsAtLeast", "verified": enough,
                "items": [
                    item("lower case letters (a-z)", "lowerCase", lower),
                    item("upper case letters (A-Z)", "upperCase", upper),
                    item("numbers (i.e. 0-9)", "numbers", digit),
                    item("special characters (e.g. !@#$%^&*)", "specialCharacters", special),
                ],
            }));
        }
        PolicyLevel::None | PolicyLevel::Low => {}
    }
    if level == PolicyLevel::Excellent {
        let repeats = !password
            .chars()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w[0] == w[1] && w[1] == w[2]);
        ok &= repeats;
        rules.push(rule(
            "No more than %d identical characters in a row (e.g., \"%s\" not allowed)",
            json!([2, "aaa"]),
            "identicalChars",
            repeats,
        ));
    }
    if ok && let Some(min_score) = level.min_score() {
        let inputs: Vec<&str> = [who.email, who.name]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let score = zxcvbn::zxcvbn(password, &inputs).score() as u8;
        let strong = score >= min_score;
        ok &= strong;
        rules.push(rule(
            "Not easy to guess (strength %d of 4, at least %d needed)",
            json!([score, min_score]),
            "strength",
            strong,
        ));
    }
    if ok {
        return Ok(());
    }
    let failed: Vec<String> = rules
        .iter()
        .filter(|r| r["verified"] == false)
        .map(human)
        .collect();
    Err(PasswordRejection::TooWeak {
        rules: json!({"rules": rules, "verified": false}),
        summary: format!("Password is too weak: {}.", failed.join("; ")),
    })
}

/// A rule's message with its `%d`/`%s` placeholders filled in.
fn human(rule: &Value) -> String {
    let mut text = rule["message"].as_str().unwrap_or_default().to_owned();
    if let Some(args) = rule["format"].as_array() {
        for arg in args {
            let value = match arg {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Some(at) = text.find("%d").or_else(|| text.find("%s")) {
                text.replace_range(at..at + 2, &value);
            }
        }
    }
    let text = text.trim_end_matches(':').to_owned();
    if let Some(items) = rule["items"].as_array() {
        let names: Vec<&str> = items.iter().filter_map(|i| i["message"].as_str()).collect();
        return format!("{text} {}", names.join(", "));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(level: PolicyLevel) -> ConnectionOptions {
        ConnectionOptions {
            password_policy: level,
            ..ConnectionOptions::default()
        }
    }

    const WHO: PersonalInfo<'static> = PersonalInfo {
        email: "jane.doe@example.com",
        name: "Jane Doe",
    };

    #[test]
    fn levels_follow_auth0() {
        assert!(check(&opts(PolicyLevel::None), "x", WHO).is_ok());
        assert!(check(&opts(PolicyLevel::Low), "abcde", WHO).is_err());
        assert!(check(&opts(PolicyLevel::Low), "zqxwvu", WHO).is_ok());
        assert!(check(&opts(PolicyLevel::Fair), "plumtrees9x", WHO).is_err());
        assert!(check(&opts(PolicyLevel::Fair), "Plumtrees9x", WHO).is_ok());
        assert!(check(&opts(PolicyLevel::Good), "Velvet-otter-52", WHO).is_ok());
        assert!(check(&opts(PolicyLevel::Excellent), "Velvet-ottt-52-kayak", WHO).is_err());
        assert!(check(&opts(PolicyLevel::Excellent), "Velvet-otter-52-kayak", WHO).is_ok());
    }

    #[test]
    fn weak_password_reports_auth0_rules() {
        let err = check(&opts(PolicyLevel::Good), "x7Qz", WHO).unwrap_err();
        assert_eq!(err.code(), "invalid_password");
        let rules = err.description();
        assert_eq!(rules["verified"], false);
        assert_eq!(rules["rules"][0]["code"], "lengthAtLeast");
        assert_eq!(rules["rules"][0]["format"][0], 8);
        assert!(
            err.message().contains("At least 8 characters in length"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn dictionary_personal_info_and_min_length() {
        let mut o = opts(PolicyLevel::Low);
        assert_eq!(
            check(&o, "password1", WHO).unwrap_err(),
            PasswordRejection::Dictionary
        );
        o.password_dictionary.dictionary = vec!["Portcullis".to_owned()];
        assert_eq!(
            check(&o, "portcullis", WHO).unwrap_err(),
            PasswordRejection::Dictionary
        );
        assert_eq!(
            check(&o, "xxJane.Doe!!", WHO).unwrap_err(),
            PasswordRejection::PersonalInfo
        );
        o.password_complexity_options.min_length = Some(20);
        assert!(check(&o, "a-fine-but-short", WHO).is_err());
    }
}
