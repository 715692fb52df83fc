//! The `refresh_token` grant: rotation with reuse detection (a rotated token presented again
//! revokes its family), or a non-rotating token whose idle expiry slides.

use super::{Subject, TokenResponse, active, admit, granted_scope, held_permissions};
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::{Client, ExpirationType, RefreshToken};
use crate::oauth::split_scope;
use crate::protection::admission::Admission;
use crate::service::Portcullis;
use crate::store::RefreshTokenContext;
use portcullis_crypto::token::{OpaqueToken, hash_token};

impl Portcullis {
    pub(super) async fn exchange_refresh_token(
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
}
