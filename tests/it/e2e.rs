//! End to end, as deployed: three `chorus` processes (the binary this package builds) on
//! PostgreSQL and a Redis of the test's own, behind a real nginx configured from
//! `examples/deploy/nginx.conf`. Every client goes through nginx only.
//!
//! The proof, in four acts:
//! 1. clients on different instances follow and post, and each receives exactly the events
//!    it should (followers get the author's posts, nobody gets a stranger's);
//! 2. mid-traffic, the instance serving a follower is killed with SIGKILL: its clients
//!    reconnect through nginx and resume, and every follower's `feed` is gap-free and
//!    duplicate-free (consecutive `seq`, no post twice) and holds every post whose `POST`
//!    was acknowledged — which REST still serves;
//! 3. the same with a graceful SIGTERM drain (clients are told `4000` and resume elsewhere;
//!    the process exits cleanly);
//! 4. Redis is killed and restarted mid-traffic: instances reconnect on their own, and
//!    clients recover what crossed no broker by the instances' resync — no gap, no duplicate.

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::ws::{WsClient, ws_url};
use crate::support::{PrivateRedis, TestUser, eventually, fresh_pg_schema, postgres_available, skip_or_fail};

#[path = "../../examples/deploy/nginx_conf.rs"]
mod nginx_conf;

const SECRET: &str = "e2e-cluster-secret-0123456789-0123456789";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `chorus serve` process.
struct Instance {
    node: u16,
    port: u16,
    child: Option<Child>,
}

struct Cluster {
    dir: tempfile::TempDir,
    database_url: String,
    redis: PrivateRedis,
    instances: Vec<Instance>,
    nginx: Option<Child>,
    /// nginx's address: the only one clients use.
    base: String,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(n: u16) -> Option<Cluster> {
        if !postgres_available().await {
            return None;
        }
        if Command::new("nginx").arg("-v").stderr(Stdio::null()).status().is_err() {
            skip_or_fail("nginx (apt-get install nginx-light)");
            return None;
        }
        let redis = PrivateRedis::start().await?;
        let dir = tempfile::tempdir().unwrap();
        // nginx workers may run as `nobody`: they need to reach their temp directories.
        set_mode(dir.path(), 0o755);
        for d in ["tmp", "data"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            set_mode(&dir.path().join(d), 0o777);
        }
        let mut c = Cluster {
            database_url: fresh_pg_schema().await,
            redis,
            instances: (1..=n).map(|node| Instance { node, port: free_port(), child: None }).collect(),
            nginx: None,
            base: String::new(),
            http: reqwest::Client::new(),
            dir,
        };
        for i in 0..c.instances.len() {
            c.launch(i).await;
        }
        let port = free_port();
        c.base = format!("http://127.0.0.1:{port}");
        let upstreams: Vec<u16> = c.instances.iter().map(|i| i.port).collect();
        let conf = nginx_conf::render(&nginx_conf::template(), c.dir.path(), &format!("127.0.0.1:{port}"), &upstreams);
        let conf_path = c.dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        c.nginx = Some(
            Command::new("nginx")
                .arg("-p")
                .arg(c.dir.path())
                .arg("-c")
                .arg(&conf_path)
                .args(["-g", "daemon off;"])
                .stderr(std::fs::File::create(c.dir.path().join("nginx.stderr")).unwrap())
                .spawn()
                .expect("nginx starts"),
        );
        let (http, health) = (c.http.clone(), format!("{}/health", c.base));
        eventually(Duration::from_secs(20), || {
            let (http, health) = (http.clone(), health.clone());
            async move { http.get(&health).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
        Some(c)
    }

    /// Starts (or restarts, on its port) instance `i` and waits until it is ready.
    async fn launch(&mut self, i: usize) {
        let inst = &self.instances[i];
        let log = std::fs::File::create(self.dir.path().join(format!("instance{}.log", inst.node))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chorus"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("CHORUS_LISTEN", format!("127.0.0.1:{}", inst.port))
            .env("CHORUS_DATA_DIR", self.dir.path().join("data"))
            .env("DATABASE_URL", &self.database_url)
            .env("CHORUS_DATABASE_MAX_CONNECTIONS", "6")
            .env("REDIS_URL", self.redis.url())
            .env("CHORUS_REDIS_NAMESPACE", "e2e")
            .env("CHORUS_JWT_SECRET", SECRET)
            .env("CHORUS_NODE_ID", inst.node.to_string())
            .env("CHORUS_TRUSTED_PROXIES", "[\"127.0.0.1\"]")
            .env("CHORUS_JOBS__POLL_MS", "100")
            .env("CHORUS_JOBS__BACKOFF_BASE_MS", "100")
            // A job whose instance was killed is taken over after this long.
            .env("CHORUS_JOBS__LEASE_MS", "3000")
            // One author writes every post and message of the run: past the default write
            // limits (their own test checks those).
            .env("CHORUS_RATE_LIMIT__WRITES__POSTS__PER_HOUR", "100000")
            .env("CHORUS_RATE_LIMIT__WRITES__POSTS__BURST", "1000")
            .env("CHORUS_RATE_LIMIT__WRITES__MESSAGES__PER_HOUR", "100000")
            .env("CHORUS_RATE_LIMIT__WRITES__MESSAGES__BURST", "1000")
            // The fans are put in the author's group without following the author.
            .env("CHORUS_DEFAULT_WHO_CAN_MESSAGE", "everyone")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("chorus binary starts");
        self.instances[i].child = Some(child);
        let ready = format!("http://127.0.0.1:{}/ready", self.instances[i].port);
        let http = self.http.clone();
        eventually(Duration::from_secs(30), || {
            let (http, ready) = (http.clone(), ready.clone());
            async move { http.get(&ready).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
    }

    fn index_of(&self, node: u16) -> usize {
        self.instances.iter().position(|i| i.node == node).expect("known node")
    }

    /// SIGKILL: no goodbye, no drain.
    fn kill(&mut self, node: u16) {
        let i = self.index_of(node);
        let mut child = self.instances[i].child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM, then waits for the process to exit; returns whether it exited cleanly.
    async fn drain(&mut self, node: u16) -> bool {
        let i = self.index_of(node);
        let mut child = self.instances[i].child.take().expect("running");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        tokio::task::spawn_blocking(move || child.wait().unwrap()).await.unwrap().success()
    }

    async fn register(&self, name: &str) -> TestUser {
        let body = json!({"username": name, "email": format!("{name}@example.com"), "password": "password123"});
        let r = self.http.post(format!("{}/api/v1/auth/register", self.base)).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        TestUser::from_auth(&r.json().await.unwrap())
    }

    /// `POST {path}` as `who`: status and JSON body.
    async fn call(&self, who: &TestUser, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&who.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn follow(&self, who: &TestUser, whom: &TestUser) {
        let r = self
            .http
            .post(format!("{}/api/v1/users/{}/follow", self.base, whom.id))
            .bearer_auth(&who.token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// Creates a post; its id when the server acknowledged it (`201`), `None` when the
    /// request failed (an instance dying under it, Redis down…).
    async fn try_post(&self, author: &TestUser, caption: &str) -> Option<String> {
        let r = self
            .http
            .post(format!("{}/api/v1/posts", self.base))
            .bearer_auth(&author.token)
            .json(&json!({"caption": caption}))
            .send()
            .await
            .ok()?;
        if r.status() != StatusCode::CREATED {
            return None;
        }
        r.json::<Value>().await.ok()?["id"].as_str().map(str::to_string)
    }

    /// Sends a chat message the way a client should: with a `client_msg_id`, retried with
    /// the same id when the request fails (the instance may have stored it before dying).
    async fn try_message(&self, sender: &TestUser, conv: &str, client_id: &str) -> Option<String> {
        for _ in 0..3 {
            let r = self
                .http
                .post(format!("{}/api/v1/conversations/{conv}/messages", self.base))
                .bearer_auth(&sender.token)
                .json(&json!({"body": client_id, "client_msg_id": client_id}))
                .send()
                .await;
            if let Ok(r) = r
                && (r.status() == StatusCode::CREATED || r.status() == StatusCode::OK)
                && let Ok(v) = r.json::<Value>().await
            {
                return v["id"].as_str().map(str::to_string);
            }
            tokio::time::sleep(Duration::from_millis(200)).await; // backoff before the retry
        }
        None
    }

    /// Every message stored in `conv`, as `reader` reads the history: `(id, body)`.
    async fn stored_messages(&self, reader: &TestUser, conv: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut before = String::new();
        loop {
            let url = format!("{}/api/v1/conversations/{conv}/messages?limit=100{before}", self.base);
            let page: Value = self.http.get(url).bearer_auth(&reader.token).send().await.unwrap().json().await.unwrap();
            out.extend(
                page["items"].as_array().unwrap().iter().map(|m| {
                    (m["id"].as_str().unwrap().to_string(), m["body"].as_str().unwrap_or_default().to_string())
                }),
            );
            match page["next_cursor"].as_str() {
                Some(c) => before = format!("&before={c}"),
                None => return out,
            }
        }
    }

    /// Posts `n` captions and sends `n` messages to `conv`; after the `at`-th round, runs
    /// `midway`. Returns the acknowledged post ids, message ids, and how many posts or
    /// messages failed for good.
    async fn traffic(
        &mut self,
        author: &TestUser,
        conv: &str,
        tag: &str,
        n: usize,
        at: usize,
        midway: impl AsyncFnOnce(&mut Cluster),
    ) -> (Vec<String>, Vec<String>, usize) {
        let (mut acked, mut said, mut failed) = (Vec::new(), Vec::new(), 0);
        let mut midway = Some(midway);
        for i in 0..n {
            match self.try_post(author, &format!("{tag} {i}")).await {
                Some(id) => acked.push(id),
                None => failed += 1,
            }
            match self.try_message(author, conv, &format!("{tag}-{i}")).await {
                Some(id) => said.push(id),
                None => failed += 1,
            }
            if i + 1 == at
                && let Some(f) = midway.take()
            {
                f(self).await;
            }
        }
        (acked, said, failed)
    }

    async fn post_exists(&self, reader: &TestUser, id: &str) -> bool {
        let r =
            self.http.get(format!("{}/api/v1/posts/{id}", self.base)).bearer_auth(&reader.token).send().await.unwrap();
        r.status() == StatusCode::OK
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the processes said, for whoever reads the failure.
            let mut logs: Vec<_> = std::fs::read_dir(self.dir.path()).unwrap().flatten().map(|e| e.path()).collect();
            logs.retain(|p| p.extension().is_some_and(|e| e == "log" || e == "stderr"));
            logs.sort();
            for p in logs {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("==== {} (last {} lines)", p.display(), tail.len());
                for l in tail.into_iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        if let Some(mut nginx) = self.nginx.take() {
            // SIGTERM: the master stops its workers (a SIGKILL would orphan them).
            let _ = Command::new("kill").args(["-TERM", &nginx.id().to_string()]).status();
            let _ = nginx.wait();
        }
        for i in &mut self.instances {
            if let Some(mut c) = i.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A client connected through nginx that reconnects and resumes on its own, and checks every
/// durable event it is given: per topic, consecutive `seq`; no post or message twice.
struct Watcher {
    name: String,
    token: String,
    base: String,
    ws: Option<WsClient>,
    /// The node serving the current connection.
    node: u16,
    /// Last `seq` seen per durable topic (wire name): the resume positions.
    last: BTreeMap<String, i64>,
    /// Posts seen on `feed`, in arrival order.
    posts: Vec<String>,
    /// Chat messages seen on `chat:*` topics, in arrival order.
    messages: Vec<String>,
    reconnects: usize,
    /// Close codes the server sent before connections ended.
    closes: Vec<u16>,
}

impl Watcher {
    async fn connect(base: &str, user: &TestUser) -> Watcher {
        let ws = WsClient::connect(base, &user.token).await.without_log();
        let mut w = Watcher {
            name: user.username.clone(),
            token: user.token.clone(),
            base: base.to_string(),
            node: 0,
            ws: None,
            last: BTreeMap::new(),
            posts: Vec::new(),
            messages: Vec::new(),
            reconnects: 0,
            closes: Vec::new(),
        };
        w.adopt(ws, "subscribed");
        w
    }

    /// Takes a fresh connection: its node, and the positions of durable topics it did not
    /// know yet (those it knows are resumed and must say so).
    fn adopt(&mut self, ws: WsClient, expected: &str) {
        let subs = ws.hello["data"]["subscriptions"].as_object().expect("hello lists subscriptions").clone();
        for (topic, sub) in subs {
            let Some(seq) = sub["seq"].as_str() else { continue }; // ephemeral
            match self.last.entry(topic) {
                std::collections::btree_map::Entry::Occupied(e) => {
                    assert_eq!(sub["result"], expected, "{}: {}: {}", self.name, e.key(), ws.hello)
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(seq.parse().unwrap());
                }
            }
        }
        assert!(self.last.contains_key("feed"), "{}: feed subscribed on connect", self.name);
        self.node = ws.hello["data"]["node"].as_u64().unwrap() as u16;
        self.ws = Some(ws);
    }

    /// Reconnects through nginx, resuming every durable topic after the last event seen.
    async fn reconnect(&mut self) {
        let positions: serde_json::Map<String, Value> =
            self.last.iter().map(|(t, s)| (t.clone(), Value::String(s.to_string()))).collect();
        let url = format!(
            "{}?access_token={}&positions={}",
            ws_url(&self.base),
            self.token,
            url_escape(&Value::Object(positions).to_string())
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match WsClient::try_connect_url(&url).await {
                Ok(ws) => {
                    self.adopt(ws.without_log(), "resumed");
                    self.reconnects += 1;
                    return;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "{} cannot reconnect through nginx: {e}", self.name);
                    // nginx answers 502 until its passive health check gives up on a dead
                    // upstream; a real client backs off the same way.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Reads (reconnecting whenever the connection ends) until `done` holds for what was
    /// seen (posts, messages), checking each event on the way.
    async fn until(&mut self, what: &str, done: impl Fn(&[String], &[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(&self.posts, &self.messages) {
            assert!(
                Instant::now() < deadline,
                "{}: {what} not reached; saw {} posts, {} messages",
                self.name,
                self.posts.len(),
                self.messages.len()
            );
            let ws = self.ws.as_mut().expect("connected");
            match ws.next_frame(Duration::from_millis(500)).await {
                Some(f) if f["op"] == "event" => self.check(&f),
                Some(f) if f["op"] == "resync_required" => panic!("{}: history lost: {f}", self.name),
                Some(_) => {} // acks, pongs, `reconnect` before a drain's close
                None if ws.ended() => {
                    if let Some((code, _)) = ws.close_frame() {
                        self.closes.push(*code);
                    }
                    self.ws = None;
                    self.reconnect().await;
                }
                None => {}
            }
        }
    }

    fn check(&mut self, f: &Value) {
        let topic = f["topic"].as_str().unwrap().to_string();
        let Some(seq) = f["seq"].as_str() else { return }; // ephemeral (typing, presence…)
        let seq: i64 = seq.parse().unwrap();
        let last = self.last.entry(topic.clone()).or_insert(seq - 1);
        assert_eq!(seq, *last + 1, "{}: {topic} seq must be consecutive (no gap, no duplicate): {f}", self.name);
        *last = seq;
        let (seen, kind) = match (topic.as_str(), f["event"].as_str()) {
            ("feed", Some("post.created")) => (&mut self.posts, "post"),
            (t, Some("message.created")) if t.starts_with("chat:") => (&mut self.messages, "message"),
            _ => return,
        };
        let id = f["data"]["id"].as_str().unwrap().to_string();
        assert!(!seen.contains(&id), "{}: {kind} {id} delivered twice", self.name);
        seen.push(id);
    }
}

fn url_escape(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// `done` for [`Watcher::until`]: every acknowledged post (and message) seen.
fn contains_all<'a>(posts: &'a [String], messages: &'a [String]) -> impl Fn(&[String], &[String]) -> bool + 'a {
    move |p, m| posts.iter().all(|id| p.contains(id)) && messages.iter().all(|id| m.contains(id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_cluster_loses_and_duplicates_nothing_through_kill_drain_and_redis_restart() {
    let Some(mut cluster) = Cluster::start(3).await else { return };
    let author = cluster.register("author").await;
    let stranger = cluster.register("stranger").await;
    let mut fans = Vec::new();
    for i in 0..4 {
        fans.push(cluster.register(&format!("fan{i}")).await);
    }

    // Act 1: follows and posts; each client gets what it should.
    let mut author_ws = WsClient::connect(&cluster.base, &author.token).await.ignoring("notification");
    let mut watchers = Vec::new();
    for f in &fans {
        watchers.push(Watcher::connect(&cluster.base, f).await);
        cluster.follow(f, &author).await;
    }
    let mut followers_seen = HashSet::new();
    while followers_seen.len() < fans.len() {
        let e = author_ws.expect_event("follower", "follower.added").await;
        assert!(followers_seen.insert(e["data"]["user"]["id"].as_str().unwrap().to_string()), "no duplicate: {e}");
    }
    let nodes: HashSet<u16> = watchers.iter().map(|w| w.node).collect();
    assert!(nodes.len() >= 2, "nginx spreads sockets over instances: {nodes:?}");
    // A group chat of the author and the fans, created while they are online on different
    // instances: each socket picks it up live.
    let ids: Vec<&str> = fans.iter().map(|f| f.id.as_str()).collect();
    let (s, g) =
        cluster.call(&author, "/conversations", json!({"kind": "group", "title": "fans", "member_ids": ids})).await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let conv = g["id"].as_str().unwrap().to_string();
    let hidden = cluster.try_post(&stranger, "not followed by anyone").await.expect("stranger posts");
    let (acked, said, failed) = cluster.traffic(&author, &conv, "calm", 5, 0, async |_: &mut Cluster| {}).await;
    assert_eq!((acked.len(), said.len(), failed), (5, 5, 0));
    for w in &mut watchers {
        w.until("act 1", contains_all(&acked, &said)).await;
        assert_eq!(w.messages, said, "{}: exactly the messages, in order", w.name);
        // Fan-out jobs of consecutive posts may commit in either order (several workers):
        // the feed's order is its `seq`, checked on arrival.
        let (mut got, mut want) = (w.posts.clone(), acked.clone());
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}: exactly the author's posts", w.name);
    }
    let mut all_acked = acked;
    let mut all_said = said;

    // Act 2: SIGKILL the instance serving fan0, mid-traffic.
    let victim = watchers[0].node;
    let (acked, said, failed) =
        cluster.traffic(&author, &conv, "kill", 30, 10, async |c: &mut Cluster| c.kill(victim)).await;
    eprintln!("SIGKILL of node {victim}: {} posts, {} messages acknowledged, {failed} failed", acked.len(), said.len());
    all_acked.extend(acked);
    all_said.extend(said);
    for w in &mut watchers {
        w.until("act 2", contains_all(&all_acked, &all_said)).await;
    }
    assert!(watchers[0].reconnects >= 1 && watchers[0].node != victim, "fan0 moved off the killed node");
    cluster.launch(cluster.index_of(victim)).await; // the operator (or systemd) restarts it

    // Act 3: SIGTERM (drain) the instance serving fan1 now.
    let drained = watchers[1].node;
    let mut clean = None;
    let (acked, said, failed) = cluster
        .traffic(&author, &conv, "drain", 30, 10, async |c: &mut Cluster| clean = Some(c.drain(drained).await))
        .await;
    assert_eq!(clean, Some(true), "a drained instance exits cleanly");
    eprintln!(
        "SIGTERM of node {drained}: {} posts, {} messages acknowledged, {failed} failed",
        acked.len(),
        said.len()
    );
    all_acked.extend(acked);
    all_said.extend(said);
    for w in &mut watchers {
        w.until("act 3", contains_all(&all_acked, &all_said)).await;
    }
    assert!(watchers[1].closes.contains(&4000), "drained clients are told to reconnect: {:?}", watchers[1].closes);
    cluster.launch(cluster.index_of(drained)).await;

    // Act 4: Redis dies mid-traffic and comes back empty.
    let (acked, said, failed) = cluster
        .traffic(&author, &conv, "redis", 30, 10, async |c: &mut Cluster| {
            c.redis.kill();
            // Instances notice (readiness says so), then Redis returns.
            let (http, ready) = (c.http.clone(), format!("http://127.0.0.1:{}/ready", c.instances[0].port));
            eventually(Duration::from_secs(20), || {
                let (http, ready) = (http.clone(), ready.clone());
                async move { http.get(&ready).send().await.ok().filter(|r| r.status() == 503).map(|_| ()) }
            })
            .await;
            c.redis.restart();
        })
        .await;
    eprintln!("Redis restart: {} posts, {} messages acknowledged, {failed} failed", acked.len(), said.len());
    // The cluster is whole again: every instance ready.
    for inst in &cluster.instances {
        let (http, ready) = (cluster.http.clone(), format!("http://127.0.0.1:{}/ready", inst.port));
        eventually(Duration::from_secs(30), || {
            let (http, ready) = (http.clone(), ready.clone());
            async move { http.get(&ready).send().await.ok().filter(|r| r.status().is_success()).map(|_| ()) }
        })
        .await;
    }
    all_acked.extend(acked);
    all_said.extend(said);
    let (acked, said, failed) = cluster.traffic(&author, &conv, "after", 5, 0, async |_: &mut Cluster| {}).await;
    assert_eq!((acked.len(), said.len(), failed), (5, 5, 0), "writes work again after Redis returns");
    all_acked.extend(acked);
    all_said.extend(said);
    for w in &mut watchers {
        w.until("act 4", contains_all(&all_acked, &all_said)).await;
        assert!(!w.posts.contains(&hidden), "{}: a stranger's post never reaches a feed", w.name);
    }

    // No acknowledged write is missing from storage, and nothing was stored twice: every
    // message a watcher got is stored, once.
    for id in &all_acked {
        assert!(cluster.post_exists(&fans[0], id).await, "acknowledged post {id} is stored");
    }
    let stored = cluster.stored_messages(&fans[0], &conv).await;
    let stored_ids: HashSet<&String> = stored.iter().map(|m| &m.0).collect();
    for id in &all_said {
        assert!(stored_ids.contains(id), "acknowledged message {id} is stored");
    }
    for w in &watchers {
        assert!(w.messages.iter().all(|m| stored_ids.contains(m)), "{}: only stored messages", w.name);
    }
    // Retries after failures stored nothing twice: one message per client_msg_id.
    let bodies: HashSet<&String> = stored.iter().map(|m| &m.1).collect();
    assert_eq!(bodies.len(), stored.len(), "a retried send was stored twice");
    eprintln!(
        "e2e: {} acknowledged posts, {} acknowledged messages ({} stored); reconnects per watcher {:?}",
        all_acked.len(),
        all_said.len(),
        stored.len(),
        watchers.iter().map(|w| w.reconnects).collect::<Vec<_>>()
    );
}

/// The web client as deployed: two instances behind nginx, the page and its socket going
/// through nginx only (same origin, relative URLs). Two people whose sockets nginx may put
/// on different instances follow, post and chat, live through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_client_works_through_nginx_in_front_of_a_cluster() {
    use crate::support::browser::Browser;
    let Some(browser) = Browser::start().await else { return };
    let Some(cluster) = Cluster::start(2).await else { return };
    let base = cluster.base.clone();
    let a = browser.page(1200, 900).await;
    let b = browser.page(1200, 900).await;
    crate::browser::register(&a, &base, "nina").await;
    crate::browser::register(&b, &base, "omar").await;
    crate::browser::follow_then_watch_the_feed(&b, &base, "nina").await;

    a.goto(&format!("{base}/new")).await;
    a.type_into("textarea[name=caption]", "Hello from behind nginx").await;
    a.click("form.composer button[type=submit]").await;
    a.until("the new post's page", "location.pathname.startsWith('/p/')", vec![]).await;
    b.until_text(".new-posts", "1 new post").await;
    b.click(".new-posts").await;
    b.until_text(".post .caption", "Hello from behind nginx").await;

    crate::browser::open_conversation(&b, &a, &base, "nina").await;
    b.type_into(".message-form textarea", "through the proxy\n").await;
    a.until_text(".messages .message .body", "through the proxy").await;
    a.type_into(".message-form textarea", "loud and clear\n").await;
    b.until_text(".messages .message .body", "loud and clear").await;
    b.until_text(".receipt", "Seen").await;
    a.close().await;
    b.close().await;
}
