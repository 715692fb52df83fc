//! One declared object into its record: an application or an API from its tenant-file entry
//! (or a Management API body read into the same form), with the rules both paths share, and
//! the sealing of client secrets.

use crate::model::{
    AppType, Client, RefreshTokenPolicy, ResourceServer, RotationType, TokenEndpointAuthMethod,
};
use portcullis_crypto::aead::MasterKey;
use std::collections::HashSet;

/// Seals a client secret for storage.
#[must_use]
pub fn seal_client_secret(master: &MasterKey, client_id: &str, secret: &str) -> Vec<u8> {
    master.seal(&client_secret_purpose(client_id), secret.as_bytes())
}

/// Opens a stored client secret.
#[must_use]
pub fn open_client_secret(master: &MasterKey, client: &Client) -> Option<String> {
    let sealed = client.secret_sealed.as_ref()?;
    let plain = master
        .open(&client_secret_purpose(&client.client_id), sealed)
        .ok()?;
    String::from_utf8(plain).ok()
}

fn client_secret_purpose(client_id: &str) -> String {
    format!("client_secret:{client_id}")
}

fn new_client_secret() -> String {
    portcullis_crypto::b64url(&portcullis_crypto::random_bytes::<48>())
}

/// An avatar URL like Auth0's default, derived from the email's first letters.
#[must_use]
pub fn default_picture(email: &str) -> String {
    let initials: String = email
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(2)
        .collect::<String>()
        .to_lowercase();
    format!(
        "https://cdn.auth0.com/avatars/{}.png",
        if initials.is_empty() {
            "un".to_owned()
        } else {
            initials
        }
    )
}

/// A problem with one entry of a tenant file or one Management API body: the key and value
/// that locate it in a file, and the message.
#[derive(Debug)]
pub struct EntryError {
    pub key: &'static str,
    pub value: String,
    pub message: String,
}

fn entry_err(key: &'static str, value: &str, message: String) -> EntryError {
    EntryError {
        key,
        value: value.to_owned(),
        message,
    }
}

/// Builds an API from its declared form, keeping the stored id of `current`.
pub fn build_resource_server(
    tenant_id: &str,
    entry: &crate::tenant_file::ResourceServerEntry,
    current: Option<&ResourceServer>,
) -> Result<ResourceServer, EntryError> {
    if entry.identifier.trim().is_empty() || entry.identifier.ends_with("/api/v2/") {
        return Err(entry_err(
            "identifier",
            &entry.identifier,
            format!("{:?} cannot be used as an API identifier", entry.identifier),
        ));
    }
    let mut scope_names = HashSet::new();
    for s in &entry.scopes {
        if s.value.is_empty()
            || s.value.contains(char::is_whitespace)
            || !scope_names.insert(s.value.clone())
        {
            return Err(entry_err(
                "value",
                &s.value,
                format!(
                    "invalid or repeated scope {:?} in {}",
                    s.value, entry.identifier
                ),
            ));
        }
    }
    Ok(ResourceServer {
        tenant_id: tenant_id.to_owned(),
        id: current.map_or_else(
            || portcullis_crypto::token::hex(&portcullis_crypto::random_bytes::<12>()),
            |c| c.id.clone(),
        ),
        identifier: entry.identifier.clone(),
        name: entry.name.clone(),
        scopes: entry.scopes.clone(),
        enforce_policies: entry.enforce_policies,
        token_dialect: entry
            .token_dialect
            .as_ref()
            .map_or_else(|| "access_token".to_owned(), |d| d.0.clone()),
        token_lifetime: entry.token_lifetime.map_or(86_400, |l| l.0),
        signing_alg: entry.signing_alg.0,
        allow_offline_access: entry.allow_offline_access,
    })
}

/// Builds an application from its declared form. A secret is generated for a new
/// confidential client; `current`'s sealed secret is kept unless the entry sets another.
pub fn build_client(
    master: &MasterKey,
    tenant_id: &str,
    entry: &crate::tenant_file::ClientEntry,
    current: Option<&Client>,
) -> Result<Client, EntryError> {
    if let Some(id) = &entry.client_id
        && (id.len() < 8
            || id.len() > 128
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(entry_err(
            "client_id",
            id,
            "client_id must be 8 to 128 letters, digits, '-', '_' or '.'".to_owned(),
        ));
    }
    if entry.name.trim().is_empty() {
        return Err(entry_err(
            "name",
            &entry.name,
            "an application needs a name".to_owned(),
        ));
    }
    let app_type = entry.app_type.unwrap_or(AppType::RegularWeb);
    let method = entry.token_endpoint_auth_method.unwrap_or(match app_type {
        AppType::Spa | AppType::Native => TokenEndpointAuthMethod::None,
        AppType::RegularWeb | AppType::NonInteractive => TokenEndpointAuthMethod::ClientSecretPost,
    });
    if method == TokenEndpointAuthMethod::None && app_type == AppType::NonInteractive {
        return Err(entry_err(
            "name",
            &entry.name,
            format!(
                "client {:?}: a machine-to-machine application must authenticate with a secret",
                entry.name
            ),
        ));
    }
    if method == TokenEndpointAuthMethod::None && entry.client_secret.is_some() {
        return Err(entry_err(
            "client_secret",
            entry.client_secret.as_deref().unwrap_or_default(),
            format!("client {:?}: a public client has no secret", entry.name),
        ));
    }
    let grant_types: Vec<String> = match &entry.grant_types {
        Some(g) => g.iter().map(|g| g.0.clone()).collect(),
        None => match app_type {
            AppType::NonInteractive => vec!["client_credentials".to_owned()],
            AppType::RegularWeb => vec![
                "authorization_code".to_owned(),
                "refresh_token".to_owned(),
                "client_credentials".to_owned(),
            ],
            AppType::Spa | AppType::Native => {
                vec!["authorization_code".to_owned(), "refresh_token".to_owned()]
            }
        },
    };
    if method == TokenEndpointAuthMethod::None
        && grant_types.iter().any(|g| g == "client_credentials")
    {
        return Err(entry_err(
            "name",
            &entry.name,
            format!(
                "client {:?}: a public client cannot use client_credentials",
                entry.name
            ),
        ));
    }
    let client_id = entry
        .client_id
        .clone()
        .or_else(|| current.map(|c| c.client_id.clone()))
        .unwrap_or_else(|| portcullis_crypto::token::random_alphanumeric(32));
    let secret_sealed = if method == TokenEndpointAuthMethod::None {
        None
    } else {
        let existing_secret = current
            .and_then(|c| open_client_secret(master, c).map(|s| (s, c.secret_sealed.clone())));
        match (&entry.client_secret, existing_secret) {
            (Some(wanted), Some((have, sealed)))
                if portcullis_crypto::ct_eq(wanted.as_bytes(), have.as_bytes()) =>
            {
                sealed
            }
            (Some(wanted), _) => {
                if wanted.len() < 16 {
                    return Err(entry_err(
                        "client_secret",
                        wanted,
                        format!(
                            "client {:?}: client_secret must be at least 16 characters",
                            entry.name
                        ),
                    ));
                }
                Some(seal_client_secret(master, &client_id, wanted))
            }
            (None, Some((_, sealed))) => sealed,
            (None, None) => Some(seal_client_secret(master, &client_id, &new_client_secret())),
        }
    };
    let refresh_token = entry
        .refresh_token
        .clone()
        .unwrap_or_else(|| RefreshTokenPolicy::for_client(app_type, method));
    if method == TokenEndpointAuthMethod::None
        && refresh_token.rotation_type == RotationType::NonRotating
    {
        // RFC 9700 §4.14.2: a refresh token of a public client is either sender-constrained
        // or rotated, and Portcullis does not bind refresh tokens to a key.
        return Err(entry_err(
            "refresh_token",
            "non-rotating",
            format!(
                "client {:?}: a public client (token_endpoint_auth_method none) must rotate its refresh tokens: set refresh_token.rotation_type to rotating",
                entry.name
            ),
        ));
    }
    Ok(Client {
        tenant_id: tenant_id.to_owned(),
        client_id,
        name: entry.name.clone(),
        app_type,
        secret_sealed,
        token_endpoint_auth_method: method,
        callbacks: entry.callbacks.iter().map(|u| u.0.clone()).collect(),
        allowed_logout_urls: entry
            .allowed_logout_urls
            .iter()
            .map(|u| u.0.clone())
            .collect(),
        web_origins: entry.web_origins.iter().map(|u| u.0.clone()).collect(),
        grant_types,
        refresh_token,
        is_first_party: entry.is_first_party.unwrap_or(true),
    })
}

/// A new client secret: 384 random bits.
#[must_use]
pub fn generate_client_secret() -> String {
    new_client_secret()
}
