//! The official JavaScript `socket.io-client` v4, run by node (`tests/node/driver.mjs`) and
//! driven over stdin/stdout. Installed from npm on first use.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::OnceCell;

use super::skip_or_fail;
use super::ws::WAIT;

static INSTALLED: OnceCell<bool> = OnceCell::const_new();

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// Installs the npm dependencies once per test process; `false` when node/npm are missing.
async fn installed() -> bool {
    *INSTALLED
        .get_or_init(|| async {
            let dir = node_dir();
            if dir.join("node_modules/socket.io-client").exists() {
                return Command::new("node").arg("--version").output().await.is_ok();
            }
            let status = Command::new("npm")
                .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .await;
            matches!(status, Ok(s) if s.success())
        })
        .await
}

/// A running driver.
pub struct Sio {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pending: VecDeque<Value>,
    next_req: u64,
}

impl Sio {
    /// Starts node with the driver for the server at `base`; `None` after a loud skip when
    /// node or the npm package is unavailable.
    pub async fn start(base: &str) -> Option<Sio> {
        if !installed().await {
            skip_or_fail("node with socket.io-client (npm ci in tests/node)");
            return None;
        }
        let mut child = Command::new("node")
            .arg(node_dir().join("driver.mjs"))
            .arg(base)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Some(Sio { child, stdin, lines, pending: VecDeque::new(), next_req: 1 })
    }

    async fn send(&mut self, v: Value) {
        self.stdin.write_all(format!("{v}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn read(&mut self, timeout: Duration) -> Option<Value> {
        match tokio::time::timeout(timeout, self.lines.next_line()).await {
            Ok(Ok(Some(l))) => Some(serde_json::from_str(&l).unwrap_or_else(|_| panic!("driver said {l}"))),
            _ => None,
        }
    }

    /// Waits for the first report matching `pred` (others are kept in order).
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(&pred) {
            return self.pending.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = self
                .read(left)
                .await
                .unwrap_or_else(|| panic!("socket.io: no {what} within {WAIT:?}; pending {:?}", self.pending));
            if pred(&v) {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    /// Connects socket `id` to namespace `ns`; `Err(message)` on `connect_error`.
    pub async fn connect(&mut self, id: &str, ns: &str, auth: Value) -> Result<(), String> {
        self.send(json!({"cmd": "connect", "id": id, "ns": ns, "auth": auth})).await;
        let id2 = id.to_string();
        let r = self
            .wait_for("connect", move |v| {
                v["id"] == id2.as_str() && (v["type"] == "connect" || v["type"] == "connect_error")
            })
            .await;
        if r["type"] == "connect" { Ok(()) } else { Err(r["message"].as_str().unwrap_or_default().to_string()) }
    }

    /// Emits `event` with `data` and returns the ack payload.
    pub async fn emit(&mut self, id: &str, event: &str, data: Value) -> Value {
        let req = self.next_req;
        self.next_req += 1;
        self.send(json!({"cmd": "emit", "id": id, "event": event, "data": data, "req": req})).await;
        let r = self.wait_for("ack", move |v| v["req"] == req).await;
        assert_eq!(r["type"], "ack", "{r}");
        r["data"].clone()
    }

    /// Waits for event `event` on socket `id`; returns its first argument.
    pub async fn event(&mut self, id: &str, event: &str) -> Value {
        let (id2, ev) = (id.to_string(), event.to_string());
        let r = self
            .wait_for(event, move |v| v["type"] == "event" && v["id"] == id2.as_str() && v["event"] == ev.as_str())
            .await;
        r["args"][0].clone()
    }

    /// Waits for socket `id` to be disconnected; returns the reason.
    pub async fn disconnected(&mut self, id: &str) -> String {
        let id2 = id.to_string();
        let r = self.wait_for("disconnect", move |v| v["type"] == "disconnect" && v["id"] == id2.as_str()).await;
        r["reason"].as_str().unwrap_or_default().to_string()
    }

    /// Asserts no event named `event` reaches socket `id` within `dur`.
    pub async fn assert_no_event(&mut self, id: &str, event: &str, dur: Duration) {
        let matches = |v: &Value| v["type"] == "event" && v["id"] == id && v["event"] == event;
        assert!(!self.pending.iter().any(matches), "unexpected {event}");
        let deadline = tokio::time::Instant::now() + dur;
        while let Some(v) = self.read(deadline.saturating_duration_since(tokio::time::Instant::now())).await {
            assert!(!matches(&v), "unexpected {v}");
            self.pending.push_back(v);
        }
    }

    /// Closes socket `id`.
    pub async fn close(&mut self, id: &str) {
        self.send(json!({"cmd": "close", "id": id})).await;
        let id2 = id.to_string();
        self.wait_for("closed", move |v| v["type"] == "closed" && v["id"] == id2.as_str()).await;
    }
}

impl Drop for Sio {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
