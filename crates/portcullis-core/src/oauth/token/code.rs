//! The `authorization_code` grant: a code spent once, for its client, with its redirect URI
//! and the PKCE verifier exactly when a challenge was sent.

use super::{Subject, TokenResponse, granted_scope, held_permissions};
use crate::error::OAuthError;
use crate::model::{Client, ExpirationType, RefreshToken};
use crate::service::Portcullis;
use portcullis_crypto::token::{OpaqueToken, hash_token};

/// What a code exchange presents besides the client: the code, the redirect URI and the
/// PKCE verifier. It has no `Debug`: the code and the verifier are secrets.
pub(super) struct PresentedCode<'a> {
    pub(super) code: &'a str,
    pub(super) redirect_uri: Option<&'a str>,
    pub(super) verifier: Option<&'a str>,
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

impl Portcullis {
    /// Whether a public client's code would be exchanged: known, unspent, unexpired, for
    /// this redirect URI and with the right PKCE verifier. Read without spending anything, so
    /// the application is charged before its code is spent and a refusal loses nothing.
    pub(super) async fn code_checks_out(
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

    pub(super) async fn exchange_code(
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
}
