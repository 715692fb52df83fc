//! The audit trail through `/api/v2/logs`.

use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

const ADMIN_TOOL: (&str, &str) = ("admin-tool-id", "admin-tool-secret-0123456789abcdef");

fn types(logs: &Value) -> Vec<String> {
    logs.as_array()
        .unwrap()
        .iter()
        .map(|l| l["type"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn logins_token_exchanges_logouts_and_api_changes_are_logged(app) {
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        app.submit_login(&browser, &form, USER_EMAIL, "wrong password").await;
        app.submit_login(&browser, &form, "nobody@example.com", "wrong password").await;
        let tokens = app.web_tokens(&browser, &[]).await;
        let user_id = app.claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();
        app.token(&[("grant_type", "client_credentials"), ("audience", "https://api.finance.example")], Some(("m2m-client-id", "wrong"))).await;
        app.get("/v2/logout", &browser).await;
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        app.api("POST", "/api/v2/roles", Some(&token), Some(json!({"name": "logged"}))).await;
        app.api("POST", "/api/v2/roles", Some(&token), Some(json!({"name": "logged"}))).await;

        let logs = app.api("GET", "/api/v2/logs?sort=date%3A1", Some(&token), None).await;
        assert_eq!(logs.status, StatusCode::OK, "{}", logs.text);
        let logs = logs.json();
        let kinds = types(&logs);
        for kind in ["fp", "fu", "s", "seacft", "feccft", "slo", "seccft", "sapi", "fapi"] {
            assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
        }
        let first_s = kinds.iter().position(|k| k == "s").unwrap();
        let first_slo = kinds.iter().position(|k| k == "slo").unwrap();
        assert!(first_s < first_slo, "ascending by date: {kinds:?}");
        let success = &logs[first_s];
        assert_eq!(success["user_id"], user_id.as_str());
        assert_eq!(success["client_id"], "web-app-client-id");
        assert_eq!(success["client_name"], "Web App");
        assert!(success["date"].as_str().unwrap().ends_with('Z'));
        let sapi = logs.as_array().unwrap().iter().find(|l| l["type"] == "sapi").unwrap();
        assert_eq!(sapi["client_id"], "admin-tool-id");
        assert_eq!(sapi["details"]["request"]["path"], "/api/v2/roles");
        assert!(!logs.to_string().contains("wrong password"), "no password in the trail");

        let only_fp = app.api("GET", "/api/v2/logs?q=type%3A%22fp%22", Some(&token), None).await.json();
        assert_eq!(types(&only_fp), vec!["fp"]);
        let by_user = app.api("GET", &format!("/api/v2/logs?q=user_id%3A%22{}%22&include_totals=true", user_id.replace('|', "%7C")), Some(&token), None).await.json();
        assert!(by_user["total"].as_i64().unwrap() >= 2);
        let id = success["log_id"].as_str().unwrap();
        let one = app.api("GET", &format!("/api/v2/logs/{id}"), Some(&token), None).await.json();
        assert_eq!(one["type"], "s");
        assert_eq!(app.api("GET", "/api/v2/logs/nope", Some(&token), None).await.status, StatusCode::NOT_FOUND);
        assert_eq!(app.api("GET", "/api/v2/logs?q=ip%3A1.2.3.4", Some(&token), None).await.status, StatusCode::BAD_REQUEST);
        let reader = app.management_token("reader-tool-id", "reader-tool-secret-0123456789abcde").await;
        assert_eq!(app.api("GET", "/api/v2/logs", Some(&reader), None).await.status, StatusCode::FORBIDDEN);

        // Erasing the user keeps the trail.
        let erased = app.api("DELETE", &format!("/api/v2/users/{}", user_id.replace('|', "%7C")), Some(&token), None).await;
        assert_eq!(erased.status, StatusCode::NO_CONTENT, "{}", erased.text);
        assert_eq!(app.api("GET", &format!("/api/v2/users/{}", user_id.replace('|', "%7C")), Some(&token), None).await.status, StatusCode::NOT_FOUND, "the user is gone");
        let after = app.api("GET", &format!("/api/v2/logs?q=user_id%3A%22{}%22", user_id.replace('|', "%7C")), Some(&token), None).await.json();
        assert!(!after.as_array().unwrap().is_empty());
    }

    async fn events_past_the_retention_are_purged(app) {
        app.apply(&TENANT_YAML.replace("  friendly_name: Test Tenant\n", "  friendly_name: Test Tenant\n  log_retention_days: 1\n")).await.unwrap();
        app.web_tokens(&Browser::new(), &[]).await;
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let before = app.api("GET", "/api/v2/logs?include_totals=true", Some(&token), None).await.json()["total"].as_i64().unwrap();
        assert!(before >= 2);
        app.clock.advance(2 * 86_400);
        assert!(app.core.purge_logs().await.unwrap() >= 2);
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        let after = app.api("GET", "/api/v2/logs?include_totals=true", Some(&token), None).await.json()["total"].as_i64().unwrap();
        assert_eq!(after, 1, "only the new token exchange is left");
    }
}
