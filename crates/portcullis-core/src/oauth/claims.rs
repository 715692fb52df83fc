//! What goes into ID and access tokens. Pure functions over domain records.

use crate::model::{Timestamp, User};
use serde_json::{Map, Value, json};

/// Standard claims an ID token or `/userinfo` may carry, by scope.
#[must_use]
pub fn profile_claims(user: &User, scope: &[String]) -> Map<String, Value> {
    let mut claims = Map::new();
    claims.insert("sub".to_owned(), json!(user.user_id));
    if scope.iter().any(|s| s == "profile") {
        claims.insert("name".to_owned(), json!(user.name));
        claims.insert("nickname".to_owned(), json!(user.nickname));
        claims.insert("picture".to_owned(), json!(user.picture));
        // OpenID Connect Core §5.1: seconds since the epoch.
        claims.insert("updated_at".to_owned(), json!(user.updated_at));
    }
    if scope.iter().any(|s| s == "email") {
        claims.insert("email".to_owned(), json!(user.email));
        claims.insert("email_verified".to_owned(), json!(user.email_verified));
    }
    claims
}

/// Inputs of an ID token.
#[derive(Debug)]
pub struct IdTokenInput<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub user: &'a User,
    pub scope: &'a [String],
    pub nonce: Option<&'a str>,
    pub auth_time: Timestamp,
    pub sid: Option<&'a str>,
    pub roles: Option<(&'a str, Vec<String>)>,
    pub now: Timestamp,
    pub lifetime: i64,
}

#[must_use]
pub fn id_token(input: &IdTokenInput<'_>) -> Value {
    let mut claims = profile_claims(input.user, input.scope);
    claims.insert("iss".to_owned(), json!(input.issuer));
    claims.insert("aud".to_owned(), json!(input.client_id));
    claims.insert("iat".to_owned(), json!(input.now));
    claims.insert("exp".to_owned(), json!(input.now + input.lifetime));
    claims.insert("auth_time".to_owned(), json!(input.auth_time));
    if let Some(nonce) = input.nonce {
        claims.insert("nonce".to_owned(), json!(nonce));
    }
    if let Some(sid) = input.sid {
        claims.insert("sid".to_owned(), json!(sid));
    }
    if let Some((claim, roles)) = &input.roles {
        claims.insert((*claim).to_owned(), json!(roles));
    }
    Value::Object(claims)
}

/// Inputs of an access token.
#[derive(Debug)]
pub struct AccessTokenInput<'a> {
    pub issuer: &'a str,
    pub sub: &'a str,
    pub audience: Vec<String>,
    pub azp: &'a str,
    pub scope: &'a [String],
    pub jti: &'a str,
    pub now: Timestamp,
    pub lifetime: i64,
    pub machine: bool,
    pub roles: Option<(&'a str, Vec<String>)>,
    /// Auth0's `permissions` claim (`token_dialect: access_token_authz`).
    pub permissions: Option<Vec<String>>,
}

#[must_use]
pub fn access_token(input: &AccessTokenInput<'_>) -> Value {
    let aud = if input.audience.len() == 1 {
        json!(input.audience[0])
    } else {
        json!(input.audience)
    };
    let mut claims = json!({
        "iss": input.issuer,
        "sub": input.sub,
        "aud": aud,
        "iat": input.now,
        "exp": input.now + input.lifetime,
        "scope": input.scope.join(" "),
        "jti": input.jti,
    });
    let map = claims.as_object_mut().expect("built as an object");
    map.insert("azp".to_owned(), json!(input.azp));
    if input.machine {
        map.insert("gty".to_owned(), json!("client-credentials"));
    }
    if let Some((claim, roles)) = &input.roles {
        map.insert((*claim).to_owned(), json!(roles));
    }
    if let Some(permissions) = &input.permissions {
        map.insert("permissions".to_owned(), json!(permissions));
    }
    claims
}
