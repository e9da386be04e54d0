//! Login sessions (one per refresh-token family): the device and address they began from
//! and when they were last used, for `GET /auth/sessions`.

use sqlx::FromRow;

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `sessions` row.
#[derive(Clone, Debug, FromRow)]
pub struct SessionRow {
    /// The session (refresh family) id.
    pub id: Id,
    /// Its account.
    pub user_id: Id,
    /// The User-Agent at login, shortened.
    pub device: String,
    /// The client address at login.
    pub ip: String,
    /// Opened.
    pub created_at: Timestamp,
    /// Last login or refresh.
    pub last_used_at: Timestamp,
}

/// Records a new session.
pub async fn insert(ex: Ex<'_>, id: Id, user: Id, device: &str, ip: &str, now: Timestamp) -> StoreResult<()> {
    let sql =
        "INSERT INTO sessions (id, user_id, device, ip, created_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $5)";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(user).bind(device).bind(ip).bind(now).execute(c).await)?;
    Ok(())
}

/// Notes a refresh of the session.
pub async fn touch(ex: Ex<'_>, id: Id, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE sessions SET last_used_at = $2 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(now).execute(c).await)?;
    Ok(())
}

/// Marks sessions ended (their refresh families were revoked).
pub async fn end(ex: Ex<'_>, ids: &[Id], now: Timestamp) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql =
        format!("UPDATE sessions SET ended_at = $1 WHERE ended_at IS NULL AND id IN ({})", super::posts::in_list(ids));
    exec!(ex, c => sqlx::query(&sql).bind(now).execute(c).await)?;
    Ok(())
}

/// A user's sessions still usable at `now` (not ended, used within `ttl_ms`), latest use first.
pub async fn live(ex: Ex<'_>, user: Id, now: Timestamp, ttl_ms: i64) -> StoreResult<Vec<SessionRow>> {
    let sql = "SELECT id, user_id, device, ip, created_at, last_used_at FROM sessions \
               WHERE user_id = $1 AND ended_at IS NULL AND last_used_at > $2 \
               ORDER BY last_used_at DESC, id DESC LIMIT 200";
    Ok(
        run!(ex, c => sqlx::query_as::<_, SessionRow>(sql).bind(user).bind(Timestamp(now.0 - ttl_ms)).fetch_all(c).await)?,
    )
}

/// One of `user`'s sessions, if it is still open.
pub async fn get_open(ex: Ex<'_>, user: Id, id: Id) -> StoreResult<Option<SessionRow>> {
    let sql = "SELECT id, user_id, device, ip, created_at, last_used_at FROM sessions \
               WHERE id = $1 AND user_id = $2 AND ended_at IS NULL";
    Ok(run!(ex, c => sqlx::query_as::<_, SessionRow>(sql).bind(id).bind(user).fetch_optional(c).await)?)
}
