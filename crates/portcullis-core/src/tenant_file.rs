//! The declarative tenant file (`portcullis apply tenant.yaml`), with the YAML names of
//! Auth0's Deploy CLI. Parsing turns raw values into domain types at the edge, so a bad
//! value is reported with its line; cross references (a user's role, a grant's client) are
//! checked before anything is written.

use crate::model::{AppType, Permission, RefreshTokenPolicy, ScopeDef, TokenEndpointAuthMethod};
use portcullis_crypto::jose::SigningAlg;
use serde::Deserialize;
use serde_json::Value;

/// A problem in the tenant file, with its line when known.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct FileError {
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantFile {
    #[serde(default)]
    pub tenant: Option<TenantSection>,
    #[serde(default)]
    pub clients: Vec<ClientEntry>,
    #[serde(default, rename = "resourceServers")]
    pub resource_servers: Vec<ResourceServerEntry>,
    #[serde(default, rename = "clientGrants")]
    pub client_grants: Vec<ClientGrantEntry>,
    #[serde(default)]
    pub roles: Vec<RoleEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
    /// Auth0's attack protection settings (brute force, suspicious IPs, breached passwords).
    #[serde(default, rename = "attackProtection")]
    pub attack_protection: Option<crate::protection::AttackProtection>,
    /// The database connection (one: `Username-Password-Authentication`).
    #[serde(default)]
    pub databases: Vec<DatabaseEntry>,
    /// HTTP log streams.
    #[serde(default, rename = "logStreams")]
    pub log_streams: Vec<crate::log_stream::LogStream>,
}

/// A Deploy CLI `databases` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseEntry {
    pub name: String,
    #[serde(default)]
    pub strategy: Option<String>,
    /// Accepted for compatibility: every application may use the database connection.
    #[serde(default)]
    pub enabled_clients: Vec<String>,
    #[serde(default)]
    pub realms: Vec<String>,
    #[serde(default)]
    pub is_domain_connection: Option<bool>,
    #[serde(default)]
    pub options: crate::protection::policy::ConnectionOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSection {
    pub friendly_name: Option<String>,
    /// Hours.
    pub session_lifetime: Option<PositiveHours>,
    /// Hours.
    pub idle_session_lifetime: Option<PositiveHours>,
    pub roles_claim: Option<NamespacedClaim>,
    /// Days log events are kept (our own setting; default 30).
    pub log_retention_days: Option<RetentionDays>,
    /// Accepted for compatibility with Deploy CLI files; shown nowhere yet.
    pub picture_url: Option<String>,
    pub support_email: Option<String>,
    pub support_url: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "f64")]
pub struct PositiveHours(pub i64);

impl TryFrom<f64> for PositiveHours {
    type Error = String;
    fn try_from(v: f64) -> Result<Self, String> {
        if v.is_finite() && (1.0..=8760.0).contains(&v) && v.fract() == 0.0 {
            #[expect(
                clippy::cast_possible_truncation,
                reason = "checked to be a small integer"
            )]
            Ok(Self(v as i64))
        } else {
            Err(format!(
                "expected a whole number of hours between 1 and 8760, got {v}"
            ))
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
pub struct RetentionDays(pub i64);

impl TryFrom<i64> for RetentionDays {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if (1..=3650).contains(&v) {
            Ok(Self(v))
        } else {
            Err(format!("log_retention_days must be 1 to 3650, got {v}"))
        }
    }
}

/// A claim name that cannot clash with OIDC claims: an http(s) URL, as Auth0 requires.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct NamespacedClaim(pub String);

impl TryFrom<String> for NamespacedClaim {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        let ok = url::Url::parse(&v)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
        if ok {
            Ok(Self(v))
        } else {
            Err(format!(
                "roles_claim must be a namespaced URL such as https://yourapp.com/roles, got {v:?}"
            ))
        }
    }
}

/// An absolute http(s) URL without a fragment, compared exactly.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct ExactUrl(pub String);

impl TryFrom<String> for ExactUrl {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        let parsed = url::Url::parse(&v).map_err(|e| format!("{v:?} is not a URL: {e}"))?;
        if parsed.fragment().is_some() {
            return Err(format!("{v:?} must not contain a fragment"));
        }
        if parsed.cannot_be_a_base() {
            return Err(format!("{v:?} must be an absolute URL"));
        }
        if v.contains('*') {
            return Err(format!(
                "{v:?}: wildcards are not supported; register each URL exactly"
            ));
        }
        Ok(Self(v))
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(try_from = "String")]
pub struct GrantType(pub String);

impl TryFrom<String> for GrantType {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "authorization_code" | "refresh_token" | "client_credentials" => Ok(Self(v)),
            "implicit" | "password" | "http://auth0.com/oauth/grant-type/password-realm" => Err(
                format!("grant type {v:?} is not supported (RFC 9700 deprecates it)"),
            ),
            _ => Err(format!("unknown grant type {v:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct Alg(pub SigningAlg);

impl Default for Alg {
    fn default() -> Self {
        Self(SigningAlg::RS256)
    }
}

impl TryFrom<String> for Alg {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        SigningAlg::parse(&v)
            .map(Self)
            .ok_or_else(|| format!("signing_alg must be RS256, ES256 or EdDSA, got {v:?}"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct TokenDialect(pub String);

impl TryFrom<String> for TokenDialect {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        match v.as_str() {
            "access_token" | "access_token_authz" => Ok(Self(v)),
            _ => Err(format!(
                "token_dialect must be access_token or access_token_authz, got {v:?}"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "i64")]
pub struct Lifetime(pub i64);

impl TryFrom<i64> for Lifetime {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        if (1..=2_592_000).contains(&v) {
            Ok(Self(v))
        } else {
            Err(format!(
                "token lifetime must be 1 to 2592000 seconds, got {v}"
            ))
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientEntry {
    pub name: String,
    #[serde(default)]
    pub app_type: Option<AppType>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    #[serde(default)]
    pub callbacks: Vec<ExactUrl>,
    #[serde(default)]
    pub allowed_logout_urls: Vec<ExactUrl>,
    #[serde(default)]
    pub web_origins: Vec<ExactUrl>,
    pub grant_types: Option<Vec<GrantType>>,
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    pub refresh_token: Option<RefreshTokenPolicy>,
    pub is_first_party: Option<bool>,
    /// Accepted for compatibility with Deploy CLI files.
    pub description: Option<String>,
    pub logo_uri: Option<String>,
    pub oidc_conformant: Option<bool>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceServerEntry {
    pub name: String,
    pub identifier: String,
    #[serde(default)]
    pub scopes: Vec<ScopeDef>,
    #[serde(default)]
    pub enforce_policies: bool,
    pub token_dialect: Option<TokenDialect>,
    pub token_lifetime: Option<Lifetime>,
    #[serde(default)]
    pub signing_alg: Alg,
    #[serde(default)]
    pub allow_offline_access: bool,
    pub skip_consent_for_verifiable_first_party_clients: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientGrantEntry {
    /// A client's name or id.
    pub client_id: String,
    pub audience: String,
    #[serde(default)]
    pub scope: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleEntry {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub permissions: Vec<Permission>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub email: Email,
    pub password: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub picture: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default = "empty_object")]
    pub user_metadata: Value,
    #[serde(default = "empty_object")]
    pub app_metadata: Value,
    #[serde(default)]
    pub blocked: bool,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct Email(pub String);

impl TryFrom<String> for Email {
    type Error = String;
    fn try_from(v: String) -> Result<Self, String> {
        let v = v.trim().to_owned();
        match v.split_once('@') {
            Some((local, domain))
                if !local.is_empty()
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !v.chars().any(char::is_whitespace)
                    && v.len() <= 254 =>
            {
                Ok(Self(v))
            }
            _ => Err(format!("{v:?} is not an email address")),
        }
    }
}

/// Replaces `${NAME}` with the variable's value; `$${` is a literal `${`. A missing variable
/// is an error naming its line.
pub fn interpolate(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, FileError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        // A comment line is left as it is: it may well mention `${VAR}` itself.
        if line.trim_start().starts_with('#') {
            out.push_str(line);
            continue;
        }
        let mut rest = line;
        while let Some(pos) = rest.find("${") {
            if rest[..pos].ends_with('$') {
                out.push_str(&rest[..pos - 1]);
                out.push_str("${");
                rest = &rest[pos + 2..];
                continue;
            }
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                return Err(FileError {
                    line: Some(index + 1),
                    message: "unterminated ${ in the tenant file".to_owned(),
                });
            };
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(FileError {
                    line: Some(index + 1),
                    message: format!("invalid variable name ${{{name}}}"),
                });
            }
            let Some(value) = lookup(name) else {
                return Err(FileError {
                    line: Some(index + 1),
                    message: format!("environment variable {name} is not set"),
                });
            };
            out.push_str(&value);
            rest = &after[end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Parses the (interpolated) YAML text.
pub fn parse(text: &str) -> Result<TenantFile, FileError> {
    if text.trim().is_empty() {
        return Ok(TenantFile::default());
    }
    serde_norway::from_str::<TenantFile>(text).map_err(|e| {
        let message = strip_location(&e.to_string());
        FileError {
            line: e.location().map(|l| refine_line(text, l.line(), &message)),
            message,
        }
    })
}

/// The YAML parser places a value's conversion error at the start of its mapping; move it
/// to the line below that shows the offending value (the last quoted text of the message).
fn refine_line(text: &str, line: usize, message: &str) -> usize {
    let Some(end) = message.rfind('"') else {
        return line;
    };
    let Some(start) = message[..end].rfind('"') else {
        return line;
    };
    let value = &message[start + 1..end];
    if value.is_empty() {
        return line;
    }
    text.lines()
        .enumerate()
        .skip(line.saturating_sub(1))
        .find(|(_, l)| l.contains(value))
        .map_or(line, |(i, _)| i + 1)
}

fn strip_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(pos) => message[..pos].to_owned(),
        None => message.to_owned(),
    }
}

/// The first line (1-based) holding `key: value` for an entry, for errors found after parsing.
#[must_use]
pub fn locate(text: &str, key: &str, value: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let t = line.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix(key)
                .and_then(|r| r.trim_start().strip_prefix(':'))
                .is_some_and(|r| r.trim().trim_matches(['"', '\'']) == value)
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation_replaces_variables_and_reports_missing_ones_with_line() {
        let env = |n: &str| (n == "SECRET").then(|| "s3".to_owned());
        assert_eq!(
            interpolate("a: ${SECRET}\nb: $${X}\n", env).unwrap(),
            "a: s3\nb: ${X}\n"
        );
        assert_eq!(
            interpolate("# uses ${ANY}\na: 1\n", env).unwrap(),
            "# uses ${ANY}\na: 1\n"
        );
        let err = interpolate("a: 1\nb: ${MISSING}\n", env).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(err.message.contains("MISSING"));
    }

    #[test]
    fn unknown_keys_and_bad_values_carry_their_line() {
        let err = parse("clients:\n  - name: A\n    colour: blue\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err}");
        assert!(err.message.contains("colour"), "{err}");

        let err = parse("clients:\n  - name: A\n    callbacks:\n      - not a url\n").unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");

        let err =
            parse("resourceServers:\n  - name: A\n    identifier: x\n    signing_alg: HS256\n")
                .unwrap_err();
        assert_eq!(err.line, Some(4), "{err}");
        assert!(err.message.contains("HS256"), "{err}");
    }

    #[test]
    fn roles_claim_must_be_namespaced() {
        assert!(parse("tenant:\n  roles_claim: roles\n").is_err());
        let f = parse("tenant:\n  roles_claim: https://yourapp.com/roles\n").unwrap();
        assert_eq!(
            f.tenant.unwrap().roles_claim.unwrap().0,
            "https://yourapp.com/roles"
        );
    }

    #[test]
    fn locate_finds_entries() {
        let text = "users:\n  - email: a@b.co\n    roles: [x]\n";
        assert_eq!(locate(text, "email", "a@b.co"), Some(2));
    }
}

/// JSON schemas of the checked value types, for the Management API's OpenAPI document.
mod schemas {
    use super::{Alg, ExactUrl, GrantType, Lifetime, TokenDialect};
    use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
    use std::borrow::Cow;

    macro_rules! schema {
        ($ty:ty, $name:literal, $schema:tt) => {
            impl JsonSchema for $ty {
                fn schema_name() -> Cow<'static, str> {
                    Cow::Borrowed($name)
                }
                fn json_schema(_: &mut SchemaGenerator) -> Schema {
                    json_schema!($schema)
                }
            }
        };
    }

    schema!(ExactUrl, "ExactUrl", { "type": "string", "format": "uri", "description": "An absolute URL without fragment or wildcard, matched exactly" });
    schema!(GrantType, "GrantType", { "type": "string", "enum": ["authorization_code", "refresh_token", "client_credentials"] });
    schema!(Alg, "SigningAlg", { "type": "string", "enum": ["RS256", "ES256", "EdDSA"] });
    schema!(TokenDialect, "TokenDialect", { "type": "string", "enum": ["access_token", "access_token_authz"] });
    schema!(Lifetime, "TokenLifetime", { "type": "integer", "minimum": 1, "maximum": 2_592_000 });
}
