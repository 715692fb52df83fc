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
        assert!(again.text.contains("This login page has expired"), "refused as spent: {}", again.text);
        assert!(again.location().is_none() && again.header("set-cookie").is_none_or(|c| !c.starts_with("pc_session=")));
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

/// What the database holds: login transaction rows, rate-limit rows, audit rows, and (on
/// SQLite) its size in bytes.
async fn footprint(app: &TestApp) -> (i64, i64, i64, Option<i64>) {
    use sqlx::{Connection, Row};
    app.core.flush_audit().await;
    let count = "SELECT (SELECT COUNT(*) FROM login_transactions), (SELECT COUNT(*) FROM throttles), (SELECT COUNT(*) FROM log_events)";
    if app.database_url.starts_with("sqlite:") {
        let mut conn = sqlx::sqlite::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        let row = sqlx::query(count).fetch_one(&mut conn).await.unwrap();
        let bytes: i64 = sqlx::query("SELECT (SELECT page_count FROM pragma_page_count()) * (SELECT page_size FROM pragma_page_size())")
            .fetch_one(&mut conn).await.unwrap().get(0);
        (row.get(0), row.get(1), row.get(2), Some(bytes))
    } else {
        let mut conn = sqlx::postgres::PgConnection::connect(&app.database_url)
            .await
            .unwrap();
        let row = sqlx::query(count).fetch_one(&mut conn).await.unwrap();
        (row.get(0), row.get(1), row.get(2), None)
    }
}

both_backends! {
    async fn ten_thousand_authorize_requests_from_one_ip_leave_the_database_bounded(app) {
        // The largest request a transaction may hold: a 2 KB state, a 512-byte nonce.
        let state = "s".repeat(portcullis_core::oauth::authorize::MAX_STATE_LEN);
        let nonce = "n".repeat(portcullis_core::oauth::authorize::MAX_NONCE_LEN);
        let flood = query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("scope", "openid profile email offline_access"), ("state", &state), ("nonce", &nonce)]);
        let before = footprint(&app).await;
        let attacker = Browser::at("198.51.100.99");
        let typical = app.get(&query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("scope", "openid profile email"), ("state", "af0ifjsldkj"), ("nonce", "n-0S6_WzA2Mj")]), &attacker).await;
        let typical_len = typical.location().unwrap().len();
        let (mut redirected, mut refused, mut largest) = (0, 0, 0);
        for _ in 0..10_000 {
            let r = app.get(&flood, &attacker).await;
            match r.status {
                StatusCode::SEE_OTHER => {
                    redirected += 1;
                    largest = largest.max(r.location().unwrap().len());
                }
                StatusCode::TOO_MANY_REQUESTS => refused += 1,
                other => panic!("unexpected {other}: {}", r.text),
            }
        }
        let after = footprint(&app).await;
        eprintln!(
            "flood: {redirected} redirected, {refused} refused; login page URL {typical_len} bytes typical, {largest} largest; rows before {before:?}, after {after:?}"
        );
        assert!(refused > 9_000, "the IP's limit holds: {redirected} redirected");
        assert_eq!(after.0, before.0, "no login transaction is stored for a login page not answered");
        assert!(after.1 - before.1 <= 3, "a bucket or two, not a row per request: {before:?} {after:?}");
        assert!(after.2 - before.2 <= 2, "one api_limit event a minute: {before:?} {after:?}");
        if let (Some(b), Some(a)) = (before.3, after.3) {
            assert!(a - b <= 64 * 1024, "the SQLite file grew by {} bytes", a - b);
        }
        // An IPv6 client changing its address within its /64 at every request is one client.
        let before_v6 = footprint(&app).await;
        let mut refused_v6 = 0;
        for i in 0..1_000u32 {
            let hopping = Browser::at(&format!("2001:db8:77:1::{:x}", i + 1));
            if app.get(&flood, &hopping).await.status == StatusCode::TOO_MANY_REQUESTS {
                refused_v6 += 1;
            }
        }
        let after_v6 = footprint(&app).await;
        assert_eq!(refused_v6, 400, "the /64's own limit of 600 holds");
        assert!(after_v6.1 - before_v6.1 <= 3 && after_v6.2 - before_v6.2 <= 2, "{before_v6:?} {after_v6:?}");
        // Someone else logs in meanwhile.
        let elsewhere = Browser::at("203.0.113.120");
        let p = app.login_code(&elsewhere, &[], USER_EMAIL, USER_PASSWORD).await;
        assert!(p.contains_key("code"));
        // A login spends its transaction: one row, so a replay finds it.
        assert_eq!(footprint(&app).await.0, before.0 + 1);
    }

    async fn a_transaction_holds_only_what_is_capped(app) {
        let base = [("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("state", "cap")];
        let long_state = "s".repeat(portcullis_core::oauth::authorize::MAX_STATE_LEN + 1);
        let long_nonce = "n".repeat(portcullis_core::oauth::authorize::MAX_NONCE_LEN + 1);
        let long_scope = vec!["read:x"; 400].join(" ");
        // Within the caps, but characters that escaping grows: the sealed page would not fit
        // in a URL.
        let escaped_state = "\u{1}".repeat(2000);
        for (name, value, error) in [("state", long_state.as_str(), "invalid_request"), ("nonce", long_nonce.as_str(), "invalid_request"), ("scope", long_scope.as_str(), "invalid_scope"), ("state", escaped_state.as_str(), "invalid_request")] {
            let mut q = base.to_vec();
            q.retain(|(k, _)| *k != name);
            q.push((name, value));
            let resp = app.get(&query(&q), &Browser::new()).await;
            assert_eq!(resp.status, StatusCode::SEE_OTHER, "{name}");
            let location = resp.location().unwrap();
            assert!(location.starts_with(WEB_CALLBACK), "{name}: {location}");
            assert_eq!(callback_params(&location)["error"], error, "{name}");
        }
    }

    async fn a_sealed_transaction_cannot_be_read_forged_or_moved(app) {
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("state", "secret-app-state")]).await;
        let (id, sealed) = form.state.split_once('.').unwrap();
        assert!(!form.state.contains("secret-app-state") && !form.state.contains("app.example.com"), "the request is not readable in the URL");
        // Tampered: a flipped character in the sealed part.
        let mut bytes = sealed.as_bytes().to_vec();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let tampered = format!("{id}.{}", String::from_utf8(bytes).unwrap());
        // Moved: the sealed part under another id (with that id's CSRF cookie planted).
        let moved = format!("{}.{sealed}", "Z".repeat(32));
        browser.set_cookie(&format!("pc_csrf_{}", "Z".repeat(32)), &form.csrf);
        for reference in [tampered, moved] {
            let forged = LoginForm { state: reference.clone(), ..form.clone() };
            let resp = app.submit_login(&browser, &forged, USER_EMAIL, USER_PASSWORD).await;
            assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{reference}");
            assert!(resp.text.contains("expired"), "{}", resp.text);
        }
        // The genuine one still works, once.
        assert_eq!(app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await.status, StatusCode::SEE_OTHER);
        let again = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert!(again.text.contains("expired"));
        // Another deployment sharing the master key (another issuer) cannot hand one over.
        let store = portcullis_store::SqlStore::connect(&app.database_url).await.unwrap();
        let other = portcullis_core::service::Portcullis::start(
            std::sync::Arc::new(store),
            std::sync::Arc::new(app.clock.clone()),
            std::sync::Arc::clone(&app.master),
            portcullis_core::passwords::PasswordPool::new(1),
            portcullis_core::service::Settings::new("http://other.test/"),
        ).await.unwrap();
        let other = portcullis_server::app_with(std::sync::Arc::new(other), portcullis_server::HttpOptions::default()).unwrap();
        let stranger = Browser::new();
        let q = query(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]);
        let mut request = axum::http::Request::get(q).body(axum::body::Body::empty()).unwrap();
        request.extensions_mut().insert(axum::extract::ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40_000))));
        let theirs = tower::ServiceExt::oneshot(other, request).await.unwrap();
        let location = theirs.headers()["location"].to_str().unwrap().to_owned();
        let cookie = theirs.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let (name, value) = cookie.split_once('=').unwrap();
        stranger.set_cookie(name, value);
        let reference = location.split("state=").nth(1).unwrap().to_owned();
        let carried = LoginForm { action: "/u/login".into(), state: reference, csrf: value.to_owned() };
        let resp = app.submit_login(&stranger, &carried, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST, "{}", resp.text);
        assert!(resp.text.contains("expired"));
        // A page opened just before midnight still works just after (the day's key changes).
        let day = 86_400;
        let now = app.core.now();
        app.clock.advance(day - now.rem_euclid(day) - 60);
        let night = Browser::new();
        let form = app.start_login(&night, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        app.clock.advance(120);
        assert_eq!(app.submit_login(&night, &form, USER_EMAIL, USER_PASSWORD).await.status, StatusCode::SEE_OTHER);
        // And it expires: a page left open past the login lifetime.
        let late = Browser::new();
        let form = app.start_login(&late, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        app.clock.advance(app.core.settings().login_lifetime + 1);
        let resp = app.submit_login(&late, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert!(resp.text.contains("expired"));
    }
}
