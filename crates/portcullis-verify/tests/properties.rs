//! Property tests of token parsing: any text presented as a bearer token is refused with a
//! reason, never a panic; a token the issuer signed comes back with the claims it was signed
//! with; a changed byte anywhere in it makes it refused.

use axum::Router;
use axum::routing::get;
use portcullis_crypto::jose::{SigningAlg, SigningKey};
use portcullis_verify::{AuthError, Options, Verifier};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const AUDIENCE: &str = "https://api.example";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    verifier: Verifier,
    key: SigningKey,
    issuer: String,
}

/// An issuer stand-in on loopback serving one RS256 key, and a verifier for it.
fn fixture() -> Fixture {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let key = SigningKey::generate(SigningAlg::RS256).unwrap().0;
    let jwk = key.public_jwk().clone();
    let issuer = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        let discovery = json!({"issuer": base, "jwks_uri": format!("{base}.well-known/jwks.json")});
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/.well-known/jwks.json",
                get(move || async move { axum::Json(json!({"keys": [jwk]})) }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    });
    let mut options = Options::new(&issuer, AUDIENCE);
    options.refetch_floor = Duration::from_secs(3600);
    let verifier = Verifier::new(options).unwrap();
    Fixture {
        runtime,
        verifier,
        key,
        issuer,
    }
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

fn b64(bytes: &[u8]) -> String {
    portcullis_crypto::b64url(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_text_is_refused_with_a_reason(token in prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,60}",
        (any::<Vec<u8>>(), any::<Vec<u8>>(), any::<Vec<u8>>()).prop_map(|(h, p, s)| format!("{}.{}.{}", b64(&h), b64(&p), b64(&s))),
        (proptest::sample::select(vec!["RS256", "ES256", "EdDSA", "HS256", "none", "PS256"]), "[ -~]{0,20}", any::<String>())
            .prop_map(|(alg, kid, payload)| format!("{}.{}.", b64(json!({"alg": alg, "kid": kid}).to_string().as_bytes()), b64(payload.as_bytes()))),
    ]) {
        thread_local! { static FIXTURE: Fixture = fixture(); }
        FIXTURE.with(|f| {
            match f.runtime.block_on(f.verifier.verify(&token)) {
                Err(AuthError::Invalid(why)) => assert!(!why.is_empty()),
                other => panic!("{token:?} was not refused as invalid: {other:?}"),
            }
        });
    }

    #[test]
    fn signed_claims_round_trip_and_any_changed_byte_is_refused(
        sub in "[ -~]{1,40}",
        scopes in proptest::collection::vec("[a-z:]{1,12}", 0..5),
        extra in any::<String>(),
        flip in any::<proptest::sample::Index>(),
    ) {
        thread_local! { static FIXTURE: Fixture = fixture(); }
        FIXTURE.with(|f| {
            let claims = json!({
                "iss": f.issuer, "aud": AUDIENCE, "sub": sub, "exp": now() + 600, "iat": now(),
                "scope": scopes.join(" "), "https://app.example/extra": extra,
            });
            let token = f.key.sign_jwt(&claims).unwrap();
            let checked = f.runtime.block_on(f.verifier.verify(&token)).unwrap();
            assert_eq!(checked.sub, sub);
            assert_eq!(checked.scopes, scopes);
            assert_eq!(checked.all["https://app.example/extra"], Value::String(extra.clone()));
            // Change one character of the token (not the dots between its parts).
            let mut bytes = token.clone().into_bytes();
            let i = flip.index(bytes.len());
            if bytes[i] != b'.' {
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                let changed = String::from_utf8(bytes).unwrap();
                if changed != token {
                    assert!(f.runtime.block_on(f.verifier.verify(&changed)).is_err(), "a changed token passed");
                }
            }
        });
    }
}
