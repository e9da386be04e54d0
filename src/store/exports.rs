//! Data exports (their rows; the files are in the data directory) and the account's rows an
//! export reads besides those `store::erasure` already reads.

use sqlx::FromRow;

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// An `exports` row.
#[derive(Clone, Debug, FromRow)]
pub struct ExportRow {
    /// Id.
    pub id: Id,
    /// Whose.
    pub user_id: Id,
    /// `pending` or `ready`.
    pub status: String,
    /// ZIP size once ready.
    pub bytes: Option<i64>,
    /// Asked.
    pub created_at: Timestamp,
    /// Written.
    pub ready_at: Option<Timestamp>,
    /// Downloadable until.
    pub expires_at: Option<Timestamp>,
}

const COLS: &str = "id, user_id, status, bytes, created_at, ready_at, expires_at";

/// Records a requested export.
pub async fn insert(ex: Ex<'_>, id: Id, user: Id, now: Timestamp) -> StoreResult<()> {
    let sql = "INSERT INTO exports (id, user_id, created_at) VALUES ($1, $2, $3)";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(user).bind(now).execute(c).await)?;
    Ok(())
}

/// One of `user`'s exports.
pub async fn get(ex: Ex<'_>, user: Id, id: Id) -> StoreResult<Option<ExportRow>> {
    let sql = format!("SELECT {COLS} FROM exports WHERE id = $1 AND user_id = $2");
    Ok(run!(ex, c => sqlx::query_as::<_, ExportRow>(&sql).bind(id).bind(user).fetch_optional(c).await)?)
}

/// `user`'s pending export, if any.
pub async fn pending_of(ex: Ex<'_>, user: Id) -> StoreResult<Option<ExportRow>> {
    let sql = format!("SELECT {COLS} FROM exports WHERE user_id = $1 AND status = 'pending' LIMIT 1");
    Ok(run!(ex, c => sqlx::query_as::<_, ExportRow>(&sql).bind(user).fetch_optional(c).await)?)
}

/// `user`'s exports.
pub async fn all_of(ex: Ex<'_>, user: Id) -> StoreResult<Vec<ExportRow>> {
    let sql = format!("SELECT {COLS} FROM exports WHERE user_id = $1 ORDER BY id");
    Ok(run!(ex, c => sqlx::query_as::<_, ExportRow>(&sql).bind(user).fetch_all(c).await)?)
}

/// Marks an export written; `false` when its row is gone.
pub async fn mark_ready(ex: Ex<'_>, id: Id, bytes: i64, now: Timestamp, expires: Timestamp) -> StoreResult<bool> {
    let sql = "UPDATE exports SET status = 'ready', bytes = $2, ready_at = $3, expires_at = $4 WHERE id = $1";
    Ok(exec!(ex, c => sqlx::query(sql).bind(id).bind(bytes).bind(now).bind(expires).execute(c).await)? == 1)
}

/// Forgets an export (expired, or its account erased).
pub async fn delete(ex: Ex<'_>, id: Id) -> StoreResult<()> {
    exec!(ex, c => sqlx::query("DELETE FROM exports WHERE id = $1").bind(id).execute(c).await)?;
    Ok(())
}

/// `user`'s reactions: `(target kind, target, reaction type, when)`.
pub async fn reactions(ex: Ex<'_>, user: Id) -> StoreResult<Vec<(String, Id, String, Timestamp)>> {
    let sql = "SELECT target_kind, target_id, kind, created_at FROM reactions WHERE user_id = $1 ORDER BY created_at";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).fetch_all(c).await)?)
}

/// Follows to and from `user`: `(follower, followee, status, since)`.
pub async fn follows(ex: Ex<'_>, user: Id) -> StoreResult<Vec<(Id, Id, String, Timestamp)>> {
    let sql = "SELECT follower_id, followee_id, status, created_at FROM follows \
               WHERE follower_id = $1 OR followee_id = $1 ORDER BY created_at";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).fetch_all(c).await)?)
}

/// `user`'s uploads.
pub async fn media_ids(ex: Ex<'_>, user: Id) -> StoreResult<Vec<Id>> {
    let sql = "SELECT id FROM media WHERE owner_id = $1 AND status = 'ready' ORDER BY id";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_all(c).await)?)
}
