use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;

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

    async fn metrics_count_logins_and_tokens(app) {
        app.web_tokens(&Browser::new(), &[]).await;
        let resp = app.get("/metrics", &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::OK);
        assert!(resp.text.contains("portcullis_logins_total"), "{}", resp.text);
        assert!(resp.text.contains("portcullis_tokens_issued_total"));
        assert!(resp.text.contains("portcullis_http_requests_total"));
    }
}
