//! The Socket.IO door (socketioxide), for the official `socket.io-client` v4.
//!
//! Namespaces `/post`, `/follower`, `/chat`, `/notification`, `/image`; the access token (and
//! optional resume `positions`) in the handshake `auth` payload. Each namespace socket is one
//! [`Session`] run by one task through the same connection loop as a `/ws` connection
//! ([`conn::run`]): subscriptions, resume, authorisation and exactly-once ordering all come
//! from the shared session and hub — this file only translates between socket.io
//! events/acks and [`Command`]s/[`Push`]es (its [`Transport`]).
//!
//! Delivery: on durable topics (small by nature: personal or per-conversation) events come
//! through the session's queue and are emitted per socket, after the session's seq check. On
//! ephemeral topics (a post's comments, a profile's activity, presence — possibly watched by
//! thousands) the socket joins a socketioxide room named after the topic, and the hub emits
//! once per event to the room ([`bridge`]); socketioxide encodes a room broadcast once and
//! shares it. socketioxide's own bounded per-socket buffer (`hub.queue_frames` packets)
//! bounds memory; a socket whose buffer is full is cut off as a slow consumer.
//!
//! Socket.IO has no close codes: before disconnecting a socket the server emits
//! `reconnect` (`{reason, code}`, 4000–4499: reconnect and resume) or `closed` (final), and
//! a refused handshake answers `connect_error` with the reason (`unauthorized`,
//! `token_expired`, `token_revoked`, `too_many_connections`) as its message.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Data, SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;
use socketioxide::layer::SocketIoLayer;
use socketioxide::{SendError, SocketError, SocketIo};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::error::AppError;
use crate::events::Topic;
use crate::realtime::close::CloseCode;
use crate::realtime::conn::{self, End, Inbound, Transport};
use crate::realtime::hub::{Delivery, Door, Outbound, blocked_room};
use crate::realtime::session::{Command, Push, RateVerdict, Reply, Session};
use crate::state::AppState;

/// The namespaces, one per channel.
pub const NAMESPACES: [&str; 5] = ["/post", "/follower", "/chat", "/notification", "/image"];

/// Client events forwarded to the session (besides actions with a dot in their name).
const OPS: [&str; 4] = ["subscribe", "unsubscribe", "resume", "auth"];
/// Actions forwarded to services.
const ACTIONS: [&str; 3] = ["chat.send", "chat.typing", "chat.read"];

/// The handshake `auth` payload.
#[derive(Debug, Deserialize)]
struct Handshake {
    token: String,
    #[serde(default)]
    positions: HashMap<String, String>,
}

/// A refused handshake; its `Display` is the `connect_error` message.
#[derive(Debug)]
struct Refused(CloseCode);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.reason())
    }
}

/// A client event waiting for the session task. Boxed: the channel allocates its slots in
/// blocks of 32 when it is made, and every idle socket holds that block.
type Cmd = Box<(&'static str, Value, Option<AckSender>)>;
type Commands = mpsc::Receiver<Cmd>;
/// What the connect middleware hands to the connect handler.
struct Handoff {
    session: Session,
    rx: mpsc::Receiver<Outbound>,
    positions: HashMap<String, String>,
    cmds: Commands,
    gone: CancellationToken,
}
type Opened = Arc<Mutex<Option<Handoff>>>;
type CommandTx = mpsc::Sender<Cmd>;

/// Builds the socket.io layer and wires its namespaces and the hub's room bridge.
pub fn layer(state: &AppState) -> SocketIoLayer<LocalAdapter> {
    let hub = &state.config.hub;
    let (layer, io) = SocketIo::builder()
        .with_state(state.clone())
        .ping_interval(Duration::from_millis(hub.heartbeat_ms))
        .ping_timeout(Duration::from_millis(hub.heartbeat_ms))
        .max_payload(hub.max_frame_bytes as u64)
        .max_buffer_size(hub.queue_frames)
        // Client frames are small; the read buffer is held by every idle socket.
        .ws_read_buffer_size(conn::READ_BUFFER)
        .build_layer();
    for ns in NAMESPACES {
        io.ns(ns, on_connect.with(authenticate));
    }
    state.hub.set_sio_bridge(bridge(io));
    layer
}

/// The hub's once-per-event broadcast to the room of an ephemeral topic.
fn bridge(io: SocketIo) -> crate::realtime::hub::SioBridge {
    Arc::new(move |d: &Delivery| {
        let Some(ns) = io.of(d.topic.namespace()) else { return };
        let raw = d.sio_payload();
        // The local adapter completes at once; never block the hub's delivery.
        let to = ns.to(d.topic.key());
        let fut = match d.env.actor {
            Some(a) => to.except(blocked_room(a)).emit(d.env.event.as_str(), raw),
            None => to.emit(d.env.event.as_str(), raw),
        };
        if let Some(Err(e)) = fut.now_or_never() {
            tracing::debug!(error = %e, "socket.io room broadcast failed for some sockets");
        }
    })
}

/// Connect middleware: verifies the token and opens the session before the socket joins
/// the namespace, so every refusal is a `connect_error`. It also registers the event
/// handlers: socketioxide sends the CONNECT packet *before* it runs the connect handler, and
/// a client that emits at once (`subscribe` right after `connect`) would otherwise race the
/// registration and lose its event (seen with 3,000 clients connecting together).
async fn authenticate(
    s: SocketRef,
    State(state): State<AppState>,
    TryData(auth): TryData<Handshake>,
) -> Result<(), Refused> {
    let Ok(auth) = auth else { return Err(Refused(CloseCode::UNAUTHORIZED)) };
    let claims = state.auth.verify_access(&state.revocations, &auth.token).await.map_err(|f| Refused(f.into()))?;
    let (session, rx) = Session::open(&state, &claims, Door::Sio).await.map_err(Refused)?;
    // Commands queue until the session task runs; bounded like everything per connection.
    let (cmd_tx, cmds): (CommandTx, _) = mpsc::channel(64);
    let gone = CancellationToken::new();
    for op in OPS.into_iter().chain(ACTIONS) {
        let tx = cmd_tx.clone();
        s.on(op, async move |Data(data): Data<Value>, ack: AckSender| {
            let _ = tx.try_send(Box::new((op, data, Some(ack))));
        });
    }
    {
        let gone = gone.clone();
        s.on_disconnect(async move || gone.cancel());
    }
    let opened: Opened = Arc::new(Mutex::new(Some(Handoff { session, rx, positions: auth.positions, cmds, gone })));
    s.extensions.insert(opened);
    Ok(())
}

async fn on_connect(s: SocketRef) {
    let Some(opened) = s.extensions.get::<Opened>() else { return };
    let Some(h) = opened.lock().expect("handoff poisoned").take() else { return };
    s.extensions.remove::<Opened>();
    metrics::counter!("chorus_socket_connects_total", "door" => "socketio").increment(1);
    let Handoff { session, rx, positions, cmds, gone } = h;
    let t = Sio { s, cmds, gone: Box::pin(gone.cancelled_owned()) };
    // Spawned as is: a wrapper future would keep a second copy of what it hands over.
    tokio::spawn(conn::run(t, session, rx, positions));
}

/// A namespace socket as the connection loop sees it.
struct Sio {
    s: SocketRef,
    cmds: Commands,
    /// Resolves when socketioxide reports the disconnect; kept across the loop's iterations.
    gone: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Transport for Sio {
    type Input = Cmd;

    fn namespace(&self) -> Option<&str> {
        Some(self.s.ns())
    }

    fn heartbeat(&self) -> Option<Duration> {
        None // Engine.IO pings on its own
    }

    async fn recv(&mut self) -> Inbound<Self::Input> {
        tokio::select! {
            () = &mut self.gone => Inbound::End(End::Gone),
            cmd = self.cmds.recv() => match cmd {
                Some(cmd) => Inbound::Input(cmd),
                None => Inbound::End(End::Gone),
            },
        }
    }

    async fn handle(&mut self, session: &mut Session, cmd: Self::Input) -> Result<(), End> {
        let (op, data, ack) = *cmd;
        handle(&self.s, session, op, data, ack).await.map_err(End::Close)
    }

    async fn hello(&mut self, hello: Value) -> Result<(), End> {
        let _ = self.s.emit("hello", &hello);
        Ok(())
    }

    async fn write(&mut self, pushes: &mut Vec<Push>) -> Result<(), End> {
        emit_pushes(&self.s, pushes.drain(..)).map_err(End::Close)
    }

    fn blocks_changed(&mut self, session: &mut Session) {
        join_block_rooms(&self.s, session.blocked_changes());
    }

    async fn finish(&mut self, end: End) {
        let End::Close(code) = end else { return };
        metrics::counter!("chorus_socket_closes_total", "door" => "socketio", "code" => code.0.to_string())
            .increment(1);
        let event = if code.is_reconnect() { "reconnect" } else { "closed" };
        let _ = self.s.emit(event, &json!({"reason": code.reason(), "code": code.0}));
        let _ = self.s.clone().disconnect();
    }
}

/// Handles one client event and answers its ack.
async fn handle(
    s: &SocketRef,
    session: &mut Session,
    op: &str,
    data: Value,
    ack: Option<AckSender>,
) -> Result<(), CloseCode> {
    let reply = |ack: Option<AckSender>, v: Value| {
        if let Some(ack) = ack {
            let _ = ack.send(&v);
        }
    };
    match session.rate() {
        RateVerdict::Allow => {}
        RateVerdict::Refuse => {
            reply(
                ack,
                json!({"ok": false, "error": {"code": "rate_limited", "message": "too many frames; slow down"}}),
            );
            return Ok(());
        }
        RateVerdict::Close => return Err(CloseCode::RATE_LIMITED),
    }
    let str_field = |k: &str| data.get(k).and_then(Value::as_str).map(str::to_string);
    let (topic, from, token) = (str_field("topic"), str_field("from"), str_field("token"));
    let positions: Option<HashMap<String, String>> =
        data.get("positions").and_then(|p| serde_json::from_value(p.clone()).ok());
    let raw = RawValue::from_string(data.to_string()).ok();
    let missing = |f: &str| Reply { result: Err(AppError::field(f, "is required")), then: Vec::new() };
    let outcome = match op {
        "subscribe" => match &topic {
            Some(t) => session.command(Command::Subscribe { topic: t, from: from.as_deref() }).await,
            None => missing("topic"),
        },
        "unsubscribe" => match &topic {
            Some(t) => session.command(Command::Unsubscribe { topic: t }).await,
            None => missing("topic"),
        },
        "resume" => match &positions {
            Some(p) => session.command(Command::Resume { positions: p }).await,
            None => missing("positions"),
        },
        "auth" => match &token {
            Some(t) => session.command(Command::Auth { token: t }).await,
            None => missing("token"),
        },
        action => session.command(Command::Action { op: action, data: raw.as_deref() }).await,
    };
    // Ephemeral topics are delivered through a room: keep room membership in step.
    if let (Some(name), Ok(_)) = (&topic, &outcome.result)
        && let Some(t) = Topic::from_wire(name, session.user())
        && !t.is_durable()
    {
        if op == "subscribe" {
            s.join(t.key());
        } else if op == "unsubscribe" {
            s.leave(t.key());
        }
    }
    match outcome.result {
        Ok(v) => reply(ack, json!({"ok": true, "data": v})),
        Err(e) => reply(ack, json!({"ok": false, "error": e.body().error})),
    }
    emit_pushes(s, outcome.then)
}

/// Keeps the socket's [`blocked_room`]s in step with its session's block set.
fn join_block_rooms(s: &SocketRef, (added, removed): (Vec<crate::domain::Id>, Vec<crate::domain::Id>)) {
    for u in added {
        s.join(blocked_room(u));
    }
    for u in removed {
        s.leave(blocked_room(u));
    }
}

fn emit_event(s: &SocketRef, d: &Arc<Delivery>) -> Result<(), CloseCode> {
    match s.emit(d.env.event.as_str(), d.sio_payload()) {
        Ok(()) => Ok(()),
        Err(SendError::Socket(SocketError::InternalChannelFull)) => Err(CloseCode::SLOW_CONSUMER),
        Err(_) => Ok(()), // closed: the disconnect handler ends the task
    }
}

fn emit_pushes(s: &SocketRef, pushes: impl IntoIterator<Item = Push>) -> Result<(), CloseCode> {
    for p in pushes {
        match p {
            Push::Event(d) => emit_event(s, &d)?,
            Push::ResyncRequired { topic, seq } => {
                let _ = s.emit("resync_required", &json!({"topic": topic.wire_name(), "seq": seq.to_string()}));
            }
            Push::Unsubscribed { topic, error } => {
                s.leave(topic.key()); // ephemeral topics reach Socket.IO through rooms
                let _ = s.emit("unsubscribed", &json!({"topic": topic.wire_name(), "error": error}));
            }
        }
    }
    Ok(())
}
