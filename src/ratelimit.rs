//! Rate limits: the auth endpoints per client IP and per account, every kind of write per
//! account (posts, comments, messages, reactions, follows, group creations, uploads,
//! reports), and the throttle of chat typing indicators (one per user and conversation
//! every [`TYPING_INTERVAL_MS`]).
//!
//! GCRA from the `governor` crate, keyed by `(bucket, key)`. On a single node the state is in
//! memory; in a cluster the same algorithm runs in Redis (a Lua script holding the
//! "theoretical arrival time" per key) so counters are shared by every instance.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::{RateLimitConfig, WriteRate};
use crate::error::AppError;

/// Which limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// Auth endpoint calls per client IP.
    AuthIp,
    /// Login/forgot attempts per account identifier.
    AuthAccount,
    /// `typing` indicators per user and conversation.
    Typing,
    /// Writes of one kind per account ([`crate::config::WriteLimits`]).
    Write(Write),
}

/// The kinds of write limited per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Posts.
    Post,
    /// Comments.
    Comment,
    /// Chat messages.
    Message,
    /// Reactions.
    Reaction,
    /// Follows.
    Follow,
    /// Group creations.
    Group,
    /// Uploads.
    Upload,
    /// Reports.
    Report,
}

/// At most one `typing` event per user and conversation in this many milliseconds; clients
/// show an indicator for [`crate::services::chat::TYPING_TTL_MS`], longer than this.
pub const TYPING_INTERVAL_MS: u32 = 3_000;

const BUCKETS: [Bucket; 11] = [
    Bucket::AuthIp,
    Bucket::AuthAccount,
    Bucket::Typing,
    Bucket::Write(Write::Post),
    Bucket::Write(Write::Comment),
    Bucket::Write(Write::Message),
    Bucket::Write(Write::Reaction),
    Bucket::Write(Write::Follow),
    Bucket::Write(Write::Group),
    Bucket::Write(Write::Upload),
    Bucket::Write(Write::Report),
];

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::AuthIp => "auth_ip",
            Bucket::AuthAccount => "auth_account",
            Bucket::Typing => "typing",
            Bucket::Write(w) => match w {
                Write::Post => "posts",
                Write::Comment => "comments",
                Write::Message => "messages",
                Write::Reaction => "reactions",
                Write::Follow => "follows",
                Write::Group => "groups",
                Write::Upload => "uploads",
                Write::Report => "reports",
            },
        }
    }

    fn index(self) -> usize {
        BUCKETS.iter().position(|b| *b == self).expect("every bucket is listed")
    }

    /// The emission interval (time per request on average) and the burst.
    fn rate(self, cfg: &RateLimitConfig) -> (Duration, u32) {
        let per_minute = |n: u32| Duration::from_millis(60_000 / n.max(1) as u64);
        let per_hour = |r: WriteRate| (Duration::from_millis(3_600_000 / r.per_hour.max(1) as u64), r.burst);
        let w = &cfg.writes;
        match self {
            Bucket::AuthIp => (per_minute(cfg.auth_per_ip_per_minute), cfg.auth_ip_burst),
            Bucket::AuthAccount => (per_minute(cfg.auth_per_account_per_minute), cfg.auth_account_burst),
            Bucket::Typing => (Duration::from_millis(TYPING_INTERVAL_MS as u64), 1),
            Bucket::Write(k) => per_hour(match k {
                Write::Post => w.posts,
                Write::Comment => w.comments,
                Write::Message => w.messages,
                Write::Reaction => w.reactions,
                Write::Follow => w.follows,
                Write::Group => w.groups,
                Write::Upload => w.uploads,
                Write::Report => w.reports,
            }),
        }
    }
}

/// The limiters.
pub enum RateLimits {
    /// In this process: one keyed limiter per bucket, in [`BUCKETS`] order.
    Local(Vec<DefaultKeyedRateLimiter<String>>),
    /// In Redis, shared by every instance.
    Redis {
        /// Command connection.
        conn: redis::aio::ConnectionManager,
        /// Key prefix.
        namespace: String,
        /// Limits.
        cfg: Box<RateLimitConfig>,
        /// The GCRA script.
        script: redis::Script,
    },
}

fn quota((interval, burst): (Duration, u32)) -> Quota {
    let burst = NonZeroU32::new(burst.max(1)).expect("nonzero");
    Quota::with_period(interval.max(Duration::from_millis(1))).expect("nonzero period").allow_burst(burst)
}

/// GCRA in Redis: KEYS[1] = bucket key; ARGV = emission interval in ms, burst. Uses the
/// Redis clock so instances with skewed clocks agree. Returns 0 when allowed, else the
/// wait in ms until the next request would be.
const GCRA_LUA: &str = r#"
local interval = tonumber(ARGV[1])
local tau = interval * (tonumber(ARGV[2]) - 1)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tau then return math.ceil(tat - tau - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now) + 1000)
return 0
"#;

impl RateLimits {
    /// In-memory limiters.
    pub fn local(cfg: &RateLimitConfig) -> Self {
        RateLimits::Local(BUCKETS.iter().map(|b| DefaultKeyedRateLimiter::keyed(quota(b.rate(cfg)))).collect())
    }

    /// Redis-backed limiters.
    pub fn redis(conn: redis::aio::ConnectionManager, namespace: String, cfg: &RateLimitConfig) -> Self {
        RateLimits::Redis { conn, namespace, cfg: Box::new(cfg.clone()), script: redis::Script::new(GCRA_LUA) }
    }

    /// Counts one write of kind `w` by `user`: `Err(RateLimited)` with the wait when over.
    pub async fn write(&self, w: Write, user: crate::domain::Id) -> Result<(), AppError> {
        self.check(Bucket::Write(w), &user.to_string()).await
    }

    /// Counts one request against `bucket`/`key`; `Err(RateLimited)` with the wait when over.
    pub async fn check(&self, bucket: Bucket, key: &str) -> Result<(), AppError> {
        match self {
            RateLimits::Local(limiters) => limiters[bucket.index()]
                .check_key(&key.to_string())
                .map_err(|nu| AppError::RateLimited(nu.wait_time_from(DefaultClock::default().now()))),
            RateLimits::Redis { conn, namespace, cfg, script } => {
                let (interval, burst) = bucket.rate(cfg);
                let mut conn = conn.clone();
                let wait: i64 = script
                    .key(format!("{namespace}:rl:{}:{key}", bucket.name()))
                    .arg(interval.as_millis().max(1) as i64)
                    .arg(burst.max(1))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| AppError::Internal(e.into()))?;
                if wait > 0 { Err(AppError::RateLimited(Duration::from_millis(wait as u64))) } else { Ok(()) }
            }
        }
    }

    /// Forgets idle keys of the in-memory limiters (called periodically).
    pub fn shrink(&self) {
        if let RateLimits::Local(limiters) = self {
            for lim in limiters {
                lim.retain_recent();
                lim.shrink_to_fit();
            }
        }
    }
}
