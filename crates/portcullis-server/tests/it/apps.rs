//! Applications, APIs and client grants through the Management API.

use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;
use serde_json::json;

const ADMIN_TOOL: (&str, &str) = ("admin-tool-id", "admin-tool-secret-0123456789abcdef");
const READER_TOOL: (&str, &str) = ("reader-tool-id", "reader-tool-secret-0123456789abcde");

async fn admin(app: &TestApp) -> String {
    app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await
}

both_backends! {
    async fn apis_are_created_updated_listed_and_deleted_with_their_grants(app) {
        let token = admin(&app).await;
        let created = app.api("POST", "/api/v2/resource-servers", Some(&token), Some(json!({
            "name": "Budget API", "identifier": "https://budget.example",
            "scopes": [{"value": "read:budgets", "description": "Read budgets"}],
            "signing_alg": "ES256", "token_lifetime": 3600
        }))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let api = created.json();
        let id = api["id"].as_str().unwrap().to_owned();
        assert_eq!(api["signing_alg"], "ES256");
        assert_eq!(app.api("POST", "/api/v2/resource-servers", Some(&token), Some(json!({"name": "Again", "identifier": "https://budget.example"}))).await.status, StatusCode::CONFLICT);
        assert_eq!(app.api("POST", "/api/v2/resource-servers", Some(&token), Some(json!({"name": "HS", "identifier": "https://hs.example", "signing_alg": "HS256"}))).await.json()["errorCode"], "invalid_body");
        assert_eq!(app.api("POST", "/api/v2/resource-servers", Some(&token), Some(json!({"name": "X", "identifier": "https://x.example", "colour": 1}))).await.json()["errorCode"], "invalid_body");
        let by_identifier = app.api("GET", "/api/v2/resource-servers/https%3A%2F%2Fbudget.example", Some(&token), None).await.json();
        assert_eq!(by_identifier["id"], id.as_str());
        let patched = app.api("PATCH", &format!("/api/v2/resource-servers/{id}"), Some(&token), Some(json!({"name": "Budgets", "scopes": [{"value": "read:budgets"}, {"value": "write:budgets"}]}))).await.json();
        assert_eq!(patched["name"], "Budgets");
        assert_eq!(patched["signing_alg"], "ES256", "unpatched fields keep their value");
        assert_eq!(patched["scopes"].as_array().unwrap().len(), 2);
        assert_eq!(app.api("PATCH", &format!("/api/v2/resource-servers/{id}"), Some(&token), Some(json!({"identifier": "https://other.example"}))).await.json()["errorCode"], "invalid_body");
        let list = app.api("GET", "/api/v2/resource-servers?include_totals=true", Some(&token), None).await.json();
        assert_eq!(list["total"], 5);

        // A grant on it lets a machine client in; deleting the API removes the grant.
        let grant = app.api("POST", "/api/v2/client-grants", Some(&token), Some(json!({"client_id": "m2m-client-id", "audience": "https://budget.example", "scope": ["read:budgets"]}))).await;
        assert_eq!(grant.status, StatusCode::CREATED, "{}", grant.text);
        let cc = app.token(&[("grant_type", "client_credentials"), ("audience", "https://budget.example")], Some(("m2m-client-id", M2M_SECRET))).await;
        assert_eq!(cc.status, StatusCode::OK, "{}", cc.text);
        assert_eq!(TestApp::header_of(cc.json()["access_token"].as_str().unwrap())["alg"], "ES256");
        assert_eq!(app.api("DELETE", &format!("/api/v2/resource-servers/{id}"), Some(&token), None).await.status, StatusCode::NO_CONTENT);
        let grants = app.api("GET", "/api/v2/client-grants?audience=https%3A%2F%2Fbudget.example", Some(&token), None).await.json();
        assert_eq!(grants, json!([]));
        let cc = app.token(&[("grant_type", "client_credentials"), ("audience", "https://budget.example")], Some(("m2m-client-id", M2M_SECRET))).await;
        assert_eq!(cc.status, StatusCode::FORBIDDEN);
    }

    async fn clients_show_secrets_only_with_read_client_keys_and_rotate(app) {
        let token = admin(&app).await;
        let created = app.api("POST", "/api/v2/clients", Some(&token), Some(json!({
            "name": "Reports Job", "app_type": "non_interactive"
        }))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
        let client = created.json();
        let id = client["client_id"].as_str().unwrap().to_owned();
        let secret = client["client_secret"].as_str().unwrap().to_owned();
        assert_eq!(client["grant_types"], json!(["client_credentials"]));
        assert_eq!(app.api("POST", "/api/v2/clients", Some(&token), Some(json!({"name": "Reports Job"}))).await.status, StatusCode::CONFLICT);
        assert_eq!(app.api("POST", "/api/v2/clients", Some(&token), Some(json!({"name": "Bad", "callbacks": ["not a url"]}))).await.json()["errorCode"], "invalid_body");

        let reader = app.management_token(READER_TOOL.0, READER_TOOL.1).await;
        let seen = app.api("GET", &format!("/api/v2/clients/{id}"), Some(&reader), None).await.json();
        assert!(seen.get("client_secret").is_none(), "{seen}");
        let listed = app.api("GET", "/api/v2/clients", Some(&reader), None).await.text;
        assert!(!listed.contains(&secret) && !listed.contains(WEB_SECRET));
        let full = app.api("GET", &format!("/api/v2/clients/{id}"), Some(&token), None).await.json();
        assert_eq!(full["client_secret"], secret.as_str());

        app.api("POST", "/api/v2/client-grants", Some(&token), Some(json!({"client_id": id, "audience": "https://api.finance.example", "scope": ["read:transactions"]}))).await;
        let cc = |s: String| {
            let id = id.clone();
            let app = &app;
            async move { app.token(&[("grant_type", "client_credentials"), ("audience", "https://api.finance.example")], Some((&id, &s))).await.status }
        };
        assert_eq!(cc(secret.clone()).await, StatusCode::OK);
        let rotated = app.api("POST", &format!("/api/v2/clients/{id}/rotate-secret"), Some(&token), None).await.json();
        let new_secret = rotated["client_secret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, secret);
        assert_eq!(cc(secret.clone()).await, StatusCode::UNAUTHORIZED, "the old secret stops at once");
        assert_eq!(cc(new_secret.clone()).await, StatusCode::OK);

        let patched = app.api("PATCH", &format!("/api/v2/clients/{id}"), Some(&token), Some(json!({"name": "Nightly Reports"}))).await.json();
        assert_eq!(patched["name"], "Nightly Reports");
        assert_eq!(cc(new_secret.clone()).await, StatusCode::OK, "a patch keeps the secret");
        assert_eq!(app.api("DELETE", &format!("/api/v2/clients/{id}"), Some(&token), None).await.status, StatusCode::NO_CONTENT);
        assert_eq!(cc(new_secret).await, StatusCode::UNAUTHORIZED);
        assert_eq!(app.api("GET", &format!("/api/v2/clients/{id}"), Some(&token), None).await.status, StatusCode::NOT_FOUND);
    }

    async fn client_grants_check_their_client_audience_and_scopes(app) {
        let token = admin(&app).await;
        let post = |body: serde_json::Value| {
            let token = token.clone();
            let app = &app;
            async move { app.api("POST", "/api/v2/client-grants", Some(&token), Some(body)).await }
        };
        assert_eq!(post(json!({"client_id": "ghost-client", "audience": "https://es.example", "scope": []})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(post(json!({"client_id": "m2m-client-id", "audience": "https://nowhere.example", "scope": []})).await.status, StatusCode::NOT_FOUND);
        assert_eq!(post(json!({"client_id": "m2m-client-id", "audience": "https://coach.example", "scope": ["fly"]})).await.json()["errorCode"], "invalid_body");
        assert_eq!(post(json!({"client_id": "m2m-client-id", "audience": "https://es.example", "scope": []})).await.status, StatusCode::CONFLICT);
        let created = post(json!({"client_id": "m2m-client-id", "audience": "https://coach.example", "scope": ["read:reports"]})).await.json();
        let id = created["id"].as_str().unwrap().to_owned();
        let listed = app.api("GET", "/api/v2/client-grants?client_id=m2m-client-id&include_totals=true", Some(&token), None).await.json();
        assert_eq!(listed["total"], 4);
        let patched = app.api("PATCH", &format!("/api/v2/client-grants/{id}"), Some(&token), Some(json!({"scope": ["read:reports", "read:transactions"]}))).await.json();
        assert_eq!(patched["scope"], json!(["read:reports", "read:transactions"]));
        let cc = app.token(&[("grant_type", "client_credentials"), ("audience", "https://coach.example")], Some(("m2m-client-id", M2M_SECRET))).await.json();
        assert_eq!(cc["scope"], "read:reports read:transactions");
        assert_eq!(app.api("DELETE", &format!("/api/v2/client-grants/{id}"), Some(&token), None).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.api("DELETE", &format!("/api/v2/client-grants/{id}"), Some(&token), None).await.status, StatusCode::NOT_FOUND);
    }
}
