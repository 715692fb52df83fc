use crate::both_backends;
use crate::harness::*;
use sqlx::Row;

async fn raw_dump(url: &str) -> String {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let mut out = String::new();
    for (table, cols) in [
        ("clients", "client_id, name, callbacks"),
        ("refresh_tokens", "token_hash, scope"),
        ("sessions", "id, secret_hash"),
        ("authorization_codes", "code_hash, request"),
    ] {
        for row in sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {cols} FROM {table}")))
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            for i in 0..row.len() {
                if let Ok(s) = row.try_get::<String, _>(i) {
                    out.push_str(&s);
                    out.push('\n');
                }
            }
        }
    }
    for row in sqlx::query("SELECT secret_sealed FROM clients WHERE secret_sealed IS NOT NULL")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let bytes: Vec<u8> = row.try_get(0).unwrap();
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    for row in sqlx::query("SELECT private_key_sealed FROM signing_keys")
        .fetch_all(&pool)
        .await
        .unwrap()
    {
        let bytes: Vec<u8> = row.try_get(0).unwrap();
        assert!(bytes.len() > 40);
        out.push_str(&String::from_utf8_lossy(&bytes));
    }
    pool.close().await;
    out
}

both_backends! {
    async fn a_second_apply_changes_nothing(app) {
        let report = app.apply(TENANT_YAML).await.unwrap();
        assert!(report.changes.is_empty(), "{:?}", report.changes);
        let changed = app.apply(&TENANT_YAML.replace("friendly_name: Test Tenant", "friendly_name: Renamed")).await.unwrap();
        assert_eq!(changed.changes, vec!["updated tenant settings".to_owned()]);
    }

    async fn a_bad_file_is_reported_with_its_line_and_changes_nothing(app) {
        let bad = TENANT_YAML.replace("roles: [admin, member]", "roles: [admin, ghost]").replace("friendly_name: Test Tenant", "friendly_name: Should Not Stick");
        let err = app.apply(&bad).await.unwrap_err();
        assert!(err.contains("ghost"), "{err}");
        assert!(err.starts_with("line "), "{err}");
        assert_eq!(app.core.tenant().await.unwrap().friendly_name, "Test Tenant");
        let err = app.apply("clients:\n  - name: X\n    callbacks: [\"https://x.example/*\"]\n").await.unwrap_err();
        assert!(err.contains("line 3") && err.contains("wildcards"), "{err}");
    }

    async fn secrets_are_sealed_or_hashed_at_rest(app) {
        let browser = Browser::new();
        let tokens = app.web_tokens(&browser, &[]).await;
        let dump = raw_dump(&app.database_url).await;
        assert!(!dump.contains(WEB_SECRET), "client secret stored in clear");
        assert!(!dump.contains(M2M_SECRET));
        assert!(!dump.contains(tokens["refresh_token"].as_str().unwrap()), "refresh token stored in clear");
        assert!(!dump.contains(&browser.cookie("pc_session").unwrap()), "session id stored in clear");
        assert!(dump.contains("web-app-client-id"));
        assert!(!dump.contains("BEGIN PRIVATE KEY"));
    }

    async fn user_ids_look_like_auth0_ids_and_keep_across_applies(app) {
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let sub = app.claims(tokens["id_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();
        assert_eq!(sub.len(), "auth0|".len() + 24);
        app.apply(&TENANT_YAML.replace("name: Uma User", "name: Uma Renamed")).await.unwrap();
        let tokens = app.web_tokens(&Browser::new(), &[]).await;
        let id = app.claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id["sub"], sub.as_str());
        assert_eq!(id["name"], "Uma Renamed");
    }
}
