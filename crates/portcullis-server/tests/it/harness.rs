//! `TestApp`: the production router driven in-process with `oneshot`, a mock clock, and a
//! fresh database per test (SQLite always; PostgreSQL when PORTCULLIS_TEST_POSTGRES_URL is
//! set, and required when PORTCULLIS_TEST_REQUIRE_POSTGRES=1).

use axum::body::Body;
use axum::http::{Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use portcullis_core::clock::MockClock;
use portcullis_core::passwords::PasswordPool;
use portcullis_core::service::{Portcullis, Settings};
use portcullis_crypto::aead::MasterKey;
use portcullis_store::SqlStore;
use serde_json::Value;
use sqlx::Connection;
use std::collections::HashMap;
use std::sync::Arc;
use tower::ServiceExt;

pub const ISSUER: &str = "http://portcullis.test/";
pub const WEB_CALLBACK: &str = "https://app.example.com/callback";
pub const SPA_CALLBACK: &str = "http://localhost:3000/callback";
pub const USER_EMAIL: &str = "user@example.com";
pub const USER_PASSWORD: &str = "correct horse battery staple";
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "another long passphrase";
pub const WEB_SECRET: &str = "web-app-secret-0123456789abcdef";
pub const M2M_SECRET: &str = "m2m-secret-0123456789abcdef-xyz";
pub const START: i64 = 1_800_000_000;

pub const TENANT_YAML: &str = r#"
tenant:
  friendly_name: Test Tenant
  roles_claim: https://yourapp.com/roles
clients:
  - name: Web App
    app_type: regular_web
    client_id: web-app-client-id
    client_secret: web-app-secret-0123456789abcdef
    callbacks: ["https://app.example.com/callback"]
    allowed_logout_urls: ["https://app.example.com/"]
    grant_types: [authorization_code, refresh_token]
    refresh_token:
      rotation_type: rotating
  - name: Second App
    app_type: regular_web
    client_id: second-app-client-id
    client_secret: second-app-secret-0123456789ab
    callbacks: ["https://second.example.com/callback"]
    grant_types: [authorization_code]
  - name: Partner App
    app_type: regular_web
    client_id: partner-client-id
    client_secret: partner-secret-0123456789abcdef
    callbacks: ["https://partner.example/callback"]
    grant_types: [authorization_code]
    is_first_party: false
  - name: SPA
    app_type: spa
    client_id: spa-client-id
    callbacks: ["http://localhost:3000/callback"]
    web_origins: ["http://localhost:3000"]
    refresh_token:
      rotation_type: rotating
      leeway: 0
  - name: Non Rotating
    app_type: regular_web
    client_id: nonrotating-client
    client_secret: nonrotating-secret-0123456789
    callbacks: ["https://nr.example.com/callback"]
    grant_types: [authorization_code, refresh_token]
    refresh_token:
      rotation_type: non-rotating
  - name: Machine
    app_type: non_interactive
    client_id: m2m-client-id
    client_secret: m2m-secret-0123456789abcdef-xyz
  - name: Admin Tool
    app_type: non_interactive
    client_id: admin-tool-id
    client_secret: admin-tool-secret-0123456789abcdef
  - name: No Scope Tool
    app_type: non_interactive
    client_id: noscope-tool-id
    client_secret: noscope-tool-secret-0123456789abcd
  - name: Reader Tool
    app_type: non_interactive
    client_id: reader-tool-id
    client_secret: reader-tool-secret-0123456789abcde
resourceServers:
  - name: Finance API
    identifier: https://api.finance.example
    scopes:
      - value: read:transactions
        description: Read transactions
      - value: write:transactions
    allow_offline_access: true
  - name: ES API
    identifier: https://es.example
    signing_alg: ES256
    token_lifetime: 600
    scopes: [{value: read:things}]
  - name: Coach API
    identifier: https://coach.example
    enforce_policies: true
    token_dialect: access_token_authz
    allow_offline_access: true
    scopes:
      - value: read:transactions
        description: Read your transactions
      - value: read:reports
  - name: Ed API
    identifier: https://ed.example
    signing_alg: EdDSA
    scopes: [{value: read:things}]
clientGrants:
  - client_id: Machine
    audience: https://api.finance.example
    scope: [read:transactions]
  - client_id: m2m-client-id
    audience: https://es.example
    scope: [read:things]
  - client_id: Machine
    audience: https://ed.example
    scope: [read:things]
  - client_id: Admin Tool
    audience: http://portcullis.test/api/v2/
    scope: [read:users, create:users, update:users, delete:users, read:roles, create:roles, update:roles, delete:roles, read:role_members, create:role_members, delete:role_members, read:clients, create:clients, update:clients, delete:clients, read:client_keys, update:client_keys, read:resource_servers, create:resource_servers, update:resource_servers, delete:resource_servers, read:client_grants, create:client_grants, update:client_grants, delete:client_grants, read:logs, read:attack_protection, update:attack_protection, create:user_tickets]
  - client_id: No Scope Tool
    audience: http://portcullis.test/api/v2/
    scope: []
  - client_id: Reader Tool
    audience: http://portcullis.test/api/v2/
    scope: [read:users, read:clients]
roles:
  - name: admin
    description: Administrators
    permissions:
      - resource_server_identifier: https://api.finance.example
        permission_name: read:transactions
      - resource_server_identifier: https://coach.example
        permission_name: read:reports
  - name: member
users:
  - email: user@example.com
    password: correct horse battery staple
    email_verified: true
    name: Uma User
    roles: [member]
  - email: admin@example.com
    password: another long passphrase
    name: Ada Admin
    roles: [admin, member]
    app_metadata: {plan: gold}
"#;

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub router: axum::Router,
    pub core: Arc<Portcullis>,
    /// The store under `core`, for tests that read rows directly.
    pub store: Arc<SqlStore>,
    pub master: Arc<MasterKey>,
    pub clock: MockClock,
    pub database_url: String,
    /// Where this app's emails land: the test SMTP server's maildir, or an outbox.
    pub mail: MailBox,
    _scratch: Scratch,
}

/// Reads the emails one test app sent. With PORTCULLIS_TEST_SMTP_URL set (the test command
/// starts aiosmtpd), mail goes over SMTP and is read from PORTCULLIS_TEST_MAILDIR; each app
/// sends from its own address, so parallel tests read only their own mail.
pub struct MailBox {
    dir: std::path::PathBuf,
    from_tag: String,
    seen: std::sync::Mutex<std::collections::HashSet<std::path::PathBuf>>,
    _outbox: Option<tempfile_dir::TempDir>,
}

impl MailBox {
    fn new() -> (Self, Option<String>, String) {
        let tag = portcullis_crypto::token::random_alphanumeric(12).to_lowercase();
        let from = format!("Portcullis <no-reply-{tag}@portcullis.test>");
        match std::env::var("PORTCULLIS_TEST_SMTP_URL") {
            Ok(url) => {
                let dir = std::env::var("PORTCULLIS_TEST_MAILDIR")
                    .expect("PORTCULLIS_TEST_MAILDIR goes with PORTCULLIS_TEST_SMTP_URL");
                (
                    Self {
                        dir: std::path::PathBuf::from(dir).join("new"),
                        from_tag: tag,
                        seen: Default::default(),
                        _outbox: None,
                    },
                    Some(url),
                    from,
                )
            }
            Err(_) => {
                assert!(
                    std::env::var("PORTCULLIS_TEST_REQUIRE_SMTP").as_deref() != Ok("1"),
                    "PORTCULLIS_TEST_SMTP_URL must be set when the SMTP tests are required"
                );
                let outbox = tempfile_dir::TempDir::new();
                (
                    Self {
                        dir: outbox.0.clone(),
                        from_tag: tag,
                        seen: Default::default(),
                        _outbox: Some(outbox),
                    },
                    None,
                    from,
                )
            }
        }
    }

    /// The outbox directory when no SMTP server is used.
    pub fn outbox(&self) -> std::path::PathBuf {
        self.dir.clone()
    }

    /// Waits for the next unread email to `to` whose subject contains `subject`; returns
    /// the whole message.
    pub async fn wait_for(&self, to: &str, subject: &str) -> String {
        for _ in 0..100 {
            if let Some(m) = self.find(to, subject) {
                return m;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no email to {to} with subject containing {subject:?}");
    }

    /// Whether an unread email to `to` with `subject` arrives within a second.
    pub async fn arrives(&self, to: &str, subject: &str) -> bool {
        for _ in 0..10 {
            if self.find(to, subject).is_some() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    fn find(&self, to: &str, subject: &str) -> Option<String> {
        let mut entries: Vec<_> = std::fs::read_dir(&self.dir).ok()?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        let mut seen = self.seen.lock().unwrap();
        for entry in entries {
            let path = entry.path();
            if seen.contains(&path) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let header_end = text
                .find("\r\n\r\n")
                .or_else(|| text.find("\n\n"))
                .unwrap_or(text.len());
            let headers = &text[..header_end];
            let has = |name: &str, value: &str| {
                headers.lines().any(|l| {
                    l.to_ascii_lowercase()
                        .starts_with(&format!("{}:", name.to_ascii_lowercase()))
                        && l.contains(value)
                })
            };
            if has("From", &self.from_tag) && has("To", to) && has("Subject", subject) {
                seen.insert(path);
                return Some(quoted_printable(&text));
            }
        }
        None
    }
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes (enough for our ASCII mail).
fn quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first link under the test issuer in an email.
pub fn link_in(mail: &str) -> String {
    let start = mail.find(ISSUER).expect("a link in the email");
    mail[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .replace("&amp;", "&")
}

/// The path and query of a link under the test issuer.
pub fn path_of(link: &str) -> String {
    link.strip_prefix(ISSUER.trim_end_matches('/'))
        .unwrap()
        .to_owned()
}

/// A temporary directory removed on drop.
pub mod tempfile_dir {
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!(
                "portcullis-test-{}",
                portcullis_crypto::token::random_alphanumeric(12)
            ));
            std::fs::create_dir_all(&path).expect("create temp dir");
            Self(path)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Where a test's database lives, removed when the test ends: SQLite's directory, or the
/// PostgreSQL database (dropped, so a server the test command was given is not littered).
pub enum Scratch {
    Dir(
        #[expect(dead_code, reason = "held only to be removed when the test ends")]
        tempfile_dir::TempDir,
    ),
    Postgres {
        admin_url: String,
        name: String,
    },
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let Self::Postgres { admin_url, name } = self else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop runs inside the test's runtime: drop the database from a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut conn = sqlx::postgres::PgConnection::connect(&admin_url).await?;
                // The name is made of random lower-case letters and digits only. FORCE ends
                // the connections the test's pools still hold.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("the test database could not be dropped: {dropped:?}");
        }
    }
}

/// A fresh, empty database for `backend`: its URL, and what removes it.
pub async fn database_url(backend: Backend) -> Option<(String, Scratch)> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile_dir::TempDir::new();
            let url = format!("sqlite://{}/test.db", dir.0.display());
            Some((url, Scratch::Dir(dir)))
        }
        Backend::Postgres => {
            let Ok(admin) = std::env::var("PORTCULLIS_TEST_POSTGRES_URL") else {
                assert!(
                    std::env::var("PORTCULLIS_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                    "PORTCULLIS_TEST_POSTGRES_URL must be set when PostgreSQL tests are required"
                );
                eprintln!("PORTCULLIS_TEST_POSTGRES_URL is not set: PostgreSQL variant not run");
                return None;
            };
            let name = format!(
                "pc_test_{}",
                portcullis_crypto::token::random_alphanumeric(16).to_lowercase()
            );
            let mut conn = sqlx::postgres::PgConnection::connect(&admin)
                .await
                .expect("connect to PostgreSQL");
            // The name is made of random lower-case letters and digits only.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create test database");
            let _ = conn.close().await;
            let mut url = url::Url::parse(&admin).expect("PostgreSQL URL");
            url.set_path(&format!("/{name}"));
            Some((
                url.to_string(),
                Scratch::Postgres {
                    admin_url: admin,
                    name,
                },
            ))
        }
    }
}

impl TestApp {
    /// A server with the standard test tenant applied; `None` when the backend is not available.
    pub async fn new(backend: Backend) -> Option<Self> {
        let app = Self::empty(backend).await?;
        app.apply(TENANT_YAML)
            .await
            .expect("the test tenant applies");
        Some(app)
    }

    /// A server with no tenant file applied.
    pub async fn empty(backend: Backend) -> Option<Self> {
        Self::with_issuer(backend, ISSUER, START).await
    }

    /// A server for `issuer` whose clock starts at `start`, with no tenant file applied.
    pub async fn with_issuer(backend: Backend, issuer: &str, start: i64) -> Option<Self> {
        Self::with_options(
            backend,
            issuer,
            start,
            portcullis_server::HttpOptions::default(),
        )
        .await
    }

    /// A server with the standard test tenant and the given HTTP settings.
    pub async fn with_http(
        backend: Backend,
        options: portcullis_server::HttpOptions,
    ) -> Option<Self> {
        let app = Self::with_options(backend, ISSUER, START, options).await?;
        app.apply(TENANT_YAML)
            .await
            .expect("the test tenant applies");
        Some(app)
    }

    /// A second server on the same database (a restart, or another replica).
    pub async fn restart(&self, options: portcullis_server::HttpOptions) -> axum::Router {
        portcullis_server::app_with(self.replica_core().await, options).expect("router builds")
    }

    /// The core of a second server on the same database.
    pub async fn replica_core(&self) -> Arc<Portcullis> {
        let store = SqlStore::connect(&self.database_url)
            .await
            .expect("store connects");
        let core = Portcullis::start(
            Arc::new(store),
            Arc::new(self.clock.clone()),
            Arc::clone(&self.master),
            PasswordPool::new(2),
            Settings::new(ISSUER),
        )
        .await
        .expect("services start");
        Arc::new(core)
    }

    async fn with_options(
        backend: Backend,
        issuer: &str,
        start: i64,
        options: portcullis_server::HttpOptions,
    ) -> Option<Self> {
        let (database_url, scratch) = database_url(backend).await?;
        let store = SqlStore::connect(&database_url)
            .await
            .expect("store connects and migrates");
        let clock = MockClock::new(start);
        let master = Arc::new(MasterKey::from_hex(&MasterKey::generate_hex()).unwrap());
        let store = Arc::new(store);
        let core = Portcullis::start(
            Arc::clone(&store) as Arc<dyn portcullis_core::store::Store>,
            Arc::new(clock.clone()),
            Arc::clone(&master),
            PasswordPool::new(2),
            Settings::new(issuer),
        )
        .await
        .expect("services start");
        let (mail, smtp_url, from) = MailBox::new();
        let mailer = portcullis_server::mailer::ServerMailer::new(
            smtp_url.as_deref(),
            &from,
            mail.outbox(),
            None,
            issuer,
        )
        .expect("mailer");
        // As in `serve`: audit events go through the batched writer.
        let core = Arc::new(core.with_mailer(Arc::new(mailer)).with_batched_audit());
        let router =
            portcullis_server::app_with(Arc::clone(&core), options).expect("router builds");
        Some(Self {
            router,
            core,
            store,
            master,
            clock,
            database_url,
            mail,
            _scratch: scratch,
        })
    }

    pub async fn apply(&self, yaml: &str) -> Result<portcullis_core::apply::ApplyReport, String> {
        let file = portcullis_core::tenant_file::parse(yaml).map_err(|e| e.to_string())?;
        portcullis_core::apply::apply(&self.core, file, yaml)
            .await
            .map_err(|e| e.to_string())
    }

    pub async fn send(&self, request: Request<Body>) -> TestResponse {
        self.send_from(request, "127.0.0.1").await
    }

    /// Sends `request` as if from a client at `ip` (the socket peer the server sees).
    pub async fn send_from(&self, mut request: Request<Body>, ip: &str) -> TestResponse {
        if request
            .extensions()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .is_none()
        {
            let addr = std::net::SocketAddr::new(ip.parse().expect("an IP"), 40_000);
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(addr));
        }
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        TestResponse::read(response).await
    }

    pub async fn get(&self, path: &str, browser: &Browser) -> TestResponse {
        let mut req = Request::get(path);
        if let Some(c) = browser.cookie_header() {
            req = req.header(header::COOKIE, c);
        }
        let resp = self
            .send_from(req.body(Body::empty()).unwrap(), &browser.ip)
            .await;
        browser.absorb(&resp);
        resp
    }

    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        browser: &Browser,
    ) -> TestResponse {
        let body = serde_urlencoded::to_string(form).unwrap();
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = browser.cookie_header() {
            req = req.header(header::COOKIE, c);
        }
        let resp = self
            .send_from(req.body(Body::from(body)).unwrap(), &browser.ip)
            .await;
        browser.absorb(&resp);
        resp
    }

    /// `POST /oauth/token` with a form body and optional Basic credentials.
    pub async fn token(&self, form: &[(&str, &str)], basic: Option<(&str, &str)>) -> TestResponse {
        self.post_oauth("/oauth/token", form, basic).await
    }

    pub async fn post_oauth(
        &self,
        path: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> TestResponse {
        let body = serde_urlencoded::to_string(form).unwrap();
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            use base64::Engine;
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            req = req.header(header::AUTHORIZATION, format!("Basic {v}"));
        }
        self.send(req.body(Body::from(body)).unwrap()).await
    }

    pub async fn userinfo(&self, token: &str) -> TestResponse {
        self.send(
            Request::get("/userinfo")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// Starts `/authorize` for the web app and returns the login page's form fields.
    pub async fn start_login(&self, browser: &Browser, query: &[(&str, &str)]) -> LoginForm {
        let q = serde_urlencoded::to_string(query).unwrap();
        let resp = self.get(&format!("/authorize?{q}"), browser).await;
        assert_eq!(
            resp.status,
            StatusCode::SEE_OTHER,
            "authorize redirects to the login page: {}",
            resp.text
        );
        let location = resp.location().expect("login location");
        assert!(location.starts_with("/u/login?state="), "{location}");
        let page = self.get(&location, browser).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        LoginForm::parse(&location, &page.text)
    }

    /// Logs in through the form; returns the response to the form post.
    pub async fn submit_login(
        &self,
        browser: &Browser,
        form: &LoginForm,
        email: &str,
        password: &str,
    ) -> TestResponse {
        self.post_form(
            &form.action,
            &[
                ("state", &form.state),
                ("csrf", &form.csrf),
                ("username", email),
                ("password", password),
            ],
            browser,
        )
        .await
    }

    /// The whole browser part of the code flow for the web app; returns the callback's query.
    pub async fn login_code(
        &self,
        browser: &Browser,
        extra: &[(&str, &str)],
        email: &str,
        password: &str,
    ) -> HashMap<String, String> {
        let mut query = vec![
            ("response_type", "code"),
            ("client_id", "web-app-client-id"),
            ("redirect_uri", WEB_CALLBACK),
            ("scope", "openid profile email offline_access"),
            ("state", "st-123"),
            ("nonce", "n-456"),
        ];
        for (k, v) in extra {
            query.retain(|(qk, _)| qk != k);
            query.push((k, v));
        }
        let form = self.start_login(browser, &query).await;
        let resp = self.submit_login(browser, &form, email, password).await;
        assert_eq!(
            resp.status,
            StatusCode::SEE_OTHER,
            "login succeeds: {}",
            resp.text
        );
        callback_params(&resp.location().unwrap())
    }

    /// Code flow plus exchange for the web app: the token response JSON.
    pub async fn web_tokens(&self, browser: &Browser, extra: &[(&str, &str)]) -> Value {
        let params = self
            .login_code(browser, extra, USER_EMAIL, USER_PASSWORD)
            .await;
        let resp = self
            .token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &params["code"]),
                    ("redirect_uri", WEB_CALLBACK),
                ],
                Some(("web-app-client-id", WEB_SECRET)),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
        resp.json()
    }

    /// A Management API token for a machine client.
    pub async fn management_token(&self, client_id: &str, secret: &str) -> String {
        let resp = self
            .token(
                &[
                    ("grant_type", "client_credentials"),
                    ("audience", &format!("{ISSUER}api/v2/")),
                ],
                Some((client_id, secret)),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.text);
        resp.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// A Management API call with a bearer token and an optional JSON body.
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).unwrap()).await
    }

    /// Verifies one of our tokens and returns its claims.
    pub fn claims(&self, token: &str) -> Value {
        self.core
            .keyring()
            .current()
            .verifier()
            .verify(token)
            .expect("token verifies")
    }

    pub fn header_of(token: &str) -> Value {
        let part = token.split('.').next().unwrap();
        serde_json::from_slice(&portcullis_crypto::b64url_decode(part).unwrap()).unwrap()
    }
}

/// A TCP port free on loopback now (for a server the test starts as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 100 ms for up to 10 s; panics with `what` if it never holds.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

pub fn callback_params(location: &str) -> HashMap<String, String> {
    let url = url::Url::parse(location).expect("absolute callback URL");
    url.query_pairs().into_owned().collect()
}

pub struct TestResponse {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub text: String,
}

impl TestResponse {
    async fn read(response: Response<Body>) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Self {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn location(&self) -> Option<String> {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }
}

/// A cookie jar standing in for the browser.
pub struct Browser {
    cookies: std::sync::Mutex<HashMap<String, String>>,
    /// The IP the server sees this browser come from.
    pub ip: String,
}

impl Default for Browser {
    fn default() -> Self {
        Self {
            cookies: Default::default(),
            ip: "127.0.0.1".to_owned(),
        }
    }
}

impl Browser {
    pub fn new() -> Self {
        Self::default()
    }

    /// A browser at another IP.
    pub fn at(ip: &str) -> Self {
        Self {
            ip: ip.to_owned(),
            ..Self::default()
        }
    }

    fn cookie_header(&self) -> Option<String> {
        let jar = self.cookies.lock().unwrap();
        (!jar.is_empty()).then(|| {
            jar.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn absorb(&self, resp: &TestResponse) {
        let mut jar = self.cookies.lock().unwrap();
        for value in resp.headers.get_all(header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let first = text.split(';').next().unwrap();
            let (name, val) = first.split_once('=').unwrap();
            let expired = text.contains("Max-Age=0");
            if expired || val.is_empty() {
                jar.remove(name);
            } else {
                jar.insert(name.to_owned(), val.to_owned());
            }
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }
}

/// A real HTTP client acting as the browser against a server on a socket: follows
/// `/authorize` to the login page and posts the form. Returns the `/authorize` response (for
/// its cookies) and the response to the form post.
pub async fn socket_login(
    browser: &reqwest::Client,
    origin: &str,
    authorize_url: &str,
    email: &str,
    password: &str,
) -> (reqwest::Response, reqwest::Response) {
    let start = browser.get(authorize_url).send().await.unwrap();
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    let page = browser
        .get(format!("{origin}{location}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form = LoginForm::parse(&location, &page);
    let posted = browser
        .post(format!("{origin}{}", form.action))
        .form(&[
            ("state", form.state.as_str()),
            ("csrf", form.csrf.as_str()),
            ("username", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    (start, posted)
}

/// The login page's form, read from its HTML.
#[derive(Debug, Clone)]
pub struct LoginForm {
    pub action: String,
    pub state: String,
    pub csrf: String,
}

impl LoginForm {
    pub fn parse(location: &str, html: &str) -> Self {
        let field = |name: &str| -> String {
            let marker = format!("name=\"{name}\" value=\"");
            let start = html
                .find(&marker)
                .unwrap_or_else(|| panic!("field {name} in page"))
                + marker.len();
            html[start..].split('"').next().unwrap().to_owned()
        };
        assert!(html.contains("type=\"password\""));
        assert!(html.contains("<form method=\"post\""));
        Self {
            action: location.to_owned(),
            state: field("state"),
            csrf: field("csrf"),
        }
    }
}

/// Runs a test body against SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let Some($app) = $crate::harness::TestApp::new($crate::harness::Backend::Sqlite).await else { return };
                    $body
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some($app) = $crate::harness::TestApp::new($crate::harness::Backend::Postgres).await else { return };
                    $body
                }
            }
        )*
    };
}
