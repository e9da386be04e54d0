//! Rate limits on the auth endpoints, per client IP and per account, and the throttle of
//! chat typing indicators (one per user and conversation every [`TYPING_INTERVAL_MS`]).
//!
//! GCRA from the `governor` crate, keyed by `(bucket, key)`. On a single node the state is in
//! memory; in a cluster the same algorithm runs in Redis (a Lua script holding the
//! "theoretical arrival time" per key) so counters are shared by every instance.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::config::RateLimitConfig;
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
}

/// At most one `typing` event per user and conversation in this many milliseconds; clients
/// show an indicator for [`crate::services::chat::TYPING_TTL_MS`], longer than this.
pub const TYPING_INTERVAL_MS: u32 = 3_000;
const TYPING_PER_MINUTE: u32 = 60_000 / TYPING_INTERVAL_MS;

impl Bucket {
    fn name(self) -> &'static str {
        match self {
            Bucket::AuthIp => "auth_ip",
            Bucket::AuthAccount => "auth_account",
            Bucket::Typing => "typing",
        }
    }
}

/// The limiters.
pub enum RateLimits {
    /// In this process.
    Local {
        /// Per-IP limiter.
        ip: DefaultKeyedRateLimiter<String>,
        /// Per-account limiter.
        account: DefaultKeyedRateLimiter<String>,
        /// Typing throttle (boxed: keeps the enum's variants of similar size).
        typing: Box<DefaultKeyedRateLimiter<String>>,
    },
    /// In Redis, shared by every instance.
    Redis {
        /// Command connection.
        conn: redis::aio::ConnectionManager,
        /// Key prefix.
        namespace: String,
        /// Limits.
        cfg: RateLimitConfig,
        /// The GCRA script.
        script: redis::Script,
    },
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let per_minute = NonZeroU32::new(per_minute.max(1)).expect("nonzero");
    let burst = NonZeroU32::new(burst.max(1)).expect("nonzero");
    Quota::per_minute(per_minute).allow_burst(burst)
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
        RateLimits::Local {
            ip: DefaultKeyedRateLimiter::keyed(quota(cfg.auth_per_ip_per_minute, cfg.auth_ip_burst)),
            account: DefaultKeyedRateLimiter::keyed(quota(cfg.auth_per_account_per_minute, cfg.auth_account_burst)),
            typing: Box::new(DefaultKeyedRateLimiter::keyed(quota(TYPING_PER_MINUTE, 1))),
        }
    }

    /// Redis-backed limiters.
    pub fn redis(conn: redis::aio::ConnectionManager, namespace: String, cfg: &RateLimitConfig) -> Self {
        RateLimits::Redis { conn, namespace, cfg: cfg.clone(), script: redis::Script::new(GCRA_LUA) }
    }

    /// Counts one request against `bucket`/`key`; `Err(RateLimited)` with the wait when over.
    pub async fn check(&self, bucket: Bucket, key: &str) -> Result<(), AppError> {
        match self {
            RateLimits::Local { ip, account, typing } => {
                let lim = match bucket {
                    Bucket::AuthIp => ip,
                    Bucket::AuthAccount => account,
                    Bucket::Typing => &**typing,
                };
                lim.check_key(&key.to_string())
                    .map_err(|nu| AppError::RateLimited(nu.wait_time_from(DefaultClock::default().now())))
            }
            RateLimits::Redis { conn, namespace, cfg, script } => {
                let (per_min, burst) = match bucket {
                    Bucket::AuthIp => (cfg.auth_per_ip_per_minute, cfg.auth_ip_burst),
                    Bucket::AuthAccount => (cfg.auth_per_account_per_minute, cfg.auth_account_burst),
                    Bucket::Typing => (TYPING_PER_MINUTE, 1),
                };
                let interval_ms = 60_000 / per_min.max(1) as i64;
                let mut conn = conn.clone();
                let wait: i64 = script
                    .key(format!("{namespace}:rl:{}:{key}", bucket.name()))
                    .arg(interval_ms)
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
        if let RateLimits::Local { ip, account, typing } = self {
            for lim in [ip, account, &**typing] {
                lim.retain_recent();
                lim.shrink_to_fit();
            }
        }
    }
}
