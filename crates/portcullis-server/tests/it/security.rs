//! Account security: brute-force protection, suspicious-IP throttling, rate limits,
//! signup, email verification, password reset, breached passwords, the Management API's
//! tickets, user blocks and attack-protection settings, and log streams. Emails travel over
//! a real SMTP server (aiosmtpd, started by the test command) and their links are followed.

use crate::both_backends;
use crate::harness::*;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use portcullis_core::store::prelude::*;
use serde_json::{Value, json};

const ADMIN_TOOL: (&str, &str) = ("admin-tool-id", "admin-tool-secret-0123456789abcdef");
const NEW_PASSWORD: &str = "Velvet-otter-52-kayak";
/// The page of a spent, unknown or expired emailed link.
const BAD_LINK: &str = "This link is no longer valid";

async fn admin(app: &TestApp) -> String {
    app.management_token(ADMIN_TOOL.0, ADMIN_TOOL.1).await
}

async fn post_json(app: &TestApp, path: &str, body: Value, ip: &str) -> TestResponse {
    app.send_from(
        Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        ip,
    )
    .await
}

async fn login_attempt(
    app: &TestApp,
    browser: &Browser,
    email: &str,
    password: &str,
) -> TestResponse {
    let form = app
        .start_login(
            browser,
            &[
                ("response_type", "code"),
                ("client_id", "web-app-client-id"),
                ("redirect_uri", WEB_CALLBACK),
                ("scope", "openid"),
                ("state", "s"),
            ],
        )
        .await;
    app.submit_login(browser, &form, email, password).await
}

fn form_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("field {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

async fn event_types(app: &TestApp, token: &str) -> Vec<String> {
    let logs = app
        .api("GET", "/api/v2/logs?per_page=100", Some(token), None)
        .await;
    logs.json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

both_backends! {
    async fn a_settings_change_reaches_another_replica_within_the_cache_lifetime(app) {
        let other = app.replica_core().await;
        let before = other.attack_protection().await.unwrap();
        let mut next = before.clone();
        next.brute_force.max_attempts = before.brute_force.max_attempts + 3;
        app.core.save_setting(portcullis_core::protection::ATTACK_PROTECTION, &next).await.unwrap();
        // The process that made the change reads it at once; another one within 1 s.
        assert_eq!(app.core.attack_protection().await.unwrap().brute_force.max_attempts, next.brute_force.max_attempts);
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        assert_eq!(other.attack_protection().await.unwrap().brute_force.max_attempts, next.brute_force.max_attempts);
    }

    async fn eleven_wrong_passwords_block_the_ip_for_the_account_until_unblocked(app) {
        let attacker = Browser::at("198.51.100.7");
        for i in 1..=11 {
            let resp = login_attempt(&app, &attacker, USER_EMAIL, "wrong password").await;
            assert_eq!(resp.status, StatusCode::BAD_REQUEST);
            if i <= 10 {
                assert!(resp.text.contains("Wrong email or password."), "attempt {i}");
            } else {
                assert!(resp.text.contains("Your account has been blocked"), "attempt {i}: {}", resp.text);
            }
        }
        // The right password from the blocked IP is refused too.
        let resp = login_attempt(&app, &attacker, USER_EMAIL, USER_PASSWORD).await;
        assert!(resp.text.contains("Your account has been blocked"));
        // From another IP the real user still gets in.
        let elsewhere = Browser::at("203.0.113.20");
        let resp = login_attempt(&app, &elsewhere, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text);

        // The user is told, with an unblock link.
        let mail = app.mail.wait_for(USER_EMAIL, "blocked").await;
        assert!(mail.contains("198.51.100.7"));
        let link = path_of(&link_in(&mail));
        assert!(link.starts_with("/u/unblock?ticket="), "{link}");

        let token = admin(&app).await;
        let blocks = app.api("GET", &format!("/api/v2/user-blocks/{}", user_id(&app, USER_EMAIL).await), Some(&token), None).await;
        assert_eq!(blocks.json()["blocked_for"][0]["ip"], "198.51.100.7", "{}", blocks.text);
        assert!(event_types(&app, &token).await.iter().any(|t| t == "limit_wc"));

        // A GET does not unblock (mail scanners fetch links); the confirm form does.
        let page = app.get(&link, &attacker).await;
        assert_eq!(page.status, StatusCode::OK);
        let csrf = form_field(&page.text, "csrf");
        let ticket = form_field(&page.text, "ticket");
        let done = app.post_form("/u/unblock", &[("csrf", &csrf), ("ticket", &ticket)], &attacker).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert!(done.text.contains("unblocked"));
        let resp = login_attempt(&app, &attacker, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text);
        // The link works once.
        let again = app.post_form("/u/unblock", &[("csrf", &csrf), ("ticket", &ticket)], &attacker).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert!(again.text.contains(BAD_LINK), "{}", again.text);
        assert!(event_types(&app, &token).await.iter().any(|t| t == "ublkdu"));
    }

    async fn an_admin_can_release_a_block_and_unknown_emails_block_alike(app) {
        // IPv6 clients are counted by their /64: hopping addresses inside it changes nothing.
        let attacker = Browser::at("2001:db8:7:7::10");
        for _ in 0..10 {
            login_attempt(&app, &attacker, ADMIN_EMAIL, "nope").await;
        }
        let hopped = Browser::at("2001:db8:7:7::99");
        let resp = login_attempt(&app, &hopped, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert!(resp.text.contains("Your account has been blocked"));
        // An email with no account shows the same block after the same number of failures.
        for _ in 0..10 {
            login_attempt(&app, &attacker, "nobody@example.com", "nope").await;
        }
        let resp = login_attempt(&app, &attacker, "nobody@example.com", "nope").await;
        assert!(resp.text.contains("Your account has been blocked"));

        let token = admin(&app).await;
        let by_email = app.api("GET", &format!("/api/v2/user-blocks?identifier={ADMIN_EMAIL}"), Some(&token), None).await;
        assert_eq!(by_email.json()["blocked_for"].as_array().unwrap().len(), 1);
        let id = user_id(&app, ADMIN_EMAIL).await;
        let del = app.api("DELETE", &format!("/api/v2/user-blocks/{id}"), Some(&token), None).await;
        assert_eq!(del.status, StatusCode::NO_CONTENT, "{}", del.text);
        let resp = login_attempt(&app, &attacker, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text);
    }

    async fn suspicious_ip_throttling_blocks_an_ip_failing_across_accounts(app) {
        let token = admin(&app).await;
        let patched = app.api("PATCH", "/api/v2/attack-protection/suspicious-ip-throttling", Some(&token), Some(json!({
            "allowlist": ["192.0.2.0/24"],
            "stage": {"pre-login": {"max_attempts": 3, "rate": 864000}, "pre-user-registration": {"max_attempts": 2, "rate": 1200}}
        }))).await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        assert_eq!(patched.json()["stage"]["pre-login"]["max_attempts"], 3);
        let bot = Browser::at("198.51.100.9");
        for i in 0..3 {
            login_attempt(&app, &bot, &format!("victim{i}@example.com"), "guess").await;
        }
        let resp = login_attempt(&app, &bot, USER_EMAIL, USER_PASSWORD).await;
        assert!(resp.text.contains("suspicious login behavior"), "{}", resp.text);
        // An allow-listed IP is never throttled.
        let office = Browser::at("192.0.2.10");
        for i in 0..4 {
            login_attempt(&app, &office, &format!("victim{i}@example.com"), "guess").await;
        }
        let resp = login_attempt(&app, &office, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "{}", resp.text);
        assert!(event_types(&app, &token).await.iter().any(|t| t == "limit_mu"));
        // Signups from one IP: two, then 429.
        for i in 0..2 {
            let r = post_json(&app, "/dbconnections/signup", signup_body(&format!("s{i}@example.com"), NEW_PASSWORD), "198.51.100.10").await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        }
        let r = post_json(&app, "/dbconnections/signup", signup_body("s3@example.com", NEW_PASSWORD), "198.51.100.10").await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
        assert_eq!(r.json()["code"], "too_many_attempts");
    }

    async fn allow_listed_ipv6_clients_are_never_throttled(app) {
        // IPv6 clients are counted by their /64 (the key the limits see is the network, not
        // an address): the allow-list must still recognise them.
        let token = admin(&app).await;
        let patched = app.api("PATCH", "/api/v2/attack-protection/suspicious-ip-throttling", Some(&token), Some(json!({
            "allowlist": ["2001:db8:5::/48", "2001:db8:9:9::1"],
            "stage": {"pre-login": {"max_attempts": 2, "rate": 864000}}
        }))).await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
        let bf = app.api("PATCH", "/api/v2/attack-protection/brute-force-protection", Some(&token), Some(json!({
            "allowlist": ["2001:db8:5::/48", "2001:db8:9:9::1"], "max_attempts": 2
        }))).await;
        assert_eq!(bf.status, StatusCode::OK, "{}", bf.text);
        for office in ["2001:db8:5:1::10", "2001:db8:9:9::1"] {
            let browser = Browser::at(office);
            for i in 0..4 {
                login_attempt(&app, &browser, &format!("victim{i}@example.com"), "guess").await;
                login_attempt(&app, &browser, USER_EMAIL, "guess").await;
            }
            let resp = login_attempt(&app, &browser, USER_EMAIL, USER_PASSWORD).await;
            assert_eq!(resp.status, StatusCode::SEE_OTHER, "{office} is allow-listed: {}", resp.text);
        }
        // An IPv6 client outside the list is throttled as before.
        let outsider = Browser::at("2001:db8:6:1::10");
        for i in 0..2 {
            login_attempt(&app, &outsider, &format!("victim{i}@example.com"), "guess").await;
        }
        let resp = login_attempt(&app, &outsider, ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert!(resp.text.contains("suspicious login behavior"), "{}", resp.text);
    }

    async fn verification_emails_are_capped_per_address_and_carry_no_chosen_text(app) {
        let yaml = format!("{TENANT_YAML}\ndatabases:\n  - name: Username-Password-Authentication\n    strategy: auth0\n    options:\n      require_email_verification: true\n");
        app.apply(&yaml).await.unwrap();
        // Someone signs up with a victim's address and a name of their choosing.
        let victim = "victim.inbox@example.com";
        let mut body = signup_body(victim, NEW_PASSWORD);
        body["name"] = json!("Claim your prize at https://evil.example/win <b>now</b>");
        body["nickname"] = json!("evil-nick");
        let r = post_json(&app, "/dbconnections/signup", body, "198.51.100.40").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let first = app.mail.wait_for(victim, "Verify your email").await;
        assert!(!first.contains("evil.example") && !first.contains("prize") && !first.contains("evil-nick"), "{first}");
        // Each refused login would mail the victim again: at most five a day reach them.
        let attacker = Browser::at("198.51.100.41");
        for _ in 0..8 {
            let resp = login_attempt(&app, &attacker, victim, NEW_PASSWORD).await;
            let p = callback_params(&resp.location().unwrap());
            assert_eq!(p["error"], "access_denied", "{p:?}");
        }
        let mut more = 0;
        while app.mail.arrives(victim, "Verify your email").await {
            more += 1;
        }
        assert_eq!(more, 4, "five verification emails a day in all");
        let token = admin(&app).await;
        assert!(event_types(&app, &token).await.iter().any(|t| t == "fvr"));
        // The next day brings one more.
        app.clock.advance(86_400 / 5 + 1);
        login_attempt(&app, &attacker, victim, NEW_PASSWORD).await;
        assert!(app.mail.arrives(victim, "Verify your email").await);
    }

    async fn signup_page_verification_and_login(app) {
        let browser = Browser::new();
        let q = serde_urlencoded::to_string([
            ("response_type", "code"), ("client_id", "web-app-client-id"), ("redirect_uri", WEB_CALLBACK),
            ("scope", "openid email"), ("state", "st"), ("screen_hint", "signup"),
        ]).unwrap();
        let resp = app.get(&format!("/authorize?{q}"), &browser).await;
        let location = resp.location().unwrap();
        assert!(location.starts_with("/u/signup?state="), "{location}");
        let page = app.get(&location, &browser).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.text.contains("At least 8 characters"), "the rules are shown");
        let state = form_field(&page.text, "state");
        let csrf = form_field(&page.text, "csrf");
        let email = "new.person@example.com";
        let weak = app.post_form(&location, &[("state", &state), ("csrf", &csrf), ("email", email), ("password", "x7Qz")], &browser).await;
        assert_eq!(weak.status, StatusCode::BAD_REQUEST);
        assert!(weak.text.contains("At least 8 characters in length"), "{}", weak.text);
        let common = app.post_form(&location, &[("state", &state), ("csrf", &csrf), ("email", email), ("password", "Password1")], &browser).await;
        assert!(common.text.contains("too common") || common.text.contains("data breach"), "{}", common.text);
        let ok = app.post_form(&location, &[("state", &state), ("csrf", &csrf), ("email", email), ("password", NEW_PASSWORD)], &browser).await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
        let params = callback_params(&ok.location().unwrap());
        assert!(params.contains_key("code"));

        let mail = app.mail.wait_for(email, "Verify your email").await;
        let link = path_of(&link_in(&mail));
        assert!(link.starts_with("/u/email-verification?ticket="), "{link}");
        let token = admin(&app).await;
        let id = user_id(&app, email).await;
        let user = app.api("GET", &format!("/api/v2/users/{id}"), Some(&token), None).await.json();
        assert_eq!(user["email_verified"], false);
        let verified = app.get(&link, &browser).await;
        assert_eq!(verified.status, StatusCode::OK, "{}", verified.text);
        let user = app.api("GET", &format!("/api/v2/users/{id}"), Some(&token), None).await.json();
        assert_eq!(user["email_verified"], true);
        let again = app.get(&link, &browser).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "a link works once");
        assert!(again.text.contains(BAD_LINK), "{}", again.text);
        let types = event_types(&app, &token).await;
        for t in ["ss", "fs", "sv", "fv", "svr"] {
            assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
        }
    }

    async fn dbconnections_signup_answers_with_auth0_shapes(app) {
        let r = post_json(&app, "/dbconnections/signup", signup_body("json@example.com", "x7Qz"), "127.0.0.1").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        let body = r.json();
        assert_eq!(body["code"], "invalid_password");
        assert_eq!(body["name"], "PasswordStrengthError");
        assert_eq!(body["description"]["rules"][0]["code"], "lengthAtLeast");
        assert!(body["policy"].as_str().unwrap().contains("* At least 8 characters in length"));
        let r = post_json(&app, "/dbconnections/signup", signup_body("json@example.com", "Json@example.com1"), "127.0.0.1").await;
        assert_eq!(r.json()["code"], "password_no_user_info_error", "{}", r.text);
        let r = post_json(&app, "/dbconnections/signup", signup_body("json@example.com", NEW_PASSWORD), "127.0.0.1").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let body = r.json();
        assert_eq!(body["email"], "json@example.com");
        assert_eq!(body["email_verified"], false);
        assert!(!body["_id"].as_str().unwrap().starts_with("auth0|"));
        let r = post_json(&app, "/dbconnections/signup", signup_body("json@example.com", NEW_PASSWORD), "127.0.0.1").await;
        assert_eq!(r.json()["code"], "invalid_signup", "an existing email is not named");
        let mut bad = signup_body("x@example.com", NEW_PASSWORD);
        bad["connection"] = json!("other");
        assert_eq!(post_json(&app, "/dbconnections/signup", bad, "127.0.0.1").await.status, StatusCode::BAD_REQUEST);
    }

    async fn password_reset_by_email_ends_sessions_and_works_once(app) {
        let browser = Browser::new();
        let tokens = app.web_tokens(&browser, &[]).await;
        let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let body = |email: &str| json!({"client_id": "web-app-client-id", "email": email, "connection": "Username-Password-Authentication"});
        let known = post_json(&app, "/dbconnections/change_password", body(USER_EMAIL), "127.0.0.1").await;
        let unknown = post_json(&app, "/dbconnections/change_password", body("ghost@example.com"), "127.0.0.1").await;
        assert_eq!(known.status, StatusCode::OK);
        assert_eq!(known.text, unknown.text, "the answer does not tell whether the email exists");
        assert_eq!(known.json(), json!("We've just sent you an email to reset your password."));
        let mail = app.mail.wait_for(USER_EMAIL, "Reset your").await;
        assert!(!app.mail.arrives("ghost@example.com", "Reset").await);
        // A second request: once a password is set, the other link stops working too.
        post_json(&app, "/dbconnections/change_password", body(USER_EMAIL), "127.0.0.1").await;
        let other = path_of(&link_in(&app.mail.wait_for(USER_EMAIL, "Reset your").await));
        let link = path_of(&link_in(&mail));
        assert!(link.starts_with("/u/reset-password?ticket="), "{link}");
        let page = app.get(&link, &browser).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let csrf = form_field(&page.text, "csrf");
        let ticket = form_field(&page.text, "ticket");
        let weak = app.post_form("/u/reset-password", &[("csrf", &csrf), ("ticket", &ticket), ("password", "abc")], &browser).await;
        assert_eq!(weak.status, StatusCode::BAD_REQUEST);
        assert!(weak.text.contains("too weak"), "{}", weak.text);
        // No CSRF cookie: refused.
        let stranger = Browser::new();
        let forged = app.post_form("/u/reset-password", &[("csrf", &csrf), ("ticket", &ticket), ("password", NEW_PASSWORD)], &stranger).await;
        assert_eq!(forged.status, StatusCode::BAD_REQUEST);
        assert!(!forged.text.contains("Password changed"));
        let done = app.post_form("/u/reset-password", &[("csrf", &csrf), ("ticket", &ticket), ("password", NEW_PASSWORD)], &browser).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert!(done.text.contains("Password changed"));
        let again = app.post_form("/u/reset-password", &[("csrf", &csrf), ("ticket", &ticket), ("password", "Another-fine-pass-99")], &browser).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST, "a link works once");
        assert!(again.text.contains(BAD_LINK), "refused for the spent link: {}", again.text);
        let revoked = app.get(&other, &browser).await;
        assert_eq!(revoked.status, StatusCode::BAD_REQUEST, "the other link was revoked");
        assert!(revoked.text.contains(BAD_LINK), "{}", revoked.text);
        // The old refresh token died with the reset; the new password logs in.
        let r = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &refresh)], Some(("web-app-client-id", WEB_SECRET))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
        let old = login_attempt(&app, &Browser::new(), USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(old.status, StatusCode::BAD_REQUEST);
        let new = login_attempt(&app, &Browser::new(), USER_EMAIL, NEW_PASSWORD).await;
        assert_eq!(new.status, StatusCode::SEE_OTHER, "{}", new.text);
        let token = admin(&app).await;
        let types = event_types(&app, &token).await;
        for t in ["scpr", "fcpr", "scp", "fcp"] {
            assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
        }
    }

    async fn password_history_and_tickets_api(app) {
        app.apply(&format!("{TENANT_YAML}\ndatabases:\n  - name: Username-Password-Authentication\n    strategy: auth0\n    options:\n      passwordPolicy: fair\n      password_history: {{enable: true, size: 3}}\n")).await.unwrap();
        let token = admin(&app).await;
        let id = user_id(&app, USER_EMAIL).await;
        // A current password that the fair policy accepts, so only history can refuse it.
        const CURRENT: &str = "Correct horse battery staple 1";
        let set = app.api("PATCH", &format!("/api/v2/users/{}", id.replace('|', "%7C")), Some(&token), Some(json!({"password": CURRENT, "connection": "Username-Password-Authentication"}))).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        let t = app.api("POST", "/api/v2/tickets/password-change", Some(&token), Some(json!({"user_id": id, "result_url": "https://app.example.com/done"}))).await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
        let link = path_of(t.json()["ticket"].as_str().unwrap());
        let browser = Browser::new();
        let page = app.get(&link, &browser).await;
        let csrf = form_field(&page.text, "csrf");
        let ticket = form_field(&page.text, "ticket");
        // The current password counts as history.
        let current = app.post_form("/u/reset-password", &[("csrf", &csrf), ("ticket", &ticket), ("password", CURRENT)], &browser).await;
        assert_eq!(current.status, StatusCode::BAD_REQUEST, "{}", current.text);
        assert!(current.text.contains("previously been used"), "{}", current.text);
        // The refusal spent nothing: the same link sets a password never used.
        let fresh = app.post_form("/u/reset-password", &[("csrf", &csrf), ("ticket", &ticket), ("password", "Another fair Passw0rd")], &browser).await;
        assert_eq!(fresh.status, StatusCode::SEE_OTHER, "a fair password that was never used: {}", fresh.text);
        assert!(fresh.location().unwrap().starts_with("https://app.example.com/done?success=true"));
        // The former password is now in the history.
        let t = app.api("POST", "/api/v2/tickets/password-change", Some(&token), Some(json!({"user_id": id}))).await;
        let link = path_of(t.json()["ticket"].as_str().unwrap());
        let page = app.get(&link, &browser).await;
        let ticket = form_field(&page.text, "ticket");
        let again = app.post_form("/u/reset-password", &[("csrf", &csrf), ("ticket", &ticket), ("password", CURRENT)], &browser).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert!(again.text.contains("previously been used"), "{}", again.text);

        let t = app.api("POST", "/api/v2/tickets/email-verification", Some(&token), Some(json!({"user_id": user_id(&app, ADMIN_EMAIL).await}))).await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
        let v = app.get(&path_of(t.json()["ticket"].as_str().unwrap()), &browser).await;
        assert_eq!(v.status, StatusCode::OK);
        let admin_user = app.api("GET", &format!("/api/v2/users/{}", user_id(&app, ADMIN_EMAIL).await), Some(&token), None).await.json();
        assert_eq!(admin_user["email_verified"], true);
        let missing = app.api("POST", "/api/v2/tickets/email-verification", Some(&token), Some(json!({"user_id": "auth0|nobody"}))).await;
        assert_eq!(missing.status, StatusCode::NOT_FOUND);
    }

    async fn breached_password_logins_are_flagged_and_can_be_blocked(app) {
        app.apply(&format!("{TENANT_YAML}\n  - email: leaky@example.com\n    password: trustno1\n    name: Lee Leak\n")).await.unwrap();
        let resp = login_attempt(&app, &Browser::new(), "leaky@example.com", "trustno1").await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER, "user_notification only: {}", resp.text);
        let mail = app.mail.wait_for("leaky@example.com", "data breach").await;
        assert!(link_in(&mail).contains("/u/reset-password?ticket="));
        let token = admin(&app).await;
        assert!(event_types(&app, &token).await.iter().any(|t| t == "pwd_leak"));
        let r = app.api("PATCH", "/api/v2/attack-protection/breached-password-detection", Some(&token), Some(json!({"shields": ["block", "user_notification"]}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let resp = login_attempt(&app, &Browser::new(), "leaky@example.com", "trustno1").await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert!(resp.text.contains("data breach"), "{}", resp.text);
        let bad = app.api("PATCH", "/api/v2/attack-protection/brute-force-protection", Some(&token), Some(json!({"max_attempts": "ten"}))).await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST);
        assert_eq!(bad.json()["errorCode"], "invalid_body");
        let bf = app.api("GET", "/api/v2/attack-protection/brute-force-protection", Some(&token), None).await.json();
        assert_eq!(bf, json!({"enabled": true, "shields": ["block", "user_notification"], "allowlist": [], "mode": "count_per_identifier_and_ip", "max_attempts": 10}));
    }

    async fn tenant_file_attack_protection_and_databases_apply_once(app) {
        let yaml = format!("{TENANT_YAML}\nattackProtection:\n  bruteForceProtection:\n    enabled: true\n    shields: [block]\n    allowlist: [10.0.0.0/8]\n    mode: count_per_identifier_and_ip\n    max_attempts: 3\n  suspiciousIpThrottling:\n    enabled: false\n  breachedPasswordDetection:\n    enabled: false\ndatabases:\n  - name: Username-Password-Authentication\n    strategy: auth0\n    enabled_clients: [Web App]\n    options:\n      passwordPolicy: excellent\n      password_dictionary: {{enable: true, dictionary: [portcullis]}}\n      password_no_personal_info: {{enable: true}}\n      password_complexity_options: {{min_length: 12}}\n");
        let first = app.apply(&yaml).await.unwrap();
        assert!(first.changes.iter().any(|c| c.contains("attack protection")), "{:?}", first.changes);
        let second = app.apply(&yaml).await.unwrap();
        assert!(second.changes.is_empty(), "{:?}", second.changes);
        let attacker = Browser::at("198.51.100.11");
        for _ in 0..3 {
            login_attempt(&app, &attacker, USER_EMAIL, "nope").await;
        }
        let resp = login_attempt(&app, &attacker, USER_EMAIL, USER_PASSWORD).await;
        assert!(resp.text.contains("Your account has been blocked"));
        assert!(!app.mail.arrives(USER_EMAIL, "blocked").await, "no user_notification shield");
        let r = post_json(&app, "/dbconnections/signup", signup_body("x@example.com", "Velvet-ot-5"), "127.0.0.1").await;
        assert_eq!(r.json()["code"], "invalid_password", "min_length 12: {}", r.text);
        let bad = app.apply(&format!("{TENANT_YAML}\ndatabases:\n  - name: Other\n    strategy: auth0\n")).await.unwrap_err();
        assert!(bad.contains("only the database connection"), "{bad}");
    }
}

async fn user_id(app: &TestApp, email: &str) -> String {
    let token = admin(app).await;
    let r = app
        .api(
            "GET",
            &format!("/api/v2/users-by-email?email={email}"),
            Some(&token),
            None,
        )
        .await;
    r.json()[0]["user_id"].as_str().unwrap().to_owned()
}

fn signup_body(email: &str, password: &str) -> Value {
    json!({"client_id": "web-app-client-id", "email": email, "password": password, "connection": "Username-Password-Authentication"})
}

const M2M_FORM: [(&str, &str); 2] = [
    ("grant_type", "client_credentials"),
    ("audience", "https://api.finance.example"),
];

/// Server options with `/oauth/token` limited to `n` requests a minute per IP.
fn token_limit_per_ip(n: u32) -> portcullis_server::HttpOptions {
    portcullis_server::HttpOptions {
        rate_limits: portcullis_server::ratelimit::RateLimits {
            token_per_ip: n,
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn rate_limit_case(backend: Backend) {
    let options = token_limit_per_ip(3);
    let Some(app) = TestApp::with_http(backend, options.clone()).await else {
        return;
    };
    let form = M2M_FORM;
    for i in 0..3 {
        let r = app.token(&form, Some(("m2m-client-id", M2M_SECRET))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.header("x-ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            r.header("x-ratelimit-remaining").unwrap(),
            (2 - i).to_string()
        );
        assert!(
            r.header("x-ratelimit-reset")
                .unwrap()
                .parse::<i64>()
                .unwrap()
                >= START
        );
    }
    let r = app.token(&form, Some(("m2m-client-id", M2M_SECRET))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.json()["error"], "too_many_requests");
    assert_eq!(r.header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(r.header("retry-after").as_deref(), Some("20"));
    let r = app.token(&form, Some(("m2m-client-id", M2M_SECRET))).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    app.core.flush_audit().await;
    let logs = app
        .store
        .search_log_events(
            "default",
            &portcullis_core::audit::LogFilter {
                kind: Some("api_limit".to_owned()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logs.total, 1, "one api_limit event for a burst of refusals");
    // Another IP has its own bucket.
    let other = app.send_from(token_request(&form), "203.0.113.5").await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.text);
    // A restarted server (or another replica) reads the same counters.
    let restarted = app.restart(options).await;
    let response =
        tower::ServiceExt::oneshot(restarted, with_peer(token_request(&form), "127.0.0.1"))
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    // Time refills the bucket.
    app.clock.advance(20);
    let r = app.token(&form, Some(("m2m-client-id", M2M_SECRET))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
}

/// A flood that names a victim's application without its secret (or, for a public client,
/// without a grant that checks out) counts against the flooding IPs alone.
async fn victim_budget_case(backend: Backend) {
    let options = portcullis_server::HttpOptions {
        rate_limits: portcullis_server::ratelimit::RateLimits {
            token_per_client: 5,
            dbconnections_per_client: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(app) = TestApp::with_http(backend, options).await else {
        return;
    };
    // Many addresses of one IPv6 /64 and a few IPv4 ones name the victim's clients.
    let attackers = [
        "2001:db8:66:1::1",
        "2001:db8:66:1::2",
        "198.51.100.61",
        "198.51.100.62",
    ];
    for (i, ip) in attackers.iter().cycle().take(40).enumerate() {
        let no_secret = [
            ("grant_type", "client_credentials"),
            ("audience", "https://api.finance.example"),
            ("client_id", "m2m-client-id"),
        ];
        let wrong_secret = [
            ("grant_type", "client_credentials"),
            ("audience", "https://api.finance.example"),
            ("client_id", "m2m-client-id"),
            ("client_secret", "guess"),
        ];
        let form = if i % 2 == 0 {
            &no_secret[..]
        } else {
            &wrong_secret[..]
        };
        let r = app.send_from(form_request("/oauth/token", form), ip).await;
        assert_eq!(r.json()["error"], "invalid_client", "{}", r.text);
        // A public client named with a made-up refresh token.
        let r = app
            .send_from(
                form_request(
                    "/oauth/token",
                    &[
                        ("grant_type", "refresh_token"),
                        ("client_id", "spa-client-id"),
                        ("refresh_token", "rt_made_up"),
                    ],
                ),
                ip,
            )
            .await;
        assert_eq!(r.json()["error"], "invalid_grant", "{}", r.text);
        // Password reset requests naming the app with no usable email.
        let r = post_json(&app, "/dbconnections/change_password", json!({"client_id": "web-app-client-id", "email": "not an email", "connection": "Username-Password-Authentication"}), ip).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    }
    // The victim's real requests all pass, and its own budget is whole.
    for i in 0..5u32 {
        let r = app
            .send_from(token_request(&M2M_FORM), "203.0.113.70")
            .await;
        assert_eq!(r.status, StatusCode::OK, "request {i}: {}", r.text);
        assert_eq!(
            r.header("x-ratelimit-limit").as_deref(),
            Some("5"),
            "the application's bucket is the tighter one"
        );
        assert_eq!(
            r.header("x-ratelimit-remaining").unwrap(),
            (4 - i).to_string()
        );
    }
    // Past its budget, the application's next request is refused with the budget's headers.
    let r = app
        .send_from(token_request(&M2M_FORM), "203.0.113.70")
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text);
    assert_eq!(r.json()["error"], "too_many_requests");
    assert!(r.header("retry-after").is_some());
    // The public client's real refresh still works.
    let browser = Browser::new();
    let tokens = spa_tokens(&app, &browser).await;
    let r = app
        .send_from(
            form_request(
                "/oauth/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", "spa-client-id"),
                    ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
                ],
            ),
            "203.0.113.71",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    // Real reset requests of the victim application pass.
    for i in 0..3 {
        let r = post_json(&app, "/dbconnections/change_password", json!({"client_id": "web-app-client-id", "email": format!("someone{i}@example.com"), "connection": "Username-Password-Authentication"}), "203.0.113.72").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
}

/// A public client refused by its budget loses nothing: its code and refresh token are
/// checked, then charged, and spent only once admitted.
async fn public_refusal_case(backend: Backend) {
    let options = portcullis_server::HttpOptions {
        rate_limits: portcullis_server::ratelimit::RateLimits {
            token_per_client: 1,
            ..Default::default()
        },
        ..Default::default()
    };
    let Some(app) = TestApp::with_http(backend, options).await else {
        return;
    };
    spa_tokens(&app, &Browser::new()).await;
    // The budget is spent: a second login's code is refused, and still good a minute later.
    let code = spa_code(&app, &Browser::new()).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("client_id", "spa-client-id"),
        ("code", code.as_str()),
        ("redirect_uri", SPA_CALLBACK),
        ("code_verifier", SPA_VERIFIER),
    ];
    let tokens = refused_then_accepted(&app, &exchange, "code").await;
    let refresh = tokens.json()["refresh_token"].as_str().unwrap().to_owned();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", "spa-client-id"),
        ("refresh_token", refresh.as_str()),
    ];
    refused_then_accepted(&app, &form, "refresh token").await;
}

/// A token request refused by its application's budget, then the same request a minute
/// later, once the budget has refilled: the refusal spent nothing it presented.
async fn refused_then_accepted(app: &TestApp, form: &[(&str, &str)], what: &str) -> TestResponse {
    let refused = app.send(form_request("/oauth/token", form)).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.text
    );
    app.clock.advance(60);
    let again = app.send(form_request("/oauth/token", form)).await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "the refused {what} was not spent: {}",
        again.text
    );
    again
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_refused_by_its_budget_loses_nothing_sqlite() {
    public_refusal_case(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_refused_by_its_budget_loses_nothing_postgres() {
    public_refusal_case(Backend::Postgres).await;
}

/// The PKCE verifier of the SPA logins below.
const SPA_VERIFIER: &str = "spa-verifier-spa-verifier-spa-verifier-0123456789";

/// The browser part of the SPA's code flow with PKCE: the code.
async fn spa_code(app: &TestApp, browser: &Browser) -> String {
    let challenge = portcullis_crypto::b64url(&portcullis_crypto::sha256(SPA_VERIFIER.as_bytes()));
    let form = app
        .start_login(
            browser,
            &[
                ("response_type", "code"),
                ("client_id", "spa-client-id"),
                ("redirect_uri", SPA_CALLBACK),
                ("scope", "openid offline_access"),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    let resp = app
        .submit_login(browser, &form, USER_EMAIL, USER_PASSWORD)
        .await;
    callback_params(&resp.location().unwrap())["code"].clone()
}

/// The SPA's code flow with PKCE, exchanged for tokens.
async fn spa_tokens(app: &TestApp, browser: &Browser) -> Value {
    let code = spa_code(app, browser).await;
    let r = app
        .send(form_request(
            "/oauth/token",
            &[
                ("grant_type", "authorization_code"),
                ("client_id", "spa-client-id"),
                ("code", &code),
                ("redirect_uri", SPA_CALLBACK),
                ("code_verifier", SPA_VERIFIER),
            ],
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json()
}

fn form_request(path: &str, form: &[(&str, &str)]) -> Request<Body> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(serde_urlencoded::to_string(form).unwrap()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_naming_a_victim_client_leaves_its_budget_whole_sqlite() {
    victim_budget_case(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_naming_a_victim_client_leaves_its_budget_whole_postgres() {
    victim_budget_case(Backend::Postgres).await;
}

fn token_request(form: &[(&str, &str)]) -> Request<Body> {
    use base64::Engine;
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("m2m-client-id:{M2M_SECRET}"));
    Request::post("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, format!("Basic {basic}"))
        .body(Body::from(serde_urlencoded::to_string(form).unwrap()))
        .unwrap()
}

fn with_peer(mut request: Request<Body>, ip: &str) -> Request<Body> {
    let addr = std::net::SocketAddr::new(ip.parse().unwrap(), 40_000);
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(addr));
    request
}

/// A busy bucket is counted in shares, yet the headers stay exact for one server and two
/// replicas on one database never pass the limit together.
async fn shared_rate_limit_case(backend: Backend) {
    let options = token_limit_per_ip(64);
    let Some(app) = TestApp::with_http(backend, options.clone()).await else {
        return;
    };
    let form = M2M_FORM;
    for i in 0..40u32 {
        let r = app.token(&form, Some(("m2m-client-id", M2M_SECRET))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            r.header("x-ratelimit-remaining").unwrap(),
            (63 - i).to_string(),
            "request {i}"
        );
    }
    // A second replica takes its own shares of the same bucket: together they allow the
    // 24 requests left, never more.
    let replica = app.restart(options).await;
    let mut allowed = 0;
    for i in 0..60 {
        let status = if i % 2 == 0 {
            app.token(&form, Some(("m2m-client-id", M2M_SECRET)))
                .await
                .status
        } else {
            tower::ServiceExt::oneshot(
                replica.clone(),
                with_peer(token_request(&form), "127.0.0.1"),
            )
            .await
            .unwrap()
            .status()
        };
        match status {
            StatusCode::OK => allowed += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(
        (20..=24).contains(&allowed),
        "{allowed} requests passed where 24 were left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_rate_limits_sqlite() {
    shared_rate_limit_case(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_rate_limits_postgres() {
    shared_rate_limit_case(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_sqlite() {
    rate_limit_case(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_postgres() {
    rate_limit_case(Backend::Postgres).await;
}

async fn log_stream_case(backend: Backend) {
    let Some(app) = TestApp::new(backend).await else {
        return;
    };
    // A real HTTP endpoint on loopback records what the stream posts.
    let received = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::<(String, Value)>::new()));
    let sink = received.clone();
    let router = axum::Router::new().route(
        "/logs",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                let auth = headers
                    .get(header::AUTHORIZATION)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                sink.lock()
                    .await
                    .push((auth, serde_json::from_str(&body).unwrap()));
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let yaml = format!(
        "{TENANT_YAML}\nlogStreams:\n  - name: SIEM\n    type: http\n    sink:\n      httpEndpoint: http://{addr}/logs\n      httpContentFormat: JSONARRAY\n      httpAuthorization: Bearer siem-secret\n"
    );
    app.apply(&yaml).await.unwrap();
    assert!(
        app.apply(&yaml).await.unwrap().changes.is_empty(),
        "a second apply changes nothing"
    );
    // The authorization is sealed at rest.
    let stored = app
        .store
        .find_setting("default", "log_streams")
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.to_string().contains("siem-secret"));
    login_attempt(&app, &Browser::new(), USER_EMAIL, "wrong").await;
    app.clock.advance(10);
    let client = portcullis_server::log_stream::http_client().unwrap();
    let n = portcullis_server::log_stream::deliver_once(&app.core, &client, &[])
        .await
        .unwrap();
    assert!(n >= 1);
    let got = received.lock().await.clone();
    assert_eq!(got[0].0, "Bearer siem-secret");
    let items = got[0].1.as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["data"]["type"] == "fp" && i["log_id"].is_string())
    );
    // Delivered events are not posted again.
    assert_eq!(
        portcullis_server::log_stream::deliver_once(&app.core, &client, &[])
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_stream_sqlite() {
    log_stream_case(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_stream_postgres() {
    log_stream_case(Backend::Postgres).await;
}

async fn trusted_proxy_case(backend: Backend) {
    let options = portcullis_server::HttpOptions {
        rate_limits: portcullis_server::ratelimit::RateLimits {
            token_per_ip: 1,
            ..Default::default()
        },
        trusted_proxies: portcullis_server::client_ip::parse_proxies("10.0.0.1").unwrap(),
        ..Default::default()
    };
    let Some(app) = TestApp::with_http(backend, options).await else {
        return;
    };
    let form = [
        ("grant_type", "client_credentials"),
        ("audience", "https://api.finance.example"),
    ];
    let via_proxy = |client: &str| {
        let mut request = token_request(&form);
        request.headers_mut().insert(
            "x-forwarded-for",
            format!("{client}, 10.0.0.1").parse().unwrap(),
        );
        request
    };
    // Behind the trusted proxy, each client has its own bucket.
    assert_eq!(
        app.send_from(via_proxy("198.51.100.1"), "10.0.0.1")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send_from(via_proxy("198.51.100.2"), "10.0.0.1")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send_from(via_proxy("198.51.100.1"), "10.0.0.1")
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // From anyone else the header is ignored: the peer is the client.
    assert_eq!(
        app.send_from(via_proxy("198.51.100.3"), "203.0.113.9")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.send_from(via_proxy("198.51.100.4"), "203.0.113.9")
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_sqlite() {
    trusted_proxy_case(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxy_postgres() {
    trusted_proxy_case(Backend::Postgres).await;
}
