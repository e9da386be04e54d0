//! Reports: filing one (anyone, on what they can see), the moderators' queue, and resolving
//! one (dismiss, remove the content, suspend its author).
//!
//! A report keeps a snapshot of its target *as the reporter saw it* (the same view the
//! REST read answers), so an edit or a deletion does not erase the evidence. One open report
//! per reporter and target: a second is a `409`. Moderators hear of a new report (a
//! `report` notification) and of the open count (`reports.open` on their `notification`
//! topic); the reporter hears when it is resolved (`report_resolved`, not by whom).
//!
//! A removal is the author's own deletion run by someone else ([`posts::remove`],
//! [`comments::remove`], [`chat::remove_message`]): feeds drop the post, `*.deleted`
//! reaches the watchers, media go through the durable deletion job. The removal and the
//! report's resolution are two transactions: if the instance dies between them the report
//! stays open with its content gone, and acting on it again resolves it (the content's
//! absence counts as removed).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::{TargetRef, moderator, open_count_events, record, suspend};
use crate::domain::Id;
use crate::domain::Timestamp;
use crate::error::{AppError, AppResult, Validator};
use crate::events::EventBatch;
use crate::pagination::{Page, PageQuery};
use crate::ratelimit::Write;
use crate::services::users::{self, UserSummary};
use crate::services::{access, chat, comments, notifications, posts};
use crate::state::AppState;
use crate::store::comments as comment_store;
use crate::store::reports::{self as store, NewReport, ReportRow};
use crate::store::users as user_store;

/// Why something is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Unwanted commercial or repetitive content.
    Spam,
    /// Harassment or bullying.
    Harassment,
    /// Hate speech.
    Hate,
    /// Violence or threats.
    Violence,
    /// Sexual content, nudity.
    Sexual,
    /// Self-harm.
    SelfHarm,
    /// False information.
    Misinformation,
    /// Pretending to be someone else.
    Impersonation,
    /// Against the law.
    Illegal,
    /// Anything else (say what in the note).
    Other,
}

impl Reason {
    fn key(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::Harassment => "harassment",
            Self::Hate => "hate",
            Self::Violence => "violence",
            Self::Sexual => "sexual",
            Self::SelfHarm => "self_harm",
            Self::Misinformation => "misinformation",
            Self::Impersonation => "impersonation",
            Self::Illegal => "illegal",
            Self::Other => "other",
        }
    }
}

/// What a report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReportTarget {
    /// A post.
    Post,
    /// A comment.
    Comment,
    /// A chat message (its conversation's members only).
    Message,
    /// An account.
    User,
}

impl ReportTarget {
    fn key(self) -> &'static str {
        match self {
            Self::Post => "post",
            Self::Comment => "comment",
            Self::Message => "message",
            Self::User => "user",
        }
    }
}

/// Longest note, in characters.
const MAX_NOTE_CHARS: usize = 1_000;

/// `POST /reports` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewReportRequest {
    /// What is reported.
    pub target_type: ReportTarget,
    /// Its id.
    pub target_id: Id,
    /// Why.
    pub reason: Reason,
    /// Anything the moderators should know, at most 1000 characters.
    #[serde(default)]
    pub note: Option<String>,
}

/// A report as its reporter sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    /// Id.
    pub id: Id,
    /// What it is about.
    pub target: TargetRef,
    /// Why.
    pub reason: String,
    /// The note.
    pub note: String,
    /// `open` or `resolved`.
    pub status: String,
    /// Filed.
    pub created_at: Timestamp,
}

/// A report in the moderators' queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedReport {
    /// Id.
    pub id: Id,
    /// Who reported (`null` when that account is gone).
    pub reporter: Option<UserSummary>,
    /// What it is about.
    pub target: TargetRef,
    /// The author of the content, or the account reported (`null` when gone).
    pub target_user: Option<UserSummary>,
    /// Why.
    pub reason: String,
    /// The reporter's note.
    pub note: String,
    /// The target as the reporter saw it when reporting: the post, comment, message or
    /// profile view of the REST reads.
    #[schema(value_type = Object)]
    pub snapshot: Value,
    /// `open` or `resolved`.
    pub status: String,
    /// `dismissed`, `removed` or `suspended`, once resolved.
    pub resolution: Option<String>,
    /// The moderator who resolved it.
    pub resolved_by: Option<Id>,
    /// When.
    pub resolved_at: Option<Timestamp>,
    /// Filed.
    pub created_at: Timestamp,
}

/// `GET /admin/reports/count` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenCount {
    /// Open reports.
    pub open: i64,
}

/// `GET /admin/reports` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `open` (the default: the queue, oldest first) or `resolved`.
    pub status: Option<String>,
    /// Opaque cursor.
    pub cursor: Option<String>,
    /// Page size, 1–100.
    pub limit: Option<u32>,
}

/// What a moderator does with a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportAction {
    /// Nothing wrong: close it.
    Dismiss,
    /// Remove the post, comment or message.
    Remove,
    /// Suspend the author (or the account reported).
    Suspend,
}

/// The target of a report as the reporter sees it, with its author: `404` when the
/// reporter may not see it (it exists for them only if the policy says so).
async fn snapshot(state: &AppState, me: Id, target: ReportTarget, id: Id) -> AppResult<(Value, Id)> {
    fn json<T: Serialize>(v: &T) -> Value {
        serde_json::to_value(v).unwrap_or(Value::Null)
    }
    Ok(match target {
        ReportTarget::Post => {
            let view = posts::get(state, Some(me), id).await?;
            (json(&view), view.author.id)
        }
        ReportTarget::Comment => {
            let (row, _) = access::visible_comment(state, Some(me), id).await?;
            if row.deleted {
                return Err(AppError::NotFound);
            }
            let author = row.author_id;
            let view = comments::views(state, Some(me), vec![row]).await?.pop().ok_or(AppError::NotFound)?;
            (json(&view), author)
        }
        ReportTarget::Message => {
            let view = chat::reported_message(state, me, id).await?;
            (json(&view), view.sender.id)
        }
        ReportTarget::User => {
            let view = users::get_profile(state, Some(me), &id.to_string()).await?;
            (json(&view), view.id)
        }
    })
}

/// Files a report (see the module doc).
pub async fn file(state: &AppState, me: Id, req: NewReportRequest) -> AppResult<ReportView> {
    let note = req.note.as_deref().map(str::trim).unwrap_or("").to_string();
    let mut v = Validator::new();
    if note.chars().count() > MAX_NOTE_CHARS {
        v.fail("note", format!("at most {MAX_NOTE_CHARS} characters"));
    }
    v.finish()?;
    state.limits.write(Write::Report, me).await?;
    let (snap, author) = snapshot(state, me, req.target_type, req.target_id).await?;
    if author == me {
        return Err(AppError::field("target_id", "you cannot report yourself or your own content"));
    }
    let now = Timestamp::now();
    let id = state.ids.next();
    let snapshot = serde_json::to_string(&snap).map_err(|e| AppError::Internal(e.into()))?;
    let new = NewReport {
        id,
        reporter: me,
        target_type: req.target_type.key(),
        target_id: req.target_id,
        target_user: author,
        reason: req.reason.key(),
        note: &note,
        snapshot: &snapshot,
        now,
    };
    let mut tx = state.store.begin().await?;
    if !store::insert(tx.ex(), &new).await? {
        return Err(AppError::conflict("you already reported this; a moderator will look at it"));
    }
    notifications::enqueue(state, &mut tx, notifications::Cause::Reported { report: id }).await?;
    state.commit(tx, EventBatch::new()).await?;
    publish_open_count(state).await?;
    Ok(ReportView {
        id,
        target: TargetRef { kind: req.target_type.key().into(), id: req.target_id },
        reason: req.reason.key().into(),
        note,
        status: "open".into(),
        created_at: now,
    })
}

/// Tells every moderator the open count now (`reports.open`).
pub(super) async fn publish_open_count(state: &AppState) -> AppResult<()> {
    let mut c = state.store.conn().await?;
    let count = store::open_count(c.ex()).await?;
    let moderators = user_store::moderator_ids(c.ex()).await?;
    drop(c);
    state.publish(open_count_events(&moderators, count));
    Ok(())
}

/// The number of open reports (moderators).
pub async fn open_count(state: &AppState, me: Id) -> AppResult<OpenCount> {
    moderator(state, me).await?;
    let mut c = state.store.conn().await?;
    Ok(OpenCount { open: store::open_count(c.ex()).await? })
}

/// The queue (moderators): reports with a status, oldest first.
pub async fn queue(state: &AppState, me: Id, q: &ReportQuery) -> AppResult<Page<QueuedReport>> {
    moderator(state, me).await?;
    let status = match q.status.as_deref().unwrap_or("open") {
        s @ ("open" | "resolved") => s,
        _ => return Err(AppError::field("status", "must be open or resolved")),
    };
    let page = PageQuery { cursor: q.cursor.clone(), limit: q.limit }.parse::<Id>()?;
    let mut c = state.store.conn().await?;
    let rows = store::page(c.ex(), status, page.after, crate::store::fetch_limit(page.limit)).await?;
    let mut people: Vec<Id> = rows.iter().flat_map(|r| [r.reporter_id, r.target_user_id]).collect();
    people.sort_unstable();
    people.dedup();
    let users: std::collections::HashMap<Id, UserSummary> =
        user_store::get_many(c.ex(), &people).await?.iter().map(|u| (u.id, UserSummary::from(u))).collect();
    Ok(Page::from_rows(rows, page.limit, |r| r.id).map(|r: ReportRow| QueuedReport {
        id: r.id,
        reporter: users.get(&r.reporter_id).cloned(),
        target: TargetRef { kind: r.target_type, id: r.target_id },
        target_user: users.get(&r.target_user_id).cloned(),
        reason: r.reason,
        note: r.note,
        snapshot: serde_json::from_str(&r.snapshot).unwrap_or(Value::Null),
        status: r.status,
        resolution: r.resolution,
        resolved_by: r.resolved_by,
        resolved_at: r.resolved_at,
        created_at: r.created_at,
    }))
}

/// Acts on an open report (moderators): `404` when there is no such report, `409` when it
/// is resolved already, `422` when removing an account (suspend it instead).
pub async fn resolve(state: &AppState, me: Id, id: Id, action: ReportAction) -> AppResult<()> {
    moderator(state, me).await?;
    let mut c = state.store.conn().await?;
    let report = store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if report.status != "open" {
        return Err(AppError::conflict("the report is resolved already"));
    }
    if report.target_user_id == me {
        return Err(AppError::Forbidden("another moderator handles reports about you"));
    }
    let target = (report.target_type.as_str(), report.target_id);
    let (resolution, action_name, only) = match action {
        ReportAction::Suspend => return suspend(state, me, report.target_user_id, Some(id)).await,
        ReportAction::Dismiss => ("dismissed", "report.dismiss", Some(id)),
        ReportAction::Remove => {
            let gone = match report.target_type.as_str() {
                "post" => posts::remove(state, report.target_id, report.target_user_id).await,
                "comment" => {
                    let mut c = state.store.conn().await?;
                    let row = comment_store::get(c.ex(), report.target_id).await?;
                    drop(c);
                    match row.filter(|r| !r.deleted) {
                        Some(r) => comments::remove(state, r.id, r.post_id).await,
                        None => Err(AppError::NotFound),
                    }
                }
                "message" => chat::remove_message(state, report.target_id).await,
                _ => return Err(AppError::field("action", "an account cannot be removed; suspend it")),
            };
            match gone {
                Ok(()) | Err(AppError::NotFound) => {}
                Err(e) => return Err(e),
            }
            // Every open report on the content is settled by its removal.
            let name = match report.target_type.as_str() {
                "post" => "post.remove",
                "comment" => "comment.remove",
                _ => "message.remove",
            };
            ("removed", name, None)
        }
    };
    let mut tx = state.store.begin().await?;
    let resolved = store::resolve(tx.ex(), target, only, resolution, me, Timestamp::now()).await?;
    for r in &resolved {
        notifications::enqueue(state, &mut tx, notifications::Cause::ReportResolved { report: r.id }).await?;
    }
    let audit_target = if action == ReportAction::Dismiss { ("report", id) } else { target };
    record(tx.ex(), &state.ids, Some(me), action_name, audit_target, Some(id), "").await?;
    state.commit(tx, EventBatch::new()).await?;
    publish_open_count(state).await
}
