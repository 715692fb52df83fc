//! `portcullis-verify` against a real issuer stand-in: an HTTP server on loopback serving a
//! discovery document and a JWKS, with keys made by aws-lc-rs.

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::{Request, StatusCode, header};
use axum::routing::get;
use base64::Engine;
use portcullis_crypto::jose::{SigningAlg, SigningKey};
use portcullis_verify::{AuthError, Authenticated, Options, Verifier};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower::ServiceExt;

const AUDIENCE: &str = "https://api.finance.example";

struct Issuer {
    url: String,
    keys: Arc<std::sync::Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

async fn issuer() -> Issuer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let keys: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
    let fetches = Arc::new(AtomicUsize::new(0));
    let (k, f, base) = (keys.clone(), fetches.clone(), url.clone());
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || {
                let base = base.clone();
                async move {
                    axum::Json(
                        json!({"issuer": base, "jwks_uri": format!("{base}.well-known/jwks.json")}),
                    )
                }
            }),
        )
        .route(
            "/.well-known/jwks.json",
            get(move || {
                let (k, f) = (k.clone(), f.clone());
                async move {
                    f.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"keys": *k.lock().unwrap()}))
                }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Issuer { url, keys, fetches }
}

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn claims(issuer: &str) -> Value {
    json!({
        "iss": issuer, "sub": "auth0|abc", "aud": [AUDIENCE, format!("{issuer}userinfo")],
        "iat": now(), "exp": now() + 600, "scope": "openid read:transactions",
        "permissions": ["read:transactions", "read:budgets"],
    })
}

fn key(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg).unwrap().0
}

fn options(issuer: &Issuer) -> Options {
    let mut o = Options::new(&issuer.url, AUDIENCE);
    o.refetch_floor = Duration::from_secs(3600);
    o
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

async fn refused(verifier: &Verifier, token: &str) -> String {
    match verifier.verify(token).await {
        Err(AuthError::Invalid(why)) => why.to_owned(),
        other => panic!("expected an invalid token, got {other:?}"),
    }
}

#[tokio::test]
async fn good_tokens_of_every_algorithm_pass_and_expose_their_claims() {
    let issuer = issuer().await;
    let keys: Vec<SigningKey> = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA]
        .into_iter()
        .map(key)
        .collect();
    *issuer.keys.lock().unwrap() = keys.iter().map(|k| k.public_jwk().clone()).collect();
    let verifier = Verifier::new(options(&issuer)).unwrap();
    for k in &keys {
        let token = k.sign_jwt(&claims(&issuer.url)).unwrap();
        let c = verifier.verify(&token).await.unwrap();
        assert_eq!(c.sub, "auth0|abc");
        assert!(c.has_scope("read:transactions") && c.has_permission("read:budgets"));
        assert!(c.require_permission("write:transactions").is_err());
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "keys are cached");
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_reason() {
    let issuer = issuer().await;
    let rsa = key(SigningAlg::RS256);
    *issuer.keys.lock().unwrap() = vec![rsa.public_jwk().clone()];
    let verifier = Verifier::new(options(&issuer)).unwrap();
    let sign = |c: &Value| rsa.sign_jwt(c).unwrap();

    let mut expired = claims(&issuer.url);
    expired["exp"] = json!(now() - 120);
    assert_eq!(
        refused(&verifier, &sign(&expired)).await,
        "the token has expired"
    );
    let mut future = claims(&issuer.url);
    future["nbf"] = json!(now() + 600);
    assert_eq!(
        refused(&verifier, &sign(&future)).await,
        "the token is not valid yet"
    );
    let mut audience = claims(&issuer.url);
    audience["aud"] = json!("https://other.example");
    assert_eq!(refused(&verifier, &sign(&audience)).await, "wrong audience");
    let mut iss = claims(&issuer.url);
    iss["iss"] = json!("https://evil.example/");
    assert_eq!(refused(&verifier, &sign(&iss)).await, "wrong issuer");

    // alg none, with the right kid.
    let header = b64(json!({"alg": "none", "kid": rsa.kid()})
        .to_string()
        .as_bytes());
    let body = b64(claims(&issuer.url).to_string().as_bytes());
    assert!(verifier.verify(&format!("{header}.{body}.")).await.is_err());

    // HS256 signed with the public key as the secret (the classic confusion attack).
    let public = rsa.public_jwk()["n"].as_str().unwrap().as_bytes().to_vec();
    let mut hs_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs_header.kid = Some(rsa.kid().to_owned());
    let hs = jsonwebtoken::encode(
        &hs_header,
        &claims(&issuer.url),
        &jsonwebtoken::EncodingKey::from_secret(&public),
    )
    .unwrap();
    assert_eq!(refused(&verifier, &hs).await, "algorithm not allowed");

    // A token whose header says ES256 but names the RSA key.
    let es = key(SigningAlg::ES256);
    let token = es.sign_jwt(&claims(&issuer.url)).unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[0] = b64(json!({"alg": "ES256", "kid": rsa.kid(), "typ": "JWT"})
        .to_string()
        .as_bytes());
    assert_eq!(
        refused(&verifier, &parts.join(".")).await,
        "algorithm does not match the key"
    );

    // Tampered claims.
    let good = sign(&claims(&issuer.url));
    let mut parts: Vec<&str> = good.split('.').collect();
    let mut forged_claims = claims(&issuer.url);
    forged_claims["sub"] = json!("auth0|admin");
    let forged = b64(forged_claims.to_string().as_bytes());
    parts[1] = &forged;
    assert_eq!(refused(&verifier, &parts.join(".")).await, "bad signature");
    assert!(verifier.verify("not-a-token").await.is_err());
}

#[tokio::test]
async fn unknown_kids_refetch_once_per_floor_and_pick_up_rotated_keys() {
    let issuer = issuer().await;
    // Keys and tokens are made before the clock matters (RSA key generation is slow).
    let old = key(SigningAlg::RS256);
    let stranger = key(SigningAlg::RS256);
    let new = key(SigningAlg::ES256);
    let strays: Vec<String> = (0..20)
        .map(|_| stranger.sign_jwt(&claims(&issuer.url)).unwrap())
        .collect();
    *issuer.keys.lock().unwrap() = vec![old.public_jwk().clone()];
    let mut o = options(&issuer);
    o.refetch_floor = Duration::from_secs(2);
    let verifier = Verifier::new(o).unwrap();
    verifier
        .verify(&old.sign_jwt(&claims(&issuer.url)).unwrap())
        .await
        .unwrap();
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1);

    // A flood of tokens with unknown kids: no fetch inside the floor.
    for t in &strays {
        assert_eq!(refused(&verifier, t).await, "unknown signing key");
    }
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 1, "the floor holds");

    // The issuer rotates: once the floor has passed, the new key is fetched and accepted.
    issuer.keys.lock().unwrap().push(new.public_jwk().clone());
    tokio::time::sleep(Duration::from_millis(2100)).await;
    verifier
        .verify(&new.sign_jwt(&claims(&issuer.url)).unwrap())
        .await
        .unwrap();
    assert_eq!(issuer.fetches.load(Ordering::SeqCst), 2);
}

#[derive(Clone)]
struct AppState {
    verifier: Verifier,
}

impl FromRef<AppState> for Verifier {
    fn from_ref(state: &AppState) -> Verifier {
        state.verifier.clone()
    }
}

async fn transactions(Authenticated(claims): Authenticated) -> Result<String, AuthError> {
    claims.require_permission("read:transactions")?;
    Ok(claims.sub)
}

async fn admin(
    State(_): State<AppState>,
    Authenticated(claims): Authenticated,
) -> Result<String, AuthError> {
    claims.require_permission("admin:all")?;
    Ok(claims.sub)
}

#[tokio::test]
async fn the_extractor_answers_401_and_403_with_www_authenticate() {
    let issuer = issuer().await;
    let rsa = key(SigningAlg::RS256);
    *issuer.keys.lock().unwrap() = vec![rsa.public_jwk().clone()];
    let app = Router::new()
        .route("/tx", get(transactions))
        .route("/admin", get(admin))
        .with_state(AppState {
            verifier: Verifier::new(options(&issuer)).unwrap(),
        });
    let call = |path: &str, auth: Option<String>| {
        let mut req = Request::get(path);
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        app.clone().oneshot(req.body(Body::empty()).unwrap())
    };
    let none = call("/tx", None).await.unwrap();
    assert_eq!(none.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        none.headers()[header::WWW_AUTHENTICATE],
        "Bearer realm=\"api\""
    );
    let bad = call("/tx", Some("Bearer nope".into())).await.unwrap();
    assert_eq!(bad.status(), StatusCode::UNAUTHORIZED);
    assert!(
        bad.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    let token = rsa.sign_jwt(&claims(&issuer.url)).unwrap();
    let ok = call("/tx", Some(format!("Bearer {token}"))).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let forbidden = call("/admin", Some(format!("Bearer {token}")))
        .await
        .unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let challenge = forbidden.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"admin:all\""),
        "{challenge}"
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_a_503_not_a_panic() {
    let mut o = Options::new("http://127.0.0.1:9/", AUDIENCE);
    o.refetch_floor = Duration::from_secs(60);
    let verifier = Verifier::new(o).unwrap();
    let token = key(SigningAlg::RS256)
        .sign_jwt(&json!({"sub": "x"}))
        .unwrap();
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::Unavailable)
    ));
}

#[tokio::test]
async fn tokens_without_kid_and_scope_arrays_are_understood() {
    let issuer = issuer().await;
    let (es, der) = SigningKey::generate(SigningAlg::ES256).unwrap();
    let mut jwk = es.public_jwk().clone();
    jwk.as_object_mut().unwrap().remove("kid");
    *issuer.keys.lock().unwrap() = vec![jwk];
    let verifier = Verifier::new(options(&issuer)).unwrap();
    // No kid in the header, scopes as an `scp` array (as some issuers send them).
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256),
        &json!({"iss": issuer.url, "sub": "u", "aud": AUDIENCE, "exp": now() + 60, "scp": ["read:transactions"]}),
        &jsonwebtoken::EncodingKey::from_ec_der(&der),
    )
    .unwrap();
    let claims = verifier.verify(&token).await.unwrap();
    assert!(claims.has_scope("read:transactions"));
    assert!(!claims.has_permissions_claim);
    assert!(
        claims.require_permission("read:transactions").is_ok(),
        "scopes grant without RBAC claims"
    );
}

#[test]
fn with_a_permissions_claim_only_permissions_grant() {
    let claims = portcullis_verify::Claims {
        sub: "u".into(),
        scopes: vec!["read:all_users".into()],
        permissions: vec!["read:transactions".into()],
        has_permissions_claim: true,
        all: json!({}),
    };
    assert!(claims.require_permission("read:transactions").is_ok());
    assert!(
        claims.require_permission("read:all_users").is_err(),
        "a requested scope is not a permission"
    );
}
