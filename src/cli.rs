//! The `chorus` command line: `serve` (default), `migrate`, `seed`, `admin`, `reactions`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::Overrides;
use crate::domain::user::Role;

const CONFIG_HELP: &str = "\
Configuration, lowest to highest precedence: built-in defaults, chorus.toml (or --config),
environment variables, command-line flags. Environment variables:

  CHORUS_LISTEN                 address to listen on                 [127.0.0.1:3000]
  CHORUS_DATA_DIR               SQLite file, local media, secrets    [./data]
  DATABASE_URL                  postgres://… to use PostgreSQL       [sqlite file in data dir]
  REDIS_URL                     redis://… for a cluster (broker, revocations, presence,
                                rate limits, timelines)              [unset: single node]
  CHORUS_JWT_SECRET             token signing secret (≥ 32 chars; required with REDIS_URL)
                                                                     [generated, kept in data dir]
  CHORUS_ACCESS_TOKEN_TTL_SECS  access token lifetime                [900]
  CHORUS_REFRESH_TOKEN_TTL_SECS refresh token lifetime               [2592000]
  CHORUS_SMTP_URL               smtp://user:pass@host:port           [unset: e-mails are logged]
  CHORUS_MAIL_FROM              From: of e-mails
  CHORUS_PUBLIC_URL             base URL clients use                 [http://{listen}]
  CLOUDINARY_URL                cloudinary://key:secret@cloud        [unset: media on disk]
  CHORUS_CLOUDINARY_API_BASE    Cloudinary API base URL              [https://api.cloudinary.com]
  CHORUS_LOG_FORMAT             text | json                          [text]
  CHORUS_LOG                    log filter (tracing EnvFilter)       [info]
  CHORUS_BODY_LIMIT_BYTES       largest JSON body                    [1048576]
  CHORUS_SHUTDOWN_TIMEOUT_SECS  graceful shutdown deadline           [10]
  CHORUS_NODE_ID                instance id inside generated ids     [from Redis, else 0]
  CHORUS_TRUSTED_PROXIES        proxies whose X-Forwarded-For is believed, e.g. [\"127.0.0.1\"]
  Nested settings use a double underscore: CHORUS_HUB__QUEUE_FRAMES, CHORUS_MEDIA__MAX_IMAGE_BYTES,
  CHORUS_RATE_LIMIT__AUTH_PER_IP_PER_MINUTE, CHORUS_FEED__FANOUT_READ_THRESHOLD, CHORUS_JOBS__CONCURRENCY …
  (every key of chorus.toml; see README).";

/// Chorus: a realtime social server (posts, follows, chat, notifications over Socket.IO and
/// WebSocket).
#[derive(Debug, Parser)]
#[command(name = "chorus", version, about, after_long_help = CONFIG_HELP, after_help = "Run with --help for the configuration variables.")]
pub struct Cli {
    /// Configuration file (TOML). Default: ./chorus.toml when it exists.
    #[arg(long, short = 'c', env = "CHORUS_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CHORUS_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Data directory (SQLite file, local media, generated secrets).
    #[arg(long, env = "CHORUS_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL (postgres://… or sqlite:…).
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis URL; enables the cluster mode.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Fill the database with realistic sample data. Idempotent: running it twice changes nothing.
    Seed {
        /// Number of users.
        #[arg(long, default_value_t = 100)]
        users: u32,
    },
    /// Grant or revoke moderator and admin roles (the first admin comes from here).
    Admin {
        /// What to do.
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// Manage reaction types (data, not code): list, add, disable.
    Reactions {
        /// What to do.
        #[command(subcommand)]
        action: ReactionsCommand,
    },
}

/// `chorus admin …`.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Give an account a role: `chorus admin grant alice admin`.
    Grant {
        /// Username (or `@username`, or id).
        user: String,
        /// `moderator` or `admin` (or `user`).
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Take a role back (the account becomes a plain user): `chorus admin revoke alice moderator`.
    Revoke {
        /// Username (or `@username`, or id).
        user: String,
        /// The role it has.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::from_key(s).ok_or_else(|| format!("`{s}` is not a role: user, moderator or admin"))
}

/// `chorus reactions …`.
#[derive(Debug, Subcommand)]
pub enum ReactionsCommand {
    /// Every reaction type, with its position and state.
    List,
    /// Add a type, or update and re-enable an existing one.
    Add {
        /// Stable key, `[a-z0-9_]`, e.g. `wow`.
        key: String,
        /// Emoji shown, e.g. 😮.
        emoji: String,
        /// Label, e.g. `Wow`.
        label: String,
        /// Display position (default: after the others; an existing type keeps its own).
        #[arg(long)]
        position: Option<i32>,
    },
    /// Disable a type: it can no longer be chosen; existing reactions stay counted.
    Disable {
        /// Key of the type.
        key: String,
    },
}

impl Cli {
    /// The flags that override configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            listen: self.listen,
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            redis_url: self.redis_url.clone(),
        }
    }
}
