//! Presence: whether a user has an open socket anywhere, and when they were last seen.
//!
//! - Single node: a map of user → open sessions in this process.
//! - Cluster (Redis): a sorted set per user, `{ns}:pres:{user}`, whose members are the
//!   instances holding a session of that user, scored with an expiry time. Instances refresh
//!   their entries every [`REFRESH`]; an instance that crashes stops refreshing, and its
//!   entries expire after [`TTL`]. A sweep run by every instance finds users whose last
//!   entry expired (through the index `{ns}:pres:index`) and reports them offline — exactly
//!   one instance wins each such transition, so `presence.changed` is published once.
//!
//! Transitions are decided atomically in Lua scripts, so two instances connecting (or
//! disconnecting) the same user at once still produce one online (offline) event.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::domain::{Id, Timestamp, now_ms};

/// How long an instance's presence entry lives without a refresh.
pub const TTL: Duration = Duration::from_secs(45);
/// How often an instance refreshes its entries and sweeps for expired ones.
pub const REFRESH: Duration = Duration::from_secs(15);

/// A user's presence, as sent in `presence.changed` and in the ack of a `presence:{id}`
/// subscription.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PresenceStatus {
    /// The user.
    pub user_id: Id,
    /// Whether they have an open socket.
    pub online: bool,
    /// When their last socket closed (absent while online or if never seen).
    pub last_seen: Option<Timestamp>,
}

/// Presence tracking of one instance.
pub enum Presence {
    /// In this process.
    Local(Mutex<LocalPresence>),
    /// In Redis, shared by the cluster.
    Redis {
        /// Command connection.
        conn: redis::aio::ConnectionManager,
        /// Key prefix.
        namespace: String,
        /// This instance's member name.
        instance: String,
        /// Sessions per user on this instance (for refresh).
        local: Mutex<HashMap<Id, u32>>,
    },
}

/// Single-node presence state.
#[derive(Default)]
pub struct LocalPresence {
    sessions: HashMap<Id, u32>,
    last_seen: HashMap<Id, i64>,
}

/// Adds this instance to the user's set (expired members dropped first); returns 1 when the
/// user had no live member before (came online).
const CONNECT_LUA: &str = r#"
local now = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local before = redis.call('ZCARD', KEYS[1])
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[2], 'GT', ARGV[3], ARGV[4])
if before == 0 then return 1 else return 0 end
"#;

/// Removes this instance (and expired members); returns 1 when no live member is left
/// (went offline), and records last-seen.
const DISCONNECT_LUA: &str = r#"
local now = tonumber(ARGV[2])
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('SET', KEYS[3], now)
  return 1
end
return 0
"#;

/// Sweeps one user whose index entry expired: returns 1 if this call found them offline
/// (and removed them from the index), so only one instance reports it.
const SWEEP_LUA: &str = r#"
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) == 0 then
  if redis.call('ZREM', KEYS[2], ARGV[2]) == 1 then
    redis.call('SET', KEYS[3], ARGV[3])
    return 1
  end
  return 0
end
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('ZADD', KEYS[2], newest[2], ARGV[2])
return 0
"#;

impl Presence {
    /// Single-node presence.
    pub fn local() -> Self {
        Presence::Local(Mutex::new(LocalPresence::default()))
    }

    /// Cluster presence in Redis; `instance` must be unique per running process.
    pub fn redis(conn: redis::aio::ConnectionManager, namespace: String, instance: String) -> Self {
        Presence::Redis { conn, namespace, instance, local: Mutex::new(HashMap::new()) }
    }

    fn keys(ns: &str, user: Id) -> (String, String, String) {
        (format!("{ns}:pres:{user}"), format!("{ns}:pres:index"), format!("{ns}:lastseen:{user}"))
    }

    /// A session of `user` opened here; `true` when the user just came online.
    pub async fn connected(&self, user: Id) -> anyhow::Result<bool> {
        match self {
            Presence::Local(m) => {
                let mut p = m.lock().expect("presence poisoned");
                let n = p.sessions.entry(user).or_default();
                *n += 1;
                Ok(*n == 1)
            }
            Presence::Redis { conn, namespace, instance, local } => {
                {
                    let mut l = local.lock().expect("presence poisoned");
                    *l.entry(user).or_default() += 1;
                }
                let (set, index, _) = Self::keys(namespace, user);
                let now = now_ms();
                let mut conn = conn.clone();
                let first: i64 = redis::Script::new(CONNECT_LUA)
                    .key(&set)
                    .key(&index)
                    .arg(instance)
                    .arg(now)
                    .arg(now + TTL.as_millis() as i64)
                    .arg(user.0)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(first == 1)
            }
        }
    }

    /// A session of `user` closed here; `true` when the user just went offline.
    pub async fn disconnected(&self, user: Id) -> anyhow::Result<bool> {
        match self {
            Presence::Local(m) => {
                let mut p = m.lock().expect("presence poisoned");
                let Some(n) = p.sessions.get_mut(&user) else { return Ok(false) };
                *n -= 1;
                if *n == 0 {
                    p.sessions.remove(&user);
                    p.last_seen.insert(user, now_ms());
                    return Ok(true);
                }
                Ok(false)
            }
            Presence::Redis { conn, namespace, instance, local } => {
                let last_here = {
                    let mut l = local.lock().expect("presence poisoned");
                    match l.get_mut(&user) {
                        Some(n) if *n > 1 => {
                            *n -= 1;
                            false
                        }
                        Some(_) => {
                            l.remove(&user);
                            true
                        }
                        None => return Ok(false),
                    }
                };
                if !last_here {
                    return Ok(false);
                }
                let (set, index, seen) = Self::keys(namespace, user);
                let mut conn = conn.clone();
                let gone: i64 = redis::Script::new(DISCONNECT_LUA)
                    .key(&set)
                    .key(&index)
                    .key(&seen)
                    .arg(instance)
                    .arg(now_ms())
                    .arg(user.0)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(gone == 1)
            }
        }
    }

    /// The current presence of `user`.
    pub async fn status(&self, user: Id) -> anyhow::Result<PresenceStatus> {
        match self {
            Presence::Local(m) => {
                let p = m.lock().expect("presence poisoned");
                let online = p.sessions.contains_key(&user);
                let last_seen = if online { None } else { p.last_seen.get(&user).copied().map(Timestamp) };
                Ok(PresenceStatus { user_id: user, online, last_seen })
            }
            Presence::Redis { conn, namespace, .. } => {
                let (set, _, seen) = Self::keys(namespace, user);
                let mut conn = conn.clone();
                let (live, seen): (i64, Option<i64>) = redis::pipe()
                    .cmd("ZCOUNT")
                    .arg(&set)
                    .arg(now_ms())
                    .arg("+inf")
                    .cmd("GET")
                    .arg(&seen)
                    .query_async(&mut conn)
                    .await?;
                let online = live > 0;
                Ok(PresenceStatus { user_id: user, online, last_seen: if online { None } else { seen.map(Timestamp) } })
            }
        }
    }

    /// Which of `users` are online now, in one round trip (a group message asks for every
    /// member at once).
    pub async fn online_among(&self, users: &[Id]) -> anyhow::Result<Vec<Id>> {
        match self {
            Presence::Local(m) => {
                let p = m.lock().expect("presence poisoned");
                Ok(users.iter().copied().filter(|u| p.sessions.contains_key(u)).collect())
            }
            Presence::Redis { conn, namespace, .. } => {
                if users.is_empty() {
                    return Ok(Vec::new());
                }
                let now = now_ms();
                let mut pipe = redis::pipe();
                for u in users {
                    pipe.cmd("ZCOUNT").arg(Self::keys(namespace, *u).0).arg(now).arg("+inf");
                }
                let live: Vec<i64> = pipe.query_async(&mut conn.clone()).await?;
                Ok(users.iter().zip(live).filter(|(_, n)| *n > 0).map(|(u, _)| *u).collect())
            }
        }
    }

    /// Refreshes this instance's entries and reports users whose every entry expired
    /// (their instance died). Called every [`REFRESH`] by the presence task.
    pub async fn tick(&self) -> anyhow::Result<Vec<Id>> {
        let Presence::Redis { conn, namespace, instance, local } = self else { return Ok(Vec::new()) };
        let users: Vec<Id> = local.lock().expect("presence poisoned").keys().copied().collect();
        let mut conn = conn.clone();
        let expiry = now_ms() + TTL.as_millis() as i64;
        for chunk in users.chunks(1000) {
            let mut pipe = redis::pipe();
            for u in chunk {
                let (set, index, _) = Self::keys(namespace, *u);
                pipe.cmd("ZADD").arg(&set).arg(expiry).arg(instance).ignore();
                pipe.cmd("ZADD").arg(&index).arg("GT").arg(expiry).arg(u.0).ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
        }
        let now = now_ms();
        let expired: Vec<i64> = redis::cmd("ZRANGEBYSCORE")
            .arg(format!("{namespace}:pres:index"))
            .arg("-inf")
            .arg(now)
            .arg("LIMIT")
            .arg(0)
            .arg(500)
            .query_async(&mut conn)
            .await?;
        let mut offline = Vec::new();
        for u in expired {
            let (set, index, seen) = Self::keys(namespace, Id(u));
            let won: i64 = redis::Script::new(SWEEP_LUA)
                .key(&set)
                .key(&index)
                .key(&seen)
                .arg(now)
                .arg(u)
                .arg(now)
                .invoke_async(&mut conn)
                .await?;
            if won == 1 {
                offline.push(Id(u));
            }
        }
        Ok(offline)
    }
}
