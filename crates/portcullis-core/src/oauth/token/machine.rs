//! The `client_credentials` grant: machine tokens for the APIs a client grant allows.

use super::TokenResponse;
use crate::error::{OAuthError, OAuthErrorCode};
use crate::model::Client;
use crate::oauth::claims::{self, AccessTokenInput};
use crate::oauth::split_scope;
use crate::service::Portcullis;

impl Portcullis {
    pub(super) async fn client_credentials(
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
}
