//! Property tests of the parsers that take outside input: the `/authorize` request, the
//! user search syntax, `prompt`, and the tenant file. Each property states what must hold for
//! any input: no panic, and either a clear error or a value that keeps what was asked.

use portcullis_core::management::query::{self, Field, Match, Term};
use portcullis_core::model::{
    AppType, Client, Prompts, RefreshTokenPolicy, TokenEndpointAuthMethod,
};
use portcullis_core::oauth::authorize::{
    AuthorizeError, AuthorizeParams, MAX_NONCE_LEN, MAX_STATE_LEN, validate,
};
use proptest::prelude::*;

const ISSUER: &str = "https://id.example/";
const CALLBACK: &str = "https://app.example/callback";

fn client(public: bool) -> Client {
    Client {
        tenant_id: "default".into(),
        client_id: "app-client-id".into(),
        name: "App".into(),
        app_type: if public {
            AppType::Spa
        } else {
            AppType::RegularWeb
        },
        secret_sealed: None,
        token_endpoint_auth_method: if public {
            TokenEndpointAuthMethod::None
        } else {
            TokenEndpointAuthMethod::ClientSecretPost
        },
        callbacks: vec![CALLBACK.into()],
        allowed_logout_urls: vec![],
        web_origins: vec!["https://app.example".into()],
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        refresh_token: RefreshTokenPolicy::default(),
        is_first_party: true,
    }
}

/// A value that is sometimes well-formed, sometimes anything at all.
fn field(good: &'static [&'static str]) -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        proptest::sample::select(good).prop_map(|s| Some(s.to_owned())),
        any::<String>().prop_map(Some),
        "[ -~]{0,3000}".prop_map(Some),
    ]
}

fn params() -> impl Strategy<Value = AuthorizeParams> {
    (
        (
            field(&["code", "token", "code id_token"]),
            field(&["app-client-id"]),
            field(&[
                CALLBACK,
                "https://evil.example/callback",
                "https://app.example/callback/",
            ]),
            field(&["openid", "openid profile email offline_access"]),
            field(&["xyz", ""]),
            field(&["n-0S6"]),
        ),
        (
            field(&["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "short"]),
            field(&["S256", "plain"]),
            field(&["https://api.example"]),
            field(&["Username-Password-Authentication", "google-oauth2"]),
            field(&[
                "login",
                "none",
                "consent",
                "login consent",
                "none login",
                "select_account",
            ]),
            field(&["0", "60", "-1", "abc"]),
            field(&["user@example.com"]),
            field(&["query", "form_post", "web_message", "fragment"]),
        ),
    )
        .prop_map(
            |(
                (response_type, client_id, redirect_uri, scope, state, nonce),
                (
                    code_challenge,
                    code_challenge_method,
                    audience,
                    connection,
                    prompt,
                    max_age,
                    login_hint,
                    response_mode,
                ),
            )| AuthorizeParams {
                response_type,
                client_id,
                redirect_uri,
                scope,
                state,
                nonce,
                code_challenge,
                code_challenge_method,
                audience,
                connection,
                prompt,
                max_age,
                login_hint,
                response_mode,
                request: None,
                request_uri: None,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any query string either fails to parse or validates to a request, an error page, or
    /// an error sent back to a registered callback, never elsewhere.
    #[test]
    fn any_authorize_query_is_answered_without_panic(query in any::<String>()) {
        if let Ok(params) = serde_urlencoded::from_str::<AuthorizeParams>(&query) {
            let c = client(false);
            let _ = validate(&params, Some(&c), |_| true, &format!("{ISSUER}userinfo"), ISSUER);
            let _ = validate(&params, None, |_| false, &format!("{ISSUER}userinfo"), ISSUER);
        }
    }

    /// What a validated request holds is capped and safe to act on; an error goes back only
    /// to the registered callback, with `iss`.
    #[test]
    fn a_validated_request_keeps_only_what_is_allowed(p in params(), public in any::<bool>(), audience_known in any::<bool>()) {
        let c = client(public);
        match validate(&p, Some(&c), |_| audience_known, &format!("{ISSUER}userinfo"), ISSUER) {
            Ok(request) => {
                prop_assert_eq!(request.redirect_uri.as_str(), CALLBACK);
                prop_assert_eq!(p.response_type.as_deref(), Some("code"));
                prop_assert!(request.state.as_ref().is_none_or(|s| s.len() <= MAX_STATE_LEN));
                prop_assert!(request.nonce.as_ref().is_none_or(|n| n.len() <= MAX_NONCE_LEN));
                prop_assert!(request.scope.len() <= 100);
                prop_assert!(!(request.prompt.none && (request.prompt.login || request.prompt.consent)));
                if public {
                    prop_assert!(request.code_challenge.is_some(), "a public client always uses PKCE");
                }
                if let Some(challenge) = &request.code_challenge {
                    prop_assert!(portcullis_crypto::pkce::is_valid_challenge(challenge));
                    prop_assert_eq!(p.code_challenge_method.as_deref(), Some("S256"));
                }
                prop_assert!(request.max_age.is_none_or(|m| m >= 0));
            }
            Err(AuthorizeError::Redirect(response)) => {
                prop_assert_eq!(response.redirect_uri.as_str(), CALLBACK);
                prop_assert!(response.params.iter().any(|(k, v)| k == "iss" && v == ISSUER));
                prop_assert!(response.params.iter().any(|(k, _)| k == "error"));
            }
            Err(AuthorizeError::Page { .. }) => {
                // Shown on a page only while the client or the redirect is not known good.
                prop_assert!(
                    p.client_id.as_deref().is_none_or(str::is_empty)
                        || p.redirect_uri.as_deref() != Some(CALLBACK)
                        || p.response_mode.as_deref() == Some("web_message")
                );
            }
            Err(AuthorizeError::Internal(e)) => prop_assert!(false, "internal error from a pure check: {}", e),
        }
    }

    /// `prompt` is a list; `none` stands alone; anything unknown is named in the error.
    #[test]
    fn prompt_lists_parse_to_their_set(words in proptest::collection::vec(prop_oneof![Just("login".to_owned()), Just("consent".to_owned()), Just("none".to_owned()), Just("select_account".to_owned()), "[a-z_]{1,12}"], 0..5)) {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let text = words.join(" ");
        let known = |w: &str| matches!(w, "login" | "consent" | "none" | "select_account");
        match Prompts::parse(&text) {
            Ok(p) => {
                prop_assert!(words.iter().all(|w| known(w)));
                prop_assert_eq!(p.login, words.contains(&"login"));
                prop_assert_eq!(p.consent, words.contains(&"consent"));
                prop_assert_eq!(p.none, words.contains(&"none"));
                prop_assert!(!p.none || words.len() == 1);
            }
            Err(_) => prop_assert!(words.iter().any(|w| !known(w)) || (words.contains(&"none") && words.len() > 1)),
        }
    }

    /// Any search text parses or fails with a message; never a panic.
    #[test]
    fn any_user_search_is_read_or_refused(q in any::<String>()) {
        if let Err(e) = query::parse(&q) {
            prop_assert!(!e.0.is_empty());
        }
    }

    /// Quoted terms, however odd their values, come back exactly.
    #[test]
    fn quoted_search_terms_round_trip(terms in proptest::collection::vec((prop_oneof![Just("email"), Just("name"), Just("nickname"), Just("user_id")], any::<String>()), 1..=10)) {
        let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"");
        let q = terms.iter().map(|(f, v)| format!("{f}:\"{}\"", escape(v))).collect::<Vec<_>>().join(" AND ");
        let parsed = query::parse(&q).unwrap();
        prop_assert_eq!(parsed.len(), terms.len());
        for (term, (name, value)) in parsed.iter().zip(&terms) {
            let field = match *name {
                "email" => Field::Email,
                "name" => Field::Name,
                "nickname" => Field::Nickname,
                _ => Field::UserId,
            };
            prop_assert_eq!(term, &Term::Field { field, value: Match::Exact(value.clone()) });
        }
    }

    /// Any text given as a tenant file is applied or refused with a message; never a panic.
    #[test]
    fn any_tenant_file_is_read_or_refused(text in prop_oneof![any::<String>(), "(clients|roles|users|tenant|resourceServers):\n  [ -~\n]{0,200}"]) {
        if let Err(e) = portcullis_core::tenant_file::parse(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    /// Applications declared in a file come back with the names and callbacks written.
    #[test]
    fn declared_clients_keep_their_names_and_callbacks(apps in proptest::collection::btree_map("[A-Za-z][A-Za-z0-9 ]{0,30}[A-Za-z0-9]", "[a-z]{1,20}", 1..5)) {
        let mut yaml = String::from("clients:\n");
        for (name, host) in &apps {
            yaml.push_str(&format!("  - name: \"{name}\"\n    callbacks: [\"https://{host}.example/cb\"]\n"));
        }
        let file = portcullis_core::tenant_file::parse(&yaml).unwrap();
        prop_assert_eq!(file.clients.len(), apps.len());
        for (entry, (name, host)) in file.clients.iter().zip(&apps) {
            prop_assert_eq!(&entry.name, name);
            let callback = format!("https://{host}.example/cb");
            prop_assert_eq!(entry.callbacks.iter().map(|c| c.0.clone()).collect::<Vec<_>>(), vec![callback]);
        }
    }

    /// A login page's `state` names its CSRF cookie only by letters and digits.
    #[test]
    fn transaction_references_name_cookies_safely(reference in any::<String>()) {
        if let Some(id) = portcullis_core::oauth::login::transaction_id(&reference) {
            prop_assert!(!id.is_empty() && id.len() <= 64);
            prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
            prop_assert!(reference.starts_with(id));
        }
    }
}
