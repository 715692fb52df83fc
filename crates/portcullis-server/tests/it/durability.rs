//! What survives `kill -9`: the `portcullis` binary under a Management API load is killed
//! without warning, and every change it acknowledged is in the database with its audit
//! event.

use crate::harness::*;
use portcullis_core::store::prelude::*;
use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const USERS: usize = 20_000;
const WORKERS: usize = 8;

fn load_user(i: usize) -> portcullis_core::model::User {
    portcullis_core::model::User {
        tenant_id: "default".to_owned(),
        user_id: format!("auth0|load{i:06}"),
        connection: portcullis_core::model::DATABASE_CONNECTION.to_owned(),
        email: format!("load{i:06}@example.com"),
        email_verified: true,
        name: format!("Load {i}"),
        nickname: format!("load{i}"),
        picture: String::new(),
        password_hash: None,
        user_metadata: serde_json::json!({}),
        app_metadata: serde_json::json!({}),
        blocked: false,
        created_at: START,
        updated_at: START,
        last_login: None,
        logins_count: 0,
    }
}

async fn kill_during_load(backend: Backend) {
    let Some((database, _scratch)) = database_url(backend).await else {
        return;
    };
    let dir = tempfile_dir::TempDir::new();
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}/");
    let master = portcullis_crypto::aead::MasterKey::generate_hex();
    let env = [
        ("PORTCULLIS_DATABASE_URL", database.as_str()),
        ("PORTCULLIS_MASTER_KEY", master.as_str()),
        ("PORTCULLIS_ISSUER", issuer.as_str()),
    ];
    std::fs::write(
        dir.0.join("tenant.yaml"),
        TENANT_YAML.replace(ISSUER, &issuer),
    )
    .unwrap();
    let applied = Command::new(BIN)
        .args(["apply", dir.0.join("tenant.yaml").to_str().unwrap()])
        .envs(env)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let store = portcullis_store::SqlStore::connect(&database)
        .await
        .unwrap();
    let users: Vec<_> = (0..USERS).map(load_user).collect();
    for chunk in users.chunks(1000) {
        store.insert_users(chunk).await.unwrap();
    }

    let mut server = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--rate-limits",
            "management_per_ip=100000000,management_per_client=100000000,token_per_ip=100000000",
        ])
        .envs(env)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let http = reqwest::Client::new();
    eventually("the server starting", || async {
        http.get(format!("{issuer}health"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    let token: serde_json::Value = http
        .post(format!("{issuer}oauth/token"))
        .basic_auth("admin-tool-id", Some("admin-tool-secret-0123456789abcdef"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("audience", &format!("{issuer}api/v2/")),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();

    // Eight clients change users as fast as the server answers; each answered change is
    // acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<usize>::new()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let (http, token, issuer, acknowledged) = (
                http.clone(),
                token.clone(),
                issuer.clone(),
                Arc::clone(&acknowledged),
            );
            tokio::spawn(async move {
                for i in (w..USERS).step_by(WORKERS) {
                    let sent = http
                        .patch(format!("{issuer}api/v2/users/auth0%7Cload{i:06}"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({"user_metadata": {"mark": format!("m{i}")}}))
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => acknowledged.lock().unwrap().push(i),
                        Ok(r) => panic!("unexpected {}", r.status()),
                        // The server is gone.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGKILL: no drain, no flush.
    server.kill().unwrap();
    server.wait().unwrap();
    for w in workers {
        w.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    // Reopened, as a restart would: every acknowledged change is there, with its event.
    let store = portcullis_store::SqlStore::connect(&database)
        .await
        .unwrap();
    let events = store
        .search_log_events(
            "default",
            &portcullis_core::audit::LogFilter {
                kind: Some("sapi".to_owned()),
                limit: 1_000_000,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .items;
    let logged: HashSet<String> = events
        .iter()
        .filter_map(|e| e.details["request"]["path"].as_str().map(str::to_owned))
        .collect();
    for i in &acknowledged {
        let user = store
            .find_user("default", &format!("auth0|load{i:06}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            user.user_metadata["mark"],
            format!("m{i}"),
            "change {i} was lost"
        );
        assert!(
            logged.contains(&format!("/api/v2/users/auth0%7Cload{i:06}")),
            "the audit event of acknowledged change {i} was lost ({} acknowledged, {} events)",
            acknowledged.len(),
            logged.len()
        );
    }
    eprintln!(
        "kill -9 ({backend:?}): {} changes acknowledged, {} sapi events, none lost",
        acknowledged.len(),
        logged.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_management_load_loses_no_acknowledged_change_nor_its_event_sqlite() {
    kill_during_load(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_management_load_loses_no_acknowledged_change_nor_its_event_postgres() {
    kill_during_load(Backend::Postgres).await;
}
