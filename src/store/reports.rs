//! Reports of abuse and the moderators' queue. A report holds a JSON snapshot of what it is
//! about, taken when it was made.

use sqlx::FromRow;

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `reports` row.
#[derive(Clone, Debug, FromRow)]
pub struct ReportRow {
    /// Id.
    pub id: Id,
    /// Who reported.
    pub reporter_id: Id,
    /// `post`, `comment`, `message` or `user`.
    pub target_type: String,
    /// Its id.
    pub target_id: Id,
    /// The author of the content, or the account reported.
    pub target_user_id: Id,
    /// A reason key.
    pub reason: String,
    /// The reporter's note.
    pub note: String,
    /// The target as it was (JSON).
    pub snapshot: String,
    /// `open` or `resolved`.
    pub status: String,
    /// `dismissed`, `removed` or `suspended`, once resolved.
    pub resolution: Option<String>,
    /// The moderator who resolved it.
    pub resolved_by: Option<Id>,
    /// When.
    pub resolved_at: Option<Timestamp>,
    /// Made.
    pub created_at: Timestamp,
}

const COLS: &str = "id, reporter_id, target_type, target_id, target_user_id, reason, note, snapshot, status, \
                    resolution, resolved_by, resolved_at, created_at";

/// Values of a new report.
pub struct NewReport<'a> {
    /// Id.
    pub id: Id,
    /// Who reports.
    pub reporter: Id,
    /// Kind of target.
    pub target_type: &'a str,
    /// Target id.
    pub target_id: Id,
    /// Its author.
    pub target_user: Id,
    /// Reason key.
    pub reason: &'a str,
    /// Note.
    pub note: &'a str,
    /// Snapshot JSON.
    pub snapshot: &'a str,
    /// Now.
    pub now: Timestamp,
}

/// Inserts an open report; `false` when the reporter already has one open on the target.
pub async fn insert(ex: Ex<'_>, r: &NewReport<'_>) -> StoreResult<bool> {
    let sql = "INSERT INTO reports (id, reporter_id, target_type, target_id, target_user_id, reason, note, snapshot, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
               ON CONFLICT (reporter_id, target_type, target_id) WHERE status = 'open' DO NOTHING";
    let n = exec!(ex, c => sqlx::query(sql)
        .bind(r.id).bind(r.reporter).bind(r.target_type).bind(r.target_id).bind(r.target_user)
        .bind(r.reason).bind(r.note).bind(r.snapshot).bind(r.now)
        .execute(c).await)?;
    Ok(n == 1)
}

/// A report by id.
pub async fn get(ex: Ex<'_>, id: Id) -> StoreResult<Option<ReportRow>> {
    let sql = format!("SELECT {COLS} FROM reports WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, ReportRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// Reports with `status`, oldest first (a queue), after the cursor id.
pub async fn page(ex: Ex<'_>, status: &str, after: Option<Id>, limit: i64) -> StoreResult<Vec<ReportRow>> {
    let sql = format!("SELECT {COLS} FROM reports WHERE status = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3");
    let after = after.map(|a| a.0);
    Ok(run!(ex, c => sqlx::query_as::<_, ReportRow>(&sql).bind(status).bind(after).bind(limit).fetch_all(c).await)?)
}

/// Open reports.
pub async fn open_count(ex: Ex<'_>) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM reports WHERE status = 'open'";
    Ok(run!(ex, c => sqlx::query_scalar(sql).fetch_one(c).await)?)
}

/// Resolves every open report on a target (or just `only`, when given) with `resolution`;
/// returns the reports resolved.
pub async fn resolve(
    ex: Ex<'_>,
    target: (&str, Id),
    only: Option<Id>,
    resolution: &str,
    by: Id,
    now: Timestamp,
) -> StoreResult<Vec<ReportRow>> {
    let sql = format!(
        "UPDATE reports SET status = 'resolved', resolution = $3, resolved_by = $4, resolved_at = $5 \
         WHERE status = 'open' AND target_type = $1 AND target_id = $2 AND ($6 IS NULL OR id = $6) \
         RETURNING {COLS}"
    );
    let only = only.map(|o| o.0);
    Ok(run!(ex, c => sqlx::query_as::<_, ReportRow>(&sql)
        .bind(target.0).bind(target.1).bind(resolution).bind(by).bind(now).bind(only)
        .fetch_all(c).await)?)
}

/// Resolves every open report about an account or its content (a suspension).
pub async fn resolve_about_user(
    ex: Ex<'_>,
    user: Id,
    resolution: &str,
    by: Id,
    now: Timestamp,
) -> StoreResult<Vec<ReportRow>> {
    let sql = format!(
        "UPDATE reports SET status = 'resolved', resolution = $2, resolved_by = $3, resolved_at = $4 \
         WHERE status = 'open' AND target_user_id = $1 RETURNING {COLS}"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, ReportRow>(&sql).bind(user).bind(resolution).bind(by).bind(now)
        .fetch_all(c).await)?)
}
