//! The moderators' audit log: append-only (the schema's triggers refuse updates and
//! deletions), newest first.

use sqlx::FromRow;

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// An `audit_log` row.
#[derive(Clone, Debug, FromRow)]
pub struct AuditRow {
    /// Id.
    pub id: Id,
    /// Who acted; `None` for the command line.
    pub actor_id: Option<Id>,
    /// What was done, e.g. `post.remove`.
    pub action: String,
    /// `post`, `comment`, `message`, `user` or `report`.
    pub target_type: String,
    /// Its id.
    pub target_id: Id,
    /// The report acted on, if any.
    pub report_id: Option<Id>,
    /// Free detail (the role granted, a reason).
    pub detail: String,
    /// When.
    pub created_at: Timestamp,
}

/// Values of an entry.
pub struct NewEntry<'a> {
    /// Id.
    pub id: Id,
    /// Who acted.
    pub actor: Option<Id>,
    /// What was done.
    pub action: &'a str,
    /// Kind of target.
    pub target_type: &'a str,
    /// Target id.
    pub target_id: Id,
    /// Report acted on.
    pub report: Option<Id>,
    /// Detail.
    pub detail: &'a str,
    /// Now.
    pub now: Timestamp,
}

/// Appends an entry.
pub async fn append(ex: Ex<'_>, e: &NewEntry<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO audit_log (id, actor_id, action, target_type, target_id, report_id, detail, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    exec!(ex, c => sqlx::query(sql)
        .bind(e.id).bind(e.actor).bind(e.action).bind(e.target_type).bind(e.target_id)
        .bind(e.report).bind(e.detail).bind(e.now)
        .execute(c).await)?;
    Ok(())
}

/// Entries newest first, before the cursor id.
pub async fn page(ex: Ex<'_>, before: Option<Id>, limit: i64) -> StoreResult<Vec<AuditRow>> {
    let sql = "SELECT id, actor_id, action, target_type, target_id, report_id, detail, created_at FROM audit_log \
               WHERE ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2";
    let before = before.map(|b| b.0);
    Ok(run!(ex, c => sqlx::query_as::<_, AuditRow>(sql).bind(before).bind(limit).fetch_all(c).await)?)
}
