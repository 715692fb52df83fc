//! Domain records shared by the services and the store. They hold no secrets in clear
//! except where a type says so; secret values are sealed or hashed before they get here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Unix seconds.
pub type Timestamp = i64;

/// The tenant every deployment starts with.
pub const DEFAULT_TENANT: &str = "default";

/// The database connection's name, as in Auth0.
pub const DATABASE_CONNECTION: &str = "Username-Password-Authentication";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tenant {
    pub id: String,
    pub friendly_name: String,
    pub session_lifetime_hours: i64,
    pub idle_session_lifetime_hours: i64,
    /// Namespaced claim that carries the user's role names in ID and access tokens.
    pub roles_claim: Option<String>,
    /// Days log events are kept.
    pub log_retention_days: i64,
}

impl Tenant {
    #[must_use]
    pub fn new_default(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            friendly_name: "Portcullis".to_owned(),
            session_lifetime_hours: 168,
            idle_session_lifetime_hours: 72,
            roles_claim: None,
            log_retention_days: 30,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AppType {
    RegularWeb,
    Spa,
    Native,
    NonInteractive,
}

impl AppType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegularWeb => "regular_web",
            Self::Spa => "spa",
            Self::Native => "native",
            Self::NonInteractive => "non_interactive",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    None,
    ClientSecretPost,
    ClientSecretBasic,
}

impl TokenEndpointAuthMethod {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::ClientSecretPost => "client_secret_post",
            Self::ClientSecretBasic => "client_secret_basic",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RotationType {
    Rotating,
    NonRotating,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExpirationType {
    Expiring,
    NonExpiring,
}

/// A client's refresh token policy, with Auth0's names and defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RefreshTokenPolicy {
    pub rotation_type: RotationType,
    pub expiration_type: ExpirationType,
    /// Seconds during which a rotated token may be used again without revoking its family.
    pub leeway: i64,
    /// Absolute lifetime in seconds.
    pub token_lifetime: i64,
    /// Lifetime in seconds without use.
    pub idle_token_lifetime: i64,
    pub infinite_token_lifetime: bool,
    pub infinite_idle_token_lifetime: bool,
}

impl RefreshTokenPolicy {
    /// The defaults: a public client (browser and native apps, or any client without a
    /// secret) rotates its refresh tokens, as RFC 9700 §4.14.2 requires; a confidential
    /// application keeps one, non-rotating token, as in Auth0 (an app that stores only the
    /// first refresh token keeps working).
    #[must_use]
    pub fn for_client(app_type: AppType, method: TokenEndpointAuthMethod) -> Self {
        let public = method == TokenEndpointAuthMethod::None
            || matches!(app_type, AppType::Spa | AppType::Native);
        if public {
            Self {
                rotation_type: RotationType::Rotating,
                ..Self::default()
            }
        } else {
            Self::default()
        }
    }
}

impl Default for RefreshTokenPolicy {
    fn default() -> Self {
        Self {
            rotation_type: RotationType::NonRotating,
            expiration_type: ExpirationType::Expiring,
            leeway: 0,
            token_lifetime: 2_592_000,
            idle_token_lifetime: 1_296_000,
            infinite_token_lifetime: false,
            infinite_idle_token_lifetime: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub tenant_id: String,
    pub client_id: String,
    pub name: String,
    pub app_type: AppType,
    /// The client secret sealed under the master key; `None` for public clients.
    pub secret_sealed: Option<Vec<u8>>,
    pub token_endpoint_auth_method: TokenEndpointAuthMethod,
    pub callbacks: Vec<String>,
    pub allowed_logout_urls: Vec<String>,
    pub web_origins: Vec<String>,
    pub grant_types: Vec<String>,
    pub refresh_token: RefreshTokenPolicy,
    pub is_first_party: bool,
}

impl Client {
    #[must_use]
    pub fn is_public(&self) -> bool {
        self.token_endpoint_auth_method == TokenEndpointAuthMethod::None
    }

    /// Whether a refresh grant replaces the token it spends. A public client always
    /// rotates (RFC 9700 §4.14.2), even if a row written before that rule says otherwise.
    #[must_use]
    pub fn rotates_refresh_tokens(&self) -> bool {
        self.refresh_token.rotation_type == RotationType::Rotating || self.is_public()
    }

    #[must_use]
    pub fn allows_grant(&self, grant: &str) -> bool {
        self.grant_types.iter().any(|g| g == grant)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeDef {
    pub value: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceServer {
    pub tenant_id: String,
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<ScopeDef>,
    pub enforce_policies: bool,
    pub token_dialect: String,
    pub token_lifetime: i64,
    pub signing_alg: portcullis_crypto::jose::SigningAlg,
    pub allow_offline_access: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientGrant {
    pub tenant_id: String,
    pub id: String,
    pub client_id: String,
    pub audience: String,
    pub scope: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    pub tenant_id: String,
    pub id: String,
    pub name: String,
    pub description: String,
    pub permissions: Vec<Permission>,
}

#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    pub resource_server_identifier: String,
    pub permission_name: String,
}

#[derive(Clone, PartialEq)]
pub struct User {
    pub tenant_id: String,
    pub user_id: String,
    pub connection: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub nickname: String,
    pub picture: String,
    /// PHC string; `None` for users who cannot log in with a password.
    pub password_hash: Option<String>,
    pub user_metadata: Value,
    pub app_metadata: Value,
    pub blocked: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_login: Option<Timestamp>,
    pub logins_count: i64,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("user_id", &self.user_id)
            .field("connection", &self.connection)
            .field("blocked", &self.blocked)
            .finish_non_exhaustive()
    }
}

/// Lower-cased, trimmed email used for lookups and uniqueness.
#[must_use]
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub tenant_id: String,
    /// Public session id (the `sid` claim).
    pub id: String,
    pub user_id: String,
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub expires_at: Timestamp,
    pub idle_expires_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseMode {
    Query,
    FormPost,
    /// `web_message`: the response is posted with `window.postMessage` to the redirect URI's
    /// origin, for silent authentication in an iframe or a popup (auth0-spa-js).
    WebMessage,
}

/// The `prompt` of an authorization request: OpenID Connect Core §3.1.2.1 makes it a
/// space-separated list (`login consent`), where `none` stands alone.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Prompts {
    /// Authenticate again, whatever the SSO session.
    pub login: bool,
    /// Ask for consent again, even when it was given before.
    pub consent: bool,
    /// Show nothing: answer `login_required` or `consent_required` instead.
    pub none: bool,
}

impl Prompts {
    /// Parses the parameter; names an unsupported value, or `none` combined with another.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut prompts = Self::default();
        let mut count = 0;
        for word in value.split(' ').filter(|w| !w.is_empty()) {
            count += 1;
            match word {
                "login" => prompts.login = true,
                "consent" => prompts.consent = true,
                "none" => prompts.none = true,
                // There is one session per browser: nothing to select.
                "select_account" => {}
                other => return Err(format!("Unsupported prompt: {other}")),
            }
        }
        if prompts.none && count > 1 {
            return Err("prompt=none cannot be combined with other values".to_owned());
        }
        Ok(prompts)
    }
}

impl<'de> Deserialize<'de> for Prompts {
    /// Reads the stored set, and also the single value (or null) stored before lists were
    /// accepted, so requests saved by an earlier version still load.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Set {
                #[serde(default)]
                login: bool,
                #[serde(default)]
                consent: bool,
                #[serde(default)]
                none: bool,
            },
            One(String),
            Nothing(()),
        }
        Ok(match Stored::deserialize(d)? {
            Stored::Set {
                login,
                consent,
                none,
            } => Self {
                login,
                consent,
                none,
            },
            Stored::One(word) => Self::parse(&word).unwrap_or_default(),
            Stored::Nothing(()) => Self::default(),
        })
    }
}

/// A validated `/authorize` request, kept while the user logs in and then with the code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    /// The API asked for; `None` means only `{issuer}userinfo`.
    pub audience: Option<String>,
    pub response_mode: ResponseMode,
    #[serde(default)]
    pub prompt: Prompts,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginTransaction {
    pub tenant_id: String,
    pub id: String,
    pub csrf_hash: String,
    pub request: AuthorizeRequest,
    /// Set once the user has authenticated and the transaction waits for another step
    /// (consent today; a second factor later).
    pub authenticated: Option<AuthenticatedAs>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

impl LoginTransaction {
    /// The transaction, paused after `user_id` authenticated in `session_id`.
    #[must_use]
    pub fn paused_by(self, user_id: &str, session_id: &str) -> Self {
        Self {
            authenticated: Some(AuthenticatedAs {
                user_id: user_id.to_owned(),
                session_id: session_id.to_owned(),
            }),
            ..self
        }
    }
}

/// Who authenticated in a paused login transaction, and in which session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedAs {
    pub user_id: String,
    pub session_id: String,
}

/// What an authorization code stands for, stored with the code's hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeGrant {
    pub request: AuthorizeRequest,
    pub user_id: String,
    pub session_id: String,
    pub auth_time: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub tenant_id: String,
    pub grant_id: String,
    pub grant: CodeGrant,
    pub expires_at: Timestamp,
    /// Set when this code had already been spent before this lookup.
    pub used_before: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub tenant_id: String,
    pub id: String,
    pub client_id: String,
    pub user_id: String,
    pub session_id: Option<String>,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    pub tenant_id: String,
    pub token_hash: String,
    pub id: String,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: String,
    pub scope: Vec<String>,
    pub audience: Option<String>,
    pub auth_time: Timestamp,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub idle_expires_at: Option<Timestamp>,
    pub used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    pub tenant_id: String,
    pub kid: String,
    pub alg: portcullis_crypto::jose::SigningAlg,
    pub private_key_sealed: Vec<u8>,
    pub created_at: Timestamp,
    pub active_from: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

/// What a single-use emailed link does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    EmailVerification,
    PasswordChange,
    Unblock,
}

impl TicketKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordChange => "password_change",
            Self::Unblock => "unblock",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }
}

/// A single-use link's record; the link's secret is stored only as its hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub tenant_id: String,
    pub ticket_hash: String,
    pub kind: TicketKind,
    pub user_id: String,
    pub data: TicketData,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// What a ticket carries besides its user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TicketData {
    /// Where the page sends the user when done (`result_url`).
    pub result_url: Option<String>,
    /// The application the user came from (its login page is offered when done).
    pub client_id: Option<String>,
    /// A password change also marks the email verified.
    pub mark_email_as_verified: bool,
    /// Which IP an unblock link releases (every IP when `None`).
    pub ip: Option<String>,
    /// The email the ticket was issued for: a ticket stops working when the email changes.
    pub email: String,
}

/// Login attempts of one account from one IP not yet followed by a success, after
/// counting one more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: i64,
    /// The pair is refused (the count passed the limit while blocking was on).
    pub blocked: bool,
}

/// An IP blocked from an account by brute-force protection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginBlock {
    pub ip: String,
    pub blocked_at: Timestamp,
}

/// A new database user's id: `auth0|` and 24 hex digits, as Auth0 makes them.
#[must_use]
pub fn new_user_id() -> String {
    format!(
        "auth0|{}",
        portcullis_crypto::token::hex(&portcullis_crypto::random_bytes::<12>())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_is_a_space_separated_list_where_none_stands_alone() {
        let both = Prompts::parse("login consent").unwrap();
        assert!(both.login && both.consent && !both.none);
        assert_eq!(Prompts::parse("").unwrap(), Prompts::default());
        assert_eq!(
            Prompts::parse("select_account").unwrap(),
            Prompts::default()
        );
        assert!(Prompts::parse("none").unwrap().none);
        assert!(Prompts::parse("none login").is_err());
        assert!(Prompts::parse("consent none").is_err());
        assert!(Prompts::parse("login bogus").is_err());
    }

    #[test]
    fn prompts_stored_by_an_earlier_version_still_load() {
        let set: Prompts =
            serde_json::from_str(r#"{"login":true,"consent":true,"none":false}"#).unwrap();
        assert!(set.login && set.consent);
        let one: Prompts = serde_json::from_str(r#""consent""#).unwrap();
        assert!(one.consent && !one.login);
        let nothing: Prompts = serde_json::from_str("null").unwrap();
        assert_eq!(nothing, Prompts::default());
        let round: Prompts = serde_json::from_value(serde_json::to_value(set).unwrap()).unwrap();
        assert_eq!(round, set);
    }
}
