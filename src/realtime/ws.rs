//! The plain WebSocket door: `GET /ws`, subprotocol `chorus.v1`, JSON text frames
//! (`protocol/PROTOCOL.md`).
//!
//! It authenticates (query token or a first `auth` frame), opens the [`Session`] and hands
//! the socket to the connection loop ([`conn::run`]) as a [`Transport`]: text frames in,
//! frames out, the loop's heartbeat as WebSocket pings. A batch of queued events is fed
//! to the socket and flushed once.
//!
//! Memory per idle connection is kept small on purpose: a 4 KiB read buffer, no write
//! buffer until there is something to write, one task, and the session's small maps.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::AccessClaims;
use crate::realtime::close::CloseCode;
use crate::realtime::conn::{self, End, Inbound, Transport};
use crate::realtime::frames::{self, ClientFrame, FrameError};
use crate::realtime::hub::{Door, Outbound};
use crate::realtime::session::{Command, Push, RateVerdict, Reply, Session};
use crate::state::AppState;

/// Frames are buffered up to this size and written by the flush that ends a batch: one
/// `send` per batch instead of one per frame (a queue that filled up while the socket
/// task waited drains in one syscall).
const WRITE_BUFFER: usize = 64 * 1024;
/// Largest write buffer per connection before the client counts as a slow consumer.
const MAX_WRITE_BUFFER: usize = 512 * 1024;

/// `/ws` query parameters.
#[derive(Debug, Default, Deserialize)]
pub struct WsQuery {
    /// Access token (alternative to a first `auth` frame).
    pub access_token: Option<String>,
    /// JSON object of topic → last seq, to resume before any live event.
    pub positions: Option<String>,
}

/// Upgrades to a WebSocket.
pub async fn handler(ws: WebSocketUpgrade, State(state): State<AppState>, Query(q): Query<WsQuery>) -> Response {
    let max = state.config.hub.max_frame_bytes;
    ws.protocols(["chorus.v1"])
        .max_message_size(max)
        .max_frame_size(max)
        .read_buffer_size(conn::READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| {
            // A task's future is as large as its largest state and keeps what it captured
            // for its whole life, and every idle connection holds its task: what happens
            // once (positions, auth, session) is boxed and consumed before the loop starts.
            let opening = Box::pin(open(socket, state, q));
            async move {
                if let Some((ws, session, rx, positions)) = opening.await {
                    conn::run(ws, session, rx, positions).await;
                }
            }
        })
}

/// What the connection loop is handed.
type Opened = (Ws, Session, mpsc::Receiver<Outbound>, HashMap<String, String>);

/// Reads the resume positions, authenticates and opens the session; `None` (the socket
/// closed with the reason) when one of them fails.
async fn open(mut socket: WebSocket, state: AppState, q: WsQuery) -> Option<Opened> {
    let positions: Option<HashMap<String, String>> = match q.positions.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            let _ =
                socket.send(text(frames::protocol_error(None, "bad_frame", "positions must be a JSON object"))).await;
            close(&mut socket, CloseCode::PROTOCOL_VIOLATION).await;
            return None;
        }
    };
    let (claims, positions) = match authenticate(&mut socket, &state, q.access_token, positions).await {
        Ok(v) => v,
        Err(End::Close(code)) => {
            close(&mut socket, code).await;
            return None;
        }
        Err(End::Gone) => return None,
    };
    let (session, rx) = match Session::open(&state, &claims, Door::Ws).await {
        Ok(s) => s,
        Err(code) => {
            close(&mut socket, code).await;
            return None;
        }
    };
    metrics::counter!("chorus_socket_connects_total", "door" => "ws").increment(1);
    let heartbeat = Duration::from_millis(state.config.hub.heartbeat_ms.max(100));
    let frames_sent = metrics::counter!("chorus_socket_frames_sent_total", "door" => "ws");
    Some((Ws { socket, heartbeat, frames_sent }, session, rx, positions.unwrap_or_default()))
}

/// Authenticates from the query token, or from a first `auth` frame within the timeout.
async fn authenticate(
    socket: &mut WebSocket,
    state: &AppState,
    token: Option<String>,
    positions: Option<HashMap<String, String>>,
) -> Result<(AccessClaims, Option<HashMap<String, String>>), End> {
    let (token, positions) = match token {
        Some(t) => (t, positions),
        None => {
            let wait = Duration::from_secs(state.config.hub.auth_timeout_secs);
            let first = match tokio::time::timeout(wait, socket.recv()).await {
                Err(_) => return Err(End::Close(CloseCode::UNAUTHORIZED)),
                Ok(None) | Ok(Some(Err(_))) => return Err(End::Gone),
                Ok(Some(Ok(m))) => m,
            };
            let Message::Text(t) = first else { return Err(End::Close(CloseCode::UNAUTHORIZED)) };
            match frames::parse(&t) {
                Ok(ClientFrame { op: "auth", token: Some(tok), positions: p, .. }) => (tok, p.or(positions)),
                _ => {
                    let _ = socket
                        .send(text(frames::protocol_error(
                            None,
                            "unauthorized",
                            "the first frame must be {\"op\":\"auth\",\"token\":…}",
                        )))
                        .await;
                    return Err(End::Close(CloseCode::UNAUTHORIZED));
                }
            }
        }
    };
    match state.auth.verify_access(&state.revocations, &token).await {
        Ok(c) => Ok((c, positions)),
        Err(f) => {
            let _ = socket.send(text(frames::protocol_error(None, CloseCode::from(f).reason(), &f.to_string()))).await;
            Err(End::Close(f.into()))
        }
    }
}

/// A `/ws` connection as the connection loop sees it.
struct Ws {
    socket: WebSocket,
    heartbeat: Duration,
    /// `chorus_socket_frames_sent_total{door="ws"}`, looked up once: a lookup per write
    /// would hash the name and labels for every delivery.
    frames_sent: metrics::Counter,
}

/// A client frame the loop hands back to [`Ws::handle`].
enum WsInput {
    Text(Utf8Bytes),
    Binary,
}

impl Ws {
    /// Feeds every frame and flushes once (the write buffer makes that one `send`).
    async fn send(&mut self, frames: impl IntoIterator<Item = Message> + Send) -> Result<(), End> {
        let mut n = 0;
        let io = async {
            for f in frames {
                self.socket.feed(f).await?;
                n += 1;
            }
            if n > 0 { self.socket.flush().await } else { Ok(()) }
        };
        match io.await {
            Ok(()) => {
                self.frames_sent.increment(n);
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "websocket write failed");
                Err(End::Gone)
            }
        }
    }
}

impl Transport for Ws {
    type Input = WsInput;

    fn namespace(&self) -> Option<&str> {
        None
    }

    fn heartbeat(&self) -> Option<Duration> {
        Some(self.heartbeat)
    }

    async fn recv(&mut self) -> Inbound<WsInput> {
        match self.socket.recv().await {
            None => Inbound::End(End::Gone),
            Some(Err(e)) => Inbound::End(classify_read_error(e)),
            Some(Ok(Message::Text(t))) => Inbound::Input(WsInput::Text(t)),
            Some(Ok(Message::Binary(_))) => Inbound::Input(WsInput::Binary),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Inbound::Heard,
            Some(Ok(Message::Close(_))) => Inbound::End(End::Gone),
        }
    }

    async fn handle(&mut self, session: &mut Session, input: WsInput) -> Result<(), End> {
        match input {
            WsInput::Text(t) => match handle_text(session, &t).await {
                Ok(out) => self.send(out).await,
                Err(code) => Err(End::Close(code)),
            },
            WsInput::Binary => {
                let _ = self
                    .send(vec![text(frames::protocol_error(
                        None,
                        "bad_frame",
                        "binary frames are not part of chorus.v1",
                    ))])
                    .await;
                Err(End::Close(CloseCode::PROTOCOL_VIOLATION))
            }
        }
    }

    async fn hello(&mut self, hello: Value) -> Result<(), End> {
        self.send(vec![text(frames::hello(hello))]).await
    }

    async fn write(&mut self, pushes: &mut Vec<Push>) -> Result<(), End> {
        self.send(pushes.drain(..).map(push_frame)).await
    }

    async fn ping(&mut self) -> Result<(), End> {
        self.send(vec![Message::Ping(Default::default())]).await
    }

    async fn finish(&mut self, end: End) {
        let End::Close(code) = end else { return };
        if code.is_reconnect() {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                self.socket.send(text(frames::reconnect(code.reason(), code.0))),
            )
            .await;
        }
        close(&mut self.socket, code).await;
    }
}

fn push_frame(p: Push) -> Message {
    match p {
        Push::Event(d) => Message::Text(d.ws_frame()),
        Push::ResyncRequired { topic, seq } => {
            text(json!({"op": "resync_required", "topic": topic.wire_name(), "seq": seq.to_string()}).to_string())
        }
        Push::Unsubscribed { topic, error } => {
            text(json!({"op": "unsubscribed", "topic": topic.wire_name(), "error": error}).to_string())
        }
    }
}

/// Handles one client text frame; returns the frames to write, or a close code.
async fn handle_text(session: &mut Session, t: &str) -> Result<Vec<Message>, CloseCode> {
    match session.rate() {
        RateVerdict::Allow => {}
        RateVerdict::Refuse => {
            return Ok(vec![text(frames::protocol_error(
                frames::salvage_id(t),
                "rate_limited",
                "too many frames; slow down",
            ))]);
        }
        RateVerdict::Close => return Err(CloseCode::RATE_LIMITED),
    }
    let frame = match frames::parse(t) {
        Ok(f) => f,
        Err(e) => {
            return Ok(vec![text(frames::protocol_error(
                frames::salvage_id(t),
                e.code(),
                "frame is not a JSON object with an op",
            ))]);
        }
    };
    let id = frame.id;
    let cmd = match frame.op {
        "ping" => return Ok(vec![text(frames::pong(id))]),
        "subscribe" | "unsubscribe" => match frame.topic.as_deref() {
            None => return Ok(vec![text(frames::error(id, &crate::error::AppError::field("topic", "is required")))]),
            Some(topic) if frame.op == "subscribe" => Command::Subscribe { topic, from: frame.from.as_deref() },
            Some(topic) => Command::Unsubscribe { topic },
        },
        "resume" => match &frame.positions {
            Some(p) => Command::Resume { positions: p },
            None => {
                return Ok(vec![text(frames::error(id, &crate::error::AppError::field("positions", "is required")))]);
            }
        },
        "auth" => match frame.token.as_deref() {
            Some(token) => Command::Auth { token },
            None => return Ok(vec![text(frames::error(id, &crate::error::AppError::field("token", "is required")))]),
        },
        op if op.contains('.') => Command::Action { op, data: frame.data },
        _ => return Ok(vec![text(frames::protocol_error(id, FrameError::UnknownOp.code(), "unknown op"))]),
    };
    let Reply { result, then } = session.command(cmd).await;
    let mut out = Vec::with_capacity(1 + then.len());
    out.push(text(match &result {
        Ok(v) => frames::ok(id, v),
        Err(e) => frames::error(id, e),
    }));
    out.extend(then.into_iter().map(push_frame));
    Ok(out)
}

fn classify_read_error(e: axum::Error) -> End {
    let msg = e.to_string();
    if msg.contains("Space limit exceeded")
        || msg.contains("too long")
        || msg.contains("Message too big")
        || msg.contains("capacity")
    {
        End::Close(CloseCode::FRAME_TOO_LARGE)
    } else {
        End::Gone
    }
}

fn text(s: String) -> Message {
    Message::Text(Utf8Bytes::from(s))
}

async fn close(socket: &mut WebSocket, code: CloseCode) {
    metrics::counter!("chorus_socket_closes_total", "door" => "ws", "code" => code.0.to_string()).increment(1);
    let frame = CloseFrame { code: code.0, reason: Utf8Bytes::from_static(code.reason()) };
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(Some(frame)))).await;
}
