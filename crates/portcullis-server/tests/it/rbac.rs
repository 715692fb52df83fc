//! Roles through the Management API, and RBAC in access tokens.

use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;
use portcullis_core::store::prelude::*;
use serde_json::json;

const ADMIN_TOOL: (&str, &str) = ("admin-tool-id", "admin-tool-secret-0123456789abcdef");
const COACH: &str = "https://coach.example";

async fn coach_token(app: &TestApp, email: &str, password: &str) -> serde_json::Value {
    let p = app
        .login_code(
            &Browser::new(),
            &[
                ("audience", COACH),
                (
                    "scope",
                    "openid offline_access read:transactions read:reports",
                ),
            ],
            email,
            password,
        )
        .await;
    let resp = app
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &p["code"]),
                ("redirect_uri", WEB_CALLBACK),
            ],
            Some(("web-app-client-id", WEB_SECRET)),
        )
        .await;
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
    resp.json()
}

async fn role_id(app: &TestApp, token: &str, name: &str) -> String {
    let roles = app
        .api(
            "GET",
            &format!("/api/v2/roles?name_filter={name}"),
            Some(token),
            None,
        )
        .await
        .json();
    roles
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

both_backends! {
    async fn an_api_that_enforces_policies_grants_only_what_roles_permit(app) {
        let admin = coach_token(&app, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let at = app.claims(admin["access_token"].as_str().unwrap());
        assert_eq!(at["scope"], "openid offline_access read:reports");
        assert_eq!(at["permissions"], json!(["read:reports"]));
        assert_eq!(at["aud"], json!([COACH, format!("{ISSUER}userinfo")]));

        let user = coach_token(&app, USER_EMAIL, USER_PASSWORD).await;
        let at = app.claims(user["access_token"].as_str().unwrap());
        assert_eq!(at["scope"], "openid offline_access");
        assert_eq!(at["permissions"], json!([]));

        // Grant the member role a permission: the next token carries it.
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let member = role_id(&app, &token, "member").await;
        let perm = json!({"permissions": [{"resource_server_identifier": COACH, "permission_name": "read:transactions"}]});
        assert_eq!(app.api("POST", &format!("/api/v2/roles/{member}/permissions"), Some(&token), Some(perm.clone())).await.status, StatusCode::CREATED);
        let user2 = coach_token(&app, USER_EMAIL, USER_PASSWORD).await;
        let at = app.claims(user2["access_token"].as_str().unwrap());
        assert_eq!(at["scope"], "openid offline_access read:transactions");
        assert_eq!(at["permissions"], json!(["read:transactions"]));

        // Take it away: a refresh no longer grants it.
        assert_eq!(app.api("DELETE", &format!("/api/v2/roles/{member}/permissions"), Some(&token), Some(perm)).await.status, StatusCode::NO_CONTENT);
        let refreshed = app.token(&[("grant_type", "refresh_token"), ("refresh_token", user2["refresh_token"].as_str().unwrap())], Some(("web-app-client-id", WEB_SECRET))).await.json();
        let at = app.claims(refreshed["access_token"].as_str().unwrap());
        assert_eq!(at["scope"], "openid offline_access");
    }

    async fn permissions_given_directly_count_like_role_permissions(app) {
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let user_id = app.claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().replace('|', "%7C");
        let path = format!("/api/v2/users/{user_id}/permissions");
        let bad = json!({"permissions": [{"resource_server_identifier": COACH, "permission_name": "fly"}]});
        assert_eq!(app.api("POST", &path, Some(&token), Some(bad)).await.json()["errorCode"], "invalid_body");
        let perm = json!({"permissions": [{"resource_server_identifier": COACH, "permission_name": "read:transactions"}]});
        assert_eq!(app.api("POST", &path, Some(&token), Some(perm.clone())).await.status, StatusCode::CREATED);
        let listed = app.api("GET", &path, Some(&token), None).await.json();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["sources"][0]["source_type"], "DIRECT");
        let at = app.claims(coach_token(&app, USER_EMAIL, USER_PASSWORD).await["access_token"].as_str().unwrap());
        assert_eq!(at["permissions"], json!(["read:transactions"]));
        assert_eq!(at["scope"], "openid offline_access read:transactions");
        assert_eq!(app.api("DELETE", &path, Some(&token), Some(perm)).await.status, StatusCode::NO_CONTENT);
        assert_eq!(app.api("GET", &path, Some(&token), None).await.json(), json!([]));
        let role_perms = app.api("GET", &format!("/api/v2/roles/{}/permissions", role_id(&app, &token, "admin").await), Some(&token), None).await.json();
        assert!(role_perms[0].get("sources").is_none(), "a role's own list has no sources");
    }

    async fn one_read_of_a_users_access_matches_the_two_lists(app) {
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let sub = app.claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();
        let path = format!("/api/v2/users/{}/permissions", sub.replace('|', "%7C"));
        let perm = json!({"permissions": [{"resource_server_identifier": COACH, "permission_name": "read:transactions"}]});
        assert_eq!(app.api("POST", &path, Some(&token), Some(perm)).await.status, StatusCode::CREATED);
        let admin = role_id(&app, &token, "admin").await;
        let assign = json!({"users": [sub.clone()]});
        assert_eq!(app.api("POST", &format!("/api/v2/roles/{admin}/users"), Some(&token), Some(assign)).await.status, StatusCode::NO_CONTENT);
        let (user, roles, direct) = app.store.user_with_access("default", &sub).await.unwrap().unwrap();
        assert_eq!(user.user_id, sub);
        assert_eq!(roles, app.store.list_user_roles("default", &sub).await.unwrap());
        assert_eq!(direct, app.store.list_user_permissions("default", &sub).await.unwrap());
        assert_eq!(roles.len(), 2);
        assert_eq!(roles.iter().find(|r| r.name == "admin").unwrap().permissions.len(), 2);
        assert_eq!(direct.len(), 1);
    }

    async fn roles_are_created_read_renamed_listed_and_deleted(app) {
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let created = app.api("POST", "/api/v2/roles", Some(&token), Some(json!({"name": "auditor", "description": "Reads reports"}))).await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.text);
        let id = created.json()["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("rol_"));
        let dup = app.api("POST", "/api/v2/roles", Some(&token), Some(json!({"name": "auditor"}))).await;
        assert_eq!(dup.status, StatusCode::CONFLICT);
        assert_eq!(dup.json()["statusCode"], 409);
        let bad = app.api("POST", "/api/v2/roles", Some(&token), Some(json!({"name": "x", "colour": "red"}))).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.json()["errorCode"], "invalid_body");
        let renamed = app.api("PATCH", &format!("/api/v2/roles/{id}"), Some(&token), Some(json!({"name": "auditors"}))).await.json();
        assert_eq!(renamed["name"], "auditors");
        assert_eq!(renamed["description"], "Reads reports");
        let page = app.api("GET", "/api/v2/roles?include_totals=true&per_page=2", Some(&token), None).await.json();
        assert_eq!(page["total"], 3);
        assert_eq!(page["roles"].as_array().unwrap().len(), 2);
        let filtered = app.api("GET", "/api/v2/roles?name_filter=audit", Some(&token), None).await.json();
        assert_eq!(filtered.as_array().unwrap().len(), 1);
        assert_eq!(app.api("DELETE", &format!("/api/v2/roles/{id}"), Some(&token), None).await.status, StatusCode::NO_CONTENT);
        let gone = app.api("GET", &format!("/api/v2/roles/{id}"), Some(&token), None).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        assert_eq!(gone.json()["errorCode"], "inexistent_role");
        let reader = app.management_token("reader-tool-id", "reader-tool-secret-0123456789abcde").await;
        assert_eq!(app.api("GET", "/api/v2/roles", Some(&reader), None).await.status, StatusCode::FORBIDDEN);
    }

    async fn role_permissions_must_exist_on_an_api(app) {
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let admin_role = role_id(&app, &token, "admin").await;
        let path = format!("/api/v2/roles/{admin_role}/permissions");
        let listed = app.api("GET", &path, Some(&token), None).await.json();
        assert_eq!(listed.as_array().unwrap().len(), 2);
        let finance = listed.as_array().unwrap().iter().find(|p| p["resource_server_identifier"] == "https://api.finance.example").unwrap();
        assert_eq!(finance["resource_server_name"], "Finance API");
        assert_eq!(finance["description"], "Read transactions");
        let bad = json!({"permissions": [
            {"resource_server_identifier": COACH, "permission_name": "read:transactions"},
            {"resource_server_identifier": COACH, "permission_name": "launch:rockets"}
        ]});
        assert_eq!(app.api("POST", &path, Some(&token), Some(bad)).await.json()["errorCode"], "invalid_body");
        assert_eq!(app.api("GET", &path, Some(&token), None).await.json().as_array().unwrap().len(), 2, "nothing half-added");
    }

    async fn users_get_and_lose_roles_and_tokens_follow(app) {
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let user_id = app.claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().replace('|', "%7C");
        let admin_role = role_id(&app, &token, "admin").await;
        let roles_path = format!("/api/v2/users/{user_id}/roles");
        let unknown = app.api("POST", &roles_path, Some(&token), Some(json!({"roles": [admin_role, "rol_nope"]}))).await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);
        assert_eq!(app.api("GET", &roles_path, Some(&token), None).await.json().as_array().unwrap().len(), 1, "nothing assigned");
        assert_eq!(app.api("POST", &roles_path, Some(&token), Some(json!({"roles": [admin_role]}))).await.status, StatusCode::NO_CONTENT);
        let roles = app.api("GET", &roles_path, Some(&token), None).await.json();
        let names: Vec<&str> = roles.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["admin", "member"]);
        let perms = app.api("GET", &format!("/api/v2/users/{user_id}/permissions"), Some(&token), None).await.json();
        assert_eq!(perms.as_array().unwrap().len(), 2);
        assert_eq!(perms[0]["sources"][0]["source_name"], "admin");
        let members = app.api("GET", &format!("/api/v2/roles/{admin_role}/users?include_totals=true"), Some(&token), None).await.json();
        assert_eq!(members["total"], 2);
        // Auth0's checkpoint paging, as its SDKs use it.
        let first = app.api("GET", &format!("/api/v2/roles/{admin_role}/users?take=1"), Some(&token), None).await.json();
        assert_eq!(first["users"].as_array().unwrap().len(), 1);
        assert_eq!(first["next"], "1");
        let second = app.api("GET", &format!("/api/v2/roles/{admin_role}/users?take=1&from=1"), Some(&token), None).await.json();
        assert_eq!(second["users"].as_array().unwrap().len(), 1);
        assert!(second.get("next").is_none());
        assert_ne!(first["users"][0]["user_id"], second["users"][0]["user_id"]);
        let totals = app.api("GET", &format!("{roles_path}?include_totals=true"), Some(&token), None).await.json();
        assert_eq!(totals["total"], 2);
        assert_eq!(totals["roles"].as_array().unwrap().len(), 2);
        // The roles claim follows at the next token.
        let fresh = app.web_tokens(&Browser::new(), &[]).await;
        assert_eq!(app.claims(fresh["id_token"].as_str().unwrap())["https://yourapp.com/roles"], json!(["admin", "member"]));
        assert_eq!(app.api("DELETE", &roles_path, Some(&token), Some(json!({"roles": [admin_role]}))).await.status, StatusCode::NO_CONTENT);
        let fresh = app.web_tokens(&Browser::new(), &[]).await;
        assert_eq!(app.claims(fresh["id_token"].as_str().unwrap())["https://yourapp.com/roles"], json!(["member"]));
    }
}
