//! A plain-WebSocket test client (tokio-tungstenite) speaking `chorus.v1`: request/response
//! by id, awaiting events under a timeout, asserting silence, observing the close code.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long to wait for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct WsClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    buffered: VecDeque<Value>,
    next_id: u64,
    /// The `hello` frame.
    pub hello: Value,
    /// Every frame received, in order (for schema validation), while `logging`.
    pub log: Vec<Value>,
    logging: bool,
    closed: Option<(u16, String)>,
    ended: bool,
    /// Topics whose events [`WsClient::next_event`] and [`WsClient::assert_no_event`] pass
    /// over (still logged).
    ignored: Vec<String>,
}

/// `ws://host:port/ws` of an app base URL.
pub fn ws_url(base: &str) -> String {
    format!("{}/ws", base.replacen("http://", "ws://", 1))
}

/// Opens a raw connection (no auth handling): for tests of the handshake itself.
pub async fn connect_raw(url: &str) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
    try_connect_raw(url).await.expect("websocket connects")
}

/// The upgrade request for `url` asking for the `chorus.v1` subprotocol.
pub fn chorus_request(url: &str) -> Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static("chorus.v1"));
    req
}

/// [`connect_raw`], failing softly (a proxy answering 502 while an instance goes away).
pub async fn try_connect_raw(url: &str) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, String> {
    let (ws, resp) = tokio_tungstenite::connect_async(chorus_request(url)).await.map_err(|e| e.to_string())?;
    assert_eq!(resp.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap()), Some("chorus.v1"));
    Ok(ws)
}

impl WsClient {
    /// Connects with `?access_token=` and waits for `hello`.
    pub async fn connect(base: &str, token: &str) -> WsClient {
        Self::connect_url(&format!("{}?access_token={token}", ws_url(base))).await
    }

    /// Connects and resumes `positions` before any live event.
    pub async fn connect_resuming(base: &str, token: &str, positions: Value) -> WsClient {
        let p = urlencode(&positions.to_string());
        Self::connect_url(&format!("{}?access_token={token}&positions={p}", ws_url(base))).await
    }

    /// Connects to a full URL and waits for `hello`.
    pub async fn connect_url(url: &str) -> WsClient {
        Self::try_connect_url(url).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`WsClient::connect_url`], failing softly.
    pub async fn try_connect_url(url: &str) -> Result<WsClient, String> {
        let ws = try_connect_raw(url).await?;
        let mut c = WsClient {
            ws,
            buffered: VecDeque::new(),
            next_id: 1,
            hello: Value::Null,
            log: Vec::new(),
            logging: true,
            closed: None,
            ended: false,
            ignored: Vec::new(),
        };
        let hello = c.next_frame(WAIT).await.ok_or_else(|| format!("no hello frame (closed: {:?})", c.closed))?;
        if hello["op"] != "hello" {
            return Err(format!("expected hello, got {hello}"));
        }
        c.hello = hello;
        Ok(c)
    }

    /// Whether the connection is over (closed by the server, or cut).
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The close frame's (code, reason), if the server sent one.
    pub fn close_frame(&self) -> Option<&(u16, String)> {
        self.closed.as_ref()
    }

    /// Stops keeping a log of received frames (tests that move a lot of data).
    pub fn without_log(mut self) -> Self {
        self.logging = false;
        self.log.clear();
        self
    }

    /// Passes over events of `topic` when awaiting events (they stay in the log): for tests
    /// about other topics whose actions also cause, say, notifications at their own pace.
    pub fn ignoring(mut self, topic: &str) -> Self {
        self.ignored.push(topic.to_string());
        self
    }

    fn is_ignored(&self, f: &Value) -> bool {
        f["op"] == "event" && f["topic"].as_str().is_some_and(|t| self.ignored.iter().any(|i| i == t))
    }

    /// Sends a raw text frame.
    pub async fn send_text(&mut self, s: &str) {
        self.ws.send(Message::Text(s.into())).await.expect("send");
    }

    /// Sends a frame with a fresh id and returns the `ok`/`error` reply with that id; other
    /// frames received meanwhile are kept for later.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        frame["id"] = json!(id);
        self.send_text(&frame.to_string()).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut kept = VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let f = self.read(left).await.unwrap_or_else(|| panic!("no reply to {frame}"));
            if f["id"] == json!(id) && (f["op"] == "ok" || f["op"] == "error") {
                kept.extend(self.buffered.drain(..));
                self.buffered = kept;
                return f;
            }
            kept.push_back(f);
        }
    }

    /// Subscribes and asserts the ack is ok.
    pub async fn subscribe(&mut self, topic: &str) -> Value {
        let r = self.request(json!({"op": "subscribe", "topic": topic})).await;
        assert_eq!(r["op"], "ok", "subscribe {topic}: {r}");
        r
    }

    /// The next frame (buffered first), or `None` on timeout/close.
    pub async fn next_frame(&mut self, timeout: Duration) -> Option<Value> {
        if let Some(f) = self.buffered.pop_front() {
            return Some(f);
        }
        self.read(timeout).await
    }

    async fn read(&mut self, timeout: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) | Ok(Some(Err(_))) => {
                    self.ended = true;
                    return None;
                }
                Ok(Some(Ok(Message::Text(t)))) => {
                    let v: Value = serde_json::from_str(&t).expect("server frames are JSON");
                    if self.logging {
                        self.log.push(v.clone());
                    }
                    return Some(v);
                }
                Ok(Some(Ok(Message::Close(f)))) => {
                    self.ended = true;
                    self.closed =
                        Some(f.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new())));
                    return None;
                }
                Ok(Some(Ok(_))) => continue, // ping/pong
            }
        }
    }

    /// The next event frame (skipping acks and pongs), or panics after `WAIT`.
    pub async fn next_event(&mut self) -> Value {
        loop {
            let f = self
                .next_frame(WAIT)
                .await
                .unwrap_or_else(|| panic!("no event within {WAIT:?} (closed: {:?})", self.closed));
            if (f["op"] == "event" && !self.is_ignored(&f)) || f["op"] == "resync_required" {
                return f;
            }
        }
    }

    /// Waits for an event on `topic` named `event`, failing on any other event first.
    pub async fn expect_event(&mut self, topic: &str, event: &str) -> Value {
        let f = self.next_event().await;
        assert_eq!((f["topic"].as_str(), f["event"].as_str()), (Some(topic), Some(event)), "unexpected frame {f}");
        f
    }

    /// Waits for exactly these events, in any order (published by independent tasks, such
    /// as a request and a job), failing on any other event first.
    pub async fn expect_events_in_any_order(&mut self, expected: &[(&str, &str)]) {
        let mut missing: Vec<(&str, &str)> = expected.to_vec();
        while !missing.is_empty() {
            let f = self.next_event().await;
            let got = (f["topic"].as_str().unwrap_or_default(), f["event"].as_str().unwrap_or_default());
            let i = missing.iter().position(|e| *e == got).unwrap_or_else(|| panic!("unexpected frame {f}"));
            missing.swap_remove(i);
        }
    }

    /// Asserts that no event arrives for `dur`.
    pub async fn assert_no_event(&mut self, dur: Duration) {
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_frame(left).await {
                None => return,
                Some(f) if f["op"] == "event" && !self.is_ignored(&f) => panic!("unexpected event {f}"),
                Some(_) => {}
            }
        }
    }

    /// Waits for the server to close; returns (code, reason).
    pub async fn expect_close(&mut self) -> (u16, String) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            assert!(!left.is_zero(), "server did not close");
            if self.read(left).await.is_none() && self.closed.is_none() {
                panic!("connection ended without a close frame");
            }
        }
        self.closed.clone().unwrap()
    }

    /// Closes from the client side.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }

    /// The underlying stream (for raw behaviour such as not reading).
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }
}

/// Close code of a raw stream's close frame, reading until it arrives.
pub async fn raw_close_code(ws: &mut WebSocketStream<MaybeTlsStream<TcpStream>>) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_))) | Ok(None) | Err(_) => return None,
        }
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
