//! The job outbox table. See [`crate::jobs`] for the worker and the delivery guarantees.

use sqlx::FromRow;

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A claimed job.
#[derive(Clone, Debug, FromRow)]
pub struct JobRow {
    /// Id.
    pub id: Id,
    /// Handler name.
    pub kind: String,
    /// JSON payload.
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: i32,
    /// Attempts allowed before dead-lettering.
    pub max_attempts: i32,
}

/// Enqueues a job (inside the caller's transaction).
pub async fn insert(
    ex: Ex<'_>,
    id: Id,
    kind: &str,
    payload: &str,
    max_attempts: i32,
    run_at: Timestamp,
    now: Timestamp,
) -> StoreResult<()> {
    let sql = "INSERT INTO jobs (id, kind, payload, status, attempts, max_attempts, run_at, created_at, updated_at) \
               VALUES ($1, $2, $3, 'queued', 0, $4, $5, $6, $6)";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(kind).bind(payload).bind(max_attempts).bind(run_at).bind(now)
        .execute(c).await)?;
    Ok(())
}

/// Claims up to `limit` due jobs for `lease_ms`: queued ones whose time has come, and
/// running ones whose lease ran out (their worker died). Claiming counts an attempt.
pub async fn claim(ex: Ex<'_>, now: Timestamp, lease_ms: i64, limit: i64) -> StoreResult<Vec<JobRow>> {
    // The one real dialect difference: PostgreSQL lets concurrent workers (other instances)
    // skip each other's rows; SQLite has one writer at a time and no row locks.
    let lock = match ex.backend() {
        super::Backend::Postgres => "FOR UPDATE SKIP LOCKED",
        super::Backend::Sqlite => "",
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $2, updated_at = $1 \
         WHERE id IN (SELECT id FROM jobs \
                      WHERE (status = 'queued' AND run_at <= $1) OR (status = 'running' AND locked_until < $1) \
                      ORDER BY run_at LIMIT $3 {lock}) \
         RETURNING id, kind, payload, attempts, max_attempts"
    );
    let until = Timestamp(now.0 + lease_ms);
    Ok(run!(ex, c => sqlx::query_as::<_, JobRow>(&sql).bind(now).bind(until).bind(limit).fetch_all(c).await)?)
}

/// Removes a finished job if it is still the claim numbered `attempts` (no other worker
/// took it over after the lease ran out); whether it was.
pub async fn complete_claimed(ex: Ex<'_>, id: Id, attempts: i32) -> StoreResult<bool> {
    let r = exec!(ex, c => sqlx::query("DELETE FROM jobs WHERE id = $1 AND attempts = $2 AND status = 'running'")
        .bind(id)
        .bind(attempts)
        .execute(c)
        .await)?;
    Ok(r == 1)
}

/// Removes a finished job.
pub async fn complete(ex: Ex<'_>, id: Id) -> StoreResult<()> {
    exec!(ex, c => sqlx::query("DELETE FROM jobs WHERE id = $1").bind(id).execute(c).await)?;
    Ok(())
}

/// Records a failure: re-queued for `retry_at`, or dead-lettered when `None`.
pub async fn fail(ex: Ex<'_>, id: Id, error: &str, retry_at: Option<Timestamp>, now: Timestamp) -> StoreResult<()> {
    let error: String = error.chars().take(2000).collect();
    match retry_at {
        Some(at) => {
            let sql = "UPDATE jobs SET status = 'queued', run_at = $2, locked_until = NULL, last_error = $3, updated_at = $4 WHERE id = $1";
            exec!(ex, c => sqlx::query(sql).bind(id).bind(at).bind(&error).bind(now).execute(c).await)?;
        }
        None => {
            let sql =
                "UPDATE jobs SET status = 'dead', locked_until = NULL, last_error = $2, updated_at = $3 WHERE id = $1";
            exec!(ex, c => sqlx::query(sql).bind(id).bind(&error).bind(now).execute(c).await)?;
        }
    }
    Ok(())
}

/// `(kind, status, count)` of every job in the table, for metrics.
pub async fn depth(ex: Ex<'_>) -> StoreResult<Vec<(String, String, i64)>> {
    let sql = "SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status";
    Ok(run!(ex, c => sqlx::query_as(sql).fetch_all(c).await)?)
}

/// Status and attempts of one job (`None` once it completed and was removed).
pub async fn status(ex: Ex<'_>, id: Id) -> StoreResult<Option<(String, i32, Option<String>)>> {
    let sql = "SELECT status, attempts, last_error FROM jobs WHERE id = $1";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(id).fetch_optional(c).await)?)
}
