use crate::both_backends;
use crate::harness::*;
use axum::http::StatusCode;
use portcullis_core::store::prelude::*;
use serde_json::json;

const WEB: (&str, &str) = ("web-app-client-id", WEB_SECRET);

fn pkce_pair() -> (String, String) {
    let verifier = portcullis_crypto::b64url(&portcullis_crypto::random_bytes::<32>());
    let challenge = portcullis_crypto::b64url(&portcullis_crypto::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

both_backends! {
    async fn code_exchange_returns_tokens_with_auth0_claims(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        assert_eq!(tokens["token_type"], "Bearer");
        assert_eq!(tokens["scope"], "openid profile email offline_access");
        assert!(tokens["refresh_token"].as_str().unwrap().starts_with("rt_"));
        let id = app.claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["iss"], ISSUER);
        assert_eq!(id["aud"], "web-app-client-id");
        assert_eq!(id["nonce"], "n-456");
        assert_eq!(id["email"], USER_EMAIL);
        assert_eq!(id["email_verified"], true);
        assert_eq!(id["name"], "Uma User");
        assert!(id["sub"].as_str().unwrap().starts_with("auth0|"));
        assert!(id["sid"].is_string());
        assert_eq!(id["auth_time"], START);
        assert_eq!(id["exp"], START + 36_000);
        assert_eq!(id["https://yourapp.com/roles"], json!(["member"]));
        assert_eq!(TestApp::header_of(tokens["id_token"].as_str().unwrap())["alg"], "RS256");
        let at = app.claims(tokens["access_token"].as_str().unwrap());
        assert_eq!(at["aud"], format!("{ISSUER}userinfo"));
        assert_eq!(at["azp"], "web-app-client-id");
        assert_eq!(at["sub"], id["sub"]);
        assert!(at["jti"].is_string());
        assert_eq!(at["scope"], "openid profile email offline_access");
    }

    async fn the_roles_claim_lists_the_users_roles_in_both_tokens(app) {
        let p = app.login_code(&Browser::new(), &[("audience", "https://api.finance.example")], ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let tokens = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", WEB_CALLBACK)], Some(WEB)).await.json();
        let roles = json!(["admin", "member"]);
        assert_eq!(app.claims(tokens["id_token"].as_str().unwrap())["https://yourapp.com/roles"], roles);
        assert_eq!(app.claims(tokens["access_token"].as_str().unwrap())["https://yourapp.com/roles"], roles);
    }

    async fn an_api_audience_gets_an_access_token_for_the_api_and_userinfo(app) {
        let tokens = app.web_tokens(&Browser::new(), &[("audience", "https://api.finance.example"), ("scope", "openid read:transactions delete:everything")]).await;
        let at = app.claims(tokens["access_token"].as_str().unwrap());
        assert_eq!(at["aud"], json!(["https://api.finance.example", format!("{ISSUER}userinfo")]));
        assert_eq!(at["scope"], "openid read:transactions");
        assert_eq!(tokens["expires_in"], 86_400);
    }

    async fn client_secret_basic_and_post_both_work_but_not_together(app) {
        let p = app.login_code(&Browser::new(), &[], USER_EMAIL, USER_PASSWORD).await;
        let form = [("grant_type", "authorization_code"), ("code", p["code"].as_str()), ("redirect_uri", WEB_CALLBACK), ("client_id", WEB.0), ("client_secret", WEB.1)];
        let both = app.token(&form, Some(WEB)).await;
        assert_eq!(both.status, StatusCode::BAD_REQUEST);
        assert_eq!(both.json()["error"], "invalid_request");
        let post = app.token(&form, None).await;
        assert_eq!(post.status, StatusCode::OK, "{}", post.text);
        assert_eq!(post.header("cache-control").as_deref(), Some("no-store"));
    }

    async fn a_wrong_client_secret_is_invalid_client_with_a_basic_challenge(app) {
        let resp = app.token(&[("grant_type", "client_credentials"), ("audience", "https://api.finance.example")], Some(("m2m-client-id", "wrong-secret"))).await;
        assert_eq!(resp.status, StatusCode::UNAUTHORIZED);
        assert_eq!(resp.json()["error"], "invalid_client");
        assert!(resp.header("www-authenticate").unwrap().starts_with("Basic"));
        let unknown = app.token(&[("grant_type", "client_credentials"), ("client_id", "ghost"), ("client_secret", "x")], None).await;
        assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.json(), resp.json());
    }

    async fn errors_follow_rfc6749_json_shapes(app) {
        let resp = app.token(&[("grant_type", "password")], Some(WEB)).await;
        assert_eq!(resp.status, StatusCode::BAD_REQUEST);
        assert_eq!(resp.json()["error"], "unsupported_grant_type");
        let resp = app.token(&[], Some(WEB)).await;
        assert_eq!(resp.json()["error"], "invalid_request");
        let resp = app.token(&[("grant_type", "authorization_code"), ("code", "ac_bogus"), ("redirect_uri", WEB_CALLBACK)], Some(WEB)).await;
        assert_eq!(resp.json()["error"], "invalid_grant");
        let resp = app.token(&[("grant_type", "client_credentials"), ("audience", "https://api.finance.example")], Some(WEB)).await;
        assert_eq!(resp.json()["error"], "unauthorized_client");
        assert!(resp.json()["error_description"].is_string());
    }

    async fn a_code_is_single_use_and_a_replay_revokes_what_it_issued(app) {
        let p = app.login_code(&Browser::new(), &[], USER_EMAIL, USER_PASSWORD).await;
        let form = [("grant_type", "authorization_code"), ("code", p["code"].as_str()), ("redirect_uri", WEB_CALLBACK)];
        let first = app.token(&form, Some(WEB)).await.json();
        let replay = app.token(&form, Some(WEB)).await;
        assert_eq!(replay.status, StatusCode::BAD_REQUEST);
        assert_eq!(replay.json()["error"], "invalid_grant");
        let refresh = app.token(&[("grant_type", "refresh_token"), ("refresh_token", first["refresh_token"].as_str().unwrap())], Some(WEB)).await;
        assert_eq!(refresh.json()["error"], "invalid_grant", "refresh token revoked");
        assert_eq!(app.userinfo(first["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED, "access token revoked");
    }

    async fn concurrent_exchanges_of_one_code_yield_exactly_one_token_set(app) {
        let p = app.login_code(&Browser::new(), &[], USER_EMAIL, USER_PASSWORD).await;
        let code = p["code"].clone();
        let attempts = (0..8).map(|_| {
            let code = code.clone();
            let app = &app;
            async move {
                app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", WEB_CALLBACK)], Some(WEB)).await.status
            }
        });
        let statuses = futures_util::future::join_all(attempts).await;
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    }

    async fn regular_web_apps_default_to_non_rotating_refresh_tokens(app) {
        app.apply("clients:\n  - name: Plain Web\n    callbacks: [\"https://plain.example/cb\"]\n").await.unwrap();
        let clients = app.store.list_clients(app.core.tenant_id()).await.unwrap();
        let plain = clients.iter().find(|c| c.name == "Plain Web").unwrap();
        assert_eq!(plain.refresh_token.rotation_type, portcullis_core::model::RotationType::NonRotating);
        let spa = clients.iter().find(|c| c.name == "SPA").unwrap();
        assert_eq!(spa.refresh_token.rotation_type, portcullis_core::model::RotationType::Rotating);
    }

    async fn public_clients_must_rotate_refresh_tokens(app) {
        use portcullis_core::model::RotationType;
        // The default for any client without a secret, whatever its app type, is rotation.
        app.apply("clients:\n  - name: Public Web\n    token_endpoint_auth_method: none\n    grant_types: [authorization_code, refresh_token]\n    callbacks: [\"https://public.example/cb\"]\n").await.unwrap();
        let clients = app.store.list_clients(app.core.tenant_id()).await.unwrap();
        let public = clients.iter().find(|c| c.name == "Public Web").unwrap();
        assert_eq!(public.refresh_token.rotation_type, RotationType::Rotating);
        // The tenant file may not turn it off (a block without rotation_type is non-rotating).
        for policy in ["{rotation_type: non-rotating}", "{leeway: 5}"] {
            let refused = app.apply(&format!("clients:\n  - name: Leaky SPA\n    app_type: spa\n    callbacks: [\"https://spa.example/cb\"]\n    refresh_token: {policy}\n")).await.unwrap_err();
            assert!(refused.contains("must rotate its refresh tokens"), "{refused}");
        }
        // Nor may the Management API, on create or update.
        let token = app.management_token("admin-tool-id", "admin-tool-secret-0123456789abcdef").await;
        let created = app.api("POST", "/api/v2/clients", Some(&token), Some(serde_json::json!({
            "name": "Leaky Native", "app_type": "native", "callbacks": ["app://cb"],
            "refresh_token": {"rotation_type": "non-rotating"}
        }))).await;
        assert_eq!(created.status, StatusCode::BAD_REQUEST, "{}", created.text);
        assert!(created.text.contains("must rotate"), "{}", created.text);
        let patched = app.api("PATCH", "/api/v2/clients/spa-client-id", Some(&token), Some(serde_json::json!({
            "refresh_token": {"rotation_type": "non-rotating"}
        }))).await;
        assert_eq!(patched.status, StatusCode::BAD_REQUEST, "{}", patched.text);
        let spa = app.store.find_client(app.core.tenant_id(), "spa-client-id").await.unwrap().unwrap();
        assert_eq!(spa.refresh_token.rotation_type, RotationType::Rotating, "nothing changed");
    }

    async fn a_code_expires_and_must_come_back_with_its_redirect_uri_and_client(app) {
        let p = app.login_code(&Browser::new(), &[], USER_EMAIL, USER_PASSWORD).await;
        let wrong_uri = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", "https://app.example.com/other")], Some(WEB)).await;
        assert_eq!(wrong_uri.json()["error"], "invalid_grant");
        let p = app.login_code(&Browser::new(), &[], USER_EMAIL, USER_PASSWORD).await;
        let other_client = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", WEB_CALLBACK)], Some(("second-app-client-id", "second-app-secret-0123456789ab"))).await;
        assert_eq!(other_client.json()["error"], "invalid_grant");
        // Another client's attempt neither spends the code nor revokes anything.
        let rightful = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", WEB_CALLBACK)], Some(WEB)).await;
        assert_eq!(rightful.status, StatusCode::OK, "{}", rightful.text);
        let p = app.login_code(&Browser::new(), &[], USER_EMAIL, USER_PASSWORD).await;
        app.clock.advance(301);
        let late = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", WEB_CALLBACK)], Some(WEB)).await;
        assert_eq!(late.json()["error"], "invalid_grant");
    }

    async fn a_public_client_needs_a_matching_pkce_verifier(app) {
        let browser = Browser::new();
        let (verifier, challenge) = pkce_pair();
        let form = app.start_login(&browser, &[("response_type", "code"), ("client_id", "spa-client-id"), ("redirect_uri", SPA_CALLBACK), ("scope", "openid offline_access"), ("code_challenge", &challenge), ("code_challenge_method", "S256")]).await;
        let resp = app.submit_login(&browser, &form, USER_EMAIL, USER_PASSWORD).await;
        let code = callback_params(&resp.location().unwrap())["code"].clone();
        let (other_verifier, _) = pkce_pair();
        let bad = app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", SPA_CALLBACK), ("client_id", "spa-client-id"), ("code_verifier", &other_verifier)], None).await;
        assert_eq!(bad.json()["error"], "invalid_grant");
        // The failed attempt spent the code.
        let resp = app.get(&format!("/authorize?{}", serde_urlencoded::to_string([("response_type", "code"), ("client_id", "spa-client-id"), ("redirect_uri", SPA_CALLBACK), ("scope", "openid offline_access"), ("code_challenge", challenge.as_str()), ("code_challenge_method", "S256")]).unwrap()), &browser).await;
        let code = callback_params(&resp.location().unwrap())["code"].clone();
        let good = app.token(&[("grant_type", "authorization_code"), ("code", &code), ("redirect_uri", SPA_CALLBACK), ("client_id", "spa-client-id"), ("code_verifier", &verifier)], None).await;
        assert_eq!(good.status, StatusCode::OK, "{}", good.text);
        assert!(good.json()["refresh_token"].is_string());
        let with_secret = app.token(&[("grant_type", "refresh_token"), ("refresh_token", good.json()["refresh_token"].as_str().unwrap()), ("client_id", "spa-client-id"), ("client_secret", "anything")], None).await;
        assert_eq!(with_secret.json()["error"], "invalid_client");
    }

    async fn rotating_refresh_tokens_rotate_and_reuse_revokes_the_family(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let rt1 = tokens["refresh_token"].as_str().unwrap().to_owned();
        let second = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)], Some(WEB)).await;
        assert_eq!(second.status, StatusCode::OK, "{}", second.text);
        let second = second.json();
        let rt2 = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(rt1, rt2);
        let id = app.claims(second["id_token"].as_str().unwrap());
        assert_eq!(id["auth_time"], START);
        // Widening the scope is refused and spends nothing.
        let wider = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("scope", "openid offline_access email profile read:all")], Some(WEB)).await;
        assert_eq!(wider.json()["error"], "invalid_scope");
        // Narrowing is allowed: the tokens carry only what was asked for.
        let narrower = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt2), ("scope", "openid offline_access")], Some(WEB)).await;
        assert_eq!(narrower.status, StatusCode::OK, "{}", narrower.text);
        let narrower = narrower.json();
        assert_eq!(narrower["scope"], "openid offline_access");
        assert_eq!(app.claims(narrower["access_token"].as_str().unwrap())["scope"], "openid offline_access");
        let info = app.userinfo(narrower["access_token"].as_str().unwrap()).await.json();
        assert!(info.get("email").is_none(), "no email without the email scope: {info}");
        let rt3 = narrower["refresh_token"].as_str().unwrap().to_owned();
        // Reusing the rotated token revokes the whole family, including the newest token.
        let reuse = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)], Some(WEB)).await;
        assert_eq!(reuse.json()["error"], "invalid_grant");
        let after = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt3)], Some(WEB)).await;
        assert_eq!(after.json()["error"], "invalid_grant");
    }

    async fn concurrent_refreshes_of_one_token_spend_it_once(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let rt = tokens["refresh_token"].as_str().unwrap().to_owned();
        let attempts = (0..8).map(|_| {
            let (app, rt) = (&app, rt.clone());
            async move { app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt)], Some(WEB)).await }
        });
        let answers = futures_util::future::join_all(attempts).await;
        let won: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::OK).collect();
        assert_eq!(won.len(), 1, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
        assert!(answers.iter().filter(|a| a.status != StatusCode::OK).all(|a| a.json()["error"] == "invalid_grant"));
        // The other presentations were reuses of a spent token: the family is revoked.
        let next = won[0].json()["refresh_token"].as_str().unwrap().to_owned();
        let after = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &next)], Some(WEB)).await;
        assert_eq!(after.json()["error"], "invalid_grant");
    }

    async fn concurrent_refresh_chains_all_rotate(app) {
        // Writers that arrive together queue for the database; none fails as busy.
        let mut chains = Vec::new();
        for _ in 0..12 {
            chains.push(app.web_tokens(&Browser::new(), &[]).await["refresh_token"].as_str().unwrap().to_owned());
        }
        for _ in 0..3 {
            let rounds = chains.iter().map(|rt| {
                let app = &app;
                async move {
                    let r = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(WEB)).await;
                    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
                    r.json()["refresh_token"].as_str().unwrap().to_owned()
                }
            });
            chains = futures_util::future::join_all(rounds).await;
        }
    }

    async fn a_blocked_users_refresh_token_is_refused_until_unblocked(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let rt = tokens["refresh_token"].as_str().unwrap();
        app.apply(&TENANT_YAML.replace("    name: Uma User\n", "    name: Uma User\n    blocked: true\n")).await.unwrap();
        let refused = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(WEB)).await;
        assert_eq!(refused.json()["error"], "invalid_grant", "{}", refused.text);
        // The refusal spent nothing: once unblocked, the same token rotates.
        app.apply(TENANT_YAML).await.unwrap();
        let again = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(WEB)).await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    }

    async fn a_rotation_that_fails_part_way_spends_nothing(app) {
        use portcullis_core::store::AccessRecord;
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let rt = tokens["refresh_token"].as_str().unwrap();
        let hash = portcullis_crypto::token::hash_token(rt);
        let store = &app.store;
        let old = store.find_refresh_token("default", &hash).await.unwrap().unwrap();
        let next = portcullis_core::model::RefreshToken { token_hash: "a-new-hash".to_owned(), id: "a-new-id".to_owned(), ..old.clone() };
        // The access record's id is taken (the code exchange recorded it): its insert, the
        // rotation's last write, fails after the old token was marked spent.
        let jti = app.claims(tokens["access_token"].as_str().unwrap())["jti"].as_str().unwrap().to_owned();
        let clash = AccessRecord { jti, grant_id: old.grant_id.clone(), expires_at: START + 3600 };
        assert!(store.rotate_refresh_token("default", &hash, &next, &clash, START, None).await.is_err());
        assert_eq!(store.find_refresh_token("default", &hash).await.unwrap().unwrap().used_at, None);
        assert!(store.find_refresh_token("default", "a-new-hash").await.unwrap().is_none());
        // The store still writes, and the old token still rotates.
        let r = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(WEB)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }

    async fn a_rotated_token_reused_within_the_leeway_rotates_again(app) {
        let admin = app.management_token("admin-tool-id", "admin-tool-secret-0123456789abcdef").await;
        let patch = json!({"refresh_token": {"rotation_type": "rotating", "leeway": 30}});
        let r = app.api("PATCH", "/api/v2/clients/web-app-client-id", Some(&admin), Some(patch)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let rt1 = tokens["refresh_token"].as_str().unwrap().to_owned();
        let second = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)], Some(WEB)).await.json();
        // The rotated grant's access token was recorded with it: /userinfo accepts it.
        assert_eq!(app.userinfo(second["access_token"].as_str().unwrap()).await.status, StatusCode::OK);
        // Within the leeway (a retry after a lost answer), the old token rotates again.
        app.clock.advance(10);
        let retry = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)], Some(WEB)).await;
        assert_eq!(retry.status, StatusCode::OK, "{}", retry.text);
        assert_ne!(retry.json()["refresh_token"], second["refresh_token"]);
        // Past it, the reuse revokes the family and its access tokens.
        app.clock.advance(30);
        let late = app.token(&[("grant_type", "refresh_token"), ("refresh_token", &rt1)], Some(WEB)).await;
        assert_eq!(late.json()["error"], "invalid_grant");
        let rt2 = second["refresh_token"].as_str().unwrap();
        assert_eq!(app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt2)], Some(WEB)).await.json()["error"], "invalid_grant");
        assert_eq!(app.userinfo(second["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
    }

    async fn refresh_tokens_expire_after_their_idle_lifetime(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        app.clock.advance(1_296_001);
        let resp = app.token(&[("grant_type", "refresh_token"), ("refresh_token", tokens["refresh_token"].as_str().unwrap())], Some(WEB)).await;
        assert_eq!(resp.json()["error"], "invalid_grant");
    }

    async fn non_rotating_refresh_tokens_are_reusable(app) {
        let browser = Browser::new();
        let p = app.login_code(&browser, &[("client_id", "nonrotating-client"), ("redirect_uri", "https://nr.example.com/callback")], USER_EMAIL, USER_PASSWORD).await;
        let creds = Some(("nonrotating-client", "nonrotating-secret-0123456789"));
        let tokens = app.token(&[("grant_type", "authorization_code"), ("code", &p["code"]), ("redirect_uri", "https://nr.example.com/callback")], creds).await.json();
        let rt = tokens["refresh_token"].as_str().unwrap();
        for _ in 0..2 {
            let r = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)], creds).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert!(r.json().get("refresh_token").is_none());
        }
    }

    async fn client_credentials_issue_machine_tokens_for_each_algorithm(app) {
        for (audience, alg, lifetime) in [("https://api.finance.example", "RS256", 86_400), ("https://es.example", "ES256", 600), ("https://ed.example", "EdDSA", 86_400)] {
            let resp = app.token(&[("grant_type", "client_credentials"), ("audience", audience)], Some(("m2m-client-id", M2M_SECRET))).await;
            assert_eq!(resp.status, StatusCode::OK, "{audience}: {}", resp.text);
            let body = resp.json();
            assert_eq!(body["expires_in"], lifetime);
            let token = body["access_token"].as_str().unwrap();
            assert_eq!(TestApp::header_of(token)["alg"], alg);
            let claims = app.claims(token);
            assert_eq!(claims["sub"], "m2m-client-id@clients");
            assert_eq!(claims["gty"], "client-credentials");
            assert_eq!(claims["aud"], audience);
            assert_eq!(claims["azp"], "m2m-client-id");
            assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
        }
        let json_body = app.send(
            axum::http::Request::post("/oauth/token")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(json!({"grant_type": "client_credentials", "client_id": "m2m-client-id", "client_secret": M2M_SECRET, "audience": "https://api.finance.example"}).to_string()))
                .unwrap(),
        ).await;
        assert_eq!(json_body.status, StatusCode::OK, "Auth0 SDKs post JSON: {}", json_body.text);
        assert_eq!(json_body.json()["scope"], "read:transactions");
    }

    async fn client_credentials_need_a_client_grant_and_granted_scopes(app) {
        let creds = Some(("m2m-client-id", M2M_SECRET));
        let none = app.token(&[("grant_type", "client_credentials"), ("audience", "https://nowhere.example")], creds).await;
        assert_eq!(none.status, StatusCode::FORBIDDEN);
        assert_eq!(none.json()["error"], "access_denied");
        let scope = app.token(&[("grant_type", "client_credentials"), ("audience", "https://api.finance.example"), ("scope", "write:transactions")], creds).await;
        assert_eq!(scope.status, StatusCode::FORBIDDEN);
        let missing = app.token(&[("grant_type", "client_credentials")], creds).await;
        assert_eq!(missing.json()["error"], "invalid_request");
    }

    async fn revoking_a_refresh_token_ends_its_grant(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let rt = tokens["refresh_token"].as_str().unwrap();
        let resp = app.post_oauth("/oauth/revoke", &[("token", rt)], Some(WEB)).await;
        assert_eq!(resp.status, StatusCode::OK);
        let after = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(WEB)).await;
        assert_eq!(after.json()["error"], "invalid_grant");
        assert_eq!(app.userinfo(tokens["access_token"].as_str().unwrap()).await.status, StatusCode::UNAUTHORIZED);
        let unknown = app.post_oauth("/oauth/revoke", &[("token", "whatever")], Some(WEB)).await;
        assert_eq!(unknown.status, StatusCode::OK, "unknown tokens are not an error (RFC 7009)");
    }

    async fn another_client_cannot_revoke_a_token(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let rt = tokens["refresh_token"].as_str().unwrap();
        let resp = app.post_oauth("/oauth/revoke", &[("token", rt)], Some(("second-app-client-id", "second-app-secret-0123456789ab"))).await;
        assert_eq!(resp.status, StatusCode::OK);
        let still = app.token(&[("grant_type", "refresh_token"), ("refresh_token", rt)], Some(WEB)).await;
        assert_eq!(still.status, StatusCode::OK);
    }

    async fn introspection_reports_active_and_inactive_tokens(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let at = tokens["access_token"].as_str().unwrap();
        let resp = app.post_oauth("/oauth/introspect", &[("token", at)], Some(WEB)).await;
        let body = resp.json();
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["client_id"], "web-app-client-id");
        let rt = tokens["refresh_token"].as_str().unwrap();
        let body = app.post_oauth("/oauth/introspect", &[("token", rt)], Some(WEB)).await.json();
        assert_eq!(body["active"], true);
        assert_eq!(body["token_type"], "refresh_token");
        let body = app.post_oauth("/oauth/introspect", &[("token", "garbage")], Some(WEB)).await.json();
        assert_eq!(body, json!({"active": false}));
        app.clock.advance(86_401);
        let body = app.post_oauth("/oauth/introspect", &[("token", at)], Some(WEB)).await.json();
        assert_eq!(body["active"], false, "expired");
        let public = app.post_oauth("/oauth/introspect", &[("token", at), ("client_id", "spa-client-id")], None).await;
        assert_eq!(public.status, StatusCode::UNAUTHORIZED);
    }

    async fn a_client_introspects_only_its_own_tokens_or_those_for_its_apis(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let at = tokens["access_token"].as_str().unwrap();
        let other = app.post_oauth("/oauth/introspect", &[("token", at)], Some(("second-app-client-id", "second-app-secret-0123456789ab"))).await.json();
        assert_eq!(other, json!({"active": false}));
        let api_token = app.web_tokens(&Browser::new(), &[("audience", "https://api.finance.example"), ("scope", "openid read:transactions")]).await;
        let as_api = app.post_oauth("/oauth/introspect", &[("token", api_token["access_token"].as_str().unwrap())], Some(("m2m-client-id", M2M_SECRET))).await.json();
        assert_eq!(as_api["active"], true, "a client with a grant for the API acts as the API");
        app.apply(&TENANT_YAML.replace("    name: Uma User\n", "    name: Uma User\n    blocked: true\n")).await.unwrap();
        let blocked = app.post_oauth("/oauth/introspect", &[("token", at)], Some(WEB)).await.json();
        assert_eq!(blocked["active"], false, "a blocked user's tokens are inactive");
    }
}
