use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;

fn authorize_again() -> String {
    format!(
        "/authorize?{}",
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", "web-app-client-id"),
            ("redirect_uri", WEB_CALLBACK)
        ])
        .unwrap()
    )
}

both_backends! {
    async fn v2_logout_ends_the_session_and_returns_only_to_allowed_urls(app) {
        let browser = Browser::new();
        app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        let session = browser.cookie("pc_session").unwrap();
        let resp = app.get("/v2/logout?returnTo=https%3A%2F%2Fapp.example.com%2F&client_id=web-app-client-id", &browser).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER);
        assert_eq!(resp.location().as_deref(), Some("https://app.example.com/"));
        assert!(browser.cookie("pc_session").is_none(), "cookie cleared");
        // Even a browser that kept the old cookie has no session any more.
        browser.set_cookie("pc_session", &session);
        assert!(app.get(&authorize_again(), &browser).await.location().unwrap().starts_with("/u/login"));

        let evil = app.get("/v2/logout?returnTo=https%3A%2F%2Fevil.example%2F&client_id=web-app-client-id", &browser).await;
        assert_eq!(evil.status, StatusCode::OK);
        assert!(evil.location().is_none());
        assert!(evil.text.contains("not sent back"));
        let no_client = app.get("/v2/logout?returnTo=https%3A%2F%2Fapp.example.com%2F", &browser).await;
        assert!(no_client.location().is_none());
    }

    async fn oidc_logout_uses_the_id_token_hint_and_returns_state(app) {
        let browser = Browser::new();
        let tokens = app.web_tokens(&browser, &[]).await;
        let q = serde_urlencoded::to_string([
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
            ("post_logout_redirect_uri", "https://app.example.com/"),
            ("state", "bye"),
        ]).unwrap();
        let resp = app.get(&format!("/oidc/logout?{q}"), &browser).await;
        assert_eq!(resp.location().as_deref(), Some("https://app.example.com/?state=bye"));
        assert!(app.get(&authorize_again(), &browser).await.location().unwrap().starts_with("/u/login"));
        let bad = app.get("/oidc/logout?id_token_hint=not.a.token", &browser).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        let unregistered = serde_urlencoded::to_string([("client_id", "web-app-client-id"), ("post_logout_redirect_uri", "https://evil.example/")]).unwrap();
        let resp = app.get(&format!("/oidc/logout?{unregistered}"), &browser).await;
        assert!(resp.location().is_none());
    }
}
