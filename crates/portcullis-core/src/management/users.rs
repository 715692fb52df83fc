//! Users through the Management API: Auth0's user object, search, create, update (with
//! Auth0's metadata merge), block and delete.

use super::query::{self, UserSearch};
use super::{CreateUsers, DeleteUsers, Granted, ManagementError, ReadUsers, UpdateUsers};
use crate::model::{DATABASE_CONNECTION, User, normalize_email};
use crate::service::Portcullis;
use crate::store::Page;
use serde::Deserialize;
use serde_json::{Map, Value};

/// What `GET /api/v2/users` searches for: Auth0's `q` (its Lucene subset), `sort`
/// (`field:1` or `field:-1`) and `connection`.
#[derive(Clone, Copy, Debug, Default)]
pub struct UserQuery<'a> {
    pub q: Option<&'a str>,
    pub sort: Option<&'a str>,
    pub connection: Option<&'a str>,
}

/// `POST /api/v2/users` body.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub connection: String,
    pub email: String,
    pub password: Option<String>,
    pub email_verified: Option<bool>,
    pub verify_email: Option<bool>,
    pub user_id: Option<String>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    pub blocked: Option<bool>,
    pub user_metadata: Option<Map<String, Value>>,
    pub app_metadata: Option<Map<String, Value>>,
}

/// `PATCH /api/v2/users/{id}` body.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    pub connection: Option<String>,
    pub client_id: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
    pub email_verified: Option<bool>,
    pub verify_email: Option<bool>,
    pub verify_password: Option<bool>,
    pub name: Option<String>,
    pub nickname: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    pub blocked: Option<bool>,
    pub user_metadata: Option<Map<String, Value>>,
    pub app_metadata: Option<Map<String, Value>>,
}

/// Auth0's metadata update: top-level keys are merged, a `null` removes a key, and an empty
/// object clears the document.
#[must_use]
pub fn merge_metadata(current: &Value, patch: &Map<String, Value>) -> Value {
    if patch.is_empty() {
        return Value::Object(Map::new());
    }
    let mut merged = current.as_object().cloned().unwrap_or_default();
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(k);
        } else {
            merged.insert(k.clone(), v.clone());
        }
    }
    Value::Object(merged)
}

fn check_email(email: &str) -> Result<String, ManagementError> {
    let email = email.trim();
    match email.split_once('@') {
        Some((l, d))
            if !l.is_empty()
                && d.contains('.')
                && !email.contains(char::is_whitespace)
                && email.len() <= 254 =>
        {
            Ok(email.to_owned())
        }
        _ => Err(ManagementError::bad_request(
            "Object didn't pass validation for format email",
        )),
    }
}

fn check_password(password: &str) -> Result<(), ManagementError> {
    if password.chars().count() < 8 {
        return Err(ManagementError::new(
            super::Failure::BadRequest,
            "invalid_password",
            "PasswordStrengthError: Password is too weak",
        ));
    }
    if password.len() > 4096 {
        return Err(ManagementError::bad_request("The password is too long"));
    }
    Ok(())
}

fn check_connection(connection: &str) -> Result<(), ManagementError> {
    if connection == DATABASE_CONNECTION {
        Ok(())
    } else {
        Err(ManagementError::new(
            super::Failure::BadRequest,
            "invalid_body",
            "The connection does not exist.",
        ))
    }
}

impl Portcullis {
    async fn user_or_404(&self, user_id: &str) -> Result<User, ManagementError> {
        self.store
            .find_user(self.tenant_id(), user_id)
            .await?
            .ok_or_else(|| ManagementError::not_found("user"))
    }

    /// `GET /api/v2/users`.
    pub async fn list_users(
        &self,
        _: Granted<ReadUsers>,
        search: UserQuery<'_>,
        page: Option<i64>,
        per_page: Option<i64>,
    ) -> Result<Page<User>, ManagementError> {
        let per_page = per_page.unwrap_or(50);
        let page = page.unwrap_or(0);
        if !(1..=100).contains(&per_page) || page < 0 {
            return Err(ManagementError::invalid_query(
                "per_page must be 1 to 100 and page 0 or more",
            ));
        }
        // Checked: a huge `page` must be this refusal, not an overflow.
        if page
            .checked_add(1)
            .and_then(|p| p.checked_mul(per_page))
            .is_none_or(|end| end > 1000)
        {
            return Err(ManagementError::invalid_query(
                "You can only page through the first 1000 records. Narrow the search with q.",
            ));
        }
        let mut terms = query::parse(search.q.unwrap_or_default())
            .map_err(|e| ManagementError::invalid_query(e.0))?;
        if let Some(connection) = search.connection.filter(|c| !c.is_empty()) {
            check_connection(connection)
                .map_err(|_| ManagementError::invalid_query("The connection does not exist."))?;
        }
        terms.dedup();
        let search = UserSearch {
            terms,
            sort: query::parse_sort(search.sort)
                .map_err(|e| ManagementError::invalid_query(e.0))?,
            offset: page * per_page,
            limit: per_page,
        };
        Ok(self.store.search_users(self.tenant_id(), &search).await?)
    }

    /// `GET /api/v2/users/{id}`.
    pub async fn get_user(
        &self,
        _: Granted<ReadUsers>,
        user_id: &str,
    ) -> Result<User, ManagementError> {
        self.user_or_404(user_id).await
    }

    /// `GET /api/v2/users-by-email?email=`.
    pub async fn users_by_email(
        &self,
        _: Granted<ReadUsers>,
        email: &str,
    ) -> Result<Option<User>, ManagementError> {
        if email.trim().is_empty() {
            return Err(ManagementError::invalid_query("email is required"));
        }
        Ok(self
            .store
            .find_user_by_email(self.tenant_id(), DATABASE_CONNECTION, email)
            .await?)
    }

    /// The database connection's password policy, as Auth0 applies it to the Management API.
    async fn check_policy(
        &self,
        password: &str,
        email: &str,
        name: &str,
        user_id: Option<&str>,
    ) -> Result<(), ManagementError> {
        let options = self.connection_options().await?;
        let who = crate::protection::policy::PersonalInfo { email, name };
        self.check_new_password(
            &options,
            password,
            who,
            user_id,
            crate::accounts::PasswordStage::Change,
        )
        .await
        .map_err(|e| match e {
            crate::accounts::AccountError::Password(r) => ManagementError::new(
                super::Failure::BadRequest,
                "invalid_password",
                format!("{}: {}", r.name(), r.message()),
            ),
            other => ManagementError::internal(other),
        })
    }

    /// `POST /api/v2/users`.
    pub async fn create_user(
        &self,
        _: Granted<CreateUsers>,
        body: CreateUser,
    ) -> Result<User, ManagementError> {
        check_connection(&body.connection)?;
        let email = check_email(&body.email)?;
        let Some(password) = body.password else {
            return Err(ManagementError::bad_request(
                "Payload validation error: 'Missing required property: password'.",
            ));
        };
        check_password(&password)?;
        self.check_policy(
            &password,
            &email,
            body.name.as_deref().unwrap_or(&email),
            None,
        )
        .await?;
        let now = self.now();
        let user_id = match body.user_id {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 64
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') =>
            {
                format!("auth0|{id}")
            }
            Some(_) => {
                return Err(ManagementError::bad_request(
                    "user_id may hold letters, digits, '-' and '_' only",
                ));
            }
            None => format!(
                "auth0|{}",
                portcullis_crypto::token::hex(&portcullis_crypto::random_bytes::<12>())
            ),
        };
        if self
            .store
            .find_user_by_email(self.tenant_id(), DATABASE_CONNECTION, &email)
            .await?
            .is_some()
        {
            return Err(ManagementError::conflict("The user already exists."));
        }
        let hash = self
            .passwords
            .hash(password)
            .await
            .map_err(ManagementError::internal)?;
        let local = email.split('@').next().unwrap_or_default().to_owned();
        let name = body
            .name
            .or_else(|| match (&body.given_name, &body.family_name) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                _ => None,
            });
        let user = User {
            tenant_id: self.tenant_id().to_owned(),
            user_id,
            connection: DATABASE_CONNECTION.to_owned(),
            email: email.clone(),
            // `verify_email` overrides `email_verified`, as in Auth0.
            email_verified: body.verify_email != Some(true) && body.email_verified.unwrap_or(false),
            name: name.unwrap_or_else(|| email.clone()),
            nickname: body.nickname.unwrap_or(local),
            picture: body
                .picture
                .unwrap_or_else(|| crate::apply::default_picture(&email)),
            password_hash: Some(hash),
            user_metadata: Value::Object(body.user_metadata.unwrap_or_default()),
            app_metadata: Value::Object(body.app_metadata.unwrap_or_default()),
            blocked: body.blocked.unwrap_or(false),
            created_at: now,
            updated_at: now,
            last_login: None,
            logins_count: 0,
        };
        self.store.insert_user(&user).await?;
        tracing::info!(user_id = %user.user_id, "user created");
        if body.verify_email == Some(true) {
            self.send_verification_email(&user, None, None, crate::accounts::VERIFY_TTL)
                .await?;
        }
        Ok(user)
    }

    /// `PATCH /api/v2/users/{id}`. Blocking ends the user's sessions and refresh tokens at once.
    pub async fn update_user(
        &self,
        _: Granted<UpdateUsers>,
        user_id: &str,
        patch: UpdateUser,
    ) -> Result<User, ManagementError> {
        let mut user = self.user_or_404(user_id).await?;
        if let Some(connection) = &patch.connection {
            check_connection(connection)?;
        }
        let tenant = self.tenant_id();
        let now = self.now();
        let mut email_changed = false;
        if let Some(email) = &patch.email {
            let email = check_email(email)?;
            if normalize_email(&email) != normalize_email(&user.email)
                && self
                    .store
                    .find_user_by_email(tenant, DATABASE_CONNECTION, &email)
                    .await?
                    .is_some()
            {
                return Err(ManagementError::conflict(
                    "The specified new email already exists",
                ));
            }
            email_changed = normalize_email(&email) != normalize_email(&user.email);
            user.email = email;
        }
        let new_hash = match patch.password {
            Some(password) => {
                check_password(&password)?;
                self.check_policy(&password, &user.email, &user.name, Some(&user.user_id))
                    .await?;
                Some(
                    self.passwords
                        .hash(password)
                        .await
                        .map_err(ManagementError::internal)?,
                )
            }
            None => None,
        };
        // As in Auth0, a new address is unverified unless the same request says otherwise;
        // `verify_email` overrides `email_verified` and mails a verification link.
        let send_verification = email_changed && patch.verify_email == Some(true);
        if send_verification {
            user.email_verified = false;
        } else if email_changed {
            user.email_verified = patch.email_verified.unwrap_or(false);
        } else if let Some(v) = patch.email_verified {
            user.email_verified = v;
        }
        if let Some(v) = patch.name {
            user.name = v;
        }
        if let Some(v) = patch.nickname {
            user.nickname = v;
        }
        if let Some(v) = patch.picture {
            user.picture = v;
        }
        if let Some(m) = &patch.user_metadata {
            user.user_metadata = merge_metadata(&user.user_metadata, m);
        }
        if let Some(m) = &patch.app_metadata {
            user.app_metadata = merge_metadata(&user.app_metadata, m);
        }
        let newly_blocked = patch.blocked == Some(true) && !user.blocked;
        if let Some(b) = patch.blocked {
            user.blocked = b;
        }
        user.updated_at = now;
        self.store.update_user(&user).await?;
        if let Some(hash) = new_hash {
            // Like a reset: the old hash joins the history, sessions and refresh tokens end,
            // and brute-force blocks are released.
            let keep = self.connection_options().await?.history_size();
            self.store
                .change_password(tenant, &user.user_id, &hash, keep, false, now)
                .await?;
            user.password_hash = Some(hash);
        }
        if email_changed {
            self.audit(
                "sce",
                "Success Change Email",
                crate::audit::EventFields {
                    user_id: Some(&user.user_id),
                    user_name: Some(&user.email),
                    ..Default::default()
                },
            )
            .await;
        }
        if send_verification {
            self.send_verification_email(
                &user,
                patch.client_id.as_deref(),
                None,
                crate::accounts::VERIFY_TTL,
            )
            .await?;
        }
        if newly_blocked {
            self.store
                .end_user_sessions(tenant, &user.user_id, now)
                .await?;
            tracing::info!(user_id = %user.user_id, "user blocked; sessions and refresh tokens ended");
        }
        Ok(user)
    }

    /// `DELETE /api/v2/users/{id}`: erases the user's data (profile, sessions, tokens,
    /// consents and role assignments).
    pub async fn delete_user(
        &self,
        _: Granted<DeleteUsers>,
        user_id: &str,
    ) -> Result<(), ManagementError> {
        // Auth0 answers 204 whether or not the user existed.
        if self.store.delete_user(self.tenant_id(), user_id).await? {
            tracing::info!(user_id = %user_id, "user deleted");
        }
        Ok(())
    }
}

impl Portcullis {
    /// The id of the database-connection user with `email`, if there is one (the command
    /// line's way to name a user).
    pub async fn user_id_by_email(
        &self,
        email: &str,
    ) -> Result<Option<String>, crate::store::StoreError> {
        Ok(self
            .store
            .find_user_by_email(self.tenant_id(), crate::model::DATABASE_CONNECTION, email)
            .await?
            .map(|u| u.user_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_merges_top_level_keys_removes_nulls_and_clears_on_empty() {
        let current = json!({"a": 1, "b": {"x": 1}, "c": 3});
        let patch = json!({"b": {"y": 2}, "c": null, "d": 4});
        let merged = merge_metadata(&current, patch.as_object().unwrap());
        assert_eq!(merged, json!({"a": 1, "b": {"y": 2}, "d": 4}));
        assert_eq!(merge_metadata(&current, &Map::new()), json!({}));
    }
}
