//! One client connection's realtime state, shared by both doors.
//!
//! A door (plain WebSocket or a Socket.IO namespace socket) authenticates, opens a
//! [`Session`], and then runs one task that owns it: it feeds the session the client's
//! [`Command`]s and the hub's [`Outbound`] deliveries, and writes what the session says to
//! write. Because one task owns the session, its per-topic positions need no lock.
//!
//! # Exactly once, in order, on durable topics
//! For every durable topic the session remembers the last `seq` it passed to the client.
//! A live event is written if it is the next one, dropped if already passed (a duplicate,
//! e.g. after a replay), and if it skips ahead — another instance's publish overtook it, or
//! the broker lost messages — the missing events are read from the database first. The
//! subscribe-then-read order (the hub subscription is active before the database is read)
//! makes the join between replayed history and live events seamless. Ephemeral topics
//! (typing, presence, a post's comments and reactions) pass straight through.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::auth::{AccessClaims, AuthFailure};
use crate::domain::Id;
use crate::error::{AppError, AppResult};
use crate::events::{Envelope, EventBatch, EventName, Topic};
use crate::realtime::close::CloseCode;
use crate::realtime::hub::{Delivery, Door, Outbound, SessionHandle};
use crate::state::AppState;
use crate::store::events as event_store;

/// Most events replayed per topic on resume; a client further behind is told
/// `resync_required` and refetches over REST.
pub const MAX_REPLAY: i64 = 1000;
/// Most topics one session may subscribe to, conversations aside.
pub const MAX_SUBSCRIPTIONS: usize = 256;
/// Most conversation (`chat:`) topics one session holds. They have a budget of their own:
/// anyone may add me to a group, and others' actions must not use up the budget of the
/// topics I choose. Past it, the most recently active conversations are the ones watched.
pub const MAX_CONVERSATION_SUBSCRIPTIONS: usize = 1024;

/// What a client asks for, whichever door it came through.
#[derive(Debug)]
pub enum Command<'a> {
    /// Watch a topic, optionally resuming after `from`.
    Subscribe {
        /// Topic wire name.
        topic: &'a str,
        /// Last seq seen.
        from: Option<&'a str>,
    },
    /// Stop watching a topic.
    Unsubscribe {
        /// Topic wire name.
        topic: &'a str,
    },
    /// Resume several topics (subscribing those not yet watched).
    Resume {
        /// Topic wire name → last seq seen.
        positions: &'a HashMap<String, String>,
    },
    /// Swap in a refreshed access token.
    Auth {
        /// The new token.
        token: &'a str,
    },
    /// An action handled by a service (`chat.send`, `chat.typing`, `chat.read`, …).
    Action {
        /// Operation name.
        op: &'a str,
        /// Its payload.
        data: Option<&'a RawValue>,
    },
}

/// Something to write to the client, in order.
#[derive(Debug, Clone)]
pub enum Push {
    /// An event (live or replayed).
    Event(Arc<Delivery>),
    /// The client is too far behind on `topic` (history pruned or too long): refetch over
    /// REST; live events continue after `seq`.
    ResyncRequired {
        /// The topic.
        topic: Topic,
        /// Position live events continue from.
        seq: i64,
    },
    /// The server ended a subscription: the user may no longer see the topic (a block, a
    /// lost follow of a private account).
    Unsubscribed {
        /// The topic.
        topic: Topic,
        /// Why, as the subscription would now be refused.
        error: crate::error::ErrorDetail,
    },
}

/// What to do with a live delivery.
#[derive(Debug)]
pub enum Accept {
    /// Write it (the common case: no allocation).
    Send,
    /// Drop it (already passed, or no longer subscribed).
    Skip,
    /// Write these, in order (missing events read from the database, then this one).
    Many(Vec<Push>),
}

/// The reply to a command and what to write after it.
#[derive(Debug)]
pub struct Reply {
    /// `ok` data or the error.
    pub result: AppResult<Value>,
    /// Events to write after the reply (a resume's replay).
    pub then: Vec<Push>,
}

impl Reply {
    fn ok(v: Value) -> Self {
        Self { result: Ok(v), then: Vec::new() }
    }

    fn err(e: AppError) -> Self {
        Self { result: Err(e), then: Vec::new() }
    }
}

/// Sustained/burst limiter of client frames (one per connection, touched by its own task).
#[derive(Debug)]
struct TokenBucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Instant,
    strikes: u32,
}

impl TokenBucket {
    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.per_sec).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            true
        } else {
            self.strikes += 1;
            false
        }
    }
}

/// Verdict of the frame rate limiter.
#[derive(Debug, PartialEq, Eq)]
pub enum RateVerdict {
    /// Handle the frame.
    Allow,
    /// Refuse it with a `rate_limited` error.
    Refuse,
    /// The client keeps going after being refused: close it (4503).
    Close,
}

/// A connection's realtime state.
pub struct Session {
    state: AppState,
    /// The hub's handle on this session.
    pub handle: SessionHandle,
    token_exp: i64,
    /// Topic → last seq passed to the client (`None` for ephemeral topics).
    subs: HashMap<Topic, Option<i64>>,
    /// Subscription → the account whose privacy it depends on; the session watches each
    /// such account's [`Topic::Audience`] while it holds one of them.
    owners: HashMap<Topic, Id>,
    bucket: TokenBucket,
    /// Changes to the block set not yet taken by the door (Socket.IO keeps rooms for them).
    block_changes: (Vec<Id>, Vec<Id>),
}

impl Session {
    /// Opens a session for an authenticated user: registers it with the hub, subscribes its
    /// control topic, and marks the user online.
    pub async fn open(
        state: &AppState,
        claims: &AccessClaims,
        door: Door,
    ) -> Result<(Session, mpsc::Receiver<Outbound>), CloseCode> {
        let (Some(user), Some(sid)) = (claims.user_id(), claims.session_id()) else {
            return Err(CloseCode::UNAUTHORIZED);
        };
        if state.hub.session_count() >= state.config.hub.max_connections {
            return Err(CloseCode::TOO_MANY_CONNECTIONS);
        }
        let cap = state.config.hub.max_connections_per_user;
        let (handle, rx) = state.hub.register(user, sid, door, cap).ok_or(CloseCode::TOO_MANY_CONNECTIONS)?;
        let hub_cfg = &state.config.hub;
        let mut session = Session {
            state: state.clone(),
            handle,
            token_exp: claims.exp,
            subs: HashMap::new(),
            owners: HashMap::new(),
            bucket: TokenBucket {
                tokens: hub_cfg.client_burst as f64,
                burst: hub_cfg.client_burst as f64,
                per_sec: hub_cfg.client_rate_per_sec as f64,
                last: Instant::now(),
                strikes: 0,
            },
            block_changes: (Vec::new(), Vec::new()),
        };
        // Logout, password changes, blocks and unblocks reach this session through its
        // control topic: watch it first, then read the block set, so a block landing in
        // between is either in the read or heard as `access.changed` afterwards.
        let ctl = Topic::Control(user);
        state.hub.subscribe(&session.handle, &ctl).await;
        session.subs.insert(ctl, None);
        if let Err(e) = session.load_blocks().await {
            // Without its block set the session could deliver what a block hides: refuse
            // (the client reconnects, to this instance or another).
            tracing::warn!(error = %e, "reading blocks failed; refusing the connection");
            state.hub.unsubscribe(&session.handle, &ctl);
            state.hub.unregister(&session.handle);
            return Err(CloseCode::SHUTDOWN);
        }
        match state.presence.connected(user).await {
            Ok(true) => publish_presence(state, user).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "presence update failed"),
        }
        Ok((session, rx))
    }

    /// (Re)reads who the user is blocked with, for the hub's per-recipient filter.
    async fn load_blocks(&mut self) -> AppResult<()> {
        let ids = crate::services::access::blocked_with(&self.state, self.user()).await?;
        let (mut added, mut removed) = self.handle.blocks.replace(ids);
        // Only Socket.IO keeps rooms for them; `/ws` sessions would just accumulate them.
        if self.handle.door == Door::Sio {
            self.block_changes.0.append(&mut added);
            self.block_changes.1.append(&mut removed);
        }
        Ok(())
    }

    /// The accounts added to and removed from the block set since the last call.
    pub fn blocked_changes(&mut self) -> (Vec<Id>, Vec<Id>) {
        std::mem::take(&mut self.block_changes)
    }

    /// The hub's settings (limits, heartbeat, write pacing).
    pub fn hub_config(&self) -> &crate::config::HubConfig {
        &self.state.config.hub
    }

    /// The authenticated user.
    pub fn user(&self) -> Id {
        self.handle.user
    }

    /// A timer for the doors' loops that fires when the access token expires. It lives
    /// across iterations (re-creating it per event would register a timer entry per
    /// delivery); [`Session::rearm_expiry`] moves it after an in-band refresh.
    pub fn expiry_timer(&self) -> (i64, tokio::time::Sleep) {
        (self.token_exp, tokio::time::sleep_until(self.token_deadline()))
    }

    /// Moves `timer` (armed for the token that expired at `armed_for`) to the current
    /// token's expiry, if a refresh changed it.
    pub fn rearm_expiry(&self, armed_for: &mut i64, timer: std::pin::Pin<&mut tokio::time::Sleep>) {
        if *armed_for != self.token_exp {
            *armed_for = self.token_exp;
            timer.reset(self.token_deadline());
        }
    }

    fn token_deadline(&self) -> tokio::time::Instant {
        let left = (self.token_exp * 1000 - crate::domain::now_ms()).max(0) as u64;
        tokio::time::Instant::now() + std::time::Duration::from_millis(left)
    }

    /// The `hello` data: who you are and the limits that apply.
    pub fn hello(&self) -> Value {
        let h = &self.state.config.hub;
        json!({
            "user_id": self.user(),
            "session_id": self.handle.id.to_string(),
            "node": self.state.ids.node(),
            "heartbeat_ms": h.heartbeat_ms,
            "token_expires_at": self.token_exp,
            "limits": {
                "max_frame_bytes": h.max_frame_bytes,
                "rate_per_sec": h.client_rate_per_sec,
                "burst": h.client_burst,
                "queue_frames": h.queue_frames,
                "max_subscriptions": MAX_SUBSCRIPTIONS,
                "max_conversation_subscriptions": MAX_CONVERSATION_SUBSCRIPTIONS,
                "max_replay": MAX_REPLAY,
            }
        })
    }

    /// Counts one client frame against the rate limit.
    pub fn rate(&mut self) -> RateVerdict {
        if self.bucket.take() {
            RateVerdict::Allow
        } else if self.bucket.strikes > self.bucket.burst as u32 {
            RateVerdict::Close
        } else {
            RateVerdict::Refuse
        }
    }

    /// Handles a command.
    pub async fn command(&mut self, cmd: Command<'_>) -> Reply {
        match cmd {
            Command::Subscribe { topic, from } => {
                let Some(t) = Topic::from_wire(topic, self.user()) else {
                    return Reply::err(AppError::field("topic", "unknown topic"));
                };
                let from = match from.map(parse_seq).transpose() {
                    Ok(f) => f,
                    Err(e) => return Reply::err(e),
                };
                match self.subscribe(t, from).await {
                    Ok((ack, then)) => Reply { result: Ok(ack), then },
                    Err(e) => Reply::err(e),
                }
            }
            Command::Unsubscribe { topic } => {
                let Some(t) = Topic::from_wire(topic, self.user()) else {
                    return Reply::err(AppError::field("topic", "unknown topic"));
                };
                self.unsubscribe(&t);
                Reply::ok(json!({"topic": t.wire_name()}))
            }
            Command::Resume { positions } => match self.resume(positions).await {
                Ok((ack, then)) => Reply { result: Ok(ack), then },
                Err(e) => Reply::err(e),
            },
            Command::Auth { token } => match self.reauth(token).await {
                Ok(()) => Reply::ok(json!({"token_expires_at": self.token_exp})),
                Err(f) => Reply::err(f.into()),
            },
            Command::Action { op, data } => {
                match crate::realtime::commands::action(&self.state, self.user(), op, data).await {
                    Some(result) => Reply { result, then: Vec::new() },
                    None => Reply::err(AppError::BadRequest(format!("unknown op `{op}`"))),
                }
            }
        }
    }

    /// Subscribes to `topic`; for a durable topic with `from`, replays what was missed.
    /// Returns the ack data and the replay.
    pub async fn subscribe(&mut self, topic: Topic, from: Option<i64>) -> AppResult<(Value, Vec<Push>)> {
        if let Some(pos) = self.subs.get(&topic).copied() {
            // Already streaming: a `from` can only replay what precedes the stream.
            return match (from, pos) {
                (Some(f), Some(p)) if f < p => {
                    let (then, result, _) = self.catch_up(&topic, f, Some(p)).await?;
                    Ok((ack(&topic, result, Some(p)), then))
                }
                _ => Ok((ack(&topic, "subscribed", pos), Vec::new())),
            };
        }
        let owner = crate::services::access::authorize_topic(&self.state, self.user(), &topic).await?;
        let chat = matches!(topic, Topic::Chat(_));
        let held = self.subs.keys().filter(|t| matches!(t, Topic::Chat(_)) == chat).count();
        if chat && held >= MAX_CONVERSATION_SUBSCRIPTIONS {
            return Err(AppError::field(
                "topic",
                format!("at most {MAX_CONVERSATION_SUBSCRIPTIONS} conversations per connection"),
            ));
        }
        if !chat && held >= MAX_SUBSCRIPTIONS {
            return Err(AppError::field("topic", format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection")));
        }
        if let Some(owner) = owner.filter(|o| *o != self.user()) {
            let first = !self.owners.values().any(|o| *o == owner);
            self.owners.insert(topic, owner);
            if first {
                // Watch first, check again: the account going private between the check
                // above and the watch would otherwise go unheard.
                self.state.hub.subscribe(&self.handle, &Topic::Audience(owner)).await;
                if let Err(e) = crate::services::access::authorize_topic(&self.state, self.user(), &topic).await {
                    self.forget_owner(&topic);
                    return Err(e);
                }
            }
        }
        // Subscribe first, read the database second: nothing can fall in between.
        self.state.hub.subscribe(&self.handle, &topic).await;
        if !topic.is_durable() {
            self.subs.insert(topic, None);
            return Ok((self.ephemeral_ack(&topic).await, Vec::new()));
        }
        let read = match from {
            None => self.current_position(&topic).await.map(|current| (Vec::new(), "subscribed", current)),
            Some(f) => self.catch_up(&topic, f, None).await,
        };
        match read {
            Ok((then, result, pos)) => {
                self.subs.insert(topic, Some(pos));
                Ok((ack(&topic, result, Some(pos)), then))
            }
            Err(e) => {
                // Not subscribed after all: the hub must not keep delivering to this session
                // a topic it does not know it holds (nor keep it after the session ends).
                self.state.hub.unsubscribe(&self.handle, &topic);
                Err(e)
            }
        }
    }

    async fn current_position(&self, topic: &Topic) -> AppResult<i64> {
        let mut c = self.state.store.conn().await?;
        Ok(event_store::bounds(c.ex(), &topic.key()).await?.0)
    }

    async fn ephemeral_ack(&self, topic: &Topic) -> Value {
        let mut v = json!({"topic": topic.wire_name(), "result": "subscribed"});
        if let Topic::Presence(user) = topic
            && let Ok(status) = self.state.presence.status(*user).await
        {
            v["presence"] = json!(status);
        }
        v
    }

    /// Reads what a client at `from` missed on `topic`, up to `until` (inclusive) when the
    /// topic is already streaming. Returns the pushes, the result word, and the new position.
    async fn catch_up(
        &self,
        topic: &Topic,
        from: i64,
        until: Option<i64>,
    ) -> AppResult<(Vec<Push>, &'static str, i64)> {
        let key = topic.key();
        let mut c = self.state.store.conn().await?;
        let (current, oldest) = event_store::bounds(c.ex(), &key).await?;
        let upto = until.unwrap_or(current);
        if from >= upto {
            // Nothing missed (or a position from the future, e.g. after a database restore:
            // then the client must refetch).
            return if from > current {
                Ok((vec![Push::ResyncRequired { topic: *topic, seq: current }], "resync_required", current))
            } else {
                Ok((Vec::new(), "resumed", upto))
            };
        }
        let pruned = oldest.is_none_or(|o| o > from + 1);
        if pruned || upto - from > MAX_REPLAY {
            return Ok((vec![Push::ResyncRequired { topic: *topic, seq: upto }], "resync_required", upto));
        }
        let rows = event_store::after(c.ex(), &key, from, upto - from).await?;
        drop(c);
        // A replay passes only what the policy still allows the reader to see now.
        let allowed = crate::services::access::replayable(&self.state, self.user(), topic, &rows).await?;
        let key: Arc<str> = key.into();
        let mut pos = from;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            if r.seq > upto {
                break;
            }
            pos = r.seq;
            // A removal passes whoever made it (a suspended or erased author included): it
            // tells the reader to drop what they may have kept, and reveals nothing else.
            let removal = matches!(r.event.as_str(), "post.deleted" | "message.deleted" | "comment.deleted");
            if removal || r.actor_id.is_none_or(|a| allowed.contains(&a)) {
                out.push(Push::Event(replayed(topic, &key, r)));
            }
        }
        Ok((out, "resumed", if until.is_some() { upto } else { pos.max(from) }))
    }

    /// Resumes several topics at once.
    pub async fn resume(&mut self, positions: &HashMap<String, String>) -> AppResult<(Value, Vec<Push>)> {
        if positions.len() > MAX_SUBSCRIPTIONS + MAX_CONVERSATION_SUBSCRIPTIONS {
            return Err(AppError::field("positions", "too many topics"));
        }
        let mut results = serde_json::Map::new();
        let mut then = Vec::new();
        for (name, seq) in positions {
            let Some(topic) = Topic::from_wire(name, self.user()) else {
                results.insert(
                    name.clone(),
                    json!({"result": "error", "error": {"code": "validation_failed", "message": "unknown topic"}}),
                );
                continue;
            };
            if !topic.is_durable() {
                results.insert(name.clone(), json!({"result": "error", "error": {"code": "validation_failed", "message": "topic is not resumable"}}));
                continue;
            }
            let outcome = match parse_seq(seq) {
                Ok(from) => self.subscribe(topic, Some(from)).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok((ack, mut pushes)) => {
                    results.insert(name.clone(), ack);
                    then.append(&mut pushes);
                }
                Err(e) => {
                    let body = e.body();
                    results.insert(name.clone(), json!({"result": "error", "error": body.error}));
                }
            }
        }
        Ok((json!({"topics": results}), then))
    }

    /// Stops watching a topic (unknown topics are ignored; the control topic stays).
    pub fn unsubscribe(&mut self, topic: &Topic) {
        if matches!(topic, Topic::Control(_)) {
            return;
        }
        if self.subs.remove(topic).is_some() {
            self.state.hub.unsubscribe(&self.handle, topic);
        }
        self.forget_owner(topic);
    }

    /// Drops `topic`'s owner, and the watch on that owner when no other subscription needs it.
    fn forget_owner(&mut self, topic: &Topic) {
        if let Some(owner) = self.owners.remove(topic)
            && !self.owners.values().any(|o| *o == owner)
        {
            self.state.hub.unsubscribe(&self.handle, &Topic::Audience(owner));
        }
    }

    /// The last `seq` passed to the client on a durable topic.
    pub fn position(&self, topic: &Topic) -> Option<i64> {
        self.subs.get(topic).copied().flatten()
    }

    /// Starts the session for a door: subscribes its default topics (those of `namespace`
    /// for a Socket.IO socket), resuming each from `positions`, then resumes the other
    /// topics in `positions` the door carries. Returns the `hello` data (with each topic's
    /// result under `subscriptions`) and the replay to write after it, before any live
    /// event (the door reads the hub's queue only afterwards).
    pub async fn start(&mut self, namespace: Option<&str>, positions: &HashMap<String, String>) -> (Value, Vec<Push>) {
        let mut results = serde_json::Map::new();
        let mut replay = Vec::new();
        for topic in default_topics(&self.state, self.user(), namespace).await {
            let from = positions.get(topic.wire_name().as_ref()).and_then(|s| s.parse().ok());
            match self.subscribe(topic, from).await {
                Ok((ack, mut then)) => {
                    results.insert(topic.wire_name().into_owned(), ack);
                    replay.append(&mut then);
                }
                Err(e) => tracing::warn!(error = %e, %topic, "default subscription failed"),
            }
        }
        // Positions of topics that are not personal (conversations joined later, posts…);
        // a Socket.IO socket resumes only its namespace's.
        let others: HashMap<String, String> = positions
            .iter()
            .filter(|(k, _)| !results.contains_key(k.as_str()))
            .filter(|(k, _)| {
                namespace.is_none_or(|ns| Topic::from_wire(k, self.user()).is_some_and(|t| t.namespace() == ns))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !others.is_empty()
            && let Ok((v, mut then)) = self.resume(&others).await
        {
            if let Some(Value::Object(topics)) = v.get("topics") {
                results.extend(topics.clone());
            }
            replay.append(&mut then);
        }
        let mut hello = self.hello();
        hello["subscriptions"] = Value::Object(results);
        (hello, replay)
    }

    /// Decides what to do with a live delivery (see the module doc).
    pub async fn accept(&mut self, d: &Arc<Delivery>) -> Accept {
        // The hub filters ephemeral topics; on durable ones the position must move past it.
        let blocked = d.env.actor.is_some_and(|a| self.handle.blocks.contains(a));
        let pass = if blocked { Accept::Skip } else { Accept::Send };
        let Some(slot) = self.subs.get_mut(&d.topic) else { return Accept::Skip };
        let (Some(last), Some(seq)) = (*slot, d.env.seq) else { return pass };
        if seq <= last {
            return Accept::Skip;
        }
        if seq == last + 1 {
            *slot = Some(seq);
            return pass;
        }
        // A gap: read what is missing, then this one. Boxed: the read is rare, and inline it
        // would size every connection's task.
        let topic = d.topic;
        match Box::pin(self.catch_up(&topic, last, Some(seq - 1))).await {
            Ok((mut pushes, _, _)) => {
                if !blocked {
                    pushes.push(Push::Event(d.clone()));
                }
                self.subs.insert(topic, Some(seq));
                Accept::Many(pushes)
            }
            Err(e) => {
                tracing::warn!(error = %e, topic = %topic, "filling a gap failed; telling the client to resync");
                self.subs.insert(topic, Some(seq));
                let mut pushes = vec![Push::ResyncRequired { topic, seq: seq - 1 }];
                if !blocked {
                    pushes.push(Push::Event(d.clone()));
                }
                Accept::Many(pushes)
            }
        }
    }

    /// After the broker reconnected: re-read every durable topic from the database.
    pub async fn resync(&mut self) -> Vec<Push> {
        let durable: Vec<(Topic, i64)> = self.subs.iter().filter_map(|(t, p)| p.map(|p| (*t, p))).collect();
        let mut out = Vec::new();
        for (topic, last) in durable {
            match self.catch_up(&topic, last, None).await {
                Ok((mut pushes, _, pos)) => {
                    self.subs.insert(topic, Some(pos));
                    out.append(&mut pushes);
                }
                Err(e) => tracing::warn!(error = %e, topic = %topic, "resync failed"),
            }
        }
        out
    }

    /// Re-authorises the subscriptions that depend on who the user is allowed to see or
    /// what they belong to (`post:`, `user:`, `presence:`, `chat:`), ends those now refused,
    /// and picks up conversations the user joined (for the Socket.IO door, those of its
    /// `namespace`) from the position their `member.added` event got.
    pub async fn recheck(&mut self, namespace: Option<&str>) -> Vec<Push> {
        if let Err(e) = self.load_blocks().await {
            // A stale block set would deliver what a new block hides: reconnect instead.
            tracing::warn!(error = %e, "re-reading blocks failed; closing the session");
            self.handle.kill.kill(CloseCode::SHUTDOWN);
            return Vec::new();
        }
        let topics: Vec<Topic> = self
            .subs
            .keys()
            .filter(|t| matches!(t, Topic::Post(_) | Topic::User(_) | Topic::Presence(_) | Topic::Chat(_)))
            .copied()
            .collect();
        let mut out = Vec::new();
        // Conversations travel on `/chat`: the other Socket.IO namespaces have none to join.
        let chat_ns = Topic::Chat(self.user()).namespace();
        let joined = if namespace.is_none_or(|ns| ns == chat_ns) {
            crate::services::chat::memberships(&self.state, self.user()).await
        } else {
            Ok(Vec::new())
        };
        // Conversations are re-checked against this one read of the memberships, not one
        // query per conversation held.
        let mut members_of: Option<std::collections::HashSet<Topic>> = None;
        let chat_door = namespace.is_none_or(|ns| ns == chat_ns);
        match joined {
            Ok(joined) => {
                // Outside `/chat` nothing was read: conversations are re-checked one by one.
                if chat_door {
                    members_of = Some(joined.iter().map(|(t, _)| *t).collect());
                }
                let mut room = MAX_CONVERSATION_SUBSCRIPTIONS
                    .saturating_sub(self.subs.keys().filter(|t| matches!(t, Topic::Chat(_))).count());
                for (topic, from) in joined {
                    if self.subs.contains_key(&topic) {
                        continue;
                    }
                    if room == 0 {
                        break; // memberships come most recently active first
                    }
                    room -= 1;
                    match self.subscribe(topic, Some(from)).await {
                        Ok((_, mut pushes)) => out.append(&mut pushes),
                        Err(e) => tracing::warn!(error = %e, topic = %topic, "joining a conversation failed"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading conversations failed"),
        }
        for topic in topics {
            if let (Topic::Chat(_), Some(members)) = (topic, &members_of) {
                if let Err(e) = crate::services::access::conversation_allowed(members, &topic) {
                    self.unsubscribe(&topic);
                    out.push(Push::Unsubscribed { topic, error: e.body().error });
                }
                continue;
            }
            match crate::services::access::authorize_topic(&self.state, self.user(), &topic).await {
                Ok(_) => {}
                Err(e @ (AppError::NotFound | AppError::Forbidden(_))) => {
                    self.unsubscribe(&topic);
                    out.push(Push::Unsubscribed { topic, error: e.body().error });
                }
                Err(e) => tracing::warn!(error = %e, topic = %topic, "re-checking a subscription failed"),
            }
        }
        out
    }

    /// Swaps in a refreshed access token (same user and session).
    pub async fn reauth(&mut self, token: &str) -> Result<(), AuthFailure> {
        let claims = self.state.auth.verify_access(&self.state.revocations, token).await?;
        if claims.user_id() != Some(self.user()) || claims.session_id() != Some(self.handle.auth_session) {
            return Err(AuthFailure::Invalid);
        }
        self.token_exp = claims.exp;
        Ok(())
    }

    /// Ends the session: drops its subscriptions, unregisters, updates presence.
    pub async fn close(self) {
        for topic in self.subs.keys() {
            self.state.hub.unsubscribe(&self.handle, topic);
        }
        for owner in self.owners.values() {
            // Several subscriptions may share an owner: unsubscribing twice is a no-op.
            self.state.hub.unsubscribe(&self.handle, &Topic::Audience(*owner));
        }
        self.state.hub.unregister(&self.handle);
        let user = self.user();
        match self.state.presence.disconnected(user).await {
            Ok(true) => publish_presence(&self.state, user).await,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "presence update failed"),
        }
    }
}

/// The ack of a (re)subscription.
fn ack(topic: &Topic, result: &str, seq: Option<i64>) -> Value {
    match seq {
        Some(s) => json!({"topic": topic.wire_name(), "result": result, "seq": s.to_string()}),
        None => json!({"topic": topic.wire_name(), "result": result}),
    }
}

fn parse_seq(s: &str) -> AppResult<i64> {
    s.parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
        .ok_or_else(|| AppError::field("from", "must be a seq (a non-negative integer string)"))
}

fn replayed(topic: &Topic, key: &Arc<str>, r: event_store::EventRow) -> Arc<Delivery> {
    let event = EventName::parse(&r.event).unwrap_or(EventName::PostUpdated);
    Arc::new(Delivery::new(
        *topic,
        Envelope { topic: key.clone(), event, seq: Some(r.seq), data: r.data.into(), actor: r.actor_id },
    ))
}

/// Publishes the user's presence to `presence:{user}` on every instance.
pub async fn publish_presence(state: &AppState, user: Id) {
    #[derive(Serialize)]
    struct Changed {
        #[serde(flatten)]
        status: crate::realtime::presence::PresenceStatus,
    }
    match state.presence.status(user).await {
        Ok(status) => {
            let mut batch = EventBatch::new();
            batch.ephemeral(&[Topic::Presence(user)], EventName::PresenceChanged, &Changed { status });
            state.publish(batch);
        }
        Err(e) => tracing::warn!(error = %e, "reading presence failed"),
    }
}

/// The topics a new session watches without asking, per Socket.IO namespace (`None`: the
/// plain WebSocket door, which carries every namespace).
pub async fn default_topics(state: &AppState, user: Id, namespace: Option<&str>) -> Vec<Topic> {
    let mut topics = vec![Topic::Feed(user), Topic::Follower(user), Topic::Notification(user), Topic::Image(user)];
    topics.extend(crate::realtime::commands::conversation_topics(state, user).await);
    match namespace {
        None => topics,
        Some(ns) => topics.into_iter().filter(|t| t.namespace() == ns).collect(),
    }
}
