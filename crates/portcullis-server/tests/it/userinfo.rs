use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;

both_backends! {
    async fn userinfo_returns_the_profile_for_the_tokens_scopes(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let resp = app.userinfo(tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
        let info = resp.json();
        assert_eq!(info["email"], USER_EMAIL);
        assert_eq!(info["name"], "Uma User");
        assert_eq!(info["nickname"], "user");
        assert!(info["picture"].is_string());
        assert_eq!(info["https://yourapp.com/roles"], serde_json::json!(["member"]));
        let only_openid = app.web_tokens(&Browser::new(), &[("scope", "openid")]).await;
        let info = app.userinfo(only_openid["access_token"].as_str().unwrap()).await.json();
        assert!(info.get("email").is_none() && info.get("name").is_none());
        assert!(info["sub"].as_str().unwrap().starts_with("auth0|"));
    }

    async fn userinfo_refuses_machine_id_tampered_and_expired_tokens(app) {
        let machine = app.token(&[("grant_type", "client_credentials"), ("audience", "https://api.finance.example")], Some(("m2m-client-id", M2M_SECRET))).await.json();
        let resp = app.userinfo(machine["access_token"].as_str().unwrap()).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
        assert!(resp.header("www-authenticate").unwrap().contains("invalid_token"));
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        assert_eq!(app.userinfo(tokens["id_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED, "an ID token is not an access token");
        let at = tokens["access_token"].as_str().unwrap();
        let mut parts: Vec<String> = at.split('.').map(str::to_owned).collect();
        let mut claims = app.claims(at);
        claims["sub"] = "auth0|someone-else".into();
        parts[1] = portcullis_crypto::b64url(claims.to_string().as_bytes());
        assert_eq!(app.userinfo(&parts.join(".")).await.status, StatusCode::UNAUTHORIZED);
        let no_header = app.send(axum::http::Request::get("/userinfo").body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(no_header.status, StatusCode::UNAUTHORIZED);
        app.clock.advance(86_401);
        assert_eq!(app.userinfo(at).await.status, StatusCode::UNAUTHORIZED);
    }
}
