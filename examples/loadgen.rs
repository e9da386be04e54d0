//! `loadgen`: the socket hub's load tool. It starts Chorus server process(es) itself (the
//! release binary), opens N plain-WebSocket or Socket.IO connections, and reports as JSON:
//! connections, server RSS per idle connection, delivered events/s, p50/p99/max delivery
//! latency, server CPU-seconds per million deliveries, and its own CPU-seconds (it shares the
//! machine). The servers inherit its environment, so `CHORUS_*` settings apply to them.
//!
//! ```sh
//! cargo build --release --bin chorus --examples && ulimit -n 20000   # or higher, if the hard limit allows
//! # idle connections: server memory per connection (19,900 under a 20,000-descriptor limit:
//! # the server and the tool each need a few descriptors besides their sockets)
//! target/release/examples/loadgen idle --conns 19900
//! # a 10,000-subscriber topic; 10 events/s = 100,000 deliveries/s
//! target/release/examples/loadgen fanout --conns 10000 --rate 10 --secs 20
//! # as fast as the server can go (the driver keeps up to --inflight events unacknowledged, 8)
//! target/release/examples/loadgen fanout --conns 10000 --rate 1000 --secs 20
//! # the same with the servers batching writes (hub.write_delay_ms) and a deeper backlog
//! CHORUS_HUB__WRITE_DELAY_MS=100 target/release/examples/loadgen fanout --conns 10000 --rate 1000 --secs 20 --inflight 32
//! # two instances sharing Redis (subscribers spread over both, events published on one)
//! target/release/examples/loadgen fanout --conns 10000 --rate 1000 --secs 20 --instances 2 --redis redis://127.0.0.1:6379
//! # the same through Socket.IO
//! target/release/examples/loadgen fanout --door sio --conns 10000 --rate 10 --secs 20
//! # through nginx (examples/deploy/nginx.conf) in front of 1, 2 or 3 instances
//! target/release/examples/loadgen fanout --conns 5000 --rate 10 --secs 20 --nginx
//! target/release/examples/loadgen fanout --conns 5000 --rate 10 --secs 20 --nginx --instances 3 --redis redis://127.0.0.1:6379
//! # chat: 1,000 conversations of 2–20 members, messages sent over REST to both instances,
//! # delivered over the socket to every member (the sender's own socket included)
//! target/release/examples/loadgen chat --conns 2000 --conversations 1000 --rate 500 --secs 20 --instances 2 --redis redis://127.0.0.1:6379
//! ```
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
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const SECRET: &str = "loadgen-secret-0123456789-0123456789-abcdef";

/// Load generator for the Chorus hub and chat (see the module doc for the modes and the
/// commands whose figures README reports).
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "loadgen", version)]
struct Opts {
    /// What to measure: idle connections' memory, event fan-out, or the chat send path.
    #[arg(default_value = "idle", value_parser = ["idle", "fanout", "chat"])]
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
}

fn opts() -> Opts {
    use clap::{CommandFactory, Parser};
    let o = Opts::parse();
    let fail = |msg: &str| Opts::command().error(clap::error::ErrorKind::ArgumentConflict, msg).exit();
    if o.mode == "chat" && o.door != "ws" {
        fail("chat mode uses the WebSocket door (--door ws)");
    }
    if o.instances > 1 && o.redis.is_none() {
        fail("several instances need --redis");
    }
    if o.instances == 0 || o.conns == 0 {
        fail("--instances and --conns must be at least 1");
    }
    o
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
            .env("CHORUS_LOG", "warn")
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
            // Conversations between generated strangers open without requests.
            .env("CHORUS_DEFAULT_WHO_CAN_MESSAGE", "everyone")
            .env("CHORUS_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
            .env_remove("REDIS_URL")
            .stdout(Stdio::null())
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
    loop {
        let msg = tokio::select! {
            m = ws.next() => m,
            _ = stop.cancelled() => break,
        };
        let Some(Ok(Message::Text(t))) = msg else {
            if matches!(msg, Some(Ok(_))) {
                continue;
            }
            break;
        };
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
    let started = Instant::now();
    for (i, token) in tokens.iter().enumerate() {
        let base = bases[i % bases.len()].clone();
        let (token, topic, st, stop) = (token.clone(), topic.clone(), stats.clone(), stop.clone());
        if o.door == "ws" {
            tokio::spawn(ws_conn(base, token, topic, st, stop));
        } else {
            tokio::spawn(sio_conn(base, token, topic, st, stop));
        }
        // Pace the opening a little so the accept queue never overflows.
        if i % 200 == 199 {
            while stats.connected.load(Ordering::Relaxed) + 400 < i as u64 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    while (stats.connected.load(Ordering::Relaxed) as usize) < tokens.len() {
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "only {} of {} connected",
            stats.connected.load(Ordering::Relaxed),
            tokens.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() {
    let o = opts();
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
    let stats = Arc::new(Stats {
        delivered: AtomicU64::new(0),
        connected: AtomicU64::new(0),
        hist: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()),
        last_delivery_us: AtomicU64::new(0),
    });
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
    } else {
        // The driver: a public account's post, watched by every connection.
        let http = reqwest::Client::new();
        let api = format!("{}/api/v1", bases[0]);
        let driver_account = json!({"username": "driver", "email": "driver@example.com", "password": "password123"});
        let reg = post_json(&http, format!("{api}/auth/register"), None, &driver_account).await;
        let driver = reg["access_token"].as_str().expect("driver registered").to_string();
        let post = post_json(&http, format!("{api}/posts"), Some(&driver), &json!({"caption": "load"})).await;
        let post_id = post["id"].as_str().expect("post created").to_string();
        open(&o, &bases, &tokens, Some(format!("post:{post_id}")), &stats, &stop).await;

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
            "deliveries_per_server_cpu_second": if cpu > 0.0 { delivered as f64 / cpu } else { 0.0 },
            "nginx_cpu_seconds": nginx_cpu,
            "loadgen_cpu_seconds": own_cpu,
            "deliveries_per_cpu_second_with_nginx": if cpu + nginx_cpu > 0.0 { delivered as f64 / (cpu + nginx_cpu) } else { 0.0 },
        })
    };
    println!("{}", serde_json::to_string_pretty(&report).unwrap());
    stop.cancel();
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
