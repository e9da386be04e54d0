//! The hub: this instance's registry of sessions and of the topics they watch, and the
//! fan-out from broker to sessions.
//!
//! # Delivery path
//! A service publishes to the [`Broker`] after its transaction commits; the broker hands each
//! envelope to [`Hub::deliver`] on every instance with local subscribers (this one included);
//! the hub puts one shared [`Delivery`] into the bounded queue of each subscribed session.
//! There is no other path: doors never broadcast on their own.
//!
//! # Cost per event
//! - The envelope is wrapped once in an `Arc<Delivery>`; each recipient costs an `Arc` clone
//!   and a `try_send`, never a serialisation. Each door's encoding is made once, by whichever
//!   session writes it first ([`Delivery::ws_frame`], [`Delivery::sio_payload`]), and shared
//!   by the rest.
//! - Socket.IO sessions on *ephemeral* topics are reached through one socketioxide room
//!   broadcast per event (socketioxide encodes a broadcast once). On *durable* topics —
//!   which are personal or per-conversation, so small — Socket.IO sessions get the same
//!   queued `Delivery` as WebSocket sessions, because exactly-once ordering is enforced per
//!   session (see `session.rs`).
//!
//! # Locks
//! The topic map is a `DashMap` (sharded locks); each topic's subscriber set is a std
//! `RwLock` held only for the synchronous `try_send` loop — never across an `.await`.
//! `try_send` never waits: a session whose queue is full is a slow consumer; it is flagged
//! to close with a reconnect-range code and the loop moves on, so one slow client never
//! slows the others and server memory per client stays bounded by its queue.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::task::Poll;

use axum::extract::ws::Utf8Bytes;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use futures_util::task::AtomicWaker;
use serde_json::value::RawValue;
use tokio::sync::{OnceCell, broadcast, mpsc};

use crate::broker::{Broker, Sink};
use crate::domain::Id;
use crate::events::{Envelope, EventName, Topic};
use crate::realtime::close::CloseCode;

/// Identifies a session (one socket connection, or one Socket.IO namespace socket).
pub type SessionId = u64;

/// Which door a session came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Door {
    /// Plain WebSocket `/ws`.
    Ws,
    /// Socket.IO.
    Sio,
}

impl Door {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Door::Ws => "ws",
            Door::Sio => "socketio",
        }
    }
}

/// An event on its way to the sessions of one topic, shared by all of them.
#[derive(Debug)]
pub struct Delivery {
    /// The topic, parsed once.
    pub topic: Topic,
    /// The event.
    pub env: Envelope,
    /// When the hub took it from the broker: a session that writes it late is behind, and
    /// coalesces its next writes by as much (see `conn.rs`).
    pub born: tokio::time::Instant,
    ws_frame: OnceLock<Utf8Bytes>,
    sio_payload: OnceLock<Box<RawValue>>,
}

impl Delivery {
    /// A delivery for `env` on `topic`.
    pub fn new(topic: Topic, env: Envelope) -> Self {
        Self { topic, env, born: tokio::time::Instant::now(), ws_frame: OnceLock::new(), sio_payload: OnceLock::new() }
    }

    /// The plain-WebSocket frame, encoded on first use and shared afterwards
    /// ([`encode_event`]).
    pub fn ws_frame(&self) -> Utf8Bytes {
        self.ws_frame.get_or_init(|| encode_event(&self.topic, &self.env, Door::Ws)).clone()
    }

    /// The Socket.IO payload, encoded (and checked as JSON, which socketioxide's raw value
    /// needs) on first use and shared by every socket it is emitted to.
    pub fn sio_payload(&self) -> &RawValue {
        self.sio_payload.get_or_init(|| {
            let s = encode_event(&self.topic, &self.env, Door::Sio).as_str().to_owned();
            RawValue::from_string(s).expect("data is JSON, so the payload is")
        })
    }
}

/// Encodes an event for a door (`protocol/PROTOCOL.md`): the plain-WebSocket frame
/// `{"op":"event","topic":…,"event":…,"seq":"…","data":…}`, or the Socket.IO payload
/// `{"topic":…,"seq":"…","data":…}` (the event name is the Socket.IO event). Topic wire
/// names and event names are plain ASCII without quotes, and `data` is already JSON, so the
/// frame is concatenated rather than serialised (no second pass over the payload).
pub fn encode_event(topic: &Topic, env: &Envelope, door: Door) -> Utf8Bytes {
    let wire = topic.wire_name();
    let mut s = String::with_capacity(env.data.len() + wire.len() + 80);
    s.push_str(match door {
        Door::Ws => r#"{"op":"event","topic":""#,
        Door::Sio => r#"{"topic":""#,
    });
    s.push_str(&wire);
    s.push('"');
    if door == Door::Ws {
        s.push_str(r#","event":""#);
        s.push_str(env.event.as_str());
        s.push('"');
    }
    if let Some(seq) = env.seq {
        s.push_str(r#","seq":""#);
        s.push_str(&seq.to_string());
        s.push('"');
    }
    s.push_str(r#","data":"#);
    s.push_str(&env.data);
    s.push('}');
    Utf8Bytes::from(s)
}

/// What a session's queue carries.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event on a subscribed topic.
    Event(Arc<Delivery>),
    /// The broker lost and regained its connection: re-read durable topics from the
    /// database, events may have been missed.
    Resync,
    /// What the user may see changed: re-authorise the subscriptions that depend on it.
    Recheck,
}

/// Tells a session to close, from any thread, without going through its (maybe full) queue.
///
/// The session's own task is the one waiter ([`Kill::killed`] registers a single
/// [`AtomicWaker`]): polling it is an atomic load, where a cancellation token would take
/// a mutex on every poll of the session loop.
#[derive(Debug, Default)]
pub struct Kill {
    /// The close code asked for; 0 while the session may live.
    code: AtomicU16,
    waker: AtomicWaker,
}

impl Kill {
    /// Asks the session to close with `code`. The first reason wins.
    pub fn kill(&self, code: CloseCode) {
        if self.code.compare_exchange(0, code.0, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.waker.wake();
        }
    }

    /// Resolves when the session was asked to close. Only the session's own task awaits
    /// this (one waker is kept).
    pub fn killed(&self) -> impl Future<Output = CloseCode> + '_ {
        std::future::poll_fn(move |cx| {
            if let Some(code) = self.code() {
                return Poll::Ready(code);
            }
            self.waker.register(cx.waker());
            // A kill between the first load and the registration would have found no waker.
            self.code().map_or(Poll::Pending, Poll::Ready)
        })
    }

    /// Whether the session was asked to close.
    pub fn is_killed(&self) -> bool {
        self.code().is_some()
    }

    fn code(&self) -> Option<CloseCode> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            c => Some(CloseCode(c)),
        }
    }
}

/// The accounts blocked either way with a session's user. The hub reads it for every
/// delivery that names an actor ([`Envelope::actor`]) and skips the session when the actor
/// is in it: one atomic load when the set is empty (most users), a read lock otherwise —
/// the event itself is still encoded once for everyone. The session fills it when it opens
/// and again whenever its user's access changes (a block or an unblock, either side).
#[derive(Debug, Default)]
pub struct BlockSet {
    any: AtomicBool,
    ids: RwLock<HashSet<Id>>,
}

impl BlockSet {
    /// Whether `user` is blocked either way with the session's user.
    pub fn contains(&self, user: Id) -> bool {
        self.any.load(Ordering::Acquire) && self.ids.read().expect("block set poisoned").contains(&user)
    }

    /// Replaces the set; returns the accounts added and removed (for Socket.IO's rooms).
    pub fn replace(&self, ids: HashSet<Id>) -> (Vec<Id>, Vec<Id>) {
        let mut cur = self.ids.write().expect("block set poisoned");
        let added = ids.difference(&cur).copied().collect();
        let removed = cur.difference(&ids).copied().collect();
        self.any.store(!ids.is_empty(), Ordering::Release);
        *cur = ids;
        (added, removed)
    }
}

/// The hub's handle on one session: shared, because every topic the session watches holds
/// it (a pointer per subscription instead of a copy of these fields).
#[derive(Clone, Debug)]
pub struct SessionHandle(Arc<Handle>);

impl std::ops::Deref for SessionHandle {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        &self.0
    }
}

/// What the hub knows of a session.
#[derive(Debug)]
pub struct Handle {
    /// Session id.
    pub id: SessionId,
    /// Authenticated user.
    pub user: Id,
    /// Auth session (refresh family) the token belongs to.
    pub auth_session: Id,
    /// Door.
    pub door: Door,
    tx: mpsc::Sender<Outbound>,
    /// Close switch (inline: the handle itself is shared).
    pub kill: Kill,
    /// Who the session's user is blocked with: their events are not delivered to it.
    pub blocks: BlockSet,
}

#[derive(Default)]
struct TopicSubs {
    subs: RwLock<HashMap<SessionId, SessionHandle>>,
    /// Socket.IO sessions on this topic when it is ephemeral (served by a room broadcast).
    sio_room: AtomicUsize,
    /// Resolves once the broker subscription for this topic is active.
    ready: OnceCell<()>,
}

impl TopicSubs {
    /// Has every session on the topic re-check the subscriptions that depend on what its
    /// user may see.
    fn recheck(&self) {
        for s in self.subs.read().expect("topic lock poisoned").values() {
            // A session that cannot take the re-check would keep what it may no longer see
            // (a stale block set, a subscription now refused): it is behind anyway, cut it off.
            if let Err(mpsc::error::TrySendError::Full(_)) = s.tx.try_send(Outbound::Recheck) {
                s.kill.kill(CloseCode::SLOW_CONSUMER);
            }
        }
    }
}

/// Broadcasts an ephemeral event to a Socket.IO room (installed by the Socket.IO door),
/// except to the sockets whose user is blocked with the event's actor ([`blocked_room`]).
pub type SioBridge = Arc<dyn Fn(&Delivery) + Send + Sync>;

/// The Socket.IO room a session joins for each account in its [`BlockSet`]: a room
/// broadcast of an event by that account excludes it (`except`), so the block filter costs
/// Socket.IO nothing per recipient either.
pub fn blocked_room(user: Id) -> String {
    format!("blk:{user}")
}

/// The registry.
pub struct Hub {
    queue_frames: usize,
    broker: Broker,
    topics: DashMap<Arc<str>, Arc<TopicSubs>>,
    sessions: DashMap<SessionId, SessionHandle>,
    /// Sessions per user, for the per-user cap.
    per_user: DashMap<Id, usize>,
    next_id: AtomicU64,
    taps: broadcast::Sender<Envelope>,
    sio_bridge: OnceLock<SioBridge>,
}

impl Hub {
    /// A hub whose sessions queue at most `queue_frames` events each, over the broker
    /// `broker` makes for it (given the hub as its [`Sink`]).
    pub fn new(queue_frames: usize, broker: impl FnOnce(Weak<dyn Sink>) -> Broker) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Hub>| Self {
            queue_frames,
            broker: broker(me.clone()),
            topics: DashMap::new(),
            sessions: DashMap::new(),
            per_user: DashMap::new(),
            next_id: AtomicU64::new(1),
            taps: broadcast::channel(4096).0,
            sio_bridge: OnceLock::new(),
        })
    }

    /// Installs the Socket.IO room broadcaster.
    pub fn set_sio_bridge(&self, bridge: SioBridge) {
        let _ = self.sio_bridge.set(bridge);
    }

    /// The broker this hub's events travel on.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Every envelope this hub receives, for tests and diagnostics. Costs nothing while no
    /// one listens.
    pub fn tap(&self) -> broadcast::Receiver<Envelope> {
        self.taps.subscribe()
    }

    /// Registers a session; returns its handle and the receiving end of its queue, or
    /// `None` when `user` already holds `per_user_cap` sessions here.
    pub fn register(
        &self,
        user: Id,
        auth_session: Id,
        door: Door,
        per_user_cap: usize,
    ) -> Option<(SessionHandle, mpsc::Receiver<Outbound>)> {
        {
            // Counted under the entry's shard lock: concurrent connects cannot both pass.
            let mut n = self.per_user.entry(user).or_insert(0);
            if *n >= per_user_cap {
                return None;
            }
            *n += 1;
        }
        let (tx, rx) = mpsc::channel(self.queue_frames);
        let handle = SessionHandle(Arc::new(Handle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            user,
            auth_session,
            door,
            tx,
            kill: Kill::default(),
            blocks: BlockSet::default(),
        }));
        self.sessions.insert(handle.id, handle.clone());
        metrics::gauge!("chorus_socket_connections", "door" => door.label()).increment(1.0);
        Some((handle, rx))
    }

    /// Removes a session. Its subscriptions must have been dropped with
    /// [`Hub::unsubscribe`] first (the session does this when it ends).
    pub fn unregister(&self, session: &SessionHandle) {
        if self.sessions.remove(&session.id).is_some() {
            self.per_user.remove_if_mut(&session.user, |_, n| {
                *n -= 1;
                *n == 0
            });
            metrics::gauge!("chorus_socket_connections", "door" => session.door.label()).decrement(1.0);
        }
    }

    /// Number of sessions on this instance.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Whether `user` has a session on this instance.
    pub fn user_is_connected_here(&self, user: Id) -> bool {
        self.per_user.contains_key(&user)
    }

    /// Subscribes a session to a topic. Returns once the broker delivers the topic to this
    /// instance, so that whatever the caller reads from the database afterwards cannot
    /// miss an event in between.
    pub async fn subscribe(&self, session: &SessionHandle, topic: &Topic) {
        let key: Arc<str> = topic.key().into();
        let sio_room = session.door == Door::Sio && !topic.is_durable();
        // Insert under the map's shard lock so a concurrent last-unsubscribe cannot remove
        // the entry between our lookup and our insert.
        let entry = match self.topics.entry(key.clone()) {
            Entry::Occupied(e) => {
                let subs = e.get().clone();
                subs.subs.write().expect("topic lock poisoned").insert(session.id, session.clone());
                subs
            }
            Entry::Vacant(v) => {
                let subs = Arc::new(TopicSubs::default());
                subs.subs.write().expect("topic lock poisoned").insert(session.id, session.clone());
                v.insert(subs.clone());
                subs
            }
        };
        if sio_room {
            entry.sio_room.fetch_add(1, Ordering::Relaxed);
        }
        metrics::gauge!("chorus_socket_subscriptions").increment(1.0);
        // The first subscriber subscribes the broker; concurrent ones wait for the same.
        let broker = self.broker();
        entry.ready.get_or_init(|| async { broker.subscribe(&key).await }).await;
    }

    /// Removes a session from a topic; the last local subscriber unsubscribes the broker.
    pub fn unsubscribe(&self, session: &SessionHandle, topic: &Topic) {
        let key = topic.key();
        let Some(entry) = self.topics.get(key.as_str()).map(|e| e.clone()) else {
            return;
        };
        let removed = entry.subs.write().expect("topic lock poisoned").remove(&session.id).is_some();
        if !removed {
            return;
        }
        metrics::gauge!("chorus_socket_subscriptions").decrement(1.0);
        if session.door == Door::Sio && !topic.is_durable() {
            entry.sio_room.fetch_sub(1, Ordering::Relaxed);
        }
        let gone = self.topics.remove_if(key.as_str(), |_, e| e.subs.read().expect("topic lock poisoned").is_empty());
        if let Some((k, _)) = gone {
            self.broker().unsubscribe(&k);
        }
    }

    /// Topics with local subscribers (re-subscribed by the broker after a reconnect).
    pub fn topic_keys(&self) -> Vec<Arc<str>> {
        self.topics.iter().map(|e| e.key().clone()).collect()
    }

    /// Whether the topic has local subscribers.
    pub fn has_topic(&self, key: &str) -> bool {
        self.topics.contains_key(key)
    }

    /// Local subscribers of a topic.
    pub fn subscriber_count(&self, topic: &Topic) -> usize {
        self.topics.get(topic.key().as_str()).map(|e| e.subs.read().expect("topic lock poisoned").len()).unwrap_or(0)
    }

    /// Hands an envelope from the broker to the local subscribers of its topic.
    pub fn deliver(&self, env: Envelope) {
        if self.taps.receiver_count() > 0 {
            let _ = self.taps.send(env.clone());
        }
        // Clone the entry's Arc so the map's shard lock is released before the loop.
        let Some(entry) = self.topics.get(&*env.topic).map(|e| e.clone()) else {
            return;
        };
        let Some(topic) = Topic::from_key(&env.topic) else {
            return;
        };
        match topic {
            Topic::Control(_) => return self.control(&entry, &env),
            // An audience holds other users' sessions: it only ever asks them to re-check.
            Topic::Audience(_) => {
                if env.event == EventName::AccessChanged {
                    entry.recheck();
                }
                return;
            }
            _ => {}
        }
        let durable = topic.is_durable();
        let actor = env.actor;
        let delivery = Arc::new(Delivery::new(topic, env));
        let (mut delivered, mut dropped) = (0u64, 0u64);
        {
            let subs = entry.subs.read().expect("topic lock poisoned");
            for sub in subs.values() {
                if sub.door == Door::Sio && !durable {
                    continue; // reached through the room broadcast below
                }
                // On durable topics the session skips it itself, keeping its seq position.
                if !durable && actor.is_some_and(|a| sub.blocks.contains(a)) {
                    continue;
                }
                match sub.tx.try_send(Outbound::Event(delivery.clone())) {
                    Ok(()) => delivered += 1,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // A slow consumer: cut it off, never wait for it.
                        sub.kill.kill(CloseCode::SLOW_CONSUMER);
                        dropped += 1;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        let room = entry.sio_room.load(Ordering::Relaxed);
        if room > 0
            && let Some(bridge) = self.sio_bridge.get()
        {
            bridge(&delivery);
            delivered += room as u64;
        }
        metrics::counter!("chorus_events_delivered_total").increment(delivered);
        if dropped > 0 {
            metrics::counter!("chorus_events_dropped_total").increment(dropped);
        }
    }

    /// Control events (`ctl:{user}`): close the user's sessions — all, one auth session's,
    /// or all but one — or have them re-check their subscriptions.
    fn control(&self, entry: &TopicSubs, env: &Envelope) {
        if env.event == EventName::AccessChanged {
            return entry.recheck();
        }
        if env.event != EventName::SessionRevoked {
            return;
        }
        #[derive(serde::Deserialize)]
        struct Revoked {
            session: Option<Id>,
            except: Option<Id>,
            code: u16,
        }
        let Ok(r) = serde_json::from_str::<Revoked>(&env.data) else {
            return;
        };
        let subs = entry.subs.read().expect("topic lock poisoned");
        for s in subs.values() {
            if r.session.is_none_or(|sid| sid == s.auth_session) && r.except != Some(s.auth_session) {
                s.kill.kill(CloseCode(r.code));
            }
        }
    }

    /// Tells every session to re-read its durable topics (after a broker reconnect).
    pub fn broker_recovered(&self) {
        for s in self.sessions.iter() {
            // A full queue means the session is already behind and will be cut off anyway.
            let _ = s.tx.try_send(Outbound::Resync);
        }
    }

    /// Closes every session with `code` (graceful shutdown: "reconnect elsewhere").
    pub fn close_all(&self, code: CloseCode) {
        for s in self.sessions.iter() {
            s.kill.kill(code);
        }
    }
}
/// What the broker sees of the hub.
impl Sink for Hub {
    fn deliver(&self, env: Envelope) {
        Hub::deliver(self, env);
    }

    fn recovered(&self) {
        self.broker_recovered();
    }

    fn held_topics(&self) -> Vec<Arc<str>> {
        self.topic_keys()
    }

    fn holds(&self, topic: &str) -> bool {
        self.has_topic(topic)
    }
}
