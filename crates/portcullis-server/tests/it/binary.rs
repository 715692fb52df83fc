//! The `portcullis` binary as an operator runs it: settings from a TOML file and a
//! `*_FILE` secret, HTTPS with rustls, JSON log lines, the CLI subcommands, and a clean
//! exit on SIGTERM.

use crate::harness::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

fn run(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("PORTCULLIS_DATABASE_URL")
        .env_remove("PORTCULLIS_MASTER_KEY");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("run portcullis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_https_from_a_config_file_logs_json_and_stops_cleanly_on_sigterm() {
    let dir = tempfile_dir::TempDir::new();
    let port = free_port();
    let issuer = format!("https://localhost:{port}/");
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    std::fs::write(dir.0.join("cert.pem"), cert.cert.pem()).unwrap();
    std::fs::write(dir.0.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
    let master = portcullis_crypto::aead::MasterKey::generate_hex();
    std::fs::write(dir.0.join("master.key"), &master).unwrap();
    let db = format!("sqlite://{}/p.db", dir.0.display());
    std::fs::write(
        dir.0.join("portcullis.toml"),
        format!(
            "listen = \"127.0.0.1:{port}\"\nissuer = \"{issuer}\"\ndatabase = \"{db}\"\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\n",
            d = dir.0.display()
        ),
    )
    .unwrap();
    let config = dir.0.join("portcullis.toml");
    let config = config.to_str().unwrap();
    let key_file = dir.0.join("master.key");
    let key_env = [
        ("PORTCULLIS_MASTER_KEY_FILE", key_file.to_str().unwrap()),
        ("SEED_PASSWORD", USER_PASSWORD),
    ];

    // apply with ${VAR} interpolation, twice: the second changes nothing.
    let tenant = TENANT_YAML.replace(ISSUER, &issuer).replace(
        "password: correct horse battery staple",
        "password: ${SEED_PASSWORD}",
    );
    std::fs::write(dir.0.join("tenant.yaml"), tenant).unwrap();
    let tenant_path = dir.0.join("tenant.yaml");
    let out = run(
        &["--config", config, "apply", tenant_path.to_str().unwrap()],
        &key_env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        &["--config", config, "apply", tenant_path.to_str().unwrap()],
        &key_env,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("No changes"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A bad file names its line and fails.
    std::fs::write(
        dir.0.join("bad.yaml"),
        "clients:\n  - name: X\n    colour: red\n",
    )
    .unwrap();
    let out = run(
        &[
            "--config",
            config,
            "apply",
            dir.0.join("bad.yaml").to_str().unwrap(),
        ],
        &key_env,
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 3"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run(
        &["--config", config, "clients", "get", "Web App", "--json"],
        &key_env,
    );
    let client: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("clients get prints JSON");
    assert_eq!(client["client_id"], "web-app-client-id");
    assert_eq!(client["client_secret"], WEB_SECRET);
    // The wrong master key cannot read the secrets.
    let out = run(
        &[
            "--config",
            config,
            "--master-key",
            &portcullis_crypto::aead::MasterKey::generate_hex(),
            "clients",
            "get",
            "Web App",
        ],
        &[],
    );
    assert!(!out.status.success());

    let mut child = Command::new(BIN)
        .args(["--config", config, "serve"])
        .env("PORTCULLIS_MASTER_KEY_FILE", key_file.to_str().unwrap())
        .env_remove("PORTCULLIS_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });

    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .build()
        .unwrap();
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{issuer}health")).send().await
            && r.status() == 200
        {
            assert!(
                r.headers()["strict-transport-security"]
                    .to_str()
                    .unwrap()
                    .contains("max-age=")
            );
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "server became healthy over HTTPS");

    // A login over HTTPS sets a Secure session cookie.
    let auth = format!(
        "{issuer}authorize?{}",
        serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", "web-app-client-id"),
            ("redirect_uri", WEB_CALLBACK),
            ("scope", "openid")
        ])
        .unwrap()
    );
    let (start, r) = socket_login(
        &http,
        &format!("https://localhost:{port}"),
        &auth,
        USER_EMAIL,
        USER_PASSWORD,
    )
    .await;
    let csrf_cookie = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(csrf_cookie.contains("Secure"));
    let csrf = csrf_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    assert_eq!(r.status(), 303);
    let session_cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("pc_session="))
        .unwrap();
    assert!(
        session_cookie.contains("Secure") && session_cookie.contains("HttpOnly"),
        "{session_cookie}"
    );
    let code = callback_params(r.headers()["location"].to_str().unwrap())["code"].clone();
    let tokens: serde_json::Value = http
        .post(format!("{issuer}oauth/token"))
        .basic_auth("web-app-client-id", Some(WEB_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", WEB_CALLBACK),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access_token = tokens["access_token"]
        .as_str()
        .expect("access token")
        .to_owned();

    // keys rotate from the CLI while the server runs: the new key is stored at once and
    // published by the running server within seconds.
    let out = run(
        &[
            "--config",
            config,
            "keys",
            "rotate",
            "--alg",
            "ES256",
            "--activate-in",
            "600",
        ],
        &key_env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let new_kid = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_owned();
    let out = run(&["--config", config, "keys", "list"], &key_env);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&new_kid));
    // The running server publishes it in its JWKS within seconds.
    eventually("the running server publishing the new key", || async {
        let jwks: serde_json::Value = http
            .get(format!("{issuer}.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == new_kid.as_str())
    })
    .await;

    // SIGTERM: the process drains and exits 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.expect("exited after SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
    let lines = logs.join().unwrap();
    assert!(!lines.is_empty());
    let mut saw_request_id = false;
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is JSON ({e}): {line}"));
        assert!(
            v["severity"].is_string() && v["message"].is_string(),
            "{line}"
        );
        saw_request_id |= v["request_id"].as_str().is_some_and(|s| !s.is_empty());
        for secret in [
            USER_PASSWORD,
            WEB_SECRET,
            master.as_str(),
            code.as_str(),
            access_token.as_str(),
            csrf.as_str(),
        ] {
            assert!(!line.contains(secret), "a secret reached the log: {line}");
        }
    }
    assert!(saw_request_id, "request logs carry the request id");
    assert!(lines.iter().any(|l| l.contains("stopped cleanly")));
}

#[test]
fn operators_manage_users_and_roles_from_the_cli() {
    let dir = tempfile_dir::TempDir::new();
    let db = format!("sqlite://{}/cli.db", dir.0.display());
    let base = [
        "--database",
        db.as_str(),
        "--data-dir",
        dir.0.to_str().unwrap(),
        "--log-format",
        "text",
    ];
    let cli = |args: &[&str], stdin: Option<&str>| {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .args(base)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = cli(
        &[
            "users",
            "create",
            "--email",
            "ops@example.com",
            "--name",
            "Ops Person",
            "--verified",
        ],
        Some("A long operator password 7\n"),
    );
    assert!(ok, "{err}");
    let user: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(user["user_id"].as_str().unwrap().starts_with("auth0|"));
    assert_eq!(user["email_verified"], true);
    let (ok, _, err) = cli(
        &["users", "create", "--email", "ops@example.com"],
        Some("A long operator password 7\n"),
    );
    assert!(!ok && err.contains("already exists"), "{err}");
    let (ok, _, err) = cli(
        &["users", "create", "--email", "weak@example.com"],
        Some("short\n"),
    );
    assert!(!ok && err.contains("weak"), "{err}");

    let (ok, out, _) = cli(&["users", "list", "--q", "email:\"ops@example.com\""], None);
    assert!(ok);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list["total"], 1);

    assert!(
        cli(
            &[
                "roles",
                "create",
                "operators",
                "--description",
                "Runs things"
            ],
            None
        )
        .0
    );
    let (ok, _, err) = cli(&["roles", "assign", "ops@example.com", "operators"], None);
    assert!(ok, "{err}");
    let (_, out, _) = cli(&["roles", "list"], None);
    assert!(out.contains("operators"));
    let (ok, out, err) = cli(&["users", "blocks", "ops@example.com", "--release"], None);
    assert!(ok && out.contains("\"blocked_for\": []"), "{out}{err}");
    let (ok, out, _) = cli(&["users", "block", "ops@example.com"], None);
    assert!(ok && out.contains("\"blocked\": true"), "{out}");
    let (ok, _, err) = cli(&["roles", "unassign", "ops@example.com", "operators"], None);
    assert!(ok, "{err}");
    let (ok, _, _) = cli(&["users", "delete", "ops@example.com"], None);
    assert!(ok);
    let (ok, _, err) = cli(&["users", "get", "ops@example.com"], None);
    assert!(!ok && err.contains("no user"), "{err}");
    let (ok, _, _) = cli(&["roles", "delete", "operators"], None);
    assert!(ok);
}
