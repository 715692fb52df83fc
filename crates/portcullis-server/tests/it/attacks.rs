//! The attacks of the OAuth 2.0 Security Best Current Practice (RFC 9700), each with a
//! test that fails if its protection is removed. docs/SECURITY.md maps each attack to its
//! test here.

use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;
use serde_json::{Value, json};

const WEB: (&str, &str) = ("web-app-client-id", WEB_SECRET);
const ADMIN_TOOL: (&str, &str) = ("admin-tool-id", "admin-tool-secret-0123456789abcdef");

fn authorize(pairs: &[(&str, &str)]) -> String {
    format!("/authorize?{}", serde_urlencoded::to_string(pairs).unwrap())
}

fn pkce_pair() -> (String, String) {
    let verifier = portcullis_crypto::b64url(&portcullis_crypto::random_bytes::<32>());
    let challenge = portcullis_crypto::b64url(&portcullis_crypto::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

/// Forged variants of a genuine JWT of ours: `alg: none`, HS256 keyed with the signing
/// key's public JWK, a valid signature under a key we never published, and the genuine
/// signature over a changed payload.
fn forgeries(app: &TestApp, genuine: &str) -> Vec<(&'static str, String)> {
    let header = TestApp::header_of(genuine);
    let kid = header["kid"].as_str().unwrap().to_owned();
    let mut claims = app.claims(genuine);
    claims["sub"] = "auth0|someone-else".into();
    let payload = portcullis_crypto::b64url(claims.to_string().as_bytes());
    let b64 = |v: Value| portcullis_crypto::b64url(v.to_string().as_bytes());
    let none = format!(
        "{}.{payload}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": kid}))
    );
    let public_jwk = app.core.keyring().current().jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .to_string();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(kid.clone());
    let hs256 = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(public_jwk.as_bytes()),
    )
    .unwrap();
    let (stranger, _) =
        portcullis_crypto::jose::SigningKey::generate(portcullis_crypto::jose::SigningAlg::RS256)
            .unwrap();
    let unknown_kid = stranger.sign_jwt(&claims).unwrap();
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!("{}.{payload}.{}", parts[0], parts[2]);
    vec![
        ("alg none", none),
        ("HS256 keyed with the public key", hs256),
        ("unknown kid", unknown_kid),
        ("tampered payload", tampered),
    ]
}

/// The answer of every page a browser is sent to, for the header checks.
async fn pages(app: &TestApp) -> Vec<(&'static str, TestResponse)> {
    let browser = Browser::new();
    let mut out = Vec::new();
    let start = app
        .get(
            &authorize(&[
                ("response_type", "code"),
                ("client_id", "web-app-client-id"),
                ("redirect_uri", WEB_CALLBACK),
            ]),
            &browser,
        )
        .await;
    let login = start.location().unwrap();
    out.push(("login", app.get(&login, &browser).await));
    out.push((
        "signup",
        app.get(&login.replace("/u/login", "/u/signup"), &browser)
            .await,
    ));
    out.push((
        "reset request",
        app.get("/u/reset-password", &browser).await,
    ));
    let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
    let user = app
        .api(
            "GET",
            &format!("/api/v2/users-by-email?email={USER_EMAIL}"),
            Some(&token),
            None,
        )
        .await
        .json()[0]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ticket = app
        .api(
            "POST",
            "/api/v2/tickets/password-change",
            Some(&token),
            Some(json!({"user_id": user})),
        )
        .await
        .json();
    out.push((
        "reset change",
        app.get(&path_of(ticket["ticket"].as_str().unwrap()), &browser)
            .await,
    ));
    out.push((
        "unblock",
        app.get("/u/unblock?ticket=tkt_whatever", &browser).await,
    ));
    out.push((
        "bad link",
        app.get("/u/email-verification?ticket=tkt_whatever", &browser)
            .await,
    ));
    out.push((
        "error",
        app.get(
            &authorize(&[
                ("response_type", "code"),
                ("client_id", "nope"),
                ("redirect_uri", WEB_CALLBACK),
            ]),
            &browser,
        )
        .await,
    ));
    out.push(("expired", app.get("/u/login?state=gone", &browser).await));
    let partner = Browser::new();
    let start = app
        .get(
            &authorize(&[
                ("response_type", "code"),
                ("client_id", "partner-client-id"),
                ("redirect_uri", "https://partner.example/callback"),
            ]),
            &partner,
        )
        .await;
    let login = start.location().unwrap();
    let form = LoginForm::parse(&login, &app.get(&login, &partner).await.text);
    let consent = app
        .submit_login(&partner, &form, USER_EMAIL, USER_PASSWORD)
        .await
        .location()
        .unwrap();
    out.push(("consent", app.get(&consent, &partner).await));
    out.push(("logged out", app.get("/v2/logout", &partner).await));
    out
}

both_backends! {
    async fn a_code_verifier_for_a_code_issued_without_a_challenge_is_refused(app) {
        // PKCE downgrade: the code was issued without a challenge, so a verifier at the token
        // endpoint means someone is replaying a code into another flow.
        let p = app.login_code(&Browser::new(), &[], USER_EMAIL, USER_PASSWORD).await;
        let (verifier, _) = pkce_pair();
        let r = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", WEB_CALLBACK), ("code_verifier", &verifier)], Some(WEB)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert_eq!(r.json()["error"], "invalid_grant", "{}", r.text);
        assert_eq!(r.json()["error_description"], "code_verifier given but no code_challenge was sent");
    }

    async fn a_code_issued_with_a_challenge_needs_its_verifier_even_for_a_confidential_client(app) {
        let (_, challenge) = pkce_pair();
        let p = app.login_code(&Browser::new(), &[("code_challenge", &challenge), ("code_challenge_method", "S256")], USER_EMAIL, USER_PASSWORD).await;
        let r = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", WEB_CALLBACK)], Some(WEB)).await;
        assert_eq!(r.json()["error"], "invalid_grant", "{}", r.text);
        assert_eq!(r.json()["error_description"], "Failed to verify code verifier");
        // The public client too.
        let browser = Browser::new();
        let (_, challenge) = pkce_pair();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "spa-client-id"), ("redirect_uri", SPA_CALLBACK), ("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
        let code = callback_params(&app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await.location().unwrap())["code"].clone();
        let r = app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", SPA_CALLBACK), ("client_id", "spa-client-id")], None).await;
        assert_eq!(r.json()["error"], "invalid_grant", "{}", r.text);
    }

    async fn a_session_cookie_planted_before_login_is_not_the_session_after_it(app) {
        // The attacker logs in, then plants their own session cookie in the victim's browser.
        let attacker = Browser::new();
        app.login_code(&attacker, &[], ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let planted = attacker.cookie("pc_session").unwrap();
        let victim = Browser::new();
        victim.set_cookie("pc_session", &planted);
        // The victim is asked to log in again (prompt=login) and does.
        let p = app.login_code(&victim, &[("prompt", "login")], USER_EMAIL, USER_PASSWORD).await;
        let session = victim.cookie("pc_session").unwrap();
        assert_ne!(session, planted, "a new session id is issued at login");
        // The planted session was replaced and revoked: it logs no one in any more.
        let replay = Browser::new();
        replay.set_cookie("pc_session", &planted);
        let again = app.get(&authorize(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]), &replay).await;
        assert!(again.location().unwrap().starts_with("/u/login"), "{:?}", again.location());
        // And the code the victim got is theirs.
        let tokens = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", WEB_CALLBACK)], Some(WEB)).await.json();
        assert_eq!(app.claims(tokens["id_token"].as_str().unwrap())["email"], USER_EMAIL);
        // A made-up cookie is replaced too.
        let made_up = Browser::new();
        made_up.set_cookie("pc_session", "ses_attacker_chosen_value");
        app.login_code(&made_up, &[], USER_EMAIL, USER_PASSWORD).await;
        assert_ne!(made_up.cookie("pc_session").unwrap(), "ses_attacker_chosen_value");
    }

    async fn an_unknown_email_and_a_wrong_password_get_byte_identical_answers(app) {
        let answer = |email: &'static str, ip: &'static str| {
            let app = &app;
            async move {
                // Each from its own IP, so the rate-limit counters read the same.
                let browser = Browser::at(ip);
                let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
                let r = app.submit_login(&browser, &form, email, "not the password").await;
                // Apart from the ids of the transaction, its CSRF token, the request and the
                // email echoed into the form, the two answers are the same bytes.
                let body = r.text.replace(&form.state, "STATE").replace(&form.csrf, "CSRF").replace(email, "EMAIL");
                let request_id = r.header("x-request-id").unwrap();
                let body = body.replace(&request_id, "REQUEST");
                let mut headers: Vec<(String, String)> = r.headers.iter()
                    .filter(|(k, _)| k.as_str() != "x-request-id" && k.as_str() != "content-length")
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap().to_owned()))
                    .collect();
                headers.sort();
                (r.status, headers, body)
            }
        };
        let known = answer(USER_EMAIL, "198.51.100.31").await;
        let unknown = answer("nobody.here@example.com", "198.51.100.32").await;
        assert_eq!(known.0, StatusCode::BAD_REQUEST);
        assert_eq!(known, unknown);
        // The reset request answers alike too.
        let reset = |email: &'static str| {
            let app = &app;
            async move {
                let r = app.send(axum::http::Request::post("/dbconnections/change_password")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(json!({"client_id": "web-app-client-id", "email": email, "connection": "Username-Password-Authentication"}).to_string()))
                    .unwrap()).await;
                (r.status, r.text)
            }
        };
        assert_eq!(reset(USER_EMAIL).await, reset("nobody.here@example.com").await);
    }

    async fn forged_tokens_are_refused_everywhere_a_token_is_read(app) {
        let browser = Browser::new();
        let tokens = app.web_tokens(&browser, &[]).await;
        let access = tokens["access_token"].as_str().unwrap();
        let id_token = tokens["id_token"].as_str().unwrap();
        let management = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        // The genuine tokens work, so the refusals below are the forgeries'.
        assert_eq!(app.userinfo(access).await.status, StatusCode::OK);
        assert_eq!(app.api("GET", "/api/v2/users", Some(&management), None).await.status, StatusCode::OK);
        for (how, forged) in forgeries(&app, access) {
            let r = app.userinfo(&forged).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "/userinfo took a token with {how}");
            assert!(r.header("www-authenticate").unwrap().contains("invalid_token"), "{how}");
            let r = app.post_oauth("/oauth/introspect", &[("token", &forged)], Some(WEB)).await;
            assert_eq!(r.json(), json!({"active": false}), "/oauth/introspect took a token with {how}");
        }
        for (how, forged) in forgeries(&app, &management) {
            let r = app.api("GET", "/api/v2/users", Some(&forged), None).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the Management API took a token with {how}");
            assert_eq!(r.json()["errorCode"], "invalid_token", "{how}");
        }
        for (how, forged) in forgeries(&app, id_token) {
            let q = serde_urlencoded::to_string([("id_token_hint", forged.as_str()), ("post_logout_redirect_uri", "https://app.example.com/")]).unwrap();
            let r = app.get(&format!("/oidc/logout?{q}"), &browser).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "/oidc/logout took a hint with {how}");
            assert!(r.location().is_none(), "{how}");
        }
        // The genuine hint is honoured: the refusals above are the forgeries'.
        let q = serde_urlencoded::to_string([("id_token_hint", id_token), ("post_logout_redirect_uri", "https://app.example.com/")]).unwrap();
        let r = app.get(&format!("/oidc/logout?{q}"), &browser).await;
        assert_eq!(r.location().as_deref(), Some("https://app.example.com/"));
    }

    async fn every_page_refuses_framing_sniffing_and_caching(app) {
        for (name, page) in pages(&app).await {
            let csp = page.header("content-security-policy").unwrap_or_default();
            assert!(csp.contains("frame-ancestors 'none'"), "{name}: {csp}");
            assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"), "{name}");
            assert_eq!(page.header("x-content-type-options").as_deref(), Some("nosniff"), "{name}");
            assert!(page.header("cache-control").unwrap_or_default().contains("no-store"), "{name}: {:?}", page.header("cache-control"));
            assert!(page.header("content-type").unwrap().starts_with("text/html"), "{name}");
        }
    }

    async fn signup_and_unblock_forms_refuse_a_missing_or_foreign_csrf_token(app) {
        // Signup, from the login page of a transaction.
        let browser = Browser::new();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        let signup = form.action.replace("/u/login", "/u/signup");
        let foreign = Browser::new();
        let other = app.start_login(&foreign, &[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]).await;
        let fields = |csrf: Option<&str>| {
            let mut f = vec![("state", form.state.clone()), ("email", "csrf.victim@example.com".to_owned()), ("password", "Velvet-otter-52-kayak".to_owned())];
            if let Some(c) = csrf {
                f.push(("csrf", c.to_owned()));
            }
            f
        };
        for (case, csrf) in [("missing", None), ("foreign", Some(other.csrf.as_str()))] {
            let f = fields(csrf);
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = app.post_form(&signup, &pairs, &browser).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{case}: {}", r.text);
            assert!(r.location().is_none(), "{case}");
        }
        let token = app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await;
        assert_eq!(app.api("GET", "/api/v2/users-by-email?email=csrf.victim@example.com", Some(&token), None).await.json(), json!([]), "no account was made");
        // Unblock: the confirm form's token is bound to the browser that opened the page.
        let page = app.get("/u/unblock?ticket=tkt_some_ticket", &browser).await;
        let csrf = page.text.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        let other_page = app.get("/u/unblock?ticket=tkt_some_ticket", &foreign).await;
        let other_csrf = other_page.text.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
        for (case, fields) in [("missing", vec![("ticket", "tkt_some_ticket")]), ("foreign", vec![("ticket", "tkt_some_ticket"), ("csrf", other_csrf.as_str())])] {
            let r = app.post_form("/u/unblock", &fields, &browser).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{case}");
            assert!(r.text.contains("expired"), "{case}: refused for its token, not its ticket: {}", r.text);
        }
        let with_token = app.post_form("/u/unblock", &[("ticket", "tkt_some_ticket"), ("csrf", &csrf)], &browser).await;
        assert!(!with_token.text.contains("This login page has expired"), "the right token passes the CSRF check");
    }

    async fn every_authorization_response_carries_iss(app) {
        let check = |location: String, what: &str| {
            let p = callback_params(&location);
            assert_eq!(p.get("iss").map(String::as_str), Some(ISSUER), "{what}: {location}");
        };
        // Success.
        let browser = Browser::new();
        let p = app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(p["iss"], ISSUER);
        // Success from the SSO session.
        check(app.get(&authorize(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]), &browser).await.location().unwrap(), "sso");
        // prompt=none without a session; with a session but no consent.
        check(app.get(&authorize(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("prompt", "none")]), &Browser::new()).await.location().unwrap(), "login_required");
        check(app.get(&authorize(&[("response_type", "code"), ("client_id", "partner-client-id"), ("redirect_uri", "https://partner.example/callback"), ("prompt", "none")]), &browser).await.location().unwrap(), "consent_required");
        // A refused request.
        check(app.get(&authorize(&[("response_type", "token"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK)]), &browser).await.location().unwrap(), "unsupported_response_type");
        // Consent declined.
        let consent = app.get(&authorize(&[("response_type", "code"), ("client_id", "partner-client-id"), ("redirect_uri", "https://partner.example/callback")]), &browser).await.location().unwrap();
        let page = app.get(&consent, &browser).await;
        let field = |name: &str| page.text.split(&format!("name=\"{name}\" value=\"")).nth(1).unwrap().split('"').next().unwrap().to_owned();
        let declined = app.post_form(&consent, &[("state", &field("state")), ("csrf", &field("csrf")), ("action", "deny")], &browser).await;
        let location = declined.location().unwrap();
        assert_eq!(callback_params(&location)["error"], "access_denied");
        check(location, "consent declined");
        // form_post carries it too.
        let posted = app.get(&authorize(&[("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK), ("response_mode", "form_post"), ("prompt", "none")]), &Browser::new()).await;
        assert!(posted.text.contains("name=\"error\" value=\"login_required\""), "{}", posted.text);
        let iss = ISSUER.replace('/', "&#x2f;");
        assert!(posted.text.contains(&format!("name=\"iss\" value=\"{iss}\"")), "{}", posted.text);
    }
}
