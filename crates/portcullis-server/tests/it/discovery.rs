use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;

#[tokio::test]
async fn templates_can_be_overridden_from_a_directory() {
    let dir = tempfile_dir::TempDir::new();
    std::fs::write(
        dir.0.join("error.html"),
        "{% extends \"base.html\" %}{% block content %}<p>Custom: {{ title }}</p>{% endblock %}",
    )
    .unwrap();
    let app = TestApp::new(Backend::Sqlite).await.unwrap();
    let router =
        portcullis_server::app(std::sync::Arc::clone(&app.core), Some(dir.0.clone())).unwrap();
    let resp = tower::ServiceExt::oneshot(
        router,
        axum::http::Request::get("/authorize?client_id=nope&redirect_uri=x")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("<p>Custom: Unknown application</p>"),
        "{text}"
    );
    assert!(
        text.contains("/u/assets/style.css"),
        "the built-in base still applies"
    );
    std::fs::write(dir.0.join("login.html"), "{% broken").unwrap();
    assert!(
        portcullis_server::app(std::sync::Arc::clone(&app.core), Some(dir.0.clone())).is_err(),
        "a broken override fails at start"
    );
}

both_backends! {
    async fn discovery_document_lists_auth0_paths_under_the_issuer(app) {
        let resp = app.get("/.well-known/openid-configuration", &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::OK);
        let doc = resp.json();
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["authorization_endpoint"], format!("{ISSUER}authorize"));
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}oauth/token"));
        assert_eq!(doc["userinfo_endpoint"], format!("{ISSUER}userinfo"));
        assert_eq!(doc["jwks_uri"], format!("{ISSUER}.well-known/jwks.json"));
        assert_eq!(doc["end_session_endpoint"], format!("{ISSUER}oidc/logout"));
        assert_eq!(doc["code_challenge_methods_supported"], serde_json::json!(["S256"]));
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    }

    async fn jwks_publishes_one_key_per_algorithm_without_private_parts(app) {
        let resp = app.get("/.well-known/jwks.json", &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::OK);
        let keys = resp.json()["keys"].as_array().unwrap().clone();
        let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
        assert_eq!(algs.len(), 3, "{algs:?}");
        for alg in ["RS256", "ES256", "EdDSA"] {
            assert!(algs.contains(&alg), "{alg} published");
        }
        for k in &keys {
            assert!(k.get("d").is_none() && k.get("p").is_none(), "no private parts: {k}");
            assert_eq!(k["use"], "sig");
        }
    }

    async fn health_answers_ok_and_security_headers_are_set(app) {
        let resp = app.get("/health", &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::OK);
        assert_eq!(resp.header("x-content-type-options").as_deref(), Some("nosniff"));
        assert!(resp.header("content-security-policy").unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(resp.header("referrer-policy").as_deref(), Some("no-referrer"));
        assert!(resp.header("x-request-id").is_some());
        // HSTS only over HTTPS.
        assert!(resp.header("strict-transport-security").is_none());
    }

    async fn browser_apps_get_cors_only_from_their_web_origins(app) {
        let preflight = |origin: &'static str| {
            axum::http::Request::builder()
                .method("OPTIONS")
                .uri("/oauth/token")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let ok = app.send(preflight("http://localhost:3000")).await;
        assert_eq!(ok.status, StatusCode::NO_CONTENT);
        assert_eq!(ok.header("access-control-allow-origin").as_deref(), Some("http://localhost:3000"));
        assert!(ok.header("access-control-allow-credentials").is_none());
        let other = app.send(preflight("https://evil.example")).await;
        assert!(other.header("access-control-allow-origin").is_none());
        let jwks = app.send(axum::http::Request::get("/.well-known/jwks.json").header("origin", "https://any.example").body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(jwks.header("access-control-allow-origin").as_deref(), Some("*"));
    }

    async fn metrics_count_logins_and_tokens(app) {
        app.web_tokens(&Browser::new(), &[]).await;
        let resp = app.get("/metrics", &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::OK);
        assert!(resp.text.contains("portcullis_logins_total"), "{}", resp.text);
        assert!(resp.text.contains("portcullis_tokens_issued_total"));
        assert!(resp.text.contains("portcullis_http_requests_total"));
    }
}
