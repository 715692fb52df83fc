//! Endpoints that read tokens back: `/userinfo`, `/oauth/revoke` (RFC 7009),
//! `/oauth/introspect` (RFC 7662), and logout (`/v2/logout`, `/oidc/logout`).

use super::claims;
use super::token::ClientCredentials;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::service::Portcullis;
use portcullis_crypto::token::hash_token;
use serde_json::{Map, Value, json};

/// A verified access token of ours.
#[derive(Debug, Clone)]
pub struct VerifiedAccessToken {
    pub claims: Value,
    /// The grant a user's token was issued under (`None` for machine tokens).
    pub grant: Option<crate::model::Grant>,
}

impl VerifiedAccessToken {
    fn str(&self, key: &str) -> Option<&str> {
        self.claims.get(key).and_then(Value::as_str)
    }

    #[must_use]
    pub fn audiences(&self) -> Vec<&str> {
        audiences(&self.claims)
    }
}

/// The `aud` of a token's claims: one string or a list.
#[must_use]
pub fn audiences(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The bearer token of a request, verified once by the edge that read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Bearer {
    /// No bearer token came.
    Missing,
    /// One came, but it is not ours, not signed by us, or expired.
    Invalid,
    /// Its claims, signed by us and unexpired (see [`Portcullis::verify_jwt`]).
    Verified(Value),
}

/// Where to send the browser after logout, if anywhere.
#[derive(Debug, PartialEq, Eq)]
pub enum LogoutOutcome {
    Redirect(String),
    /// Logged out, with no (valid) place to return to; the text says why.
    Page(Option<String>),
}

impl Portcullis {
    /// Verifies one of our JWTs: signature, issuer, and expiry (with `leeway` seconds).
    pub fn verify_jwt(&self, token: &str, leeway: i64) -> Option<Value> {
        let keys = self.keys.current();
        let claims = keys.verifier().verify(token).ok()?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.settings.issuer.as_str()) {
            return None;
        }
        let exp = claims.get("exp").and_then(Value::as_i64)?;
        (exp + leeway > self.now()).then_some(claims)
    }

    /// Verifies an access token and checks its grant has not been revoked.
    pub async fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<Option<VerifiedAccessToken>, OAuthError> {
        match self.verify_jwt(token, 0) {
            Some(claims) => self.accept_access_token(claims).await,
            None => Ok(None),
        }
    }

    /// Takes verified JWT claims as an access token if they are one (not an ID token) and
    /// their grant has not been revoked.
    pub async fn accept_access_token(
        &self,
        claims: Value,
    ) -> Result<Option<VerifiedAccessToken>, OAuthError> {
        // ID tokens carry no scope or jti; they are not access tokens.
        let Some(jti) = claims.get("jti").and_then(Value::as_str) else {
            return Ok(None);
        };
        if claims.get("scope").is_none() {
            return Ok(None);
        }
        let grant = self
            .store
            .find_access_token_grant(self.tenant_id(), jti)
            .await?;
        if grant.as_ref().is_some_and(|g| g.revoked_at.is_some()) {
            return Ok(None);
        }
        Ok(Some(VerifiedAccessToken { claims, grant }))
    }

    /// `/userinfo`: the user's claims for the scopes of an access token whose audience
    /// includes `{issuer}userinfo`. `None` means the token is not acceptable.
    pub async fn userinfo(&self, bearer: Bearer) -> Result<Option<Value>, OAuthError> {
        let Bearer::Verified(claims) = bearer else {
            return Ok(None);
        };
        let Some(at) = self.accept_access_token(claims).await? else {
            return Ok(None);
        };
        let userinfo = self.settings.userinfo_audience();
        if !at.audiences().contains(&userinfo.as_str()) || at.claims.get("gty").is_some() {
            return Ok(None);
        }
        let Some(sub) = at.str("sub") else {
            return Ok(None);
        };
        let Some(user) = self.store.find_user(self.tenant_id(), sub).await? else {
            return Ok(None);
        };
        if user.blocked {
            return Ok(None);
        }
        let scope = super::split_scope(at.str("scope").unwrap_or_default());
        let mut out: Map<String, Value> = claims::profile_claims(&user, &scope);
        let roles = self
            .store
            .list_user_roles(self.tenant_id(), &user.user_id)
            .await?;
        if let Some((claim, roles)) = self.roles_claim(&roles).await? {
            out.insert(claim, json!(roles));
        }
        Ok(Some(Value::Object(out)))
    }

    /// RFC 7009 revocation. Unknown tokens and other clients' tokens are answered the same.
    pub async fn revoke(&self, creds: &ClientCredentials, token: &str) -> Result<(), OAuthError> {
        let client = self.authenticate_client(creds).await?;
        let tenant = self.tenant_id();
        let now = self.now();
        if let Some(rt) = self
            .store
            .find_refresh_token(tenant, &hash_token(token))
            .await?
        {
            if rt.client_id == client.client_id {
                self.store.revoke_grant(tenant, &rt.grant_id, now).await?;
            }
            return Ok(());
        }
        if let Some(at) = self.verify_access_token(token).await?
            && at.str("azp") == Some(client.client_id.as_str())
            && let Some(grant) = &at.grant
        {
            // A user's access token: revoke the grant it came from (its refresh tokens too).
            self.store.revoke_grant(tenant, &grant.id, now).await?;
        }
        Ok(())
    }

    /// RFC 7662 introspection, for authenticated confidential clients.
    pub async fn introspect(
        &self,
        creds: &ClientCredentials,
        token: &str,
    ) -> Result<Value, OAuthError> {
        let client = self.authenticate_client(creds).await?;
        if client.is_public() {
            return Err(OAuthError::invalid_client());
        }
        let inactive = json!({ "active": false });
        if let Some(at) = self.verify_access_token(token).await? {
            if !self.may_introspect(&client, &at).await? {
                return Ok(inactive);
            }
            let mut out = at.claims.clone();
            let map = out.as_object_mut().expect("JWT claims are an object");
            map.insert("active".to_owned(), json!(true));
            map.insert("token_type".to_owned(), json!("access_token"));
            if let Some(azp) = at.str("azp") {
                map.insert("client_id".to_owned(), json!(azp));
            }
            return Ok(out);
        }
        let tenant = self.tenant_id();
        let now = self.now();
        let Some((rt, grant)) = self
            .store
            .find_refresh_token_and_grant(tenant, &hash_token(token))
            .await?
        else {
            return Ok(inactive);
        };
        let live = rt.revoked_at.is_none()
            && grant.is_some_and(|g| g.revoked_at.is_none())
            && rt.expires_at.is_none_or(|e| e > now)
            && rt.idle_expires_at.is_none_or(|e| e > now)
            && (rt.used_at.is_none()
                || self
                    .store
                    .find_client(tenant, &rt.client_id)
                    .await?
                    .is_some_and(|c| !c.rotates_refresh_tokens()));
        if !live || rt.client_id != client.client_id {
            return Ok(inactive);
        }
        let mut out = json!({
            "active": true,
            "token_type": "refresh_token",
            "client_id": rt.client_id,
            "sub": rt.user_id,
            "scope": rt.scope.join(" "),
            "iat": rt.created_at,
            "iss": self.settings.issuer,
        });
        if let Some(exp) = rt.expires_at {
            out["exp"] = json!(exp);
        }
        Ok(out)
    }

    /// A client may introspect the access tokens issued to it, and those for an API it holds
    /// a client grant for (it acts as that API). A blocked user's tokens are inactive.
    async fn may_introspect(
        &self,
        client: &Client,
        at: &VerifiedAccessToken,
    ) -> Result<bool, OAuthError> {
        let tenant = self.tenant_id();
        if at.claims.get("gty").is_none()
            && let Some(sub) = at.str("sub")
            && self
                .store
                .find_user(tenant, sub)
                .await?
                .is_none_or(|u| u.blocked)
        {
            return Ok(false);
        }
        if at.str("azp") == Some(client.client_id.as_str()) {
            return Ok(true);
        }
        let audiences = at.audiences();
        Ok(self
            .store
            .list_client_grants(tenant)
            .await?
            .iter()
            .any(|g| g.client_id == client.client_id && audiences.contains(&g.audience.as_str())))
    }

    /// Ends the SSO session held in `session_secret`, if any.
    pub async fn end_session(&self, session_secret: Option<&str>) -> Result<(), OAuthError> {
        let Some(secret) = session_secret else {
            return Ok(());
        };
        let tenant = self.tenant_id();
        let now = self.now();
        if let Some(session) = self
            .store
            .find_session_by_secret(tenant, &hash_token(secret), now)
            .await?
        {
            self.store.revoke_session(tenant, &session.id, now).await?;
            tracing::info!(user_id = %session.user_id, "logout");
            let fields = crate::audit::EventFields {
                user_id: Some(&session.user_id),
                ..Default::default()
            };
            self.audit("slo", "User successfully logged out", fields)
                .await;
        }
        Ok(())
    }

    /// Auth0's `/v2/logout?returnTo=&client_id=`: `returnTo` must be one of the client's
    /// allowed logout URLs, else there is no redirect.
    pub async fn logout_v2(
        &self,
        session_secret: Option<&str>,
        return_to: Option<&str>,
        client_id: Option<&str>,
    ) -> Result<LogoutOutcome, OAuthError> {
        self.end_session(session_secret).await?;
        let Some(return_to) = return_to.filter(|s| !s.is_empty()) else {
            return Ok(LogoutOutcome::Page(None));
        };
        let client = match client_id.filter(|s| !s.is_empty()) {
            Some(id) => self.store.find_client(self.tenant_id(), id).await?,
            None => None,
        };
        Ok(match client {
            Some(c) if logout_url_allowed(&c, return_to) => LogoutOutcome::Redirect(return_to.to_owned()),
            Some(_) => LogoutOutcome::Page(Some("The returnTo URL is not in the application's Allowed Logout URLs, so you were not sent back.".to_owned())),
            None => LogoutOutcome::Page(Some("The returnTo URL can only be used with the client_id of an application that allows it.".to_owned())),
        })
    }

    /// OpenID Connect RP-initiated logout.
    pub async fn logout_oidc(
        &self,
        session_secret: Option<&str>,
        id_token_hint: Option<&str>,
        client_id: Option<&str>,
        post_logout_redirect_uri: Option<&str>,
        state: Option<&str>,
    ) -> Result<LogoutOutcome, OAuthError> {
        // The user asked to log out: end the session whatever else is wrong with the request.
        self.end_session(session_secret).await?;
        // An expired ID token is still a fine hint: allow a generous leeway.
        let hint = match id_token_hint.filter(|s| !s.is_empty()) {
            Some(t) => Some(self.verify_jwt(t, 365 * 86_400).ok_or_else(|| {
                OAuthError::new(
                    OAuthErrorCode::InvalidRequest,
                    "id_token_hint is not a valid ID token from this issuer",
                )
            })?),
            None => None,
        };
        let hinted_client = hint.as_ref().and_then(|c| match c.get("aud") {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        });
        if let (Some(a), Some(b)) = (&hinted_client, client_id.filter(|s| !s.is_empty()))
            && a != b
        {
            return Err(OAuthError::invalid_request(
                "client_id does not match id_token_hint",
            ));
        }
        let Some(target) = post_logout_redirect_uri.filter(|s| !s.is_empty()) else {
            return Ok(LogoutOutcome::Page(None));
        };
        let client_id = hinted_client.or_else(|| client_id.map(str::to_owned));
        let client: Option<Client> = match client_id {
            Some(id) => self.store.find_client(self.tenant_id(), &id).await?,
            None => None,
        };
        match client {
            Some(c) if logout_url_allowed(&c, target) => {
                let mut url = url::Url::parse(target).map_err(|_| OAuthError::invalid_request("bad post_logout_redirect_uri"))?;
                if let Some(state) = state.filter(|s| !s.is_empty()) {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Ok(LogoutOutcome::Redirect(url.to_string()))
            }
            _ => Ok(LogoutOutcome::Page(Some("The post_logout_redirect_uri is not registered for this application, so you were not sent back.".to_owned()))),
        }
    }
}

fn logout_url_allowed(client: &Client, url: &str) -> bool {
    client.allowed_logout_urls.iter().any(|u| u == url)
}
