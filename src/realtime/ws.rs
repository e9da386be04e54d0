//! The plain WebSocket door: `GET /ws`, subprotocol `chorus.v1`, JSON text frames
//! (`protocol/PROTOCOL.md`).
//!
//! One task per connection owns the socket and its [`Session`]. It waits on four things at
//! once: the hub's queue (events to write), the socket (client frames), the heartbeat, and
//! the session's kill switch (slow consumer, logout, shutdown). Writes are batched — what is
//! queued is fed to the socket and flushed once — and every write also watches the kill
//! switch, so a client that stopped reading cannot pin its task: the hub cuts it off when
//! its queue fills, and the close happens even while a write is blocked.
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
use serde_json::json;
use tokio::time::{Instant, sleep_until};

use crate::auth::AccessClaims;
use crate::realtime::close::CloseCode;
use crate::realtime::frames::{self, ClientFrame, FrameError};
use crate::realtime::hub::{Door, Outbound};
use crate::realtime::session::{Accept, Command, Push, RateVerdict, Reply, Session, default_topics};
use crate::state::AppState;

/// Events written per flush at most (then the loop looks at the socket again).
const BATCH: usize = 64;
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
        .read_buffer_size(4096)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
        .on_upgrade(move |socket| run(socket, state, q))
}

/// Why the connection loop stopped.
enum End {
    /// Close with this code (and tell the client first when it is a reconnect code).
    Close(CloseCode),
    /// The peer went away or the transport failed: nothing more to write.
    Gone,
}

async fn run(mut socket: WebSocket, state: AppState, q: WsQuery) {
    let positions: Option<HashMap<String, String>> = match q.positions.as_deref().map(serde_json::from_str) {
        None => None,
        Some(Ok(p)) => Some(p),
        Some(Err(_)) => {
            let _ =
                socket.send(text(frames::protocol_error(None, "bad_frame", "positions must be a JSON object"))).await;
            return close(&mut socket, CloseCode::PROTOCOL_VIOLATION).await;
        }
    };
    let (claims, positions) = match authenticate(&mut socket, &state, q.access_token, positions).await {
        Ok(v) => v,
        Err(End::Close(code)) => return close(&mut socket, code).await,
        Err(End::Gone) => return,
    };
    let (mut session, mut rx) = match Session::open(&state, &claims, Door::Ws).await {
        Ok(s) => s,
        Err(code) => return close(&mut socket, code).await,
    };
    metrics::counter!("chorus_socket_connects_total", "door" => "ws").increment(1);
    let end = serve(&mut socket, &state, &mut session, &mut rx, positions).await;
    match end {
        End::Close(code) => {
            if code.is_reconnect() {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    socket.send(text(frames::reconnect(code.reason(), code.0))),
                )
                .await;
            }
            close(&mut socket, code).await;
        }
        End::Gone => {}
    }
    session.close().await;
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

async fn serve(
    socket: &mut WebSocket,
    state: &AppState,
    session: &mut Session,
    rx: &mut tokio::sync::mpsc::Receiver<Outbound>,
    positions: Option<HashMap<String, String>>,
) -> End {
    // Personal topics first (live from now, or resumed from the given positions, before any
    // live event is written: the queue is only read after this).
    let mut resumed = serde_json::Map::new();
    let mut replay = Vec::new();
    for topic in default_topics(state, session.user(), None).await {
        let from = positions.as_ref().and_then(|p| p.get(topic.wire_name().as_ref())).and_then(|s| s.parse().ok());
        match session.subscribe(topic, from).await {
            Ok((ack, mut then)) => {
                resumed.insert(topic.wire_name().into_owned(), ack);
                replay.append(&mut then);
            }
            Err(e) => tracing::warn!(error = %e, %topic, "default subscription failed"),
        }
    }
    // Positions for topics that are not personal (conversations joined later, posts…).
    let mut extra = Vec::new();
    if let Some(p) = &positions {
        let others: HashMap<String, String> =
            p.iter().filter(|(k, _)| !resumed.contains_key(k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect();
        if !others.is_empty()
            && let Ok((v, mut then)) = session.resume(&others).await
        {
            if let Some(obj) = v.get("topics").and_then(|t| t.as_object()) {
                resumed.extend(obj.clone());
            }
            extra.append(&mut then);
        }
    }
    replay.append(&mut extra);
    let mut hello = session.hello();
    hello["subscriptions"] = serde_json::Value::Object(resumed);
    if let Err(end) = write(socket, session, vec![text(frames::hello(hello))]).await {
        return end;
    }
    if let Err(end) = write_pushes(socket, session, replay).await {
        return end;
    }

    let heartbeat = Duration::from_millis(state.config.hub.heartbeat_ms.max(100));
    let write_delay = Duration::from_millis(state.config.hub.write_delay_ms);
    let queue_frames = state.config.hub.queue_frames;
    let mut last_heard = Instant::now();
    // The loop's timers and close switch live across iterations: re-creating them per
    // event would register and clear two timer entries and a waiter on every delivery.
    let kill = session.handle.kill.clone();
    let killed = kill.killed();
    let ping = sleep_until(Instant::now() + heartbeat);
    let (mut armed_for, expiry) = session.expiry_timer();
    tokio::pin!(killed, ping, expiry);
    loop {
        session.rearm_expiry(&mut armed_for, expiry.as_mut());
        tokio::select! {
            code = &mut killed => return End::Close(code),
            msg = socket.recv() => {
                last_heard = Instant::now();
                let frame = match msg {
                    None => return End::Gone,
                    Some(Err(e)) => return classify_read_error(e),
                    Some(Ok(m)) => m,
                };
                match frame {
                    Message::Text(t) => {
                        let replies = handle_text(session, &t).await;
                        match replies {
                            Ok(out) => if let Err(end) = write(socket, session, out).await { return end; },
                            Err(code) => return End::Close(code),
                        }
                    }
                    Message::Binary(_) => {
                        let _ = write(socket, session, vec![text(frames::protocol_error(None, "bad_frame", "binary frames are not part of chorus.v1"))]).await;
                        return End::Close(CloseCode::PROTOCOL_VIOLATION);
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Close(_) => return End::Gone,
                }
            }
            out = rx.recv() => {
                let Some(first) = out else { return End::Gone };
                // hub.write_delay_ms: let events that arrive meanwhile share this write.
                let mut limit = BATCH;
                if !write_delay.is_zero() && rx.len() < BATCH {
                    tokio::select! {
                        code = &mut killed => return End::Close(code),
                        () = tokio::time::sleep(write_delay) => {}
                    }
                    // All that arrived during the delay goes now: with BATCH per delay, a
                    // connection receiving more than that would fall further behind with
                    // each delay until its queue overflowed. (What arrives within one delay
                    // must still fit `queue_frames`.)
                    limit = queue_frames;
                }
                let mut batch = Vec::with_capacity(8);
                if let Err(end) = collect(session, first, &mut batch).await { return end; }
                while batch.len() < limit {
                    match rx.try_recv() {
                        Ok(more) => if let Err(end) = collect(session, more, &mut batch).await { return end; },
                        Err(_) => break,
                    }
                }
                if let Err(end) = write(socket, session, batch).await { return end; }
            }
            _ = &mut expiry => return End::Close(CloseCode::TOKEN_EXPIRED),
            _ = &mut ping => {
                if last_heard.elapsed() > heartbeat * 2 {
                    return End::Close(CloseCode::HEARTBEAT_TIMEOUT);
                }
                ping.as_mut().reset(Instant::now() + heartbeat);
                if let Err(end) = write(socket, session, vec![Message::Ping(Default::default())]).await { return end; }
            }
        }
    }
}

/// Turns a hub delivery into frames (usually the shared event frame itself).
async fn collect(session: &mut Session, out: Outbound, batch: &mut Vec<Message>) -> Result<(), End> {
    match out {
        Outbound::Event(d) => match session.accept(&d).await {
            Accept::Send => batch.push(Message::Text(d.ws_frame())),
            Accept::Skip => {}
            Accept::Many(pushes) => batch.extend(pushes.into_iter().map(push_frame)),
        },
        Outbound::Resync => batch.extend(session.resync().await.into_iter().map(push_frame)),
        Outbound::Recheck => batch.extend(session.recheck(None).await.into_iter().map(push_frame)),
    }
    Ok(())
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

async fn write_pushes(socket: &mut WebSocket, session: &Session, pushes: Vec<Push>) -> Result<(), End> {
    if pushes.is_empty() {
        return Ok(());
    }
    write(socket, session, pushes.into_iter().map(push_frame).collect()).await
}

/// Feeds every frame and flushes once; gives up at once if the session is killed meanwhile.
async fn write(socket: &mut WebSocket, session: &Session, frames: Vec<Message>) -> Result<(), End> {
    if frames.is_empty() {
        return Ok(());
    }
    let n = frames.len();
    let io = async {
        for f in frames {
            socket.feed(f).await?;
        }
        socket.flush().await
    };
    // Biased: the write usually completes on its first poll, without looking at the switch.
    tokio::select! {
        biased;
        r = io => match r {
            Ok(()) => {
                metrics::counter!("chorus_socket_frames_sent_total", "door" => "ws").increment(n as u64);
                Ok(())
            }
            Err(e) => {
                tracing::debug!(error = %e, "websocket write failed");
                Err(End::Gone)
            }
        },
        code = session.handle.kill.killed() => Err(End::Close(code)),
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
