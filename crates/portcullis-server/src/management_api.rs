//! The Management API's endpoint table. The `/api/v2/` router and its OpenAPI 3 document
//! (`GET /api/v2/openapi.json`) are both built from this one table, so they cannot drift;
//! request and query schemas come from the Rust types the handlers read (schemars), and a
//! test checks each endpoint refuses a caller without the scope listed here.

use crate::handlers::management as m;
use crate::handlers::management::{
    ClientGrantPatch, ClientGrantQuery, ListUsersParams, LogParams, NewClientGrant, PageParams,
    PermissionsInput, RoleInput, RolesInput, UsersInput,
};
use crate::state::AppState;
use axum::Router;
use axum::http::Method;
use axum::routing::{MethodRouter, delete, get, patch, post};
use portcullis_core::management::security::{
    BlocksQuery, EmailVerificationTicket, PasswordChangeTicket,
};
use portcullis_core::management::users::{CreateUser, UpdateUser};
use portcullis_core::protection::{
    BreachedPasswordDetection, BruteForceProtection, SuspiciousIpThrottling,
};
use portcullis_core::tenant_file::{ClientEntry, ResourceServerEntry};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

type SchemaFn = fn(&mut SchemaGenerator) -> schemars::Schema;

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> schemars::Schema {
    generator.subschema_for::<T>()
}

/// A partial update of `T`: its fields, none required.
fn patch_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> schemars::Schema {
    let mut schema = T::json_schema(generator);
    schema.remove("required");
    schema
}

/// One Management API endpoint.
pub struct Endpoint {
    pub method: Method,
    /// The path in axum's form (`/api/v2/users/{id}`), which is also OpenAPI's.
    pub path: &'static str,
    /// The scope a caller needs (one of them, where several are listed, is Auth0's rule).
    pub scopes: &'static [&'static str],
    pub summary: &'static str,
    pub query: Option<SchemaFn>,
    pub body: Option<SchemaFn>,
    /// The status of a successful answer.
    pub success: u16,
    pub handler: fn() -> MethodRouter<AppState>,
}

macro_rules! endpoint {
    ($method:ident $path:literal, [$($scope:literal),*], $summary:literal, query: $query:expr, body: $body:expr, $success:literal, $route:ident($handler:path)) => {
        Endpoint {
            method: Method::$method,
            path: $path,
            scopes: &[$($scope),*],
            summary: $summary,
            query: $query,
            body: $body,
            success: $success,
            handler: || $route($handler),
        }
    };
}

/// Every Management API endpoint.
#[must_use]
pub fn endpoints() -> Vec<Endpoint> {
    vec![
        endpoint!(GET "/api/v2/users", ["read:users"], "List or search users", query: Some(schema::<ListUsersParams>), body: None, 200, get(m::list_users)),
        endpoint!(POST "/api/v2/users", ["create:users"], "Create a user", query: None, body: Some(schema::<CreateUser>), 201, post(m::create_user)),
        endpoint!(GET "/api/v2/users/{id}", ["read:users"], "Get a user", query: None, body: None, 200, get(m::get_user)),
        endpoint!(PATCH "/api/v2/users/{id}", ["update:users"], "Update a user", query: None, body: Some(schema::<UpdateUser>), 200, patch(m::update_user)),
        endpoint!(DELETE "/api/v2/users/{id}", ["delete:users"], "Delete a user", query: None, body: None, 204, delete(m::delete_user)),
        endpoint!(GET "/api/v2/users/{id}/roles", ["read:users", "read:roles"], "List a user's roles", query: Some(schema::<PageParams>), body: None, 200, get(m::list_user_roles)),
        endpoint!(POST "/api/v2/users/{id}/roles", ["create:role_members"], "Assign roles to a user", query: None, body: Some(schema::<RolesInput>), 204, post(m::assign_user_roles)),
        endpoint!(DELETE "/api/v2/users/{id}/roles", ["delete:role_members"], "Remove roles from a user", query: None, body: Some(schema::<RolesInput>), 204, delete(m::remove_user_roles)),
        endpoint!(GET "/api/v2/users/{id}/permissions", ["read:users"], "List a user's permissions", query: Some(schema::<PageParams>), body: None, 200, get(m::list_user_permissions)),
        endpoint!(POST "/api/v2/users/{id}/permissions", ["update:users"], "Give a user permissions directly", query: None, body: Some(schema::<PermissionsInput>), 201, post(m::edit_user_permissions)),
        endpoint!(DELETE "/api/v2/users/{id}/permissions", ["update:users"], "Take directly given permissions from a user", query: None, body: Some(schema::<PermissionsInput>), 204, delete(m::edit_user_permissions)),
        endpoint!(GET "/api/v2/user-blocks/{id}", ["read:users"], "List the brute-force blocks of a user", query: None, body: None, 200, get(m::get_user_blocks)),
        endpoint!(DELETE "/api/v2/user-blocks/{id}", ["update:users"], "Release the brute-force blocks of a user", query: None, body: None, 204, delete(m::delete_user_blocks)),
        endpoint!(GET "/api/v2/user-blocks", ["read:users"], "List the brute-force blocks of a user by email", query: Some(schema::<BlocksQuery>), body: None, 200, get(m::get_user_blocks_by_identifier)),
        endpoint!(DELETE "/api/v2/user-blocks", ["update:users"], "Release the brute-force blocks of a user by email", query: Some(schema::<BlocksQuery>), body: None, 204, delete(m::delete_user_blocks_by_identifier)),
        endpoint!(POST "/api/v2/tickets/email-verification", ["create:user_tickets"], "Create an email verification link", query: None, body: Some(schema::<EmailVerificationTicket>), 201, post(m::email_verification_ticket)),
        endpoint!(POST "/api/v2/tickets/password-change", ["create:user_tickets"], "Create a password change link", query: None, body: Some(schema::<PasswordChangeTicket>), 201, post(m::password_change_ticket)),
        endpoint!(GET "/api/v2/attack-protection/brute-force-protection", ["read:attack_protection"], "Get brute-force protection settings", query: None, body: None, 200, get(m::get_brute_force)),
        endpoint!(PATCH "/api/v2/attack-protection/brute-force-protection", ["update:attack_protection"], "Update brute-force protection settings", query: None, body: Some(patch_of::<BruteForceProtection>), 200, patch(m::patch_brute_force)),
        endpoint!(GET "/api/v2/attack-protection/suspicious-ip-throttling", ["read:attack_protection"], "Get suspicious-IP throttling settings", query: None, body: None, 200, get(m::get_suspicious_ip)),
        endpoint!(PATCH "/api/v2/attack-protection/suspicious-ip-throttling", ["update:attack_protection"], "Update suspicious-IP throttling settings", query: None, body: Some(patch_of::<SuspiciousIpThrottling>), 200, patch(m::patch_suspicious_ip)),
        endpoint!(GET "/api/v2/attack-protection/breached-password-detection", ["read:attack_protection"], "Get breached-password detection settings", query: None, body: None, 200, get(m::get_breached)),
        endpoint!(PATCH "/api/v2/attack-protection/breached-password-detection", ["update:attack_protection"], "Update breached-password detection settings", query: None, body: Some(patch_of::<BreachedPasswordDetection>), 200, patch(m::patch_breached)),
        endpoint!(GET "/api/v2/users-by-email", ["read:users"], "Find users by email", query: Some(schema::<m::ByEmail>), body: None, 200, get(m::users_by_email)),
        endpoint!(GET "/api/v2/roles", ["read:roles"], "List roles", query: Some(schema::<PageParams>), body: None, 200, get(m::list_roles)),
        endpoint!(POST "/api/v2/roles", ["create:roles"], "Create a role", query: None, body: Some(schema::<RoleInput>), 200, post(m::create_role)),
        endpoint!(GET "/api/v2/roles/{id}", ["read:roles"], "Get a role", query: None, body: None, 200, get(m::get_role)),
        endpoint!(PATCH "/api/v2/roles/{id}", ["update:roles"], "Update a role", query: None, body: Some(schema::<RoleInput>), 200, patch(m::update_role)),
        endpoint!(DELETE "/api/v2/roles/{id}", ["delete:roles"], "Delete a role", query: None, body: None, 204, delete(m::delete_role)),
        endpoint!(GET "/api/v2/roles/{id}/permissions", ["read:roles"], "List a role's permissions", query: Some(schema::<PageParams>), body: None, 200, get(m::list_role_permissions)),
        endpoint!(POST "/api/v2/roles/{id}/permissions", ["update:roles"], "Add permissions to a role", query: None, body: Some(schema::<PermissionsInput>), 201, post(m::edit_role_permissions)),
        endpoint!(DELETE "/api/v2/roles/{id}/permissions", ["update:roles"], "Remove permissions from a role", query: None, body: Some(schema::<PermissionsInput>), 204, delete(m::edit_role_permissions)),
        endpoint!(GET "/api/v2/roles/{id}/users", ["read:role_members"], "List a role's users", query: Some(schema::<PageParams>), body: None, 200, get(m::list_role_users)),
        endpoint!(POST "/api/v2/roles/{id}/users", ["create:role_members"], "Assign a role to users", query: None, body: Some(schema::<UsersInput>), 204, post(m::assign_role_users)),
        endpoint!(GET "/api/v2/resource-servers", ["read:resource_servers"], "List APIs", query: Some(schema::<PageParams>), body: None, 200, get(m::list_resource_servers)),
        endpoint!(POST "/api/v2/resource-servers", ["create:resource_servers"], "Create an API", query: None, body: Some(schema::<ResourceServerEntry>), 201, post(m::create_resource_server)),
        endpoint!(GET "/api/v2/resource-servers/{id}", ["read:resource_servers"], "Get an API", query: None, body: None, 200, get(m::get_resource_server)),
        endpoint!(PATCH "/api/v2/resource-servers/{id}", ["update:resource_servers"], "Update an API", query: None, body: Some(patch_of::<ResourceServerEntry>), 200, patch(m::update_resource_server)),
        endpoint!(DELETE "/api/v2/resource-servers/{id}", ["delete:resource_servers"], "Delete an API", query: None, body: None, 204, delete(m::delete_resource_server)),
        endpoint!(GET "/api/v2/clients", ["read:clients"], "List applications", query: Some(schema::<PageParams>), body: None, 200, get(m::list_clients)),
        endpoint!(POST "/api/v2/clients", ["create:clients"], "Create an application", query: None, body: Some(schema::<ClientEntry>), 201, post(m::create_client)),
        endpoint!(GET "/api/v2/clients/{id}", ["read:clients"], "Get an application", query: None, body: None, 200, get(m::get_client)),
        endpoint!(PATCH "/api/v2/clients/{id}", ["update:clients"], "Update an application", query: None, body: Some(patch_of::<ClientEntry>), 200, patch(m::update_client)),
        endpoint!(DELETE "/api/v2/clients/{id}", ["delete:clients"], "Delete an application", query: None, body: None, 204, delete(m::delete_client)),
        endpoint!(POST "/api/v2/clients/{id}/rotate-secret", ["update:client_keys"], "Rotate an application's secret", query: None, body: None, 200, post(m::rotate_client_secret)),
        endpoint!(GET "/api/v2/client-grants", ["read:client_grants"], "List client grants", query: Some(schema::<ClientGrantQuery>), body: None, 200, get(m::list_client_grants)),
        endpoint!(POST "/api/v2/client-grants", ["create:client_grants"], "Create a client grant", query: None, body: Some(schema::<NewClientGrant>), 201, post(m::create_client_grant)),
        endpoint!(PATCH "/api/v2/client-grants/{id}", ["update:client_grants"], "Update a client grant", query: None, body: Some(schema::<ClientGrantPatch>), 200, patch(m::update_client_grant)),
        endpoint!(DELETE "/api/v2/client-grants/{id}", ["delete:client_grants"], "Delete a client grant", query: None, body: None, 204, delete(m::delete_client_grant)),
        endpoint!(GET "/api/v2/logs", ["read:logs"], "Search log events", query: Some(schema::<LogParams>), body: None, 200, get(m::list_logs)),
        endpoint!(GET "/api/v2/logs/{id}", ["read:logs"], "Get a log event", query: None, body: None, 200, get(m::get_log)),
    ]
}

/// The `/api/v2/` routes, built from [`endpoints`].
pub fn routes() -> Router<AppState> {
    let mut by_path: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for e in endpoints() {
        match by_path.iter_mut().find(|(p, _)| *p == e.path) {
            Some((_, mr)) => *mr = std::mem::take(mr).merge((e.handler)()),
            None => by_path.push((e.path, (e.handler)())),
        }
    }
    let mut router = Router::new().route("/api/v2/openapi.json", get(openapi));
    for (path, mr) in by_path {
        router = router.route(path, mr);
    }
    router.route("/api/v2/{*rest}", axum::routing::any(m::not_found))
}

async fn openapi(axum::extract::State(state): axum::extract::State<AppState>) -> axum::Json<Value> {
    axum::Json(document(&state.core.settings().issuer))
}

/// Query-parameter objects become OpenAPI parameters, one per property.
fn query_parameters(schema: &Value, defs: &Map<String, Value>) -> Vec<Value> {
    let resolved = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.rsplit('/').next())
        .and_then(|name| defs.get(name))
        .unwrap_or(schema);
    let Some(props) = resolved.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .map(|(name, s)| {
            // Optional query values are `T | null` in the schema; a query string has no null.
            let mut s = s.clone();
            if let Some(types) = s.get("type").and_then(Value::as_array).cloned() {
                let non_null: Vec<Value> = types.into_iter().filter(|t| t != "null").collect();
                s["type"] = non_null.first().cloned().unwrap_or(json!("string"));
            }
            json!({ "name": name, "in": "query", "required": false, "schema": s })
        })
        .collect()
}

/// The OpenAPI 3.1 document of the Management API.
#[must_use]
pub fn document(issuer: &str) -> Value {
    let mut generator = schemars::generate::SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    let endpoints = endpoints();
    let mut pending = Vec::new();
    for e in &endpoints {
        let query = e.query.map(|f| f(&mut generator).to_value());
        let body = e.body.map(|f| f(&mut generator).to_value());
        pending.push((e, query, body));
    }
    let defs: Map<String, Value> = generator
        .definitions()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (e, query, body) in pending {
        let mut parameters: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
            .collect();
        if let Some(q) = &query {
            parameters.extend(query_parameters(q, &defs));
        }
        let mut op = json!({
            "summary": e.summary,
            "operationId": format!("{}_{}", e.method.as_str().to_lowercase(), e.path.trim_start_matches("/api/v2/").replace(['/', '{', '}', '-'], "_")),
            "security": [{ "bearer": e.scopes }],
            "parameters": parameters,
            "responses": {
                e.success.to_string(): { "description": "Success" },
                "400": { "$ref": "#/components/responses/Error" },
                "401": { "$ref": "#/components/responses/Error" },
                "403": { "$ref": "#/components/responses/Error" },
                "404": { "$ref": "#/components/responses/Error" },
                "409": { "$ref": "#/components/responses/Error" },
            },
            "x-scopes": e.scopes,
        });
        if let Some(b) = body {
            op["requestBody"] =
                json!({ "required": true, "content": { "application/json": { "schema": b } } });
        }
        let entry = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        entry[e.method.as_str().to_lowercase()] = op;
    }
    let mut schemas = Map::new();
    for (name, schema) in defs {
        schemas.insert(name, schema);
    }
    schemas.insert(
        "Error".to_owned(),
        json!({
            "type": "object",
            "required": ["statusCode", "error", "message", "errorCode"],
            "properties": {
                "statusCode": { "type": "integer" },
                "error": { "type": "string" },
                "message": { "type": "string" },
                "errorCode": { "type": "string" }
            }
        }),
    );
    json!({
        "openapi": "3.0.3",
        "info": { "title": "Portcullis Management API", "version": env!("CARGO_PKG_VERSION") },
        "servers": [{ "url": issuer.trim_end_matches('/') }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } },
            "responses": {
                "Error": {
                    "description": "An error in Auth0's shape",
                    "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } }
                }
            }
        }
    })
}
