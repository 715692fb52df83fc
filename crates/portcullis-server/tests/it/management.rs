//! The Management API's users endpoints, their scopes and their errors.

use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;
use serde_json::json;

const ADMIN_TOOL: (&str, &str) = ("admin-tool-id", "admin-tool-secret-0123456789abcdef");
const READER_TOOL: (&str, &str) = ("reader-tool-id", "reader-tool-secret-0123456789abcde");

fn assert_auth0_error(resp: &TestResponse, status: u16, code: &str) {
    assert_eq!(resp.status.as_u16(), status, "{}", resp.text);
    let body = resp.json();
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["errorCode"], code, "{body}");
    assert!(
        body["error"].is_string() && body["message"].is_string(),
        "{body}"
    );
}

async fn admin(app: &TestApp) -> String {
    app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await
}

fn encode(id: &str) -> String {
    id.replace('|', "%7C")
}

both_backends! {
    async fn calls_need_a_management_token_with_the_right_scope(app) {
        assert_auth0_error(&app.api("GET", "/api/v2/users", None, None).await, 401, "invalid_token");
        assert_auth0_error(&app.api("GET", "/api/v2/users", Some("not-a-token"), None).await, 401, "invalid_token");
        let api_token = app.token(&[("grant_type", "client_credentials"), ("audience", "https://api.finance.example")], Some(("m2m-client-id", M2M_SECRET))).await.json();
        assert_auth0_error(&app.api("GET", "/api/v2/users", api_token["access_token"].as_str(), None).await, 401, "invalid_token");
        let reader = app.management_token(READER_TOOL.0, READER_TOOL.1).await;
        assert_eq!(app.api("GET", "/api/v2/users", Some(&reader), None).await.status, StatusCode::OK);
        let denied = app.api("POST", "/api/v2/users", Some(&reader), Some(json!({"connection": "Username-Password-Authentication", "email": "x@example.com", "password": "Long-enough-pw-77"}))).await;
        assert_auth0_error(&denied, 403, "insufficient_scope");
        assert!(denied.json()["message"].as_str().unwrap().contains("create:users"));
        let no_grant = app.token(&[("grant_type", "client_credentials"), ("audience", &format!("{ISSUER}api/v2/"))], Some(("m2m-client-id", M2M_SECRET))).await;
        assert_eq!(no_grant.status, StatusCode::FORBIDDEN, "a client without a grant gets no token");
        assert_auth0_error(&app.api("GET", "/api/v2/nothing-here", Some(&reader), None).await, 404, "not_found");
    }

    async fn a_created_user_has_auth0s_shape_and_can_log_in(app) {
        let token = admin(&app).await;
        let resp = app.api("POST", "/api/v2/users", Some(&token), Some(json!({
            "connection": "Username-Password-Authentication",
            "email": "New.Person@Example.com",
            "password": "A-fine-long-password-9",
            "name": "New Person",
            "user_metadata": {"theme": "dark"},
            "app_metadata": {"plan": "silver"}
        }))).await;
        assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.text);
        let user = resp.json();
        let id = user["user_id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("auth0|"));
        assert_eq!(user["identities"][0]["provider"], "auth0");
        assert_eq!(user["identities"][0]["connection"], "Username-Password-Authentication");
        assert_eq!(user["identities"][0]["user_id"], id.trim_start_matches("auth0|"));
        assert_eq!(user["email_verified"], false);
        assert_eq!(user["logins_count"], 0);
        assert!(user["created_at"].as_str().unwrap().ends_with("Z"));
        assert!(user.get("password").is_none() && !resp.text.contains("argon2"));

        let p = app.login_code(&Browser::new(), &[], "new.person@example.com", "A-fine-long-password-9").await;
        assert!(p.contains_key("code"));
        let fetched = app.api("GET", &format!("/api/v2/users/{}", encode(&id)), Some(&token), None).await.json();
        assert_eq!(fetched["logins_count"], 1);
        assert!(fetched["last_login"].is_string());
    }

    async fn bad_input_gets_auth0s_4xx_and_changes_nothing(app) {
        let token = admin(&app).await;
        let count = || async { app.api("GET", "/api/v2/users?include_totals=true", Some(&token), None).await.json()["total"].as_i64().unwrap() };
        let before = count().await;
        let send = |body: &'static str| {
            let token = token.clone();
            let app = &app;
            async move {
                app.send(axum::http::Request::post("/api/v2/users").header("authorization", format!("Bearer {token}")).header("content-type", "application/json").body(axum::body::Body::from(body)).unwrap()).await
            }
        };
        assert_auth0_error(&send("{not json").await, 400, "invalid_body");
        assert_auth0_error(&send(r#"{"connection":"Username-Password-Authentication","email":"a@example.com","password":"Long-enough-pw-77","colour":"red"}"#).await, 400, "invalid_body");
        assert_auth0_error(&send(r#"{"connection":"Username-Password-Authentication","email":"a@example.com"}"#).await, 400, "invalid_body");
        assert_auth0_error(&send(r#"{"connection":"Username-Password-Authentication","email":"not-an-email","password":"Long-enough-pw-77"}"#).await, 400, "invalid_body");
        assert_auth0_error(&send(r#"{"connection":"github","email":"a@example.com","password":"Long-enough-pw-77"}"#).await, 400, "invalid_body");
        assert_auth0_error(&send(r#"{"connection":"Username-Password-Authentication","email":"a@example.com","password":"short"}"#).await, 400, "invalid_password");
        let dup = send(r#"{"connection":"Username-Password-Authentication","email":"USER@example.com","password":"Long-enough-pw-77"}"#).await;
        assert_auth0_error(&dup, 409, "auth0_idp_error");
        assert_eq!(count().await, before);
        assert_auth0_error(&app.api("GET", "/api/v2/users/auth0%7Cnope", Some(&token), None).await, 404, "inexistent_user");
        assert_auth0_error(&app.api("GET", "/api/v2/users?per_page=500", Some(&token), None).await, 400, "invalid_query_string");
        assert_auth0_error(&app.api("GET", "/api/v2/users?page=20&per_page=50", Some(&token), None).await, 400, "invalid_query_string");
        // Paging numbers at the edge of i64 are refused, not overflowed (found by schemathesis).
        assert_auth0_error(&app.api("GET", "/api/v2/users?page=9223372036854775807", Some(&token), None).await, 400, "invalid_query_string");
        assert_auth0_error(&app.api("GET", "/api/v2/roles?page=9223372036854775807&per_page=100", Some(&token), None).await, 400, "invalid_query_string");
        let far = app.api("GET", "/api/v2/roles?from=9223372036854775807&take=10", Some(&token), None).await;
        assert_eq!(far.status, StatusCode::OK, "{}", far.text);
        assert_eq!(far.json()["roles"], json!([]));
        assert_auth0_error(&app.api("GET", "/api/v2/users?q=email%3Aa%20OR%20email%3Ab", Some(&token), None).await, 400, "invalid_query_string");
        assert_auth0_error(&app.api("GET", "/api/v2/users?sort=password%3A1", Some(&token), None).await, 400, "invalid_query_string");
        assert_auth0_error(&app.api("PATCH", "/api/v2/users/auth0%7Cnope", Some(&token), Some(json!({"name": "x"}))).await, 404, "inexistent_user");
    }

    async fn users_are_listed_paged_searched_sorted_and_trimmed(app) {
        let token = admin(&app).await;
        let all = app.api("GET", "/api/v2/users?include_totals=true&per_page=1&page=1&sort=email%3A1", Some(&token), None).await.json();
        assert_eq!(all["total"], 2);
        assert_eq!(all["start"], 1);
        assert_eq!(all["limit"], 1);
        assert_eq!(all["length"], 1);
        assert_eq!(all["users"][0]["email"], USER_EMAIL, "sorted by email, second page");
        let beyond = app.api("GET", "/api/v2/users?per_page=10&page=5", Some(&token), None).await.json();
        assert_eq!(beyond, json!([]));
        let q = |q: &str| format!("/api/v2/users?q={}", url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>());
        let by_email = app.api("GET", &q(&format!("email:\"{ADMIN_EMAIL}\"")), Some(&token), None).await.json();
        assert_eq!(by_email.as_array().unwrap().len(), 1);
        assert_eq!(by_email[0]["email"], ADMIN_EMAIL);
        let by_name = app.api("GET", &q("name:uma*"), Some(&token), None).await.json();
        assert_eq!(by_name[0]["email"], USER_EMAIL);
        assert_eq!(by_name.as_array().unwrap().len(), 1);
        let by_meta = app.api("GET", &q("app_metadata.plan:\"gold\""), Some(&token), None).await.json();
        assert_eq!(by_meta.as_array().unwrap().len(), 1);
        assert_eq!(by_meta[0]["email"], ADMIN_EMAIL);
        let by_meta_prefix = app.api("GET", &q("app_metadata.plan:go*"), Some(&token), None).await.json();
        assert_eq!(by_meta_prefix.as_array().unwrap().len(), 1);
        let none = app.api("GET", &q("app_metadata.plan:\"bronze\""), Some(&token), None).await.json();
        assert_eq!(none, json!([]));
        let both = app.api("GET", &q("email_verified:true AND name:uma*"), Some(&token), None).await.json();
        assert_eq!(both.as_array().unwrap().len(), 1);
        let injection = app.api("GET", &q("name:\"x' OR '1'='1\""), Some(&token), None).await;
        assert_eq!(injection.json(), json!([]));
        let trimmed = app.api("GET", "/api/v2/users?fields=email,user_id&include_fields=true", Some(&token), None).await.json();
        let keys: Vec<&String> = trimmed[0].as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 2, "{keys:?}");
        let by_email = app.api("GET", "/api/v2/users-by-email?email=ADMIN%40example.com", Some(&token), None).await.json();
        assert_eq!(by_email[0]["email"], ADMIN_EMAIL);
    }

    async fn updates_merge_metadata_change_passwords_and_blocking_ends_sessions(app) {
        let token = admin(&app).await;
        let browser = Browser::new();
        let tokens = app.web_tokens(&browser, &[]).await;
        let id = app.claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();
        let path = format!("/api/v2/users/{}", encode(&id));
        app.api("PATCH", &path, Some(&token), Some(json!({"user_metadata": {"a": 1, "b": {"x": 1}}}))).await;
        let user = app.api("PATCH", &path, Some(&token), Some(json!({"user_metadata": {"b": {"y": 2}, "a": null, "c": 3}, "email_verified": false}))).await.json();
        assert_eq!(user["user_metadata"], json!({"b": {"y": 2}, "c": 3}));
        assert_eq!(user["email_verified"], false);
        let cleared = app.api("PATCH", &path, Some(&token), Some(json!({"user_metadata": {}}))).await.json();
        assert_eq!(cleared["user_metadata"], json!({}));

        let changed = app.api("PATCH", &path, Some(&token), Some(json!({"password": "A-brand-new-passphrase-3", "connection": "Username-Password-Authentication"}))).await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
        assert!(app.login_code(&Browser::new(), &[], USER_EMAIL, "A-brand-new-passphrase-3").await.contains_key("code"));

        let blocked = app.api("PATCH", &path, Some(&token), Some(json!({"blocked": true}))).await.json();
        assert_eq!(blocked["blocked"], true);
        let refresh = app.token(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())], Some(("web-app-client-id", WEB_SECRET))).await;
        assert_eq!(refresh.json()["error"], "invalid_grant", "refresh tokens ended");
        let q = format!("/authorize?{}", serde_urlencoded::to_string([("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).unwrap());
        assert!(app.get(&q, &browser).await.location().unwrap().starts_with("/u/login"), "SSO session ended");
        assert_eq!(app.userinfo(tokens["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn a_token_is_worth_what_its_grant_holds_now(app) {
        let token = admin(&app).await;
        let reader = app.management_token(READER_TOOL.0, READER_TOOL.1).await;
        assert_eq!(app.api("GET", "/api/v2/users", Some(&reader), None).await.status, StatusCode::OK);
        let grants = app.api("GET", &format!("/api/v2/client-grants?client_id={}", READER_TOOL.0), Some(&token), None).await.json();
        let grant_id = grants[0]["id"].as_str().unwrap().to_owned();
        // Narrowed: the token issued before loses the scope at once.
        let narrowed = app.api("PATCH", &format!("/api/v2/client-grants/{grant_id}"), Some(&token), Some(json!({"scope": ["read:clients"]}))).await;
        assert_eq!(narrowed.status, StatusCode::OK, "{}", narrowed.text);
        assert_auth0_error(&app.api("GET", "/api/v2/users", Some(&reader), None).await, 403, "insufficient_scope");
        assert_eq!(app.api("GET", "/api/v2/clients", Some(&reader), None).await.status, StatusCode::OK);
        // Widened again: a token never gains what it was not issued with.
        app.api("PATCH", &format!("/api/v2/client-grants/{grant_id}"), Some(&token), Some(json!({"scope": ["read:clients", "read:users", "read:logs"]}))).await;
        assert_auth0_error(&app.api("GET", "/api/v2/logs", Some(&reader), None).await, 403, "insufficient_scope");
        // Deleted: the token stops working.
        let deleted = app.api("DELETE", &format!("/api/v2/client-grants/{grant_id}"), Some(&token), None).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text);
        assert_auth0_error(&app.api("GET", "/api/v2/clients", Some(&reader), None).await, 401, "invalid_token");
    }

    async fn a_changed_email_is_unverified_unless_the_request_says_so(app) {
        let token = admin(&app).await;
        let id = app.api("GET", &format!("/api/v2/users-by-email?email={USER_EMAIL}"), Some(&token), None).await.json()[0]["user_id"].as_str().unwrap().to_owned();
        let path = format!("/api/v2/users/{}", encode(&id));
        assert_eq!(app.api("GET", &path, Some(&token), None).await.json()["email_verified"], true);
        // A new address loses the verification of the old one.
        let moved = app.api("PATCH", &path, Some(&token), Some(json!({"email": "uma.new@example.com"}))).await;
        assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
        assert_eq!(moved.json()["email_verified"], false);
        // The same request may vouch for the new address.
        let vouched = app.api("PATCH", &path, Some(&token), Some(json!({"email": "uma.vouched@example.com", "email_verified": true}))).await.json();
        assert_eq!(vouched["email_verified"], true);
        // Changing something else keeps the state.
        let renamed = app.api("PATCH", &path, Some(&token), Some(json!({"name": "Uma Renamed"}))).await.json();
        assert_eq!(renamed["email_verified"], true);
        // verify_email overrides email_verified and mails a link that proves the new address.
        let asked = app.api("PATCH", &path, Some(&token), Some(json!({"email": "uma.asked@example.com", "email_verified": true, "verify_email": true}))).await.json();
        assert_eq!(asked["email_verified"], false);
        let mail = app.mail.wait_for("uma.asked@example.com", "Verify your email").await;
        let link = path_of(&link_in(&mail));
        assert_eq!(app.get(&link, &Browser::new()).await.status, StatusCode::OK);
        assert_eq!(app.api("GET", &path, Some(&token), None).await.json()["email_verified"], true);
    }

    async fn deleting_a_user_erases_them_and_their_tokens(app) {
        let token = admin(&app).await;
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let id = app.claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();
        let path = format!("/api/v2/users/{}", encode(&id));
        assert_eq!(app.api("DELETE", &path, Some(&token), None).await.status, StatusCode::NO_CONTENT);
        assert_auth0_error(&app.api("GET", &path, Some(&token), None).await, 404, "inexistent_user");
        let refresh = app.token(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())], Some(("web-app-client-id", WEB_SECRET))).await;
        assert_eq!(refresh.json()["error"], "invalid_grant");
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        assert_eq!(app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await.status, StatusCode::BAD_REQUEST);
        assert_eq!(app.api("DELETE", &path, Some(&token), None).await.status, StatusCode::NO_CONTENT, "idempotent");
    }
}
