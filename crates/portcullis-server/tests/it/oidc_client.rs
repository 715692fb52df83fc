//! Interop: a Rust relying party built on the `openidconnect` crate discovers Portcullis,
//! runs the authorization code flow with PKCE over a real socket, verifies the ID token,
//! reads `/userinfo` and refreshes.

use crate::harness::*;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

/// The HTTP client openidconnect calls, over reqwest (no redirects followed).
async fn http_client(
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (parts, body) = request.into_parts();
    let mut builder = client
        .request(parts.method, parts.uri.to_string())
        .body(body);
    for (name, value) in &parts.headers {
        builder = builder.header(name, value);
    }
    let response = builder.send().await?;
    let mut out = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        out = out.header(name, value);
    }
    let body = response.bytes().await?.to_vec();
    Ok(out.body(body).expect("valid response parts"))
}

async fn code_flow_with_pkce_and_refresh(backend: Backend) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = format!("http://{addr}/");
    let Some(app) = TestApp::with_issuer(backend, &issuer, real_now()).await else {
        return;
    };
    app.apply(&TENANT_YAML.replace(ISSUER, &issuer))
        .await
        .unwrap();
    let server = tokio::spawn(axum::serve(listener, app.router.clone()).into_future());

    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.clone()).unwrap(), &http_client)
            .await
            .expect("discovery");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("web-app-client-id".into()),
        Some(ClientSecret::new(WEB_SECRET.into())),
    )
    .set_redirect_uri(RedirectUrl::new(WEB_CALLBACK.into()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    // The browser: follow the redirect to the login page and post the form.
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (_, resp) = socket_login(
        &browser,
        &format!("http://{addr}"),
        auth_url.as_str(),
        USER_EMAIL,
        USER_PASSWORD,
    )
    .await;
    let callback = callback_params(resp.headers()["location"].to_str().unwrap());
    assert_eq!(&callback["state"], csrf.secret());
    assert_eq!(callback["iss"], issuer);

    let tokens = client
        .exchange_code(AuthorizationCode::new(callback["code"].clone()))
        .expect("token endpoint known")
        .set_pkce_verifier(verifier)
        .request_async(&http_client)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let claims = id_token
        .claims(&client.id_token_verifier(), &nonce)
        .expect("ID token verifies");
    assert_eq!(claims.email().map(|e| e.as_str()), Some(USER_EMAIL));
    assert!(claims.subject().as_str().starts_with("auth0|"));

    let userinfo: openidconnect::core::CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .expect("userinfo endpoint known")
        .request_async(&http_client)
        .await
        .expect("userinfo");
    assert_eq!(userinfo.subject(), claims.subject());

    let refresh = tokens.refresh_token().expect("a refresh token");
    let refreshed = client
        .exchange_refresh_token(refresh)
        .expect("token endpoint known")
        .request_async(&http_client)
        .await
        .expect("refresh");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        refresh.secret(),
        "rotated"
    );
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );
    server.abort();
}

fn real_now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_crate_runs_code_flow_with_pkce_and_refresh_on_sqlite() {
    code_flow_with_pkce_and_refresh(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openidconnect_crate_runs_code_flow_with_pkce_and_refresh_on_postgres() {
    code_flow_with_pkce_and_refresh(Backend::Postgres).await;
}
