use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;

fn query(pairs: &[(&str, &str)]) -> String {
    format!("/authorize?{}", serde_urlencoded::to_string(pairs).unwrap())
}

both_backends! {
    async fn unknown_client_gets_an_error_page_not_a_redirect(app) {
        let resp = app.get(&query(&[("response_type", "code"), ("client_id", "nope"), ("redirect_uri", WEB_CALLBACK)]), &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert!(resp.location().is_none());
        assert!(resp.header("content-type").unwrap().starts_with("text/html"));
        assert!(resp.text.contains("Unknown application"));
    }

    async fn unregistered_redirect_uri_gets_an_error_page(app) {
        for uri in ["https://evil.example/callback", "https://app.example.com/callback/", "https://app.example.com/callback?x=1"] {
            let resp = app.get(&query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", uri)]), &Browser::new()).await;
            assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{uri}");
            assert!(resp.location().is_none(), "{uri}");
            assert!(resp.text.contains("Callback URL mismatch"));
        }
    }

    async fn public_client_without_pkce_is_sent_back_with_invalid_request(app) {
        let resp = app.get(&query(&[("response_type", "code"), ("client_id", "spa-client-id"), ("redirect_uri", SPA_CALLBACK), ("state", "s1")]), &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER);
        let p = callback_params(&resp.location().unwrap());
        assert_eq!(p["error"], "invalid_request");
        assert_eq!(p["state"], "s1");
        assert_eq!(p["iss"], ISSUER);
    }

    async fn plain_pkce_is_refused(app) {
        let resp = app.get(&query(&[("response_type", "code"), ("client_id", "spa-client-id"), ("redirect_uri", SPA_CALLBACK), ("code_challenge", "abc"), ("code_challenge_method", "plain")]), &Browser::new()).await;
        let p = callback_params(&resp.location().unwrap());
        assert_eq!(p["error"], "invalid_request");
    }

    async fn unsupported_response_type_and_unknown_audience_are_reported_to_the_client(app) {
        let resp = app.get(&query(&[("response_type", "token"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]), &Browser::new()).await;
        assert_eq!(callback_params(&resp.location().unwrap())["error"], "unsupported_response_type");
        let resp = app.get(&query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("audience", "https://unknown.example")]), &Browser::new()).await;
        let p = callback_params(&resp.location().unwrap());
        assert_eq!(p["error"], "access_denied");
        assert_eq!(p["error_description"], "Service not found: https://unknown.example");
    }

    async fn unknown_connection_is_refused(app) {
        let resp = app.get(&query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("connection", "google-oauth2")]), &Browser::new()).await;
        assert_eq!(callback_params(&resp.location().unwrap())["error"], "invalid_request");
    }

    async fn prompt_none_without_a_session_returns_login_required(app) {
        let resp = app.get(&query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("prompt", "none"), ("state", "x")]), &Browser::new()).await;
        let p = callback_params(&resp.location().unwrap());
        assert_eq!(p["error"], "login_required");
        assert_eq!(p["state"], "x");
    }

    async fn login_redirects_with_code_state_and_iss_and_sets_a_session_cookie(app) {
        let browser = Browser::new();
        let p = app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        assert!(p["code"].starts_with("ac_"));
        assert_eq!(p["state"], "st-123");
        assert_eq!(p["iss"], ISSUER);
        assert!(browser.cookie("pc_session").is_some());
    }

    async fn login_page_is_a_plain_form_with_csrf_and_strict_headers(app) {
        let browser = Browser::new();
        let q = query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("login_hint", "hint@example.com")]);
        let resp = app.get(&q, &browser).await;
        let cookie = resp.header("set-cookie").unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
        let page = app.get(&resp.location().unwrap(), &browser).await;
        assert!(page.text.contains("type=\"email\""));
        assert!(page.text.contains("value=\"hint@example.com\""));
        assert!(page.text.contains("name=\"csrf\""));
        assert!(page.text.contains("Web App"));
        let csp = page.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"), "{csp}");
        assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    }

    async fn wrong_password_and_unknown_email_get_the_same_answer(app) {
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        let wrong = app.submit_login(&browser, &form, USER_EMAIL, "not the password").await;
        let unknown = app.submit_login(&browser, &form, "nobody@example.com", "not the password").await;
        for resp in [&wrong, &unknown] {
            assert_eq!(resp.status, StatusCode::BAD_REQUEST);
            assert!(resp.text.contains("Wrong email or password."));
            assert!(resp.location().is_none());
        }
        // The same transaction still accepts the right password.
        let ok = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER);
    }

    async fn login_post_without_the_csrf_cookie_or_with_a_wrong_token_is_refused(app) {
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        let forged = LoginForm { csrf: "csrf_forged".into(), ..form.clone() };
        let resp = app.submit_login(&browser, &forged, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert!(resp.location().is_none());
        let attacker = Browser::new();
        let resp = app.submit_login(&attacker, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert!(resp.text.contains("expired"));
    }

    async fn a_login_transaction_cannot_be_replayed(app) {
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        assert_eq!(app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await.status, StatusCode::SEE_OTHER);
        let again = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
    }

    async fn the_sso_session_skips_the_form_for_a_second_app(app) {
        let browser = Browser::new();
        app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        let resp = app.get(&query(&[("response_type", "code"), ("client_id", "second-app-client-id"), ("redirect_uri", "https://second.example.com/callback"), ("state", "two")]), &browser).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER);
        let p = callback_params(&resp.location().unwrap());
        assert!(p.contains_key("code"), "{p:?}");
        assert_eq!(p["state"], "two");
    }

    async fn prompt_login_and_an_exceeded_max_age_force_the_form(app) {
        let browser = Browser::new();
        app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        let base = [("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)];
        let mut q = base.to_vec();
        q.push(("prompt", "login"));
        assert!(app.get(&query(&q), &browser).await.location().unwrap().starts_with("/u/login"));
        app.clock.advance(120);
        let mut q = base.to_vec();
        q.push(("max_age", "60"));
        assert!(app.get(&query(&q), &browser).await.location().unwrap().starts_with("/u/login"));
        let mut q = base.to_vec();
        q.push(("max_age", "600"));
        assert!(app.get(&query(&q), &browser).await.location().unwrap().starts_with(WEB_CALLBACK));
    }

    async fn form_post_response_mode_renders_an_auto_submitting_form(app) {
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("response_mode", "form_post"), ("state", "fp")]).await;
        let resp = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::OK);
        let action = WEB_CALLBACK.replace('/', "&#x2f;");
        assert!(resp.text.contains(&format!("action=\"{action}\"")), "{}", resp.text);
        assert!(resp.text.contains("name=\"code\""));
        assert!(resp.text.contains("name=\"state\" value=\"fp\""));
        let csp = resp.header("content-security-policy").unwrap();
        assert!(csp.contains("script-src 'nonce-"), "{csp}");
    }

    async fn web_message_posts_the_response_to_an_allowed_web_origin(app) {
        let (_, challenge) = (0, portcullis_crypto::b64url(&portcullis_crypto::sha256(b"verifier-verifier-verifier-verifier-verifier")));
        let base = [("response_type", "code"), ("client_id", "spa-client-id"), ("redirect_uri", SPA_CALLBACK), ("code_challenge", challenge.as_str()), ("code_challenge_method", "S256"), ("response_mode", "web_message"), ("prompt", "none"), ("state", "wm")];
        let resp = app.get(&query(&base), &Browser::new()).await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
        assert!(resp.text.contains("authorization_response"));
        assert!(resp.text.contains("login_required"));
        assert!(resp.text.contains("\"http://localhost:3000\""), "{}", resp.text);
        let csp = resp.header("content-security-policy").unwrap();
        assert!(csp.contains("frame-ancestors http://localhost:3000"), "{csp}");
        assert!(csp.contains("script-src 'nonce-"));
        assert!(resp.header("x-frame-options").is_none(), "framable by the app");

        let browser = Browser::new();
        app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        let resp = app.get(&query(&base), &browser).await;
        assert!(resp.text.contains("\"code\": \"ac_"), "{}", resp.text);

        let mut bad = base.to_vec();
        bad.retain(|(k, _)| *k != "client_id" && *k != "redirect_uri");
        bad.push(("client_id", "web-app-client-id"));
        bad.push(("redirect_uri", WEB_CALLBACK));
        let refused = app.get(&query(&bad), &Browser::new()).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "no web origin registered");
        assert!(refused.text.contains("Allowed Web Origins"));
        assert_eq!(refused.header("x-frame-options").as_deref(), Some("DENY"));
    }

    async fn a_blocked_user_cannot_log_in(app) {
        app.apply(&TENANT_YAML.replace("    name: Uma User\n", "    name: Uma User\n    blocked: true\n")).await.unwrap();
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        let resp = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert!(resp.text.contains("blocked"));
    }
}
