//! `loadgen`: the socket hub's load tool. It starts Chorus server process(es) itself (the
//! release binary), opens N plain-WebSocket or Socket.IO connections, and reports as JSON:
//! connections, server RSS per idle connection, delivered events/s, p50/p99/max delivery
//! latency, server CPU-seconds per million deliveries, and its own CPU-seconds (it shares the
//! machine). The servers inherit its environment, so `CHORUS_*` settings apply to them.
//!
//! ```sh
//! # the server on its own (a build with the examples turns on tokio's test-util clock), the
//! # examples in a target directory of their own
//! cargo build --release --bin chorus && CARGO_TARGET_DIR=target/examples cargo build --release --examples
//! ulimit -n 20000   # or higher, if the hard limit allows
//! # idle connections: server memory per connection (19,900 under a 20,000-descriptor limit:
//! # the server and the tool each need a few descriptors besides their sockets)
//! target/examples/release/examples/loadgen idle --conns 19900
//! # a 10,000-subscriber topic; 10 events/s = 100,000 deliveries/s
//! target/examples/release/examples/loadgen fanout --conns 10000 --rate 10 --secs 20
//! # as fast as the server can go (the driver keeps up to --inflight events unacknowledged, 8)
//! target/examples/release/examples/loadgen fanout --conns 10000 --rate 1000 --secs 20
//! # the same with the servers batching writes (hub.write_delay_ms) and a deeper backlog
//! CHORUS_HUB__WRITE_DELAY_MS=100 target/examples/release/examples/loadgen fanout --conns 10000 --rate 1000 --secs 20 --inflight 32
//! # two instances sharing Redis (subscribers spread over both, events published on one)
//! target/examples/release/examples/loadgen fanout --conns 10000 --rate 1000 --secs 20 --instances 2 --redis redis://127.0.0.1:6379
//! # the same through Socket.IO
//! target/examples/release/examples/loadgen fanout --door sio --conns 10000 --rate 10 --secs 20
//! # through nginx (examples/deploy/nginx.conf) in front of 1, 2 or 3 instances
//! target/examples/release/examples/loadgen fanout --conns 5000 --rate 10 --secs 20 --nginx
//! target/examples/release/examples/loadgen fanout --conns 5000 --rate 10 --secs 20 --nginx --instances 3 --redis redis://127.0.0.1:6379
//! # chat: 1,000 conversations of 2–20 members, messages sent over REST to both instances,
//! # delivered over the socket to every member (the sender's own socket included)
//! target/examples/release/examples/loadgen chat --conns 2000 --conversations 1000 --rate 500 --secs 20 --instances 2 --redis redis://127.0.0.1:6379
//! # contention on PostgreSQL: many clients toggling reactions, comments, follows and chat
//! # sends on the same few posts and people at once, with their notification and fan-out
//! # jobs running; reports server errors, deadlocks and dead-lettered jobs
//! target/examples/release/examples/loadgen mix --conns 300 --inflight 64 --secs 30 --instances 2 \
//!   --redis redis://127.0.0.1:6379 --database-url postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! With a PostgreSQL `--database-url` every run gets a fresh database on that server
//! (`loadgen_{pid}`, dropped afterwards). `LOADGEN_SERVER_LOG=/tmp/chorus.log` keeps each
//! server's log (`/tmp/chorus.log.0`, `.1`, …; `CHORUS_LOG` sets its level, `warn` by default).
//!
//! Events are real: the driver posts comments over REST on one public post that every
//! connection watches (`post:{id}`); each comment's body carries its send time, and every
//! receiver records `now - sent` in a histogram. Users are created directly in the database
//! (argon2 for 20,000 accounts would take minutes) and their access tokens minted with the
//! servers' shared secret.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

const SECRET: &str = "loadgen-secret-0123456789-0123456789-abcdef";

/// Load generator for the Chorus hub and chat (see the module doc for the modes and the
/// commands whose figures README reports).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "loadgen", version)]
struct Opts {
    /// What to measure: idle connections' memory, event fan-out, the chat send path, or a
    /// contended mix of writes.
    /// `peer` drives a Socket.IO server with a `/blast` trigger (`../shared/peers`) instead;
    /// `compare` runs the peer, both Chorus doors and the bare-writer floor back to back and
    /// prints them side by side.
    #[arg(default_value = "idle", value_parser = ["idle", "fanout", "chat", "mix", "peer", "compare"])]
    mode: String,
    /// Which door the clients use: plain WebSocket or Socket.IO.
    #[arg(long, default_value = "ws", value_parser = ["ws", "sio"])]
    door: String,
    /// Client connections.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Events (fanout) or messages (chat) per second offered.
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 15)]
    secs: u64,
    /// Server instances (more than one needs --redis).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Redis URL for a cluster of instances.
    #[arg(long)]
    redis: Option<String>,
    /// PostgreSQL URL (default: a SQLite file per run).
    #[arg(long)]
    database_url: Option<String>,
    /// The server binary to start.
    #[arg(long, default_value = "target/release/chorus")]
    server_bin: PathBuf,
    /// Put nginx (from the shipped template) in front of the instances.
    #[arg(long)]
    nginx: bool,
    /// Conversations (chat mode).
    #[arg(long, default_value_t = 1000)]
    conversations: usize,
    /// Requests in flight at once (senders).
    #[arg(long, default_value_t = 8)]
    inflight: u32,
    /// `peer`: the server's Engine.IO websocket URL
    /// (`ws://127.0.0.1:3001/socket.io/?EIO=4&transport=websocket`).
    #[arg(long)]
    peer_url: Option<String>,
    /// `peer`: the server's pid, for its memory and CPU.
    #[arg(long)]
    peer_pid: Option<u32>,
    /// `compare`: the directory of the peer's `server.js`, its `npm install` done.
    #[arg(long, default_value = "/tmp/peers/socketio-node")]
    peer_dir: PathBuf,
}

fn opts() -> Opts {
    use clap::{CommandFactory, Parser};
    let o = Opts::parse();
    let fail = |msg: &str| Opts::command().error(clap::error::ErrorKind::ArgumentConflict, msg).exit();
    if (o.mode == "chat" || o.mode == "mix") && o.door != "ws" {
        fail("chat and mix modes use the WebSocket door (--door ws)");
    }
    if o.mode == "mix" && !o.database_url.as_deref().is_some_and(|u| u.starts_with("postgres")) {
        fail("mix mode measures contention on PostgreSQL: give --database-url postgres://…");
    }
    if o.instances > 1 && o.redis.is_none() {
        fail("several instances need --redis");
    }
    if o.mode == "peer" && (o.peer_url.is_none() || o.peer_pid.is_none()) {
        fail("peer mode needs --peer-url and --peer-pid");
    }
    if o.instances == 0 || o.conns == 0 {
        fail("--instances and --conns must be at least 1");
    }
    o
}

/// Where server `i`'s log goes: `$LOADGEN_SERVER_LOG.{i}` when that is set (to see why a
/// job was retried, say), nowhere otherwise.
fn server_log(i: usize) -> Stdio {
    match std::env::var_os("LOADGEN_SERVER_LOG") {
        Some(base) => {
            let path = PathBuf::from(format!("{}.{i}", base.to_string_lossy()));
            std::fs::File::create(&path).map(Stdio::from).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        }
        None => Stdio::null(),
    }
}

#[path = "deploy/nginx_conf.rs"]
mod nginx_conf;

struct Server {
    child: Child,
    base: String,
}

/// nginx in front of the servers, from the shipped template.
struct Nginx {
    child: Child,
    base: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Nginx {
    async fn start(servers: &[Server], dir: &std::path::Path) -> Nginx {
        use std::os::unix::fs::PermissionsExt;
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("tmp")).unwrap();
        for d in [dir, &prefix, &prefix.join("tmp")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o777)).unwrap(); // workers may be `nobody`
        }
        let port = free_port();
        let upstreams: Vec<u16> = servers.iter().map(|s| s.base.rsplit(':').next().unwrap().parse().unwrap()).collect();
        let conf = nginx_conf::render(&nginx_conf::template(), &prefix, &format!("127.0.0.1:{port}"), &upstreams)
            // The load tool registers one account and comments as fast as it can.
            .replace("limit_req zone=chorus_auth burst=20 nodelay;", "")
            .replace("worker_connections 16384;", "worker_connections 65536;");
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(prefix.join("nginx.conf"))
            .args(["-g", "daemon off; worker_rlimit_nofile 65536;"])
            .spawn()
            .expect("nginx (apt-get install nginx-light)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        while !http.get(format!("{base}/ready")).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
            assert!(t0.elapsed() < Duration::from_secs(20), "nginx did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Nginx { child, base }
    }

    /// The master and its workers.
    fn pids(&self) -> Vec<u32> {
        let pid = self.child.id();
        let children = proc_field(pid, &format!("task/{pid}/children"));
        std::iter::once(pid).chain(children.split_whitespace().filter_map(|p| p.parse().ok())).collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn proc_field(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

/// Resident memory in KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_field(pid, "status")
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime in seconds.
fn cpu_secs(pid: u32) -> f64 {
    let stat = proc_field(pid, "stat");
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 =
        f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0 // USER_HZ
}

/// POSTs a JSON body (with a bearer token when given) and returns the JSON answer.
async fn post_json(http: &reqwest::Client, url: String, token: Option<&str>, body: &Value) -> Value {
    let mut req = http.post(url).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().json().await.unwrap()
}

fn now_micros() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

async fn start_servers(o: &Opts, data: &std::path::Path) -> Vec<Server> {
    let db = o.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/chorus.db", data.display()));
    let mut servers = Vec::new();
    for i in 0..o.instances {
        let port = free_port();
        let mut cmd = Command::new(&o.server_bin);
        cmd.env("CHORUS_LISTEN", format!("127.0.0.1:{port}"))
            .env("CHORUS_DATA_DIR", data)
            .env("DATABASE_URL", &db)
            .env("CHORUS_JWT_SECRET", SECRET)
            .env("CHORUS_NODE_ID", (i + 1).to_string())
            .env("CHORUS_LOG", std::env::var("CHORUS_LOG").unwrap_or_else(|_| "warn".into()))
            .env("CHORUS_HUB__MAX_CONNECTIONS", "100000")
            .env("CHORUS_HUB__HEARTBEAT_MS", "60000")
            .env("CHORUS_RATE_LIMIT__AUTH_PER_IP_PER_MINUTE", "100000")
            .env("CHORUS_RATE_LIMIT__AUTH_IP_BURST", "100000")
            // A benchmark writes faster than any person: lift the per-account write limits.
            .env("CHORUS_RATE_LIMIT__WRITES__POSTS__PER_HOUR", "100000000")
            .env("CHORUS_RATE_LIMIT__WRITES__POSTS__BURST", "100000")
            .env("CHORUS_RATE_LIMIT__WRITES__MESSAGES__PER_HOUR", "100000000")
            .env("CHORUS_RATE_LIMIT__WRITES__MESSAGES__BURST", "100000")
            .env("CHORUS_RATE_LIMIT__WRITES__REACTIONS__PER_HOUR", "100000000")
            .env("CHORUS_RATE_LIMIT__WRITES__REACTIONS__BURST", "100000")
            .env("CHORUS_RATE_LIMIT__WRITES__COMMENTS__PER_HOUR", "100000000")
            .env("CHORUS_RATE_LIMIT__WRITES__COMMENTS__BURST", "100000")
            .env("CHORUS_RATE_LIMIT__WRITES__FOLLOWS__PER_HOUR", "100000000")
            .env("CHORUS_RATE_LIMIT__WRITES__FOLLOWS__BURST", "100000")
            .env("CHORUS_RATE_LIMIT__WRITES__GROUPS__PER_HOUR", "100000000")
            .env("CHORUS_RATE_LIMIT__WRITES__GROUPS__BURST", "100000")
            // Conversations between generated strangers open without requests.
            .env("CHORUS_DEFAULT_WHO_CAN_MESSAGE", "everyone")
            .env("CHORUS_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
            .env_remove("REDIS_URL")
            .stdout(server_log(i))
            .stderr(Stdio::inherit());
        if let Some(r) = &o.redis {
            cmd.env("REDIS_URL", r).env("CHORUS_REDIS_NAMESPACE", format!("loadgen{}", std::process::id()));
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e} (cargo build --release first)", o.server_bin.display()));
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        while !http.get(format!("{base}/ready")).send().await.map(|r| r.status().is_success()).unwrap_or(false) {
            assert!(t0.elapsed() < Duration::from_secs(60), "server {i} did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        servers.push(Server { child, base });
    }
    servers
}

/// Creates `n` users directly in the database and mints an access token for each:
/// `(user id, token)`.
async fn users(o: &Opts, data: &std::path::Path, n: usize) -> Vec<(String, String)> {
    let db = o.database_url.clone().unwrap_or_else(|| format!("sqlite://{}/chorus.db", data.display()));
    let store = chorus::store::Store::connect(&db, 4).await.unwrap();
    let ids = chorus::domain::IdGen::new(999);
    chorus::seed::seed_users(&store, &ids, n as u32).await.unwrap();
    let auth = chorus::auth::Auth::new(SECRET.as_bytes(), 24 * 3600, 3600);
    let mut tokens = Vec::with_capacity(n);
    let mut c = store.conn().await.unwrap();
    for i in 1..=n {
        let u =
            chorus::store::users::get_by_username(c.ex(), &format!("user{i:04}")).await.unwrap().expect("seeded user");
        let (t, _) = auth.issue_access(u.id, ids.next()).unwrap();
        tokens.push((u.id.to_string(), t));
    }
    drop(c);
    // Seeded accounts are private every tenth one; the watchers only need to see a public post.
    store.close().await;
    tokens
}

/// Waits (10 s at most) for the last events to arrive: until the deliveries counted since
/// `d0` reach `expected`.
async fn drain(stats: &Stats, d0: u64, expected: u64) {
    let started = Instant::now();
    while stats.delivered.load(Ordering::Relaxed) - d0 < expected && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Received-event counters and latencies shared by all connections.
struct Stats {
    delivered: AtomicU64,
    connected: AtomicU64,
    hist: Mutex<Histogram<u64>>,
    /// When the last event reached any connection (µs since the epoch): the rate is
    /// deliveries over the time from the first send to this, not to the end of the drain.
    last_delivery_us: AtomicU64,
}

impl Stats {
    fn new() -> Arc<Stats> {
        Arc::new(Stats {
            delivered: AtomicU64::new(0),
            connected: AtomicU64::new(0),
            hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()),
            last_delivery_us: AtomicU64::new(0),
        })
    }

    /// After opening the `i`th connection: pace the opening a little so the server's
    /// accept queue never overflows.
    async fn pace(&self, i: usize) {
        if i % 200 == 199 {
            while self.connected.load(Ordering::Relaxed) + 400 < i as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }

    /// Waits (10 minutes at most) until `n` connections are in.
    async fn all_connected(&self, n: usize) {
        let started = Instant::now();
        while (self.connected.load(Ordering::Relaxed) as usize) < n {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "only {} of {n} connected",
                self.connected.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

type Client = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame, skipping the others; `None` once the connection ends or the run
/// stops.
async fn next_text(ws: &mut Client, stop: &tokio_util::sync::CancellationToken) -> Option<Utf8Bytes> {
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.cancelled() => return None,
        };
        match msg {
            Some(Ok(Message::Text(t))) => return Some(t),
            Some(Ok(_)) => {}
            _ => return None,
        }
    }
}

/// Parses the send time out of a comment event without parsing the JSON.
fn sent_at(frame: &str) -> Option<u64> {
    let i = frame.find("\"body\":\"t=")? + 10;
    let digits: String = frame[i..].chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The clients' websocket settings: tungstenite zero-fills its whole read buffer before
/// every read, so its 128 KiB default would spend most of the load generator's CPU in
/// `memset` (and steal it from the server on a shared machine).
fn client_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(8192)
}

async fn ws_conn(
    base: String,
    token: String,
    topic: Option<String>,
    stats: Arc<Stats>,
    stop: tokio_util::sync::CancellationToken,
) {
    let url = format!("{}/ws?access_token={token}", base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("chorus.v1"));
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async_with_config(req, Some(client_config()), false).await else {
        return;
    };
    if let Some(t) = &topic {
        let _ = ws.send(Message::Text(json!({"id": 1, "op": "subscribe", "topic": t}).to_string().into())).await;
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut counted = false;
    let mut last = 0u64;
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.cancelled() => break,
        };
        match msg {
            Some(Ok(Message::Text(t))) => {
                if let Some(sent) = sent_at(&t) {
                    last = now_micros();
                    let _ = hist.record(last.saturating_sub(sent).max(1));
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                } else if !counted && (topic.is_none() && t.contains("\"hello\"") || t.contains("\"op\":\"ok\"")) {
                    counted = true;
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                }
            }
            Some(Ok(Message::Ping(p))) => {
                let _ = ws.send(Message::Pong(p)).await;
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    stats.last_delivery_us.fetch_max(last, Ordering::Relaxed);
    stats.hist.lock().await.add(&hist).unwrap();
}

/// A minimal socket.io v5 client over engine.io's websocket transport: connect to the
/// `/post` namespace with the token, subscribe with an ack, answer pings, read events.
async fn sio_conn(
    base: String,
    token: String,
    topic: Option<String>,
    stats: Arc<Stats>,
    stop: tokio_util::sync::CancellationToken,
) {
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), false).await else {
        return;
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut last = 0u64;
    let mut counted = false;
    while let Some(t) = next_text(&mut ws, &stop).await {
        if t.starts_with('0') {
            let _ = ws.send(Message::Text(format!("40/post,{}", json!({"token": token})).into())).await;
        } else if t == "2" {
            let _ = ws.send(Message::Text("3".into())).await;
        } else if t.starts_with("40/post,") {
            match &topic {
                Some(tp) => {
                    let _ = ws
                        .send(Message::Text(format!("42/post,1[\"subscribe\",{}]", json!({"topic": tp})).into()))
                        .await;
                }
                None => {
                    counted = true;
                    stats.connected.fetch_add(1, Ordering::Relaxed);
                }
            }
        } else if t.starts_with("43/post,1") && !counted {
            counted = true;
            stats.connected.fetch_add(1, Ordering::Relaxed);
        } else if let Some(sent) = sent_at(&t) {
            last = now_micros();
            let _ = hist.record(last.saturating_sub(sent).max(1));
            stats.delivered.fetch_add(1, Ordering::Relaxed);
        }
    }
    stats.last_delivery_us.fetch_max(last, Ordering::Relaxed);
    stats.hist.lock().await.add(&hist).unwrap();
}

async fn open(
    o: &Opts,
    bases: &[String],
    tokens: &[String],
    topic: Option<String>,
    stats: &Arc<Stats>,
    stop: &tokio_util::sync::CancellationToken,
) {
    for (i, token) in tokens.iter().enumerate() {
        let base = bases[i % bases.len()].clone();
        let (token, topic, st, stop) = (token.clone(), topic.clone(), stats.clone(), stop.clone());
        if o.door == "ws" {
            tokio::spawn(ws_conn(base, token, topic, st, stop));
        } else {
            tokio::spawn(sio_conn(base, token, topic, st, stop));
        }
        stats.pace(i).await;
    }
    stats.all_connected(tokens.len()).await;
}

/// A fresh PostgreSQL database for this run, dropped when the run ends.
struct FreshDb {
    admin: String,
    name: String,
}

impl FreshDb {
    async fn create(url: &str) -> (FreshDb, String) {
        use sqlx::Connection;
        let name = format!("loadgen_{}", std::process::id());
        let mut c = sqlx::PgConnection::connect(url).await.expect("connecting to PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut c).await.expect("creating the run's database");
        let mut fresh = url::Url::parse(url).expect("database URL");
        fresh.set_path(&name);
        (FreshDb { admin: url.to_string(), name }, fresh.to_string())
    }

    async fn drop_it(self) {
        use sqlx::Connection;
        if let Ok(mut c) = sqlx::PgConnection::connect(&self.admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)).execute(&mut c).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let mut o = opts();
    match o.mode.as_str() {
        "peer" => return println!("{}", serde_json::to_string_pretty(&peer(&o).await).unwrap()),
        "compare" => return compare(&o),
        _ => {}
    }
    let fresh = match o.database_url.clone() {
        Some(url) if url.starts_with("postgres") => {
            let (db, fresh_url) = FreshDb::create(&url).await;
            o.database_url = Some(fresh_url);
            Some(db)
        }
        _ => None,
    };
    let data = tempfile::tempdir().unwrap();
    let servers = start_servers(&o, data.path()).await;
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let nginx = if o.nginx { Some(Nginx::start(&servers, data.path()).await) } else { None };
    // Where clients go: nginx, or the instances round-robin.
    let bases: Vec<String> = match &nginx {
        Some(n) => vec![n.base.clone()],
        None => servers.iter().map(|s| s.base.clone()).collect(),
    };
    let nginx_pids = nginx.as_ref().map(Nginx::pids).unwrap_or_default();
    let accounts = users(&o, data.path(), o.conns).await;
    let tokens: Vec<String> = accounts.iter().map(|a| a.1.clone()).collect();
    let stats = Stats::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let rss = |pids: &[u32]| pids.iter().map(|p| rss_kib(*p)).sum::<u64>();

    let report = if o.mode == "idle" {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = rss(&pids);
        open(&o, &bases, &tokens, None, &stats, &stop).await;
        tokio::time::sleep(Duration::from_secs(3)).await; // let allocations settle
        let after = rss(&pids);
        json!({
            "mode": "idle", "door": o.door, "instances": o.instances,
            "connections": stats.connected.load(Ordering::Relaxed),
            "server_rss_before_kib": before, "server_rss_after_kib": after,
            "server_rss_per_connection_kib": (after.saturating_sub(before)) as f64 / o.conns as f64,
        })
    } else if o.mode == "chat" {
        chat(&o, &bases, &accounts, &stats, &stop, &pids).await
    } else if o.mode == "mix" {
        mix(&o, &bases, &accounts, &stats, &stop, &pids).await
    } else {
        // The driver: a public account's post, watched by every connection.
        let http = reqwest::Client::new();
        let api = format!("{}/api/v1", bases[0]);
        let driver_account = json!({"username": "driver", "email": "driver@example.com", "password": "password123"});
        let reg = post_json(&http, format!("{api}/auth/register"), None, &driver_account).await;
        let driver = reg["access_token"].as_str().expect("driver registered").to_string();
        let post = post_json(&http, format!("{api}/posts"), Some(&driver), &json!({"caption": "load"})).await;
        let post_id = post["id"].as_str().expect("post created").to_string();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle_before = rss(&pids);
        open(&o, &bases, &tokens, Some(format!("post:{post_id}")), &stats, &stop).await;
        tokio::time::sleep(Duration::from_secs(3)).await; // let allocations settle
        let idle_per_connection = rss(&pids).saturating_sub(idle_before) as f64 / o.conns as f64;

        let cpu0: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
        let nginx_cpu0: f64 = nginx_pids.iter().map(|p| cpu_secs(*p)).sum();
        let own_cpu0 = cpu_secs(std::process::id());
        let d0 = stats.delivered.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let t0_us = now_micros();
        let interval = Duration::from_secs_f64(1.0 / o.rate);
        let mut sent = 0u64;
        let comments = format!("{api}/posts/{post_id}/comments");
        let mut next = Instant::now();
        // Up to --inflight comments in flight (8 unless told): bounded so latency stays
        // meaningful; at max rate it is how much work the server may have queued.
        let inflight = Arc::new(tokio::sync::Semaphore::new(o.inflight as usize));
        while t0.elapsed() < Duration::from_secs(o.secs) {
            let permit = inflight.clone().acquire_owned().await.unwrap();
            let req = http.post(&comments).bearer_auth(&driver).json(&json!({"body": format!("t={}", now_micros())}));
            tokio::spawn(async move {
                let r = req.send().await;
                if !matches!(&r, Ok(r) if r.status().is_success()) {
                    eprintln!("comment failed: {:?}", r.map(|r| r.status()));
                }
                drop(permit);
            });
            sent += 1;
            next += interval;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
        }
        let _ = inflight.acquire_many(o.inflight).await;
        // Let the last events arrive.
        let expected = sent * o.conns as u64;
        drain(&stats, d0, expected).await;
        let cpu = pids.iter().map(|p| cpu_secs(*p)).sum::<f64>() - cpu0;
        let nginx_cpu = nginx_pids.iter().map(|p| cpu_secs(*p)).sum::<f64>() - nginx_cpu0;
        let own_cpu = cpu_secs(std::process::id()) - own_cpu0;
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let delivered = stats.delivered.load(Ordering::Relaxed) - d0;
        let delivering_secs = stats.last_delivery_us.load(Ordering::Relaxed).saturating_sub(t0_us) as f64 / 1e6;
        let h = stats.hist.lock().await;
        json!({
            "mode": "fanout", "door": o.door, "instances": o.instances, "redis": o.redis.is_some(), "nginx": o.nginx,
            "connections": stats.connected.load(Ordering::Relaxed),
            "events_sent": sent, "target_events_per_sec": o.rate, "achieved_events_per_sec": sent as f64 / o.secs as f64,
            "deliveries": delivered, "expected_deliveries": expected,
            "delivered_per_sec": delivered as f64 / delivering_secs,
            "delivering_secs": delivering_secs,
            "latency_ms": {"p50": h.value_at_quantile(0.5) as f64 / 1000.0, "p99": h.value_at_quantile(0.99) as f64 / 1000.0, "max": h.max() as f64 / 1000.0},
            "server_cpu_seconds": cpu,
            "server_cpu_seconds_per_million_deliveries": if delivered > 0 { cpu / (delivered as f64 / 1e6) } else { 0.0 },
            "server_rss_kib": rss(&pids),
            "server_rss_per_connection_kib": idle_per_connection,
            "deliveries_per_server_cpu_second": if cpu > 0.0 { delivered as f64 / cpu } else { 0.0 },
            "nginx_cpu_seconds": nginx_cpu,
            "loadgen_cpu_seconds": own_cpu,
            "deliveries_per_cpu_second_with_nginx": if cpu + nginx_cpu > 0.0 { delivered as f64 / (cpu + nginx_cpu) } else { 0.0 },
        })
    };
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    stop.cancel();
    drop(nginx);
    drop(servers);
    if let Some(db) = fresh {
        db.drop_it().await;
    }
}

/// Chat mode: `--conversations` conversations of 2–20 members (sizes drawn with a fixed
/// seed, members spread over all users), every user connected over `/ws` (subscribed to
/// their conversations on connect), messages sent at `--rate` over REST to the instances in
/// turn, each by a member of the next conversation. A delivery is one `message.created`
/// reaching one member's socket; latency is REST send to socket arrival.
async fn chat(
    o: &Opts,
    bases: &[String],
    accounts: &[(String, String)],
    stats: &Arc<Stats>,
    stop: &tokio_util::sync::CancellationToken,
    pids: &[u32],
) -> Value {
    let http = reqwest::Client::new();
    let n = accounts.len();
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next_rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut convs: Vec<(String, Vec<usize>)> = Vec::with_capacity(o.conversations);
    let mut cursor = 0usize;
    for c in 0..o.conversations {
        let size = (2 + (next_rand() % 19) as usize).min(n);
        let members: Vec<usize> = (0..size).map(|k| (cursor + k) % n).collect();
        cursor = (cursor + size) % n;
        let body = if size == 2 {
            json!({"kind": "direct", "user_id": accounts[members[1]].0})
        } else {
            let ids: Vec<&str> = members[1..].iter().map(|m| accounts[*m].0.as_str()).collect();
            json!({"kind": "group", "title": format!("c{c}"), "member_ids": ids})
        };
        let url = format!("{}/api/v1/conversations", bases[c % bases.len()]);
        let r = post_json(&http, url, Some(&accounts[members[0]].1), &body).await;
        convs.push((r["id"].as_str().unwrap_or_else(|| panic!("conversation not created: {r}")).to_string(), members));
    }
    let tokens: Vec<String> = accounts.iter().map(|a| a.1.clone()).collect();
    open(o, bases, &tokens, None, stats, stop).await;

    let cpu0: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
    let d0 = stats.delivered.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / o.rate);
    let (mut sent, mut expected) = (0u64, 0u64);
    let failed = Arc::new(AtomicU64::new(0));
    let mut next = Instant::now();
    const INFLIGHT: u32 = 64;
    let inflight = Arc::new(tokio::sync::Semaphore::new(INFLIGHT as usize));
    while t0.elapsed() < Duration::from_secs(o.secs) {
        let permit = inflight.clone().acquire_owned().await.unwrap();
        let (conv, members) = &convs[sent as usize % convs.len()];
        let sender = members[(next_rand() % members.len() as u64) as usize];
        let url = format!("{}/api/v1/conversations/{conv}/messages", bases[sent as usize % bases.len()]);
        let req = http
            .post(url)
            .bearer_auth(&accounts[sender].1)
            .json(&json!({"body": format!("t={}", now_micros()), "client_msg_id": format!("lg{sent}")}));
        let failed = failed.clone();
        tokio::spawn(async move {
            let r = req.send().await;
            if !matches!(&r, Ok(r) if r.status().is_success()) {
                failed.fetch_add(1, Ordering::Relaxed);
            }
            drop(permit);
        });
        sent += 1;
        expected += members.len() as u64;
        next += interval;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
    }
    let _ = inflight.acquire_many(INFLIGHT).await;
    let send_secs = t0.elapsed().as_secs_f64();
    drain(stats, d0, expected).await;
    let cpu = pids.iter().map(|p| cpu_secs(*p)).sum::<f64>() - cpu0;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = stats.delivered.load(Ordering::Relaxed) - d0;
    let h = stats.hist.lock().await;
    let sizes: usize = convs.iter().map(|c| c.1.len()).sum();
    json!({
        "mode": "chat", "instances": o.instances, "redis": o.redis.is_some(),
        "users_connected": stats.connected.load(Ordering::Relaxed), "conversations": convs.len(),
        "mean_members": sizes as f64 / convs.len() as f64,
        "messages_sent": sent, "failed_sends": failed.load(Ordering::Relaxed),
        "target_messages_per_sec": o.rate, "messages_per_sec": sent as f64 / send_secs,
        "deliveries": delivered, "expected_deliveries": expected,
        "latency_ms": {"p50": h.value_at_quantile(0.5) as f64 / 1000.0, "p99": h.value_at_quantile(0.99) as f64 / 1000.0, "max": h.max() as f64 / 1000.0},
        "server_cpu_seconds": cpu,
    })
}

/// Mix mode: every user connected over `/ws`; `--inflight` clients at once, each repeating
/// a random write by a random user against a few hot posts and people — toggle a reaction
/// on a post (30 %) or on a comment (10 %), comment (15 %) or delete one's comment (5 %),
/// follow or unfollow (20 %), send a chat message (20 %) — for `--secs`, with the servers'
/// notification and fan-out jobs running. Then it waits for the job queue to drain and
/// reports answers by status, PostgreSQL's deadlock count for the run's database, job
/// retries (from `/metrics`) and dead-lettered jobs.
async fn mix(
    o: &Opts,
    bases: &[String],
    accounts: &[(String, String)],
    stats: &Arc<Stats>,
    stop: &tokio_util::sync::CancellationToken,
    pids: &[u32],
) -> Value {
    use sqlx::Connection;
    let http = reqwest::Client::new();
    let api = |i: usize| format!("{}/api/v1", bases[i % bases.len()]);
    let n = accounts.len();
    assert!(n >= 20, "mix mode needs --conns 20 or more");
    let types: Value = http.get(format!("{}/reaction-types", api(0))).send().await.unwrap().json().await.unwrap();
    let kinds: Vec<String> = types
        .as_array()
        .expect("reaction types")
        .iter()
        .filter_map(|t| t["key"].as_str().map(str::to_string))
        .collect();
    // Hot posts by public accounts (seeded accounts are private every tenth one), everyone
    // following their authors; a few group conversations of ten.
    let authors: Vec<usize> = (0..n).filter(|i| (i + 1) % 10 != 0).take(8).collect();
    let mut posts = Vec::new();
    for (k, a) in authors.iter().enumerate() {
        let p = post_json(&http, format!("{}/posts", api(k)), Some(&accounts[*a].1), &json!({"caption": "hot"})).await;
        posts.push(p["id"].as_str().unwrap_or_else(|| panic!("post not created: {p}")).to_string());
    }
    let mut convs: Vec<(String, Vec<usize>)> = Vec::new();
    for c in 0..(n / 10) {
        let members: Vec<usize> = (c * 10..c * 10 + 10).collect();
        let ids: Vec<&str> = members[1..].iter().map(|m| accounts[*m].0.as_str()).collect();
        let body = json!({"kind": "group", "title": format!("g{c}"), "member_ids": ids});
        let r = post_json(&http, format!("{}/conversations", api(c)), Some(&accounts[members[0]].1), &body).await;
        convs.push((r["id"].as_str().unwrap_or_else(|| panic!("conversation not created: {r}")).to_string(), members));
    }
    let tokens: Vec<String> = accounts.iter().map(|a| a.1.clone()).collect();
    open(o, bases, &tokens, None, stats, stop).await;

    let db = o.database_url.clone().expect("postgres");
    let mut pg = sqlx::PgConnection::connect(&db).await.unwrap();
    let deadlocks0 = deadlocks(&mut pg).await;
    let cpu0: f64 = pids.iter().map(|p| cpu_secs(*p)).sum();
    let shared = Arc::new(MixShared {
        accounts: accounts.to_vec(),
        posts,
        kinds,
        convs,
        comments: std::sync::Mutex::new(Vec::new()),
        statuses: std::sync::Mutex::new(std::collections::BTreeMap::new()),
        errors: std::sync::Mutex::new(Vec::new()),
        bases: bases.to_vec(),
    });
    let deadline = Instant::now() + Duration::from_secs(o.secs);
    let ops = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for c in 0..o.inflight as u64 {
        let (shared, http, ops) = (shared.clone(), http.clone(), ops.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = 0x9e37_79b9_7f4a_7c15_u64 ^ (c + 1).wrapping_mul(0x2545_f491_4f6c_dd1d);
            while Instant::now() < deadline {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                shared.one(&http, rng).await;
                ops.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    let send_secs = o.secs as f64;
    // Every job the writes caused runs (or dies) before the figures are read.
    let drained = Instant::now();
    let pending = "SELECT count(*) FROM jobs WHERE status <> 'dead'";
    while sqlx::query_scalar::<_, i64>(pending).fetch_one(&mut pg).await.unwrap() > 0 {
        assert!(drained.elapsed() < Duration::from_secs(300), "the job queue did not drain in 5 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drain_secs = drained.elapsed().as_secs_f64();
    let cpu = pids.iter().map(|p| cpu_secs(*p)).sum::<f64>() - cpu0;
    let dead: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'dead'").fetch_one(&mut pg).await.unwrap();
    let dead_kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, COALESCE(last_error, '') FROM jobs WHERE status = 'dead' LIMIT 5")
            .fetch_all(&mut pg)
            .await
            .unwrap();
    let deadlocks = deadlocks(&mut pg).await - deadlocks0;
    // Job outcomes as the instances counted them.
    let mut retries = 0.0;
    for b in bases {
        let text = http.get(format!("{b}/metrics")).send().await.unwrap().text().await.unwrap();
        retries += text
            .lines()
            .filter(|l| l.starts_with("chorus_jobs_total{") && l.contains("outcome=\"retry\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    stop.cancel();
    let statuses = shared.statuses.lock().unwrap().clone();
    let server_errors: u64 = statuses.iter().filter(|(k, _)| k.ends_with(" 5xx")).map(|(_, v)| *v).sum();
    let total = ops.load(Ordering::Relaxed);
    json!({
        "mode": "mix", "instances": o.instances, "redis": o.redis.is_some(), "database": "postgresql",
        "users_connected": stats.connected.load(Ordering::Relaxed), "clients": o.inflight,
        "mix": {"post_reaction_toggle": 0.30, "comment_reaction_toggle": 0.10, "comment": 0.15, "comment_delete": 0.05,
                "follow_toggle": 0.20, "chat_send": 0.20},
        "requests": total, "requests_per_sec": total as f64 / send_secs,
        "answers": statuses,
        "server_errors": server_errors, "first_errors": shared.errors.lock().unwrap().clone(),
        "deadlocks": deadlocks, "job_retries": retries, "dead_letters": dead, "dead_letter_samples": dead_kinds,
        "queue_drain_secs": drain_secs,
        "server_cpu_seconds": cpu,
    })
}

/// PostgreSQL's count of deadlocks detected in the current database.
async fn deadlocks(c: &mut sqlx::PgConnection) -> i64 {
    sqlx::query_scalar("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        .fetch_one(c)
        .await
        .unwrap()
}

/// What mix mode's clients share.
struct MixShared {
    accounts: Vec<(String, String)>,
    posts: Vec<String>,
    kinds: Vec<String>,
    convs: Vec<(String, Vec<usize>)>,
    /// Comments made so far, `(id, author)`, for comment reactions and deletions.
    comments: std::sync::Mutex<Vec<(String, usize)>>,
    /// `"op 2xx"` → count.
    statuses: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    errors: std::sync::Mutex<Vec<String>>,
    bases: Vec<String>,
}

impl MixShared {
    /// One random write, by a random user, on a random instance.
    async fn one(&self, http: &reqwest::Client, r: u64) {
        let n = self.accounts.len();
        let who = (r >> 8) as usize % n;
        let (ref me, ref token) = self.accounts[who];
        let api = format!("{}/api/v1", self.bases[(r >> 40) as usize % self.bases.len()]);
        let post = &self.posts[(r >> 16) as usize % self.posts.len()];
        let on = (r >> 24) & 1 == 1;
        let kind = &self.kinds[(r >> 28) as usize % self.kinds.len()];
        let pick = r % 100;
        let comment = || {
            let c = self.comments.lock().unwrap();
            (!c.is_empty()).then(|| c[(r >> 32) as usize % c.len()].clone())
        };
        let (op, req) = match pick {
            0..30 if on => {
                ("post_react", http.put(format!("{api}/posts/{post}/reaction")).json(&json!({"type": kind})))
            }
            0..30 => ("post_unreact", http.delete(format!("{api}/posts/{post}/reaction"))),
            30..40 => {
                let Some((c, _)) = comment() else { return };
                if on {
                    ("comment_react", http.put(format!("{api}/comments/{c}/reaction")).json(&json!({"type": kind})))
                } else {
                    ("comment_unreact", http.delete(format!("{api}/comments/{c}/reaction")))
                }
            }
            40..55 => (
                "comment",
                http.post(format!("{api}/posts/{post}/comments")).json(&json!({"body": format!("mix {r}")})),
            ),
            55..60 => {
                let Some((c, author)) = comment() else { return };
                let token = &self.accounts[author].1;
                let resp = http.delete(format!("{api}/comments/{c}")).bearer_auth(token).send().await;
                return self.count("comment_delete", resp, None).await;
            }
            60..80 => {
                let other = &self.accounts[(r >> 32) as usize % n].0;
                if other == me {
                    return;
                }
                if on {
                    ("follow", http.post(format!("{api}/users/{other}/follow")))
                } else {
                    ("unfollow", http.delete(format!("{api}/users/{other}/follow")))
                }
            }
            _ => {
                let Some((conv, _)) = self.convs.iter().find(|(_, m)| m.contains(&who)) else { return };
                let body = json!({"body": format!("mix {r}"), "client_msg_id": format!("mx{r}")});
                ("chat_send", http.post(format!("{api}/conversations/{conv}/messages")).json(&body))
            }
        };
        let resp = req.bearer_auth(token).send().await;
        self.count(op, resp, (op == "comment").then_some(who)).await;
    }

    /// Counts an answer by status class; keeps the first server errors' bodies.
    async fn count(&self, op: &str, resp: reqwest::Result<reqwest::Response>, commenter: Option<usize>) {
        // Client errors by code (a 404 for a comment deleted meanwhile is expected; a 409
        // is a documented "changed concurrently"), the rest by class.
        let class = match &resp {
            Ok(r) if r.status().is_client_error() => r.status().as_u16().to_string(),
            Ok(r) => format!("{}xx", r.status().as_u16() / 100),
            Err(_) => "transport error".into(),
        };
        *self.statuses.lock().unwrap().entry(format!("{op} {class}")).or_insert(0) += 1;
        let Ok(resp) = resp else { return };
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_server_error() {
            let mut e = self.errors.lock().unwrap();
            if e.len() < 10 {
                e.push(format!("{op} {status}: {body}"));
            }
        }
        if let (Some(who), true) = (commenter, status.is_success())
            && let Some(id) =
                serde_json::from_str::<Value>(&body).ok().and_then(|v| v["id"].as_str().map(str::to_string))
        {
            self.comments.lock().unwrap().push((id, who));
        }
    }
}

/// Peer mode: `--conns` Socket.IO clients join the peer's default room through the
/// handshake `auth`; the peer is asked (`POST /blast`) to emit `--rate` × `--secs` events at
/// `--rate` per second, each stamped with its send time (`ts`, ms since the epoch). Reports
/// the same figures as fan-out mode.
async fn peer(o: &Opts) -> Value {
    let url = o.peer_url.clone().expect("checked");
    let pid = o.peer_pid.expect("checked");
    let stats = Stats::new();
    let stop = tokio_util::sync::CancellationToken::new();
    let idle_before = rss_kib(pid);
    for i in 0..o.conns {
        tokio::spawn(peer_conn(url.clone(), stats.clone(), stop.clone()));
        stats.pace(i).await;
    }
    stats.all_connected(o.conns).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle_per_connection = rss_kib(pid).saturating_sub(idle_before) as f64 / o.conns as f64;
    let count = (o.rate * o.secs as f64).round() as u64;
    let base = url.replacen("ws", "http", 1);
    let base = base.split("/socket.io").next().unwrap();
    let cpu0 = cpu_secs(pid);
    let own0 = cpu_secs(std::process::id());
    let t0_us = now_micros();
    let r = reqwest::Client::new().post(format!("{base}/blast?count={count}&rate={}&room=r1", o.rate)).send().await;
    assert!(r.is_ok_and(|r| r.status().is_success()), "the peer refused /blast");
    let expected = count * o.conns as u64;
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    drain(&stats, 0, expected).await;
    let cpu = cpu_secs(pid) - cpu0;
    let own_cpu = cpu_secs(std::process::id()) - own0;
    stop.cancel();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let delivered = stats.delivered.load(Ordering::Relaxed);
    let delivering_secs = stats.last_delivery_us.load(Ordering::Relaxed).saturating_sub(t0_us) as f64 / 1e6;
    let h = stats.hist.lock().await;
    json!({
        "mode": "peer", "connections": stats.connected.load(Ordering::Relaxed),
        "events_sent": count, "target_events_per_sec": o.rate,
        "deliveries": delivered, "expected_deliveries": expected,
        "delivered_per_sec": delivered as f64 / delivering_secs,
        "latency_ms": {"p50": h.value_at_quantile(0.5) as f64 / 1000.0, "p99": h.value_at_quantile(0.99) as f64 / 1000.0, "max": h.max() as f64 / 1000.0},
        "server_cpu_seconds": cpu,
        "server_cpu_seconds_per_million_deliveries": if delivered > 0 { cpu / (delivered as f64 / 1e6) } else { 0.0 },
        "server_rss_per_connection_kib": idle_per_connection,
        "loadgen_cpu_seconds": own_cpu,
    })
}

/// One client of the peer: Engine.IO open, Socket.IO CONNECT with `{"room":"r1"}`, pongs,
/// and every event's `ts` turned into a latency.
async fn peer_conn(url: String, stats: Arc<Stats>, stop: tokio_util::sync::CancellationToken) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async_with_config(url, Some(client_config()), false).await else {
        return;
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut last, mut counted) = (0u64, false);
    while let Some(t) = next_text(&mut ws, &stop).await {
        if t.starts_with('0') {
            let _ = ws.send(Message::Text(r#"40{"room":"r1"}"#.into())).await;
        } else if t == "2" {
            let _ = ws.send(Message::Text("3".into())).await;
        } else if t.starts_with("40") && !counted {
            counted = true;
            stats.connected.fetch_add(1, Ordering::Relaxed);
        } else if t.starts_with("42")
            && let Some(i) = t.find("\"ts\":")
        {
            let rest = &t[i + 5..];
            let end = rest.find([',', '}']).unwrap_or(rest.len());
            if let Ok(ts_ms) = rest[..end].parse::<f64>() {
                last = now_micros();
                let _ = hist.record(last.saturating_sub((ts_ms * 1000.0) as u64).max(1));
                stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    stats.last_delivery_us.fetch_max(last, Ordering::Relaxed);
    stats.hist.lock().await.add(&hist).unwrap();
}

/// Compare mode: the Node peer (started here from `--peer-dir`), Chorus `/ws`, Chorus
/// Socket.IO and the bare-writer floor, one after the other at the same load, each in a
/// process of its own; prints the four reports as JSON and then as a table.
fn compare(o: &Opts) {
    let me = std::env::current_exe().expect("own path");
    let load = |mode: &str| {
        let mut a: Vec<String> = vec![mode.into()];
        for (k, v) in [("--conns", o.conns.to_string()), ("--rate", o.rate.to_string()), ("--secs", o.secs.to_string())]
        {
            a.push(k.into());
            a.push(v);
        }
        a
    };
    let run = |bin: &std::path::Path, args: Vec<String>| -> Value {
        eprintln!("compare: {} {}", bin.display(), args.join(" "));
        let out = Command::new(bin).args(&args).stderr(Stdio::inherit()).output().expect("running a measurement");
        assert!(out.status.success(), "{} {} failed", bin.display(), args.join(" "));
        serde_json::from_slice(&out.stdout).expect("a measurement prints JSON")
    };
    // The peer.
    let port = free_port();
    let mut node = Command::new("node")
        .arg("server.js")
        .current_dir(&o.peer_dir)
        .env("PORT", port.to_string())
        .env_remove("REDIS_URL")
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting node in {}: {e}", o.peer_dir.display()));
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(t0.elapsed() < Duration::from_secs(20), "the peer did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut args = load("peer");
    args.extend([
        "--peer-url".into(),
        format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"),
        "--peer-pid".into(),
        node.id().to_string(),
    ]);
    let node_report = run(&me, args);
    let _ = node.kill();
    let _ = node.wait();
    // Chorus, both doors.
    let chorus = |door: &str| {
        let mut a = load("fanout");
        a.extend(["--door".into(), door.into(), "--server-bin".into(), o.server_bin.display().to_string()]);
        run(&me, a)
    };
    let ws = chorus("ws");
    let sio = chorus("sio");
    // The floor: one write per message, no server.
    let floor_bin = me.with_file_name("loopback_floor");
    let floor =
        run(&floor_bin, ["--conns", &o.conns.to_string(), "--rounds", "32", "--batch", "1"].map(String::from).to_vec());
    let report = json!({"conns": o.conns, "rate": o.rate, "secs": o.secs, "node": node_report,
        "chorus_ws": ws, "chorus_socketio": sio, "floor": floor});
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    let floor_cpu = floor["writer_cpu_secs_per_million"].as_f64().unwrap_or(0.0);
    let node_p99 = node_report["latency_ms"]["p99"].as_f64().unwrap_or(0.0);
    println!();
    println!(
        "| {} subscribers × {} events/s | deliveries/s | CPU-s per 1M deliveries | × floor | p50 / p99 ms | p99 × Node | idle KiB per connection |",
        o.conns, o.rate
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, r) in [("Node socket.io (peer)", &node_report), ("Chorus `/ws`", &ws), ("Chorus Socket.IO", &sio)] {
        let cpu = r["server_cpu_seconds_per_million_deliveries"].as_f64().unwrap_or(0.0);
        let p99 = r["latency_ms"]["p99"].as_f64().unwrap_or(0.0);
        println!(
            "| {name} | {:.0} | {cpu:.1} | {:.2} | {:.0} / {p99:.0} | {:.2} | {:.1} |",
            r["delivered_per_sec"].as_f64().unwrap_or(0.0),
            cpu / floor_cpu.max(1e-9),
            r["latency_ms"]["p50"].as_f64().unwrap_or(0.0),
            p99 / node_p99.max(1e-9),
            r["server_rss_per_connection_kib"].as_f64().unwrap_or(0.0),
        );
    }
    println!(
        "| bare writer, no server (`loopback_floor --batch 1`) | {:.0} | {floor_cpu:.1} | 1.00 | — | — | — |",
        floor["messages_per_sec"].as_f64().unwrap_or(0.0)
    );
}
