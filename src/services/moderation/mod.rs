//! Trust and safety: roles, suspension, and the moderators' audit log. Reports and what
//! moderators do about them are in [`reports`].
//!
//! # Who may do what
//! - **Moderators** (and admins) see the report queue and the audit log, resolve reports
//!   (dismiss, remove the content, suspend its author) and suspend or unsuspend accounts —
//!   never a moderator's or admin's account, never their own.
//! - **Admins** also grant and revoke roles over REST; the first admin comes from the command
//!   line (`chorus admin grant <user> admin`), which needs no account.
//!
//! Every action appends one row to the audit log in the transaction that makes it, so the
//! log holds exactly what happened.
//!
//! # Suspension
//! A suspended account's sessions and refresh tokens end, its sockets close on every
//! instance with close code 4505 `account_suspended`, login answers `403
//! account_suspended`, and the policy ([`crate::services::access`]) hides its profile and
//! content from everyone else until it is unsuspended. Nothing is deleted.

pub mod reports;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::user::Role;
use crate::domain::{Id, IdGen, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::pagination::{Page, PageQuery};
use crate::realtime::close::CloseCode;
use crate::services::{auth, notifications};
use crate::state::AppState;
use crate::store::audit::{self as audit_store, AuditRow, NewEntry};
use crate::store::users::{self as user_store, UserRow};
use crate::store::{Ex, Store, Tx, reports as report_store};

pub use reports::{ReportAction, file, open_count, queue, resolve};

/// The caller's account when it moderates; `403` otherwise.
pub async fn moderator(state: &AppState, me: Id) -> AppResult<UserRow> {
    let mut c = state.store.conn().await?;
    let u = user_store::get(c.ex(), me).await?.ok_or(AppError::NotFound)?;
    if !u.role().moderates() {
        return Err(AppError::Forbidden("moderators only"));
    }
    Ok(u)
}

/// Appends an audit entry inside `tx`.
async fn record(
    ex: Ex<'_>,
    ids: &IdGen,
    actor: Option<Id>,
    action: &str,
    target: (&str, Id),
    report: Option<Id>,
    detail: &str,
) -> AppResult<()> {
    let e = NewEntry {
        id: ids.next(),
        actor,
        action,
        target_type: target.0,
        target_id: target.1,
        report,
        detail,
        now: Timestamp::now(),
    };
    audit_store::append(ex, &e).await?;
    Ok(())
}

// ---- roles ----------------------------------------------------------------------------------

/// `PUT /admin/users/{id}/role` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SetRole {
    /// `user`, `moderator` or `admin`.
    pub role: Role,
}

/// An account's role, as changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    /// The account.
    pub user_id: Id,
    /// Its role now.
    pub role: Role,
}

/// Sets `user`'s role (admins only; not their own: another admin or the command line does
/// that, so an admin cannot lock everyone out by mistake).
pub async fn set_role(state: &AppState, me: Id, user: Id, req: SetRole) -> AppResult<RoleView> {
    if moderator(state, me).await?.role() != Role::Admin {
        return Err(AppError::Forbidden("admins only"));
    }
    if user == me {
        return Err(AppError::field("id", "another admin (or `chorus admin`) changes your own role"));
    }
    let mut tx = state.store.begin().await?;
    if !user_store::set_role(tx.ex(), user, req.role).await? {
        return Err(AppError::NotFound);
    }
    record(tx.ex(), &state.ids, Some(me), "role.set", ("user", user), None, req.role.key()).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(RoleView { user_id: user, role: req.role })
}

/// `chorus admin grant|revoke <user> <role>`: sets the role (grant), or takes it back to
/// `user` when the account has it (revoke). The audit log names no actor: the command line.
pub async fn cli_role(store: &Store, user: &str, role: Role, grant: bool) -> anyhow::Result<String> {
    let mut tx = store.begin().await?;
    let name = user.trim_start_matches('@').to_ascii_lowercase();
    let row = match user.parse::<Id>() {
        Ok(id) => user_store::get(tx.ex(), id).await?,
        Err(_) => user_store::get_by_username(tx.ex(), &name).await?,
    };
    let row = row.ok_or_else(|| anyhow::anyhow!("no account {user}"))?;
    let new = if grant {
        role
    } else {
        anyhow::ensure!(row.role() == role, "{} is not {} (their role is {})", row.username, role.key(), row.role);
        Role::User
    };
    user_store::set_role(tx.ex(), row.id, new).await?;
    // The command line makes ids as node 1023, which no running instance is given.
    let ids = IdGen::new(1023);
    let action = if grant { "role.grant" } else { "role.revoke" };
    record(tx.ex(), &ids, None, action, ("user", row.id), None, role.key()).await?;
    tx.commit().await?;
    Ok(format!("{} ({}) is now {}", row.username, row.id, new.key()))
}

// ---- suspension -----------------------------------------------------------------------------

/// The account a moderator may suspend or unsuspend: an existing one, not staff, not oneself.
async fn suspendable(tx: &mut Tx, me: Id, user: Id) -> AppResult<UserRow> {
    if user == me {
        return Err(AppError::field("id", "you cannot suspend yourself"));
    }
    let row = user_store::get(tx.ex(), user).await?.filter(|u| u.deleted_at.is_none()).ok_or(AppError::NotFound)?;
    if row.role().moderates() {
        return Err(AppError::Forbidden("moderators and admins are not suspended; revoke the role first"));
    }
    Ok(row)
}

/// Suspends `user` (see the module doc), resolving every open report about it or its
/// content as `suspended`; `409` when it already is.
pub async fn suspend(state: &AppState, me: Id, user: Id, report: Option<Id>) -> AppResult<()> {
    moderator(state, me).await?;
    let mut tx = state.store.begin().await?;
    suspendable(&mut tx, me, user).await?;
    let now = Timestamp::now();
    if !user_store::set_suspended(tx.ex(), user, Some(now)).await? {
        return Err(AppError::conflict("the account is already suspended"));
    }
    let mut events = EventBatch::new();
    auth::end_every_session(state, &mut tx, &mut events, user, CloseCode::ACCOUNT_SUSPENDED).await?;
    let resolved = report_store::resolve_about_user(tx.ex(), user, "suspended", me, now).await?;
    for r in &resolved {
        notifications::enqueue(state, &mut tx, notifications::Cause::ReportResolved { report: r.id }).await?;
    }
    record(tx.ex(), &state.ids, Some(me), "user.suspend", ("user", user), report, "").await?;
    state.commit(tx, events).await?;
    if !resolved.is_empty() {
        reports::publish_open_count(state).await?;
    }
    Ok(())
}

/// Lifts `user`'s suspension: its content is back, it may log in again. `409` when it is
/// not suspended.
pub async fn unsuspend(state: &AppState, me: Id, user: Id) -> AppResult<()> {
    moderator(state, me).await?;
    let mut tx = state.store.begin().await?;
    suspendable(&mut tx, me, user).await?;
    if !user_store::set_suspended(tx.ex(), user, None).await? {
        return Err(AppError::conflict("the account is not suspended"));
    }
    record(tx.ex(), &state.ids, Some(me), "user.unsuspend", ("user", user), None, "").await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

// ---- the audit log --------------------------------------------------------------------------

/// What `target` of an audit entry or a report names.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TargetRef {
    /// `post`, `comment`, `message`, `user` or `report`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its id.
    pub id: Id,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Id.
    pub id: Id,
    /// The moderator or admin who acted; `null` for the command line.
    pub actor_id: Option<Id>,
    /// `report.dismiss`, `post.remove`, `comment.remove`, `message.remove`, `user.suspend`,
    /// `user.unsuspend`, `role.set`, `role.grant` or `role.revoke`.
    pub action: String,
    /// What it was done to.
    pub target: TargetRef,
    /// The report acted on, if any.
    pub report_id: Option<Id>,
    /// The role given, for role changes; else empty.
    pub detail: String,
    /// When.
    pub created_at: Timestamp,
}

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        Self {
            id: r.id,
            actor_id: r.actor_id,
            action: r.action,
            target: TargetRef { kind: r.target_type, id: r.target_id },
            report_id: r.report_id,
            detail: r.detail,
            created_at: r.created_at,
        }
    }
}

/// The audit log, newest first (moderators).
pub async fn audit(state: &AppState, me: Id, q: &PageQuery) -> AppResult<Page<AuditEntry>> {
    moderator(state, me).await?;
    let page = q.parse::<Id>()?;
    let mut c = state.store.conn().await?;
    let rows = audit_store::page(c.ex(), page.after, crate::store::fetch_limit(page.limit)).await?;
    Ok(Page::from_rows(rows, page.limit, |r| r.id).map(AuditEntry::from))
}

/// Publishes `reports.open` with the open count to every moderator's `notification` topic
/// (ephemeral: a moderator who connects later asks `GET /admin/reports/count`).
fn open_count_events(moderators: &[Id], count: i64) -> EventBatch {
    #[derive(Serialize)]
    struct Open {
        count: i64,
    }
    let mut events = EventBatch::new();
    for m in moderators {
        events.transient(Topic::Notification(*m), EventName::ReportsOpen, &Open { count });
    }
    events
}
