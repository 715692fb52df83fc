//! `/oauth/token`: client authentication, the request and the response, and what the grants
//! share (the user's tokens, scopes and permissions). Each grant has its own file.

mod code;
mod machine;
mod refresh;

use super::claims::{self, AccessTokenInput, IdTokenInput};
use crate::error::{Internal, OAuthError, OAuthErrorCode};
use crate::model::Permission;
use crate::model::{Client, ResourceServer, Role, User};
use crate::protection::admission::Admission;
use crate::service::Portcullis;
use crate::store::{AccessRecord, UserAccess};
use code::PresentedCode;
use portcullis_crypto::jose::SigningAlg;
use serde::Serialize;
use std::collections::HashMap;

/// The user a token is for, with their roles (read once per token request).
pub struct Subject<'a> {
    pub user: &'a User,
    pub roles: &'a [Role],
    /// Every permission the user holds: through roles and directly.
    pub permissions: &'a [Permission],
}

/// Credentials presented by the client, from the Basic header and/or the form.
/// `Debug` shows the client id only.
#[derive(Default)]
pub struct ClientCredentials {
    pub basic: Option<(String, String)>,
    pub form_id: Option<String>,
    pub form_secret: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("basic_id", &self.basic.as_ref().map(|(id, _)| id))
            .field("form_id", &self.form_id)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Takes `client_id` and `client_secret` out of a request's parameters, beside the
    /// credentials of an HTTP Basic header.
    #[must_use]
    pub fn take(form: &mut HashMap<String, String>, basic: Option<(String, String)>) -> Self {
        Self {
            basic,
            form_id: form.remove("client_id").filter(|s| !s.is_empty()),
            form_secret: form.remove("client_secret").filter(|s| !s.is_empty()),
        }
    }
}

/// A parsed token request. `Debug` names the grant only.
pub enum TokenRequest {
    AuthorizationCode {
        code: String,
        redirect_uri: Option<String>,
        code_verifier: Option<String>,
    },
    RefreshToken {
        refresh_token: String,
        scope: Option<String>,
    },
    ClientCredentials {
        audience: Option<String>,
        scope: Option<String>,
    },
}

impl std::fmt::Debug for TokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenRequest({})", self.grant_type())
    }
}

impl TokenRequest {
    /// Parses the parameters left after [`ClientCredentials::take`].
    pub fn parse(mut form: HashMap<String, String>) -> Result<Self, OAuthError> {
        let mut take = |k: &str| form.remove(k).filter(|s| !s.is_empty());
        let request = match take("grant_type").as_deref() {
            Some("authorization_code") => Self::AuthorizationCode {
                code: take("code").ok_or_else(|| {
                    OAuthError::invalid_request("Missing required parameter: code")
                })?,
                redirect_uri: take("redirect_uri"),
                code_verifier: take("code_verifier"),
            },
            Some("refresh_token") => Self::RefreshToken {
                refresh_token: take("refresh_token").ok_or_else(|| {
                    OAuthError::invalid_request("Missing required parameter: refresh_token")
                })?,
                scope: take("scope"),
            },
            Some("client_credentials") => Self::ClientCredentials {
                audience: take("audience"),
                scope: take("scope"),
            },
            Some(other) => {
                return Err(OAuthError::new(
                    OAuthErrorCode::UnsupportedGrantType,
                    format!("Unsupported grant type: {other}"),
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "Missing required parameter: grant_type",
                ));
            }
        };
        Ok(request)
    }

    #[must_use]
    pub fn grant_type(&self) -> &'static str {
        match self {
            Self::AuthorizationCode { .. } => "authorization_code",
            Self::RefreshToken { .. } => "refresh_token",
            Self::ClientCredentials { .. } => "client_credentials",
        }
    }
}

/// Charges `client`'s own budget; its refusal is a 429 `too_many_requests`.
pub(super) async fn admit(admission: &dyn Admission, client: &Client) -> Result<(), OAuthError> {
    admission
        .admit(&client.client_id)
        .await
        .map_err(|_| OAuthError::too_many_requests())
}

/// The successful token response (RFC 6749 §5.1). `Debug` shows no token.
#[derive(Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    pub expires_in: i64,
    pub token_type: &'static str,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

impl Portcullis {
    /// Authenticates the client: a confidential client by its secret (Basic or form, not
    /// both), a public client by its id alone.
    pub async fn authenticate_client(
        &self,
        creds: &ClientCredentials,
    ) -> Result<Client, OAuthError> {
        let (client_id, secret) = match (&creds.basic, &creds.form_id, &creds.form_secret) {
            (Some(_), _, Some(_)) => {
                return Err(OAuthError::invalid_request(
                    "Use only one client authentication method",
                ));
            }
            (Some((id, secret)), form_id, None) => {
                if form_id.as_ref().is_some_and(|f| f != id) {
                    return Err(OAuthError::invalid_request(
                        "client_id does not match the credentials",
                    ));
                }
                (id.clone(), Some(secret.clone()))
            }
            (None, Some(id), secret) => (id.clone(), secret.clone()),
            (None, None, _) => return Err(OAuthError::invalid_client()),
        };
        let client = self
            .cached_client(&client_id)
            .await?
            .ok_or_else(OAuthError::invalid_client)?;
        if client.is_public() {
            if secret.is_some() {
                return Err(OAuthError::invalid_client());
            }
            return Ok(client);
        }
        let Some(presented) = secret else {
            return Err(OAuthError::invalid_client());
        };
        let expected =
            crate::apply::open_client_secret(&self.master, &client).ok_or_else(|| {
                OAuthError::Internal(Internal::new(format!(
                    "client {} secret cannot be opened",
                    client.client_id
                )))
            })?;
        if portcullis_crypto::ct_eq(presented.as_bytes(), expected.as_bytes()) {
            Ok(client)
        } else {
            Err(OAuthError::invalid_client())
        }
    }

    /// Handles a token request. `admission` charges the application's own budget once the
    /// request is known to speak for it (see [`crate::protection::admission`]).
    pub async fn token(
        &self,
        request: TokenRequest,
        creds: &ClientCredentials,
        admission: &dyn Admission,
    ) -> Result<TokenResponse, OAuthError> {
        let (ok_kind, failed_kind) = match &request {
            TokenRequest::AuthorizationCode { .. } => ("seacft", "feacft"),
            TokenRequest::RefreshToken { .. } => ("sertft", "fertft"),
            TokenRequest::ClientCredentials { .. } => ("seccft", "feccft"),
        };
        let presented_id = creds
            .basic
            .as_ref()
            .map(|(id, _)| id.clone())
            .or_else(|| creds.form_id.clone());
        let result = self.token_inner(request, creds, admission).await;
        match &result {
            // A refusal by the rate limit is recorded there, once a minute at most: a flood
            // must not become a flood of audit rows.
            Err(e) if e.code() == OAuthErrorCode::TooManyRequests => {}
            Ok((client, _)) => {
                let fields = crate::audit::EventFields {
                    client_id: Some(&client.client_id),
                    client_name: Some(&client.name),
                    ..Default::default()
                };
                self.audit(ok_kind, "Successful token exchange", fields)
                    .await;
            }
            Err(e) => {
                let fields = crate::audit::EventFields {
                    client_id: presented_id.as_deref(),
                    ..Default::default()
                };
                self.audit(failed_kind, e.description(), fields).await;
            }
        }
        result.map(|(_, response)| response)
    }

    async fn token_inner(
        &self,
        request: TokenRequest,
        creds: &ClientCredentials,
        admission: &dyn Admission,
    ) -> Result<(Client, TokenResponse), OAuthError> {
        let client = self.authenticate_client(creds).await?;
        let grant = request.grant_type();
        if !client.allows_grant(grant) {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                format!("Grant type '{grant}' not allowed for the client."),
            ));
        }
        // A confidential client has proved who it is; a public client is charged by its
        // grant, once the code or refresh token it presents checks out.
        if !client.is_public() {
            admit(admission, &client).await?;
        }
        let response = match request {
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
            } => {
                let presented = PresentedCode {
                    code: &code,
                    redirect_uri: redirect_uri.as_deref(),
                    verifier: code_verifier.as_deref(),
                };
                if client.is_public() && self.code_checks_out(&client, &presented).await? {
                    admit(admission, &client).await?;
                }
                self.exchange_code(&client, &presented).await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
            } => {
                self.exchange_refresh_token(&client, &refresh_token, scope.as_deref(), admission)
                    .await
            }
            TokenRequest::ClientCredentials { audience, scope } => {
                self.client_credentials(&client, audience.as_deref(), scope.as_deref())
                    .await
            }
        }?;
        metrics::counter!("portcullis_tokens_issued_total", "grant_type" => grant).increment(1);
        Ok((client, response))
    }

    /// An unblocked user with their roles and direct permissions, for a token.
    async fn active_user_with_access(&self, user_id: &str) -> Result<UserAccess, OAuthError> {
        active(
            self.store
                .user_with_access(self.tenant_id(), user_id)
                .await?,
        )
    }

    /// The built-in Management API, as a resource server for the client-credentials grant.
    #[must_use]
    pub fn management_api(&self) -> ResourceServer {
        ResourceServer {
            tenant_id: self.tenant_id().to_owned(),
            id: "management-api".to_owned(),
            identifier: self.settings.management_audience(),
            name: "Portcullis Management API".to_owned(),
            scopes: crate::management::ALL_SCOPES
                .iter()
                .map(|s| crate::model::ScopeDef {
                    value: (*s).to_owned(),
                    description: String::new(),
                })
                .collect(),
            enforce_policies: false,
            token_dialect: "access_token".to_owned(),
            token_lifetime: 86_400,
            signing_alg: SigningAlg::RS256,
            allow_offline_access: false,
        }
    }

    pub(crate) async fn resource_server(
        &self,
        audience: Option<&str>,
    ) -> Result<Option<ResourceServer>, OAuthError> {
        let Some(audience) = audience else {
            return Ok(None);
        };
        Ok(self.cached_resource_server(audience).await?)
    }

    fn wants_refresh_token(
        &self,
        client: &Client,
        scope: &[String],
        api: Option<&ResourceServer>,
    ) -> bool {
        scope.iter().any(|s| s == "offline_access")
            && client.allows_grant("refresh_token")
            && api.is_none_or(|a| a.allow_offline_access)
    }

    pub(crate) fn sign(
        &self,
        alg: SigningAlg,
        claims: &serde_json::Value,
    ) -> Result<String, OAuthError> {
        let keys = self.keys.current();
        let key = keys
            .signer(alg, self.now())
            .ok_or_else(|| OAuthError::Internal(Internal::new(format!("no active {alg} key"))))?;
        key.sign_jwt(claims)
            .map_err(|e| OAuthError::Internal(Internal::with("signing a token", e)))
    }

    /// Role names for the roles claim, when the tenant has one.
    pub(crate) async fn roles_claim(
        &self,
        roles: &[Role],
    ) -> Result<Option<(String, Vec<String>)>, OAuthError> {
        let tenant = self.tenant().await?;
        Ok(tenant
            .roles_claim
            .map(|claim| (claim, roles.iter().map(|r| r.name.clone()).collect())))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "each input is a distinct part of the token set"
    )]
    async fn user_tokens(
        &self,
        client: &Client,
        subject: &Subject<'_>,
        scope: &[String],
        api: Option<&ResourceServer>,
        grant_id: &str,
        nonce: Option<&str>,
        auth_time: i64,
        sid: Option<&str>,
    ) -> Result<(TokenResponse, AccessRecord), OAuthError> {
        let now = self.now();
        let user = subject.user;
        let roles = self.roles_claim(subject.roles).await?;
        let roles_ref = roles.as_ref().map(|(c, r)| (c.as_str(), r.clone()));
        let permissions = api
            .filter(|a| a.enforce_policies && a.token_dialect == "access_token_authz")
            .map(|a| permissions_for(a, subject.permissions));
        let openid = scope.iter().any(|s| s == "openid");
        let userinfo = self.settings.userinfo_audience();
        let (audience, lifetime, alg) = match api {
            Some(api) if openid => (
                vec![api.identifier.clone(), userinfo],
                api.token_lifetime,
                api.signing_alg,
            ),
            Some(api) => (
                vec![api.identifier.clone()],
                api.token_lifetime,
                api.signing_alg,
            ),
            None => (
                vec![userinfo],
                self.settings.userinfo_token_lifetime,
                SigningAlg::RS256,
            ),
        };
        let jti = portcullis_crypto::token::random_alphanumeric(24);
        let access = claims::access_token(&AccessTokenInput {
            issuer: &self.settings.issuer,
            sub: &user.user_id,
            audience,
            azp: &client.client_id,
            scope,
            jti: &jti,
            now,
            lifetime,
            machine: false,
            roles: roles_ref.clone(),
            permissions,
        });
        let access_token = self.sign(alg, &access)?;
        let record = AccessRecord {
            jti,
            grant_id: grant_id.to_owned(),
            expires_at: now + lifetime,
        };
        let id_token = if openid {
            let claims = claims::id_token(&IdTokenInput {
                issuer: &self.settings.issuer,
                client_id: &client.client_id,
                user,
                scope,
                nonce,
                auth_time,
                sid,
                roles: roles_ref,
                now,
                lifetime: self.settings.id_token_lifetime,
            });
            Some(self.sign(SigningAlg::RS256, &claims)?)
        } else {
            None
        };
        let response = TokenResponse {
            access_token,
            id_token,
            refresh_token: None,
            scope: scope.join(" "),
            expires_in: lifetime,
            token_type: "Bearer",
        };
        Ok((response, record))
    }
}

/// The user a token is for, when they still exist and are not blocked.
fn active(user: Option<UserAccess>) -> Result<UserAccess, OAuthError> {
    match user {
        Some((user, ..)) if user.blocked => Err(OAuthError::invalid_grant("user is blocked")),
        Some(found) => Ok(found),
        None => Err(OAuthError::invalid_grant("Unknown or invalid grant")),
    }
}

/// The scopes granted for a user token: OIDC scopes always; an API's scopes when the API
/// defines them and, if it enforces RBAC policies, when the user holds them.
#[must_use]
pub fn granted_scope(
    requested: &[String],
    api: Option<&ResourceServer>,
    held: &[Permission],
) -> Vec<String> {
    let permitted = api.map(|a| permissions_for(a, held)).unwrap_or_default();
    requested
        .iter()
        .filter(|s| {
            super::OIDC_SCOPES.contains(&s.as_str())
                || api.is_some_and(|a| {
                    a.scopes.iter().any(|d| &d.value == *s)
                        && (!a.enforce_policies || permitted.contains(*s))
                })
        })
        .cloned()
        .collect()
}

/// Every permission a user holds: those of their roles and those given directly.
#[must_use]
pub fn held_permissions(roles: &[Role], direct: &[Permission]) -> Vec<Permission> {
    roles
        .iter()
        .flat_map(|r| r.permissions.iter())
        .chain(direct)
        .cloned()
        .collect()
}

/// The permission names held on `api`, sorted and without repeats.
#[must_use]
pub fn permissions_for(api: &ResourceServer, held: &[Permission]) -> Vec<String> {
    let mut out: Vec<String> = held
        .iter()
        .filter(|p| p.resource_server_identifier == api.identifier)
        .map(|p| p.permission_name.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}
