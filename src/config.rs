//! Configuration: defaults, then `chorus.toml`, then `CHORUS_*` (and the conventional
//! `DATABASE_URL`, `REDIS_URL`, `CLOUDINARY_URL`) environment variables, then CLI flags.
//!
//! Everything the server can be told lives in [`Config`]; nothing else reads the environment.
//! `Debug` redacts secrets and credentials inside URLs, so a config can be logged at start.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::domain::user::WhoCanMessage;

/// The whole server configuration. Field names are the `chorus.toml` keys; the environment
/// variable of a field is `CHORUS_` + its upper-cased name (`CHORUS_HUB__QUEUE_FRAMES` for
/// nested fields).
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory for the SQLite file, local media and generated secrets.
    pub data_dir: PathBuf,
    /// `postgres://…` switches storage to PostgreSQL; `sqlite://…` picks a SQLite file;
    /// unset means `sqlite://{data_dir}/chorus.db`.
    pub database_url: Option<String>,
    /// Maximum pooled database connections.
    pub database_max_connections: u32,
    /// `redis://…` switches the broker and the shared state (revocations, presence,
    /// rate limits, feed timelines) to Redis so several instances act as one.
    pub redis_url: Option<String>,
    /// Prefix of every Redis key and channel, so several deployments can share a Redis.
    pub redis_namespace: String,
    /// HMAC secret for access tokens. Generated and kept in the data dir when unset on a
    /// single node; must be set (and shared) when `redis_url` is set.
    pub jwt_secret: Option<String>,
    /// Access token lifetime in seconds.
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Password-reset token lifetime in seconds.
    pub reset_token_ttl_secs: u64,
    /// Who may message an account that has not chosen (`who_can_message`).
    pub default_who_can_message: WhoCanMessage,
    /// E-mail verification.
    pub auth: AuthConfig,
    /// Push notifications (Web Push).
    pub push: PushConfig,
    /// `smtp://user:pass@host:port` or `smtps://…`; unset means e-mails are only logged.
    pub smtp_url: Option<String>,
    /// The `From:` of every e-mail.
    pub mail_from: String,
    /// Base URL clients reach this server at (links in e-mails, local media URLs).
    /// Unset means `http://{listen}`.
    pub public_url: Option<String>,
    /// `text` or `json` log lines.
    pub log_format: LogFormat,
    /// Largest accepted JSON request body in bytes.
    pub body_limit_bytes: usize,
    /// How long a graceful shutdown may take before the process gives up waiting.
    pub shutdown_timeout_secs: u64,
    /// Identifies this instance inside generated ids (0–1023). Unset: taken from Redis
    /// (`INCR`) in a cluster, 0 on a single node.
    pub node_id: Option<u16>,
    /// Peers whose `X-Forwarded-For` is believed (the nginx in front): addresses or CIDR
    /// networks (`["127.0.0.1", "10.0.0.0/8"]`). Everyone else's is ignored for rate
    /// limiting and logs.
    #[serde(deserialize_with = "nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Rate limits on the auth endpoints.
    pub rate_limit: RateLimitConfig,
    /// Cloudinary credentials `cloudinary://key:secret@cloud`; unset keeps media on disk.
    pub cloudinary_url: Option<String>,
    /// Base URL of Cloudinary's upload API (tests and proxies point it elsewhere).
    pub cloudinary_api_base: String,
    /// Base URL media are delivered from (`https://res.cloudinary.com`, or a CNAME).
    pub cloudinary_delivery_base: String,
    /// The account's authentication token key (hex, from Cloudinary's console): with it,
    /// URLs of media not everyone may see expire like local signed URLs; without it they
    /// are signed but do not expire.
    pub cloudinary_auth_token_key: Option<String>,
    /// Upload limits and processing.
    pub media: MediaConfig,
    /// Home feed construction.
    pub feed: FeedConfig,
    /// Socket hub limits.
    pub hub: HubConfig,
    /// Background jobs.
    pub jobs: JobsConfig,
}

/// Parses a list of addresses or CIDR networks (a bare address is a /32 or /128).
fn nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let raw: Vec<String> = Vec::deserialize(d)?;
    raw.iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| serde::de::Error::custom(format!("`{s}` is neither an IP address nor a CIDR network")))
        })
        .collect()
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Limits on the endpoints attackers hammer: login, register, forgot-password.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    /// Requests per minute per client IP on each auth endpoint.
    pub auth_per_ip_per_minute: u32,
    /// Burst allowed per client IP before the per-minute rate applies.
    pub auth_ip_burst: u32,
    /// Attempts per minute per account (login name or e-mail).
    pub auth_per_account_per_minute: u32,
    /// Burst allowed per account.
    pub auth_account_burst: u32,
    /// Writes per account, each kind with its own rate.
    pub writes: WriteLimits,
}

/// Push notification settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PushConfig {
    /// The VAPID private key (base64url of 32 bytes). Generated and kept in the data dir
    /// when unset on a single node. With `redis_url` set it must be configured (the same on
    /// every instance, since browsers subscribe with its public half and any instance may
    /// send); without it a cluster has no Web Push.
    pub vapid_private_key: Option<String>,
    /// The VAPID `sub`: how push services reach the operator (`mailto:` or `https:`).
    /// Default: `mailto:` the address of `mail_from`.
    pub vapid_subject: Option<String>,
    /// Accept `http://` Web Push endpoints (local push services in tests). Off: browsers'
    /// push services are all `https://`, and anything else would let an account make the
    /// server post to internal addresses.
    pub allow_insecure_endpoints: bool,
    /// A Firebase service-account key file (JSON, from the Firebase console's "Service
    /// accounts" page): turns on FCM, so apps can register FCM tokens.
    pub fcm_credentials: Option<std::path::PathBuf>,
    /// The FCM API base (`https://fcm.googleapis.com`); another for a proxy or a test.
    pub fcm_api_base: String,
    /// Overrides the key file's `token_uri` (the OAuth 2.0 token endpoint).
    pub fcm_token_uri: Option<String>,
    /// How long push services keep an undelivered notification for an offline device.
    pub ttl_secs: u32,
    /// How long a push service may take to answer before the send counts as failed (and
    /// is retried with backoff).
    pub send_timeout_ms: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig {
            vapid_private_key: None,
            vapid_subject: None,
            allow_insecure_endpoints: false,
            fcm_credentials: None,
            fcm_api_base: "https://fcm.googleapis.com".into(),
            fcm_token_uri: None,
            ttl_secs: 24 * 3600,
            send_timeout_ms: 15_000,
        }
    }
}

impl fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConfig")
            .field("vapid_private_key", &self.vapid_private_key.as_ref().map(|_| "***"))
            .field("vapid_subject", &self.vapid_subject)
            .field("allow_insecure_endpoints", &self.allow_insecure_endpoints)
            .field("fcm_credentials", &self.fcm_credentials)
            .field("fcm_api_base", &self.fcm_api_base)
            .field("fcm_token_uri", &self.fcm_token_uri)
            .field("ttl_secs", &self.ttl_secs)
            .field("send_timeout_ms", &self.send_timeout_ms)
            .finish()
    }
}

/// E-mail verification settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthConfig {
    /// Whether an unverified account may only read (not post, comment, message or follow).
    /// Unset: on exactly when SMTP is configured (there is no way to verify without mail).
    pub require_verified_email: Option<bool>,
    /// How long a verification code and link work; unset: one hour.
    pub verification_ttl_secs: Option<u64>,
}

impl AuthConfig {
    /// Lifetime of a code and link in seconds.
    pub fn verification_ttl(&self) -> u64 {
        self.verification_ttl_secs.unwrap_or(3600)
    }
}

/// One account's write rate of one kind: `per_hour` on average, `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteRate {
    /// Sustained rate.
    pub per_hour: u32,
    /// Writes allowed at once before the rate applies.
    pub burst: u32,
}

impl WriteRate {
    const fn new(per_hour: u32, burst: u32) -> Self {
        Self { per_hour, burst }
    }
}

/// Write limits per account (GCRA; in Redis in a cluster). The defaults let a very active
/// person post, chat and react all day, and stop a script within seconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteLimits {
    /// Posts created.
    pub posts: WriteRate,
    /// Comments and replies.
    pub comments: WriteRate,
    /// Chat messages sent (REST and socket).
    pub messages: WriteRate,
    /// Reactions set on posts, comments and messages.
    pub reactions: WriteRate,
    /// Follows (and follow requests).
    pub follows: WriteRate,
    /// Group conversations created.
    pub groups: WriteRate,
    /// Media uploads.
    pub uploads: WriteRate,
    /// Reports filed.
    pub reports: WriteRate,
}

impl Default for WriteLimits {
    fn default() -> Self {
        Self {
            posts: WriteRate::new(60, 10),
            comments: WriteRate::new(300, 30),
            messages: WriteRate::new(1_800, 60),
            reactions: WriteRate::new(1_200, 60),
            follows: WriteRate::new(200, 30),
            groups: WriteRate::new(20, 5),
            uploads: WriteRate::new(200, 30),
            reports: WriteRate::new(30, 10),
        }
    }
}

impl WriteLimits {
    /// Every kind at `per_hour` with burst `burst` (tests, benchmarks).
    pub fn all(per_hour: u32, burst: u32) -> Self {
        let r = WriteRate::new(per_hour, burst);
        Self { posts: r, comments: r, messages: r, reactions: r, follows: r, groups: r, uploads: r, reports: r }
    }
}

/// Upload limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MediaConfig {
    /// Largest image upload in bytes.
    pub max_image_bytes: u64,
    /// Largest video upload in bytes.
    pub max_video_bytes: u64,
    /// Largest decoded image in pixels (width × height); larger is refused before decoding.
    pub max_pixels: u64,
    /// Unattached uploads older than this are deleted.
    pub unattached_ttl_secs: u64,
    /// How long a signed URL of a non-public media item (a private account's post, a
    /// conversation's message, an upload seen by its owner) keeps working, at least.
    pub signed_url_ttl_secs: u64,
}

/// Home feed construction.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedConfig {
    /// Authors with more followers than this are merged into feeds at read time instead of
    /// being fanned out to every follower's timeline on write.
    pub fanout_read_threshold: i64,
    /// Entries kept per user timeline.
    pub timeline_max_len: i64,
}

/// Socket hub limits.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct HubConfig {
    /// Frames queued per connection before it counts as a slow consumer and is cut off.
    pub queue_frames: usize,
    /// Largest client frame in bytes.
    pub max_frame_bytes: usize,
    /// Client frames per second per connection (sustained).
    pub client_rate_per_sec: u32,
    /// Client frame burst per connection.
    pub client_burst: u32,
    /// Maximum socket connections on this instance.
    pub max_connections: usize,
    /// Maximum socket sessions of one user on this instance (a Socket.IO client counts one
    /// per namespace it opens): one account cannot take the whole of `max_connections`.
    pub max_connections_per_user: usize,
    /// Interval between server heartbeats; a peer silent for two intervals is dropped.
    pub heartbeat_ms: u64,
    /// A fixed hold on every write of a connection's queued events, so that events arriving
    /// meanwhile share the `send` (`0`, the default: no fixed hold). Without it a connection
    /// already coalesces by itself when it falls behind (`realtime/conn.rs`); this trades
    /// latency for CPU even when it does not. The events a connection receives within one
    /// delay must fit in `queue_frames`, or it counts as slow.
    pub write_delay_ms: u64,
    /// How long durable events stay available for resume.
    pub event_retention_secs: u64,
    /// Seconds an unauthenticated `/ws` connection has to send its `auth` frame.
    pub auth_timeout_secs: u64,
}

/// Background jobs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct JobsConfig {
    /// Jobs run at once on this instance.
    pub concurrency: usize,
    /// How often the queue is polled when nothing woke the worker, in milliseconds.
    pub poll_ms: u64,
    /// First retry delay in milliseconds; doubled on each further attempt.
    pub backoff_base_ms: u64,
    /// Retry delay ceiling in milliseconds.
    pub backoff_max_ms: u64,
    /// Attempts before a job is moved to the dead-letter state.
    pub max_attempts: i32,
    /// How long a claimed job is leased, in milliseconds: a job whose instance died is run
    /// again by another one after this long. Longer than the slowest job.
    pub lease_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_max_connections: 16,
            redis_url: None,
            redis_namespace: "chorus".into(),
            jwt_secret: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            reset_token_ttl_secs: 3600,
            default_who_can_message: WhoCanMessage::Following,
            auth: AuthConfig::default(),
            push: PushConfig::default(),
            smtp_url: None,
            mail_from: "Chorus <no-reply@chorus.local>".into(),
            public_url: None,
            log_format: LogFormat::Text,
            body_limit_bytes: 1024 * 1024,
            shutdown_timeout_secs: 10,
            node_id: None,
            trusted_proxies: Vec::new(),
            rate_limit: RateLimitConfig::default(),
            cloudinary_url: None,
            cloudinary_api_base: "https://api.cloudinary.com".into(),
            cloudinary_delivery_base: "https://res.cloudinary.com".into(),
            cloudinary_auth_token_key: None,
            media: MediaConfig::default(),
            feed: FeedConfig::default(),
            hub: HubConfig::default(),
            jobs: JobsConfig::default(),
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            auth_per_ip_per_minute: 30,
            auth_ip_burst: 10,
            auth_per_account_per_minute: 10,
            auth_account_burst: 5,
            writes: WriteLimits::default(),
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            max_image_bytes: 10 * 1024 * 1024,
            max_video_bytes: 100 * 1024 * 1024,
            max_pixels: 40_000_000,
            unattached_ttl_secs: 24 * 3600,
            signed_url_ttl_secs: 3600,
        }
    }
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self { fanout_read_threshold: 10_000, timeline_max_len: 800 }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            queue_frames: 256,
            max_frame_bytes: 64 * 1024,
            client_rate_per_sec: 20,
            client_burst: 40,
            max_connections: 50_000,
            max_connections_per_user: 50,
            heartbeat_ms: 25_000,
            write_delay_ms: 0,
            event_retention_secs: 7 * 24 * 3600,
            auth_timeout_secs: 10,
        }
    }
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            poll_ms: 500,
            backoff_base_ms: 1000,
            backoff_max_ms: 600_000,
            max_attempts: 8,
            lease_ms: 60_000,
        }
    }
}

impl Config {
    /// Loads defaults ← `file` (or `./chorus.toml` when present) ← environment.
    /// CLI flags are merged on top by the caller with [`Config::merge_overrides`].
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} does not exist", path.display());
                fig = fig.merge(Toml::file(path));
            }
            None if Path::new("chorus.toml").exists() => fig = fig.merge(Toml::file("chorus.toml")),
            None => {}
        }
        let fig = fig.merge(Env::prefixed("CHORUS_").split("__")).merge(
            Env::raw()
                .only(&["DATABASE_URL", "REDIS_URL", "CLOUDINARY_URL"])
                .map(|k| k.as_str().to_ascii_lowercase().into()),
        );
        let cfg: Config = fig.extract()?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Applies values given on the command line (highest precedence).
    pub fn merge_overrides(mut self, o: &Overrides) -> anyhow::Result<Self> {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = &o.data_dir {
            self.data_dir = v.clone();
        }
        if let Some(v) = &o.database_url {
            self.database_url = Some(v.clone());
        }
        if let Some(v) = &o.redis_url {
            self.redis_url = Some(v.clone());
        }
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.database_url {
            anyhow::ensure!(
                url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:"),
                "database_url must start with postgres://, postgresql:// or sqlite:"
            );
        }
        if let Some(url) = &self.redis_url {
            anyhow::ensure!(
                url.starts_with("redis://") || url.starts_with("rediss://"),
                "redis_url must start with redis:// or rediss://"
            );
        }
        if let Some(s) = &self.jwt_secret {
            anyhow::ensure!(s.len() >= 32, "jwt_secret must be at least 32 characters");
        }
        if let Some(n) = self.node_id {
            anyhow::ensure!(n < 1024, "node_id must be below 1024");
        }
        anyhow::ensure!(self.hub.max_connections_per_user >= 1, "hub.max_connections_per_user must be at least 1");
        anyhow::ensure!(self.hub.queue_frames >= 8, "hub.queue_frames must be at least 8");
        anyhow::ensure!(self.hub.write_delay_ms <= 1000, "hub.write_delay_ms must be at most 1000");
        anyhow::ensure!(self.jobs.concurrency >= 1, "jobs.concurrency must be at least 1");
        anyhow::ensure!(self.jobs.max_attempts >= 1, "jobs.max_attempts must be at least 1");
        Ok(())
    }

    /// Whether writing needs a verified e-mail address: `auth.require_verified_email`, by
    /// default on exactly when SMTP is configured (without mail nobody could verify).
    pub fn verification_required(&self) -> bool {
        self.auth.require_verified_email.unwrap_or(self.smtp_url.is_some())
    }

    /// The base URL clients use to reach this server, without a trailing slash.
    pub fn public_url(&self) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }

    /// The database URL actually used: the configured one or the default SQLite file.
    pub fn effective_database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", self.data_dir.join("chorus.db").display()),
        }
    }
}

/// Values from CLI flags; `None` means "not given".
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<SocketAddr>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
    /// `--database-url`
    pub database_url: Option<String>,
    /// `--redis-url`
    pub redis_url: Option<String>,
}

/// Hides the password part of a URL: `postgres://u:***@host/db`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            // cloudinary://key:secret@cloud keeps its key visible, the secret not.
            u.to_string()
        }
        Err(_) => "<unparseable url>".into(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_url.as_deref().map(redact_url))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("smtp_url", &self.smtp_url.as_deref().map(redact_url))
            .field("public_url", &self.public_url)
            .field("log_format", &self.log_format)
            .field("body_limit_bytes", &self.body_limit_bytes)
            .field("node_id", &self.node_id)
            .field("trusted_proxies", &self.trusted_proxies)
            .field("rate_limit", &self.rate_limit)
            .field("cloudinary_url", &self.cloudinary_url.as_deref().map(redact_url))
            .field("cloudinary_api_base", &self.cloudinary_api_base)
            .field("cloudinary_delivery_base", &self.cloudinary_delivery_base)
            .field("cloudinary_auth_token_key", &self.cloudinary_auth_token_key.as_ref().map(|_| "***"))
            .field("media", &self.media)
            .field("feed", &self.feed)
            .field("hub", &self.hub)
            .field("jobs", &self.jobs)
            .field("push", &self.push)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets_and_url_passwords() {
        let cfg = Config {
            database_url: Some("postgres://u:hunter2@db/chorus".into()),
            jwt_secret: Some("x".repeat(40)),
            ..Config::default()
        };
        let s = format!("{cfg:?}");
        assert!(!s.contains("hunter2"), "{s}");
        assert!(!s.contains(&"x".repeat(40)), "{s}");
        assert!(s.contains("postgres://u:***@db/chorus"), "{s}");
    }

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(figment::providers::Toml::string(r#"trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]"#))
            .extract()
            .unwrap();
        assert_eq!(cfg.trusted_proxies.len(), 3);
        assert!(cfg.trusted_proxies[1].contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        let bad = Figment::from(Serialized::defaults(Config::default()))
            .merge(figment::providers::Toml::string(r#"trusted_proxies = ["nope"]"#))
            .extract::<Config>();
        assert!(bad.is_err());
    }

    #[test]
    fn write_delay_is_capped_at_a_second() {
        let mut cfg = Config::default();
        cfg.hub.write_delay_ms = 1000;
        assert!(cfg.validate().is_ok());
        cfg.hub.write_delay_ms = 1001;
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("write_delay_ms"), "{e}");
    }

    #[test]
    fn a_short_jwt_secret_is_a_startup_error() {
        let cfg = Config { jwt_secret: Some("x".repeat(31)), ..Config::default() };
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("jwt_secret must be at least 32 characters"), "{e}");
        let cfg = Config { jwt_secret: Some("x".repeat(32)), ..Config::default() };
        assert!(cfg.validate().is_ok());
    }

    #[test]
    fn rejects_unknown_database_scheme() {
        let cfg = Config { database_url: Some("mysql://x".into()), ..Config::default() };
        assert!(cfg.validate().is_err());
    }
}
