//! `/oauth/token`: client authentication and the three grants (one function each).

use super::claims::{self, AccessTokenInput, IdTokenInput};
use super::split_scope;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Permission;
use crate::model::{Client, ExpirationType, RefreshToken, ResourceServer, Role, User};
use crate::protection::admission::Admission;
use crate::service::Portcullis;
use crate::store::{AccessRecord, RefreshTokenContext, UserAccess};
use portcullis_crypto::jose::SigningAlg;
use portcullis_crypto::token::{OpaqueToken, hash_token};
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

/// What a code exchange presents besides the client: the code, the redirect URI and the
/// PKCE verifier. `Debug` shows no secret.
struct PresentedCode<'a> {
    code: &'a str,
    redirect_uri: Option<&'a str>,
    verifier: Option<&'a str>,
}

/// The checks of a code exchange against the authorization request the code stands for:
/// the same redirect URI, and the PKCE verifier exactly when a challenge was sent (no
/// downgrade either way).
fn check_code_request(
    request: &crate::model::AuthorizeRequest,
    presented: &PresentedCode<'_>,
) -> Result<(), OAuthError> {
    if presented.redirect_uri != Some(request.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&request.code_challenge, presented.verifier) {
        (Some(challenge), Some(v)) if portcullis_crypto::pkce::verify_s256(v, challenge) => Ok(()),
        (Some(_), _) => Err(OAuthError::invalid_grant("Failed to verify code verifier")),
        (None, Some(_)) => Err(OAuthError::invalid_grant(
            "code_verifier given but no code_challenge was sent",
        )),
        (None, None) => Ok(()),
    }
}

/// Charges `client`'s own budget; its refusal is a 429 `too_many_requests`.
async fn admit(admission: &dyn Admission, client: &Client) -> Result<(), OAuthError> {
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
                OAuthError::Internal(format!(
                    "client {} secret cannot be opened",
                    client.client_id
                ))
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

    /// Whether a public client's code would be exchanged: known, unspent, unexpired, for
    /// this redirect URI and with the right PKCE verifier. Read without spending anything, so
    /// the application is charged before its code is spent and a refusal loses nothing.
    async fn code_checks_out(
        &self,
        client: &Client,
        presented: &PresentedCode<'_>,
    ) -> Result<bool, OAuthError> {
        let found = self
            .store
            .find_authorization_code(
                self.tenant_id(),
                &hash_token(presented.code),
                &client.client_id,
            )
            .await?;
        Ok(found.is_some_and(|code| {
            !code.used_before
                && code.expires_at > self.now()
                && check_code_request(&code.grant.request, presented).is_ok()
        }))
    }

    async fn exchange_code(
        &self,
        client: &Client,
        presented: &PresentedCode<'_>,
    ) -> Result<TokenResponse, OAuthError> {
        let tenant = self.tenant_id();
        let now = self.now();
        let Some(stored) = self
            .store
            .consume_authorization_code(tenant, &hash_token(presented.code), &client.client_id, now)
            .await?
        else {
            return Err(OAuthError::invalid_grant("Invalid authorization code"));
        };
        if stored.used_before {
            // RFC 6749 §4.1.2: a replayed code revokes the tokens it issued.
            self.store
                .revoke_grant(tenant, &stored.grant_id, now)
                .await?;
            tracing::warn!(client_id = %client.client_id, "authorization code replayed; grant revoked");
            return Err(OAuthError::invalid_grant("Invalid authorization code"));
        }
        let request = &stored.grant.request;
        if stored.expires_at <= now {
            return Err(OAuthError::invalid_grant("Invalid authorization code"));
        }
        check_code_request(request, presented)?;
        let (user, roles, direct) = self.active_user_with_access(&stored.grant.user_id).await?;
        let api = self.resource_server(request.audience.as_deref()).await?;
        let held = held_permissions(&roles, &direct);
        let scope = granted_scope(&request.scope, api.as_ref(), &held);
        let refresh = self.wants_refresh_token(client, &scope, api.as_ref());
        let refresh_token = if refresh {
            let token = OpaqueToken::generate("rt");
            let policy = &client.refresh_token;
            let expiring = policy.expiration_type == ExpirationType::Expiring;
            self.store
                .create_refresh_token(&RefreshToken {
                    tenant_id: tenant.to_owned(),
                    token_hash: token.hash(),
                    id: portcullis_crypto::token::random_alphanumeric(24),
                    grant_id: stored.grant_id.clone(),
                    client_id: client.client_id.clone(),
                    user_id: user.user_id.clone(),
                    scope: scope.clone(),
                    audience: request.audience.clone(),
                    auth_time: stored.grant.auth_time,
                    created_at: now,
                    expires_at: (expiring && !policy.infinite_token_lifetime)
                        .then_some(now + policy.token_lifetime),
                    idle_expires_at: (expiring && !policy.infinite_idle_token_lifetime)
                        .then_some(now + policy.idle_token_lifetime),
                    used_at: None,
                    revoked_at: None,
                })
                .await?;
            Some(token.expose().to_owned())
        } else {
            None
        };
        let (mut response, record) = self
            .user_tokens(
                client,
                &Subject {
                    user: &user,
                    roles: &roles,
                    permissions: &held,
                },
                &scope,
                api.as_ref(),
                &stored.grant_id,
                request.nonce.as_deref(),
                stored.grant.auth_time,
                Some(&stored.grant.session_id),
            )
            .await?;
        self.store
            .record_access_token(tenant, &record.jti, &record.grant_id, record.expires_at)
            .await?;
        response.refresh_token = refresh_token;
        Ok(response)
    }

    async fn exchange_refresh_token(
        &self,
        client: &Client,
        presented: &str,
        scope: Option<&str>,
        admission: &dyn Admission,
    ) -> Result<TokenResponse, OAuthError> {
        let tenant = self.tenant_id();
        let now = self.now();
        let hash = hash_token(presented);
        let invalid = || OAuthError::invalid_grant("Unknown or invalid refresh token.");
        // The token, its grant and its user in one read; the user is looked at only once
        // the token has passed every check.
        let Some(RefreshTokenContext { token, grant, user }) =
            self.store.find_refresh_token_context(tenant, &hash).await?
        else {
            return Err(invalid());
        };
        if token.client_id != client.client_id {
            return Err(invalid());
        }
        let grant = grant.ok_or_else(invalid)?;
        if token.revoked_at.is_some() || grant.revoked_at.is_some() {
            return Err(invalid());
        }
        if token.expires_at.is_some_and(|e| e <= now)
            || token.idle_expires_at.is_some_and(|e| e <= now)
        {
            return Err(invalid());
        }
        let policy = &client.refresh_token;
        let rotating = client.rotates_refresh_tokens();
        if let Some(used_at) = token.used_at
            && (!rotating || now > used_at + policy.leeway)
        {
            // Reuse of a rotated token: someone else holds a copy. Revoke the family.
            self.store
                .revoke_grant(tenant, &token.grant_id, now)
                .await?;
            tracing::warn!(client_id = %client.client_id, "rotated refresh token reused; family revoked");
            return Err(invalid());
        }
        let scope = match scope {
            None => token.scope.clone(),
            Some(s) => {
                let asked = split_scope(s);
                if asked.iter().any(|a| !token.scope.contains(a)) {
                    return Err(OAuthError::new(
                        OAuthErrorCode::InvalidScope,
                        "The requested scope exceeds the scope granted",
                    ));
                }
                asked
            }
        };
        // Permissions removed since the token was issued are no longer granted.
        let (user, roles, direct) = active(user)?;
        if client.is_public() {
            // The token checks out: charge the application before anything is spent.
            admit(admission, client).await?;
        }
        let api = self.resource_server(token.audience.as_deref()).await?;
        let held = held_permissions(&roles, &direct);
        let scope = granted_scope(&scope, api.as_ref(), &held);
        let idle_expires_at = (policy.expiration_type == ExpirationType::Expiring
            && !policy.infinite_idle_token_lifetime)
            .then_some(now + policy.idle_token_lifetime);
        // Tokens are signed first, so that spending the old refresh token, storing the new
        // one and recording the access token are one transaction.
        let (mut response, access) = self
            .user_tokens(
                client,
                &Subject {
                    user: &user,
                    roles: &roles,
                    permissions: &held,
                },
                &scope,
                api.as_ref(),
                &token.grant_id,
                None,
                token.auth_time,
                grant.session_id.as_deref(),
            )
            .await?;
        let new_refresh = if rotating {
            let next = OpaqueToken::generate("rt");
            let record = RefreshToken {
                token_hash: next.hash(),
                id: portcullis_crypto::token::random_alphanumeric(24),
                created_at: now,
                idle_expires_at: match (idle_expires_at, token.expires_at) {
                    (Some(i), Some(e)) => Some(i.min(e)),
                    (i, _) => i,
                },
                used_at: None,
                revoked_at: None,
                ..token.clone()
            };
            let allow_since = (policy.leeway > 0).then_some(now - policy.leeway);
            if !self
                .store
                .rotate_refresh_token(tenant, &hash, &record, &access, now, allow_since)
                .await?
            {
                self.store
                    .revoke_grant(tenant, &token.grant_id, now)
                    .await?;
                return Err(invalid());
            }
            Some(next.expose().to_owned())
        } else {
            self.store
                .touch_refresh_token(tenant, &hash, idle_expires_at)
                .await?;
            self.store
                .record_access_token(tenant, &access.jti, &access.grant_id, access.expires_at)
                .await?;
            None
        };
        response.refresh_token = new_refresh;
        Ok(response)
    }

    async fn client_credentials(
        &self,
        client: &Client,
        audience: Option<&str>,
        scope: Option<&str>,
    ) -> Result<TokenResponse, OAuthError> {
        if client.is_public() {
            return Err(OAuthError::new(
                OAuthErrorCode::UnauthorizedClient,
                "Public clients cannot use client_credentials",
            ));
        }
        let Some(audience) = audience else {
            return Err(OAuthError::invalid_request(
                "Missing required parameter: audience",
            ));
        };
        let api = if audience == self.settings.management_audience() {
            Some(self.management_api())
        } else {
            self.resource_server(Some(audience)).await?
        }
        .ok_or_else(|| {
            OAuthError::new(
                OAuthErrorCode::AccessDenied,
                format!("Service not found: {audience}"),
            )
        })?;
        let grants = self.cached_client_grants().await?;
        let grant = grants
            .iter()
            .find(|g| g.client_id == client.client_id && g.audience == audience)
            .ok_or_else(|| {
                OAuthError::new(OAuthErrorCode::AccessDenied, format!("Client is not authorized to access \"{audience}\". You need to create a \"client-grant\" associated to this API."))
            })?;
        let scope: Vec<String> = match scope {
            None => grant.scope.clone(),
            Some(s) => {
                let asked = split_scope(s);
                if let Some(bad) = asked.iter().find(|a| !grant.scope.contains(a)) {
                    return Err(OAuthError::new(
                        OAuthErrorCode::AccessDenied,
                        format!("Client has not been granted scopes: {bad}"),
                    ));
                }
                asked
            }
        };
        let now = self.now();
        let jti = portcullis_crypto::token::random_alphanumeric(24);
        let sub = format!("{}@clients", client.client_id);
        let claims = claims::access_token(&AccessTokenInput {
            issuer: &self.settings.issuer,
            sub: &sub,
            audience: vec![audience.to_owned()],
            azp: &client.client_id,
            scope: &scope,
            jti: &jti,
            now,
            lifetime: api.token_lifetime,
            machine: true,
            roles: None,
            permissions: None,
        });
        let access_token = self.sign(api.signing_alg, &claims)?;
        Ok(TokenResponse {
            access_token,
            id_token: None,
            refresh_token: None,
            scope: scope.join(" "),
            expires_in: api.token_lifetime,
            token_type: "Bearer",
        })
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
            .ok_or_else(|| OAuthError::Internal(format!("no active {alg} key")))?;
        key.sign_jwt(claims)
            .map_err(|e| OAuthError::Internal(e.to_string()))
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
