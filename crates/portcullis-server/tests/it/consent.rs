use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;

const PARTNER_CALLBACK: &str = "https://partner.example/callback";

fn partner_authorize(scope: &str, extra: &[(&'static str, &'static str)]) -> String {
    let mut q = vec![
        ("response_type", "code"),
        ("client_id", "partner-client-id"),
        ("redirect_uri", PARTNER_CALLBACK),
        ("scope", scope),
        ("state", "p1"),
    ];
    q.extend_from_slice(extra);
    format!("/authorize?{}", serde_urlencoded::to_string(q).unwrap())
}

/// Reads the consent form's hidden fields.
fn consent_fields(html: &str) -> (String, String) {
    let field = |name: &str| {
        let marker = format!("name=\"{name}\" value=\"");
        let start = html
            .find(&marker)
            .unwrap_or_else(|| panic!("{name} in {html}"))
            + marker.len();
        html[start..].split('"').next().unwrap().to_owned()
    };
    (field("state"), field("csrf"))
}

async fn decide(
    app: &TestApp,
    browser: &Browser,
    consent_location: &str,
    action: &str,
) -> TestResponse {
    let page = app.get(consent_location, browser).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let (state, csrf) = consent_fields(&page.text);
    app.post_form(
        consent_location,
        &[("state", &state), ("csrf", &csrf), ("action", action)],
        browser,
    )
    .await
}

/// Logs in to the partner app and accepts its consent for `openid`.
async fn consent_once(app: &TestApp, browser: &Browser) {
    let resp = app.get(&partner_authorize("openid", &[]), browser).await;
    let login = resp.location().unwrap();
    let page = app.get(&login, browser).await;
    let form = LoginForm::parse(&login, &page.text);
    let consent = app
        .submit_login(browser, &form, USER_EMAIL, USER_PASSWORD)
        .await
        .location()
        .unwrap();
    decide(app, browser, &consent, "accept").await;
}

both_backends! {
    async fn a_third_party_app_needs_consent_which_is_remembered(app) {
        let browser = Browser::new();
        let resp = app.get(&partner_authorize("openid email", &[]), &browser).await;
        let login = resp.location().unwrap();
        let page = app.get(&login, &browser).await;
        let form = LoginForm::parse(&login, &page.text);
        let resp = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        assert_eq!(resp.status, StatusCode::SEE_OTHER);
        let consent = resp.location().unwrap();
        assert!(consent.starts_with("/u/consent?state="), "{consent}");
        assert!(browser.cookie("pc_session").is_some(), "logged in before consenting");

        let page = app.get(&consent, &browser).await;
        assert!(page.text.contains("Partner App") && page.text.contains("Read your email address"));
        let resp = decide(&app, &browser, &consent, "accept").await;
        let p = callback_params(&resp.location().unwrap());
        assert!(p.contains_key("code"), "{p:?}");
        assert_eq!(p["state"], "p1");
        let tokens = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", PARTNER_CALLBACK)], Some(("partner-client-id", "partner-secret-0123456789abcdef"))).await;
        assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.text);

        // Remembered: the same scopes go straight through; more scopes ask again.
        let again = app.get(&partner_authorize("openid email", &[]), &browser).await;
        assert!(again.location().unwrap().starts_with(PARTNER_CALLBACK));
        let more = app.get(&partner_authorize("openid email profile", &[]), &browser).await;
        assert!(more.location().unwrap().starts_with("/u/consent"));
        let silent = app.get(&partner_authorize("openid email profile", &[("prompt", "none")]), &browser).await;
        assert_eq!(callback_params(&silent.location().unwrap())["error"], "consent_required");
    }

    async fn declining_consent_sends_access_denied_and_a_replay_is_refused(app) {
        let browser = Browser::new();
        app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        let resp = app.get(&partner_authorize("openid", &[]), &browser).await;
        let consent = resp.location().unwrap();
        assert!(consent.starts_with("/u/consent"), "SSO users still consent: {consent}");
        let page = app.get(&consent, &browser).await;
        let (state, csrf) = consent_fields(&page.text);
        let forged = app.post_form(&consent, &[("state", &state), ("csrf", "csrf_forged"), ("action", "accept")], &browser).await;
        assert_eq!(forged.status, StatusCode::BAD_REQUEST);
        assert!(forged.text.contains("This login page has expired") && forged.location().is_none(), "{}", forged.text);
        let resp = app.post_form(&consent, &[("state", &state), ("csrf", &csrf), ("action", "deny")], &browser).await;
        let p = callback_params(&resp.location().unwrap());
        assert_eq!(p["error"], "access_denied");
        assert_eq!(p["state"], "p1");
        let replay = app.post_form(&consent, &[("state", &state), ("csrf", &csrf), ("action", "accept")], &Browser::new()).await;
        assert_eq!(replay.status, StatusCode::BAD_REQUEST);
        assert!(replay.text.contains("This login page has expired") && replay.location().is_none(), "{}", replay.text);
        // Even from the browser that decided, with its cookie, the decision is spent.
        let again = app.post_form(&consent, &[("state", &state), ("csrf", &csrf), ("action", "accept")], &browser).await;
        assert_eq!(again.status, StatusCode::BAD_REQUEST);
        assert!(again.location().is_none(), "no second code");
    }

    async fn prompt_consent_asks_again(app) {
        let browser = Browser::new();
        consent_once(&app, &browser).await;
        let again = app.get(&partner_authorize("openid", &[("prompt", "consent")]), &browser).await;
        assert!(again.location().unwrap().starts_with("/u/consent"));
    }

    async fn prompt_login_consent_asks_for_both_and_none_stands_alone(app) {
        let browser = Browser::new();
        consent_once(&app, &browser).await;
        // Both values of the list apply: the form again despite the session, then consent
        // again despite the remembered decision.
        let both = app.get(&partner_authorize("openid", &[("prompt", "login consent")]), &browser).await;
        let login = both.location().unwrap();
        assert!(login.starts_with("/u/login?state="), "{login}");
        let page = app.get(&login, &browser).await;
        let form = LoginForm::parse(&login, &page.text);
        let after = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        assert!(after.location().unwrap().starts_with("/u/consent?state="), "{:?}", after.location());
        // `none` with anything else is an error, sent back to the client with `iss`.
        for combined in ["none login", "consent none"] {
            let refused = app.get(&partner_authorize("openid", &[("prompt", combined)]), &browser).await;
            let p = callback_params(&refused.location().unwrap());
            assert_eq!(p["error"], "invalid_request", "{combined}");
            assert_eq!(p["iss"], ISSUER);
            assert_eq!(p["state"], "p1");
        }
    }

    async fn first_party_apps_skip_consent(app) {
        let browser = Browser::new();
        let p = app.login_code(&browser, &[], USER_EMAIL, USER_PASSWORD).await;
        assert!(p.contains_key("code"));
    }
}
