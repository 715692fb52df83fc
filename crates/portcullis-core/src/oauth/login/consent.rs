//! Consent for third-party applications: a login transaction pauses after authentication
//! until the user accepts or declines the scopes the application asks for. First-party
//! applications skip it, as in Auth0. A decision is remembered per user, application and
//! audience.

use super::LoginError;
use super::transaction::{csrf_matches, csrf_ok};
use crate::model::{AuthorizeRequest, Client, LoginTransaction};
use crate::oauth::AuthResponse;
use crate::oauth::error_response;
use crate::service::Portcullis;
use crate::store::StoreError;

/// A scope as shown on the consent page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ScopeLine {
    pub value: String,
    pub description: String,
}

#[derive(Debug, Clone)]
pub struct ConsentPage {
    pub transaction_id: String,
    pub csrf: String,
    pub client_name: String,
    pub user_email: String,
    pub scopes: Vec<ScopeLine>,
    pub redirect_uri: String,
}

fn describe(value: &str, api_description: Option<&str>) -> String {
    match value {
        "openid" => "Confirm your identity".to_owned(),
        "profile" => "Read your name, nickname and picture".to_owned(),
        "email" => "Read your email address".to_owned(),
        "offline_access" => "Keep access when you are not using it".to_owned(),
        other => api_description
            .filter(|d| !d.is_empty())
            .map_or_else(|| other.to_owned(), str::to_owned),
    }
}

impl Portcullis {
    /// Whether `user_id` must consent before `client` gets `request`'s scopes.
    pub(crate) async fn needs_consent(
        &self,
        client: &Client,
        request: &AuthorizeRequest,
        user_id: &str,
    ) -> Result<bool, StoreError> {
        if client.is_first_party {
            return Ok(false);
        }
        if request.prompt.consent {
            return Ok(true);
        }
        let granted = self
            .store
            .find_consent(
                self.tenant_id(),
                user_id,
                &client.client_id,
                request.audience.as_deref().unwrap_or(""),
            )
            .await?;
        Ok(match granted {
            Some(granted) => !request.scope.iter().all(|s| granted.contains(s)),
            None => true,
        })
    }

    async fn paused_transaction(
        &self,
        transaction_id: &str,
    ) -> Result<(LoginTransaction, String, String), LoginError> {
        let tx = self
            .find_transaction(transaction_id)
            .await?
            .ok_or(LoginError::Expired)?;
        let who = tx.authenticated.clone().ok_or(LoginError::Expired)?;
        Ok((tx, who.user_id, who.session_id))
    }

    /// The consent page of a paused transaction.
    pub async fn consent_page(
        &self,
        transaction_id: &str,
        csrf: &str,
    ) -> Result<ConsentPage, LoginError> {
        let (tx, user_id, _) = self.paused_transaction(transaction_id).await?;
        if !csrf_matches(&tx, csrf) {
            return Err(LoginError::Csrf);
        }
        let tenant = self.tenant_id();
        let client = self
            .store
            .find_client(tenant, &tx.request.client_id)
            .await?
            .ok_or(LoginError::Expired)?;
        let user = self
            .store
            .find_user(tenant, &user_id)
            .await?
            .ok_or(LoginError::Expired)?;
        let api = match &tx.request.audience {
            Some(a) => self.store.find_resource_server(tenant, a).await?,
            None => None,
        };
        let scopes = tx
            .request
            .scope
            .iter()
            .map(|s| {
                let api_description = api
                    .as_ref()
                    .and_then(|a| a.scopes.iter().find(|d| &d.value == s))
                    .map(|d| d.description.as_str());
                ScopeLine {
                    value: s.clone(),
                    description: describe(s, api_description),
                }
            })
            .collect();
        Ok(ConsentPage {
            transaction_id: tx.id,
            csrf: csrf.to_owned(),
            client_name: client.name,
            user_email: user.email,
            scopes,
            redirect_uri: tx.request.redirect_uri,
        })
    }

    /// The user's decision on the consent page.
    pub async fn consent(
        &self,
        transaction_id: &str,
        csrf_field: &str,
        csrf_cookie: Option<&str>,
        accept: bool,
    ) -> Result<AuthResponse, LoginError> {
        let (tx, user_id, session_id) = self.paused_transaction(transaction_id).await?;
        if !csrf_ok(&tx, csrf_field, csrf_cookie) {
            return Err(LoginError::Csrf);
        }
        let tenant = self.tenant_id();
        let now = self.now();
        let session = self
            .store
            .find_session(tenant, &session_id, now)
            .await?
            .filter(|s| s.user_id == user_id)
            .ok_or(LoginError::Expired)?;
        if !self
            .store
            .consume_login_transaction(tenant, &tx.id, now)
            .await?
        {
            return Err(LoginError::Expired);
        }
        let request = &tx.request;
        if !accept {
            tracing::info!(client_id = %request.client_id, "consent declined");
            return Ok(error_response(
                &self.settings.issuer,
                &request.redirect_uri,
                request.response_mode,
                request.state.as_deref(),
                crate::error::OAuthErrorCode::AccessDenied,
                "The user declined the requested access",
            ));
        }
        self.store
            .save_consent(
                tenant,
                &user_id,
                &request.client_id,
                request.audience.as_deref().unwrap_or(""),
                &request.scope,
                now,
            )
            .await?;
        self.issue_code(request, &session)
            .await
            .map_err(|e| LoginError::Internal(crate::error::Internal::with("issuing a code", e)))
    }
}
