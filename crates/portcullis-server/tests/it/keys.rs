use crate::both_backends;
use crate::harness::*;
use portcullis_crypto::jose::SigningAlg;

both_backends! {
    async fn a_rotated_key_is_published_before_it_signs_and_old_keys_verify_until_expiry(app) {
        let before = app.web_tokens(&Browser::new(), &[]).await;
        let old_kid = TestApp::header_of(before["id_token"].as_str().unwrap())["kid"].as_str().unwrap().to_owned();
        let new_kid = app.core.rotate_key(SigningAlg::RS256, 600).await.unwrap();
        let jwks = app.get("/.well-known/jwks.json", &Browser::new()).await.json();
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert!(kids.contains(&new_kid.as_str()) && kids.contains(&old_kid.as_str()));
        // Not yet active: the old key still signs.
        let during = app.web_tokens(&Browser::new(), &[]).await;
        assert_eq!(TestApp::header_of(during["id_token"].as_str().unwrap())["kid"], old_kid.as_str());
        app.clock.advance(601);
        app.core.reload_keys().await.unwrap();
        let after = app.web_tokens(&Browser::new(), &[]).await;
        assert_eq!(TestApp::header_of(after["id_token"].as_str().unwrap())["kid"], new_kid.as_str());
        // Tokens signed by the old key still verify, until the longest lifetime has passed.
        app.claims(before["id_token"].as_str().unwrap());
        app.clock.advance(86_400);
        app.core.reload_keys().await.unwrap();
        let jwks = app.get("/.well-known/jwks.json", &Browser::new()).await.json();
        let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
        assert!(!kids.contains(&old_kid.as_str()), "old key retired after its tokens expired");
        assert!(kids.contains(&new_kid.as_str()));
    }
}
