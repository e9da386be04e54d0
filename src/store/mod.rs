//! All SQL, one file per aggregate. SQLite (the embedded default) and PostgreSQL (scale-out)
//! run the *same SQL text*.
//!
//! # How one query serves two databases
//! A query is written once inside [`run!`], which expands the same `sqlx::query…` body in a
//! SQLite arm and a PostgreSQL arm, so both are type-checked by the compiler against each
//! driver. The SQL sticks to what both dialects agree on: `$1` placeholders, `RETURNING`,
//! `ON CONFLICT`, ids and timestamps (Unix ms in `BIGINT`) made in Rust, no `ILIKE`, `now()`,
//! arrays or JSON operators. Where the dialects really differ (row locking for the job
//! queue), a function matches on [`Ex`] and writes two strings. This was chosen over sqlx's
//! `Any` driver, which erases types and adds a conversion per row, and over a store trait with
//! one implementation per backend, which writes every query twice.
//!
//! # Connections
//! - [`Store::conn`] checks out a connection for reads (autocommit).
//! - [`Store::begin`] opens a write transaction. On SQLite, writes go through a dedicated
//!   one-connection pool and start with `BEGIN IMMEDIATE`: SQLite allows one writer at a time,
//!   and queueing writers in-process is fairer and faster than letting them collide on
//!   `SQLITE_BUSY`. Reads use a separate pool and run concurrently (WAL mode).
//!
//! The store never decides who may see what: that is the services' job.

pub mod audit;
pub mod chat;
pub mod comments;
pub mod erasure;
pub mod events;
pub mod exports;
pub mod graph;
pub mod jobs;
pub mod media;
pub mod notifications;
pub mod posts;
pub mod push;
pub mod reactions;
pub mod reports;
pub mod saves;
pub mod sessions;
pub mod timelines;
pub mod tokens;
pub mod users;
pub mod verifications;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgConnection, PgPool, Postgres, Sqlite, SqliteConnection, SqlitePool, Transaction};

/// Runs the same query body against whichever backend `$ex` ([`Ex`]) holds.
///
/// ```ignore
/// exec!(ex, c => sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(c).await)
/// ```
#[macro_export]
macro_rules! run {
    ($ex:expr, $c:ident => $body:expr) => {
        match $ex {
            $crate::store::Ex::Sqlite($c) => $body,
            $crate::store::Ex::Postgres($c) => $body,
        }
    };
}

/// Like [`run!`] for statements run with `.execute(…)`: evaluates to
/// `Result<u64, sqlx::Error>`, the number of rows affected (the drivers' result types differ).
#[macro_export]
macro_rules! exec {
    ($ex:expr, $c:ident => $body:expr) => {
        match $ex {
            $crate::store::Ex::Sqlite($c) => $body.map(|r| r.rows_affected()),
            $crate::store::Ex::Postgres($c) => $body.map(|r| r.rows_affected()),
        }
    };
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint was violated. The text names the constraint (PostgreSQL) or the
    /// columns (SQLite); [`StoreError::is_conflict_on`] matches either.
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// The database could not be reached or no connection was free in time.
    #[error("database unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Anything else.
    #[error(transparent)]
    Other(sqlx::Error),
}

impl StoreError {
    /// Whether this is a unique violation whose constraint/columns mention `hint`
    /// (e.g. `"username"` matches both `users_username_key` and `users.username`).
    pub fn is_conflict_on(&self, hint: &str) -> bool {
        matches!(self, Self::Conflict(c) if c.contains(hint))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let what = db.constraint().map(str::to_string).unwrap_or_else(|| db.message().to_string());
                Self::Conflict(what)
            }
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => Self::Unavailable(e),
            _ => Self::Other(e),
        }
    }
}

/// Store result.
pub type StoreResult<T> = Result<T, StoreError>;

/// Which database is behind the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite file.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

#[derive(Clone, Debug)]
enum Pools {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

/// Handle on the database. Cheap to clone (pools are reference-counted).
#[derive(Clone, Debug)]
pub struct Store {
    pools: Pools,
}

/// A checked-out connection for reads.
pub enum Conn {
    /// SQLite.
    Sqlite(PoolConnection<Sqlite>),
    /// PostgreSQL.
    Postgres(PoolConnection<Postgres>),
}

/// An open write transaction. Dropped without [`Tx::commit`], it rolls back.
pub enum Tx {
    /// SQLite.
    Sqlite(Transaction<'static, Sqlite>),
    /// PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

/// A borrowed connection of either backend: what every store function takes. Get one from
/// [`Conn::ex`] or [`Tx::ex`]; it is consumed by one call, so re-borrow for the next.
pub enum Ex<'c> {
    /// SQLite.
    Sqlite(&'c mut SqliteConnection),
    /// PostgreSQL.
    Postgres(&'c mut PgConnection),
}

impl Conn {
    /// Borrow for one store call.
    pub fn ex(&mut self) -> Ex<'_> {
        match self {
            Conn::Sqlite(c) => Ex::Sqlite(c),
            Conn::Postgres(c) => Ex::Postgres(c),
        }
    }
}

impl Tx {
    /// Borrow for one store call.
    pub fn ex(&mut self) -> Ex<'_> {
        match self {
            Tx::Sqlite(t) => Ex::Sqlite(t),
            Tx::Postgres(t) => Ex::Postgres(t),
        }
    }

    /// Commits.
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }
}

impl Ex<'_> {
    /// Which backend this connection talks to.
    pub fn backend(&self) -> Backend {
        match self {
            Ex::Sqlite(_) => Backend::Sqlite,
            Ex::Postgres(_) => Backend::Postgres,
        }
    }

    /// Re-borrows for one call, keeping this handle for the next (for functions that take
    /// an [`Ex`] and make several store calls).
    pub fn reborrow(&mut self) -> Ex<'_> {
        match self {
            Ex::Sqlite(c) => Ex::Sqlite(c),
            Ex::Postgres(c) => Ex::Postgres(c),
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite:…` or `postgres://…`), creating the SQLite file if needed.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        if url.starts_with("sqlite:") {
            let opts = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10));
            // The file may be created, but not its directory: every command (`seed`,
            // `migrate`, `admin` on a fresh `./data`) gets it made here.
            if let Some(dir) = opts.get_filename().parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
                .await?;
            let read = SqlitePoolOptions::new()
                .max_connections(max_connections.max(2))
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(opts)
                .await?;
            Ok(Self { pools: Pools::Sqlite { read, write } })
        } else {
            let opts = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(max_connections)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(opts)
                .await?;
            Ok(Self { pools: Pools::Postgres(pool) })
        }
    }

    /// Applies the embedded migrations of this backend.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        match &self.pools {
            Pools::Sqlite { write, .. } => sqlx::migrate!("migrations/sqlite").run(write).await?,
            Pools::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await?,
        }
        Ok(())
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match &self.pools {
            Pools::Sqlite { .. } => Backend::Sqlite,
            Pools::Postgres(_) => Backend::Postgres,
        }
    }

    /// A connection for reads.
    pub async fn conn(&self) -> StoreResult<Conn> {
        Ok(match &self.pools {
            Pools::Sqlite { read, .. } => Conn::Sqlite(read.acquire().await?),
            Pools::Postgres(p) => Conn::Postgres(p.acquire().await?),
        })
    }

    /// A write transaction.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match &self.pools {
            Pools::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Pools::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// Cheap liveness probe for `/ready`.
    pub async fn ping(&self) -> StoreResult<()> {
        let mut c = self.conn().await?;
        exec!(c.ex(), c => sqlx::query("SELECT 1").execute(c).await)?;
        Ok(())
    }

    /// `(size, idle)` of the main pool, for metrics.
    pub fn pool_stats(&self) -> (u32, usize) {
        match &self.pools {
            Pools::Sqlite { read, write } => (read.size() + write.size(), read.num_idle() + write.num_idle()),
            Pools::Postgres(p) => (p.size(), p.num_idle()),
        }
    }

    /// Closes every pool, waiting for checked-out connections to come back.
    pub async fn close(&self) {
        match &self.pools {
            Pools::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Pools::Postgres(p) => p.close().await,
        }
    }
}

/// `LIMIT` placeholder value: page size plus one, to learn whether another page exists.
pub fn fetch_limit(limit: u32) -> i64 {
    limit as i64 + 1
}

#[cfg(test)]
mod tests {
    /// Both backends must have the same migrations, version for version.
    #[test]
    fn migration_folders_have_identical_version_lists() {
        let list = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(list("sqlite"), list("postgres"));
        assert!(!list("sqlite").is_empty());
    }
}
