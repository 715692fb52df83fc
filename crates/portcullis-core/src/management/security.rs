//! Management API for account security: `/api/v2/attack-protection/*`,
//! `/api/v2/user-blocks` and `/api/v2/tickets/*`, with Auth0's shapes.

use super::{
    CreateUserTickets, Granted, ManagementError, ReadAttackProtection, ReadUsers,
    UpdateAttackProtection, UpdateUsers,
};
use crate::model::{DATABASE_CONNECTION, LoginBlock, TicketData, TicketKind, User};
use crate::protection::{ATTACK_PROTECTION, AttackProtection};
use crate::service::Portcullis;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// A part of the attack protection settings, by its path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectionPart {
    BruteForce,
    SuspiciousIp,
    BreachedPassword,
}

impl ProtectionPart {
    /// The part's key in the attack protection document.
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::BruteForce => "bruteForceProtection",
            Self::SuspiciousIp => "suspiciousIpThrottling",
            Self::BreachedPassword => "breachedPasswordDetection",
        }
    }
}

/// `POST /api/v2/tickets/email-verification`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailVerificationTicket {
    pub user_id: String,
    pub result_url: Option<String>,
    pub client_id: Option<String>,
    /// Seconds the link lives (default 432000, 5 days).
    pub ttl_sec: Option<i64>,
    #[serde(rename = "includeEmailInRedirect")]
    pub include_email_in_redirect: Option<bool>,
}

/// `POST /api/v2/tickets/password-change`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeTicket {
    pub user_id: Option<String>,
    /// With `connection_id`, instead of `user_id`.
    pub email: Option<String>,
    pub connection_id: Option<String>,
    pub result_url: Option<String>,
    pub client_id: Option<String>,
    /// Seconds the link lives (default 432000, 5 days).
    pub ttl_sec: Option<i64>,
    #[serde(default)]
    pub mark_email_as_verified: bool,
    #[serde(rename = "includeEmailInRedirect")]
    pub include_email_in_redirect: Option<bool>,
}

/// `?identifier=` of the user-blocks endpoints.
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct BlocksQuery {
    /// The user's email.
    pub identifier: Option<String>,
    /// Accepted for compatibility.
    pub consider_brute_force_enablement: Option<bool>,
}

const TICKET_TTL: i64 = 432_000;

fn ttl(value: Option<i64>) -> Result<i64, ManagementError> {
    match value {
        None | Some(0) => Ok(TICKET_TTL),
        Some(t) if (1..=2_592_000).contains(&t) => Ok(t),
        Some(_) => Err(ManagementError::bad_request(
            "ttl_sec must be between 0 and 2592000",
        )),
    }
}

fn result_url(url: Option<String>) -> Result<Option<String>, ManagementError> {
    match url {
        Some(u) => match url::Url::parse(&u) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok(Some(u)),
            _ => Err(ManagementError::bad_request(
                "result_url must be an http(s) URL",
            )),
        },
        None => Ok(None),
    }
}

impl Portcullis {
    /// `GET /api/v2/attack-protection/{part}`: the whole document (each part is one key).
    pub async fn get_attack_protection(
        &self,
        _: Granted<ReadAttackProtection>,
    ) -> Result<AttackProtection, ManagementError> {
        Ok(self.attack_protection().await?)
    }

    /// `PATCH /api/v2/attack-protection/{part}`: the given fields replace the stored ones
    /// of that part; answers the whole document as stored.
    pub async fn patch_attack_protection(
        &self,
        _: Granted<UpdateAttackProtection>,
        part: ProtectionPart,
        patch: Value,
    ) -> Result<AttackProtection, ManagementError> {
        let Value::Object(fields) = patch else {
            return Err(ManagementError::bad_request(
                "Payload validation error: the body must be an object",
            ));
        };
        let mut all = serde_json::to_value(self.attack_protection().await?)
            .map_err(ManagementError::internal)?;
        let target = all
            .get_mut(part.key())
            .and_then(Value::as_object_mut)
            .ok_or_else(|| ManagementError::internal("attack protection layout"))?;
        for (k, v) in fields {
            target.insert(k, v);
        }
        let next: AttackProtection = serde_json::from_value(all)
            .map_err(|e| ManagementError::bad_request(format!("Payload validation error: {e}")))?;
        next.validate()
            .map_err(|m| ManagementError::bad_request(format!("Payload validation error: {m}")))?;
        self.save_setting(ATTACK_PROTECTION, &next).await?;
        Ok(next)
    }

    async fn block_user(
        &self,
        id: Option<&str>,
        identifier: Option<&str>,
    ) -> Result<User, ManagementError> {
        let user = match (id, identifier) {
            (Some(id), _) => self.store.find_user(self.tenant_id(), id).await?,
            (None, Some(email)) => {
                self.store
                    .find_user_by_email(self.tenant_id(), DATABASE_CONNECTION, email)
                    .await?
            }
            (None, None) => {
                return Err(ManagementError::invalid_query("identifier is required"));
            }
        };
        user.ok_or_else(|| ManagementError::not_found("user"))
    }

    /// `GET /api/v2/user-blocks/{id}` and `GET /api/v2/user-blocks?identifier=`.
    pub async fn get_user_blocks(
        &self,
        _: Granted<ReadUsers>,
        id: Option<&str>,
        identifier: Option<&str>,
    ) -> Result<(User, Vec<LoginBlock>), ManagementError> {
        let user = self.block_user(id, identifier).await?;
        let blocks = self
            .store
            .list_login_blocks(self.tenant_id(), &user.user_id)
            .await?;
        Ok((user, blocks))
    }

    /// `DELETE /api/v2/user-blocks/{id}` and `DELETE /api/v2/user-blocks?identifier=`:
    /// releases brute-force blocks (not an administrator's `blocked: true`).
    pub async fn delete_user_blocks(
        &self,
        _: Granted<UpdateUsers>,
        id: Option<&str>,
        identifier: Option<&str>,
    ) -> Result<(), ManagementError> {
        let user = self.block_user(id, identifier).await?;
        self.release_login_blocks(&user, None, "an administrator")
            .await?;
        Ok(())
    }

    /// `POST /api/v2/tickets/email-verification`.
    pub async fn email_verification_ticket(
        &self,
        _: Granted<CreateUserTickets>,
        body: EmailVerificationTicket,
    ) -> Result<String, ManagementError> {
        if body.result_url.is_some() && body.client_id.is_some() {
            return Err(ManagementError::bad_request(
                "result_url and client_id cannot be used together",
            ));
        }
        let user = self.block_user(Some(&body.user_id), None).await?;
        let link = self
            .issue_ticket(
                TicketKind::EmailVerification,
                &user,
                TicketData {
                    result_url: result_url(body.result_url)?,
                    client_id: body.client_id,
                    ..TicketData::default()
                },
                ttl(body.ttl_sec)?,
            )
            .await?;
        Ok(link)
    }

    /// `POST /api/v2/tickets/password-change`.
    pub async fn password_change_ticket(
        &self,
        _: Granted<CreateUserTickets>,
        body: PasswordChangeTicket,
    ) -> Result<String, ManagementError> {
        let user = match (&body.user_id, &body.email) {
            (Some(id), None) => self.block_user(Some(id), None).await?,
            (None, Some(email)) if body.connection_id.is_some() => {
                self.block_user(None, Some(email)).await?
            }
            (None, Some(_)) => {
                return Err(ManagementError::bad_request("email requires connection_id"));
            }
            _ => {
                return Err(ManagementError::bad_request(
                    "give either user_id, or email with connection_id",
                ));
            }
        };
        if user.password_hash.is_none() {
            return Err(ManagementError::bad_request(
                "the user has no password on the database connection",
            ));
        }
        let link = self
            .issue_ticket(
                TicketKind::PasswordChange,
                &user,
                TicketData {
                    result_url: result_url(body.result_url)?,
                    client_id: body.client_id,
                    mark_email_as_verified: body.mark_email_as_verified,
                    ..TicketData::default()
                },
                ttl(body.ttl_sec)?,
            )
            .await?;
        Ok(link)
    }
}
