#![allow(dead_code)] // helpers shared by test modules; not every module uses each one
//! Test support: a real Chorus on a random port, on SQLite or on PostgreSQL (a fresh schema
//! per test), real clients, a real SMTP listener.

pub mod browser;
pub mod cloudinary;
pub mod pushsvc;
pub mod schemas;
pub mod sio;
pub mod smtp;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use chorus::app::{BuildOptions, Chorus};
use chorus::broker::memory::MemoryBus;
use chorus::config::Config;
use chorus::state::AppState;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

/// Which database a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each listed `async fn name(backend: Backend)` once per backend:
/// `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::support::postgres_available().await {
                        super::$name($crate::support::Backend::Postgres).await;
                    }
                }
            )*
        }
    };
}

/// Whether `CI=true`: then services the tests need must be there.
pub fn in_ci() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}

/// Skips loudly, or fails under CI.
pub fn skip_or_fail(what: &str) -> bool {
    if in_ci() {
        panic!("{what} is required when CI=true");
    }
    eprintln!(
        "\n*** SKIPPED: {what} is not available; set it up to run this test (CI=true makes this a failure) ***\n"
    );
    false
}

/// Base URL of the test PostgreSQL server (database `test` by default).
pub fn pg_base_url() -> String {
    std::env::var("CHORUS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Base URL of the test Redis.
pub fn redis_url() -> String {
    std::env::var("CHORUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

static PG: OnceCell<bool> = OnceCell::const_new();
static REDIS: OnceCell<bool> = OnceCell::const_new();

/// Whether PostgreSQL is reachable (checked once per test process; stale test schemas of
/// earlier runs are dropped on the way).
pub async fn postgres_available() -> bool {
    let up = *PG
        .get_or_init(|| async {
            let Ok(Ok(pool)) = tokio::time::timeout(
                Duration::from_secs(3),
                sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&pg_base_url()),
            )
            .await
            else {
                return false;
            };
            sweep_old_schemas(&pool).await;
            pool.close().await;
            true
        })
        .await;
    up || skip_or_fail(&format!("PostgreSQL at {}", pg_base_url()))
}

/// Whether Redis is reachable.
pub async fn redis_available() -> bool {
    let up = *REDIS
        .get_or_init(|| async {
            let Ok(client) = redis::Client::open(redis_url()) else { return false };
            let Ok(Ok(mut conn)) =
                tokio::time::timeout(Duration::from_secs(3), client.get_multiplexed_async_connection()).await
            else {
                return false;
            };
            redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok()
        })
        .await;
    up || skip_or_fail(&format!("Redis at {}", redis_url()))
}

async fn sweep_old_schemas(pool: &sqlx::PgPool) {
    let cutoff = chrono::Utc::now().timestamp() - 3600;
    let names: Vec<String> = sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%'")
        .fetch_all(pool)
        .await
        .unwrap_or_default();
    for n in names {
        let ts = n.split('_').nth(1).and_then(|t| t.parse::<i64>().ok()).unwrap_or(i64::MAX);
        if ts < cutoff {
            let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{n}\" CASCADE")).execute(pool).await;
        }
    }
}

/// A fresh PostgreSQL schema; returns a database URL whose connections use it.
pub async fn fresh_pg_schema() -> String {
    let schema = format!("t_{}_{}", chrono::Utc::now().timestamp(), rand::random::<u32>());
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&pg_base_url()).await.expect("postgres");
    sqlx::query(&format!("CREATE SCHEMA \"{schema}\"")).execute(&pool).await.expect("create schema");
    pool.close().await;
    let sep = if pg_base_url().contains('?') { '&' } else { '?' };
    format!("{}{sep}options=-c%20search_path%3D{schema}", pg_base_url())
}

/// Configuration for tests: random port, a temp data dir, generous rate limits, a fast job
/// poll; `database_url` set for PostgreSQL.
pub async fn test_config(backend: Backend, dir: &std::path::Path) -> Config {
    let mut cfg = Config { listen: "127.0.0.1:0".parse().unwrap(), data_dir: dir.to_path_buf(), ..Config::default() };
    cfg.rate_limit.auth_per_ip_per_minute = 100_000;
    cfg.rate_limit.auth_ip_burst = 100_000;
    cfg.rate_limit.auth_per_account_per_minute = 100_000;
    cfg.rate_limit.auth_account_burst = 100_000;
    // Tests write fast from few accounts; the write limits have tests of their own.
    cfg.rate_limit.writes = chorus::config::WriteLimits::all(1_000_000, 100_000);
    // Tests open conversations between strangers; consent has tests of its own (with the
    // real default, `following`).
    cfg.default_who_can_message = chorus::domain::user::WhoCanMessage::Everyone;
    // Some tests configure SMTP, which turns verification on; its tests turn it on themselves.
    cfg.auth.require_verified_email = Some(false);
    // The tests' push services listen on http://127.0.0.1: Web Push at whatever endpoint a
    // test registers, FCM at the one stand-in of the process.
    cfg.push.allow_insecure_endpoints = true;
    let fcm = pushsvc::push_service();
    cfg.push.fcm_credentials = Some(pushsvc::FCM_KEY_FILE.into());
    cfg.push.fcm_api_base = fcm.base.clone();
    cfg.push.fcm_token_uri = Some(format!("{}/token", fcm.base));
    cfg.jobs.poll_ms = 50;
    cfg.jobs.backoff_base_ms = 50;
    cfg.shutdown_timeout_secs = 10;
    if backend == Backend::Postgres {
        cfg.database_url = Some(fresh_pg_schema().await);
        cfg.database_max_connections = 5;
    }
    cfg
}

/// A running instance.
pub struct TestApp {
    pub base: String,
    /// The configuration it runs with (port 0 resolved to the bound one).
    pub config: Config,
    pub state: AppState,
    pub http: reqwest::Client,
    pub backend: Backend,
    shutdown: CancellationToken,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: Arc<tempfile::TempDir>,
}

impl TestApp {
    /// Starts an instance with the test configuration.
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, |_| {}).await
    }

    /// Starts an instance, letting the test adjust the configuration.
    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Config)) -> TestApp {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut cfg = test_config(backend, dir.path()).await;
        tweak(&mut cfg);
        Self::start(backend, cfg, BuildOptions::default(), dir).await
    }

    /// Starts an instance from a full configuration.
    pub async fn start(backend: Backend, cfg: Config, opts: BuildOptions, dir: Arc<tempfile::TempDir>) -> TestApp {
        let app = Chorus::build_with(cfg, opts).await.expect("chorus builds");
        let base = format!("http://{}", app.local_addr());
        let state = app.state().clone();
        let config = state.config.clone();
        let shutdown = app.shutdown_token();
        let handle = tokio::spawn(app.run_until_stopped());
        TestApp { base, config, state, http: reqwest::Client::new(), backend, shutdown, handle: Some(handle), dir }
    }

    /// Starts `n` instances sharing one database and an in-process broker bus.
    pub async fn cluster(backend: Backend, n: usize) -> Vec<TestApp> {
        Self::cluster_with(backend, n, |_| {}).await
    }

    /// [`TestApp::cluster`], letting the test adjust the (shared) configuration.
    pub async fn cluster_with(backend: Backend, n: usize, tweak: impl FnOnce(&mut Config)) -> Vec<TestApp> {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut cfg = test_config(backend, dir.path()).await;
        tweak(&mut cfg);
        let bus = Arc::new(MemoryBus::default());
        let mut apps = Vec::new();
        for i in 0..n {
            let mut c = cfg.clone();
            c.node_id = Some(i as u16 + 1);
            apps.push(Self::start(backend, c, BuildOptions { memory_bus: Some(bus.clone()) }, dir.clone()).await);
        }
        apps
    }

    /// Starts `n` instances sharing one database and Redis at `redis_url` (broker,
    /// revocations, presence, rate limits), under a namespace of their own.
    pub async fn redis_cluster_at(backend: Backend, n: usize, redis_url: &str) -> Vec<TestApp> {
        Self::redis_cluster_at_with(backend, n, redis_url, |_| {}).await
    }

    /// [`TestApp::redis_cluster_at`], letting the test adjust the (shared) configuration.
    pub async fn redis_cluster_at_with(
        backend: Backend,
        n: usize,
        redis_url: &str,
        tweak: impl FnOnce(&mut Config),
    ) -> Vec<TestApp> {
        let dir = Arc::new(tempfile::tempdir().expect("tempdir"));
        let mut cfg = test_config(backend, dir.path()).await;
        tweak(&mut cfg);
        cfg.redis_url = Some(redis_url.to_string());
        cfg.redis_namespace = format!("test{}", rand::random::<u32>());
        cfg.jwt_secret = Some("cluster-test-secret-0123456789-0123456789".into());
        let mut apps = Vec::new();
        for _ in 0..n {
            apps.push(Self::start(backend, cfg.clone(), BuildOptions::default(), dir.clone()).await);
        }
        apps
    }

    /// [`TestApp::redis_cluster_at`] on the test Redis; `None` (after a loud skip) without it.
    pub async fn redis_cluster(backend: Backend, n: usize) -> Option<Vec<TestApp>> {
        Self::redis_cluster_with(backend, n, |_| {}).await
    }

    /// [`TestApp::redis_cluster`], letting the test adjust the (shared) configuration.
    pub async fn redis_cluster_with(
        backend: Backend,
        n: usize,
        tweak: impl FnOnce(&mut Config),
    ) -> Option<Vec<TestApp>> {
        if !redis_available().await {
            return None;
        }
        Some(Self::redis_cluster_at_with(backend, n, &redis_url(), tweak).await)
    }

    /// `http://host:port/api/v1{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Sends a JSON request (body optional) with an optional bearer token; returns status and
    /// JSON body (`Value::Null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.api(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, v)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        self.call(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, Some(body)).await
    }

    /// Registers `name` (password `password123`) and returns the account.
    pub async fn register(&self, name: &str) -> TestUser {
        let (status, body) = self
            .post(
                "/auth/register",
                None,
                json!({"username": name, "email": format!("{name}@example.com"), "password": "password123"}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {name}: {body}");
        TestUser::from_auth(&body)
    }

    /// Stops this instance gracefully and starts a new one on the same database, data
    /// directory (on a fresh port) — a restart, as an operator would do it.
    pub async fn restart(self) -> TestApp {
        let (backend, config, dir) = (self.backend, self.config.clone(), self.dir.clone());
        self.stop().await.expect("clean shutdown");
        Self::start(backend, config, BuildOptions::default(), dir).await
    }

    /// [`TestApp::restart`] on the same address: what a browser tab sees when the server it
    /// talks to is restarted under it. `between` runs while nothing listens.
    pub async fn restart_in_place<F: std::future::Future<Output = ()>>(self, between: impl FnOnce() -> F) -> TestApp {
        let (backend, mut config, dir) = (self.backend, self.config.clone(), self.dir.clone());
        config.listen = self.base.trim_start_matches("http://").parse().expect("bound address");
        self.stop().await.expect("clean shutdown");
        between().await;
        Self::start(backend, config, BuildOptions::default(), dir).await
    }

    /// Stops the instance gracefully and returns its result.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.take().expect("running").await.expect("server task")
    }
}

impl Drop for TestApp {
    /// Shuts the instance down and waits for it (on a multi-threaded test runtime), so that
    /// its database pool is closed: a test that merely dropped its app would otherwise
    /// leave its PostgreSQL connections open until the test process exits, and a long run
    /// would exhaust the server's `max_connections`.
    fn drop(&mut self) {
        self.shutdown.cancel();
        let Some(handle) = self.handle.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
        if rt.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread {
            tokio::task::block_in_place(|| {
                rt.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(15), handle).await;
                })
            });
        }
    }
}

/// A registered account and its tokens.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
    pub refresh: String,
}

impl TestUser {
    pub fn from_auth(body: &Value) -> TestUser {
        TestUser {
            id: body["user"]["id"].as_str().expect("user.id").to_string(),
            username: body["user"]["username"].as_str().expect("user.username").to_string(),
            token: body["access_token"].as_str().expect("access_token").to_string(),
            refresh: body["refresh_token"].as_str().expect("refresh_token").to_string(),
        }
    }

    pub fn bearer(&self) -> Option<&str> {
        Some(&self.token)
    }
}

/// Polls `f` until it returns `Some`, up to `timeout`. For state that has no event to wait
/// on (a database row written by a background job); never used in place of an event.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Publishes `event` on `topics` exactly as a service does: recorded in a transaction
/// (durable topics get their seq), committed, then handed to the broker.
pub async fn publish(app: &TestApp, topics: &[chorus::events::Topic], event: chorus::events::EventName, data: Value) {
    let mut tx = app.state.store.begin().await.expect("begin");
    let mut batch = chorus::events::EventBatch::new();
    batch.add(&mut tx, topics, event, &data).await.expect("record events");
    app.state.commit(tx, batch).await.expect("commit");
}

/// Resident memory of this (test) process in KiB.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A private `redis-server` on a random port, killed on drop (for tests that stop Redis).
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
}

impl PrivateRedis {
    /// Starts one; `None` (after a loud skip) when `redis-server` is not installed.
    pub async fn start() -> Option<PrivateRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut r = PrivateRedis { port, child: None, dir };
        if !r.spawn() {
            skip_or_fail("the redis-server binary");
            return None;
        }
        Some(r)
    }

    fn spawn(&mut self) -> bool {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        // Ready when it accepts connections.
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL), like a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port (empty, as after a crash without persistence).
    pub fn restart(&mut self) {
        assert!(self.spawn(), "redis restarts");
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The real `chorus` binary on SQLite in a data directory of its own, for tests that
/// SIGKILL it mid-work and start it again on the same address and data.
pub struct Binary {
    /// `http://127.0.0.1:port`.
    pub base: String,
    pub dir: tempfile::TempDir,
    port: u16,
    env: Vec<(String, String)>,
    child: Option<std::process::Child>,
    pub http: reqwest::Client,
}

impl Binary {
    /// Starts it with `env` (on top of a short job lease and poll) and waits until ready.
    pub async fn start(env: &[(&str, &str)]) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut b = Binary {
            base: format!("http://127.0.0.1:{port}"),
            dir: tempfile::tempdir().unwrap(),
            port,
            env,
            child: None,
            http: reqwest::Client::new(),
        };
        b.restart().await;
        b
    }

    /// Starts it (again) and waits until `/ready` answers.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "kill it first");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_chorus"));
        cmd.env("CHORUS_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("CHORUS_DATA_DIR", self.dir.path())
            .env_remove("DATABASE_URL")
            .env_remove("REDIS_URL")
            .env("CHORUS_LOG", "warn")
            .env("CHORUS_JOBS__LEASE_MS", "1000")
            .env("CHORUS_JOBS__POLL_MS", "50")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("chorus starts"));
        let url = format!("{}/ready", self.base);
        eventually(Duration::from_secs(30), || async {
            self.http.get(&url).send().await.ok().filter(|r| r.status().is_success()).map(|_| ())
        })
        .await;
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// `/api/v1{path}`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    /// Registers `name` (password `password123`).
    pub async fn register(&self, name: &str) -> TestUser {
        let body = json!({"username": name, "email": format!("{name}@example.com"), "password": "password123"});
        let v: Value =
            self.http.post(self.api("/auth/register")).json(&body).send().await.unwrap().json().await.unwrap();
        TestUser::from_auth(&v)
    }

    /// A pool on its SQLite database, to look at what it stored.
    pub async fn db(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", self.dir.path().join("chorus.db").display())).await.unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}
