//! `/reports` and `/admin/*`: filing reports, the moderators' queue and actions, suspension,
//! roles and the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::AuthUser;
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::moderation::reports::{NewReportRequest, OpenCount, QueuedReport, ReportQuery, ReportView};
use crate::services::moderation::{self as svc, AuditEntry, ReportAction, RoleView, SetRole};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(file_report))
        .routes(routes!(report_queue))
        .routes(routes!(report_count))
        .routes(routes!(dismiss_report))
        .routes(routes!(remove_reported))
        .routes(routes!(suspend_reported))
        .routes(routes!(suspend_user, unsuspend_user))
        .routes(routes!(set_role))
        .routes(routes!(audit_log))
}

/// Report a post, comment, message (as a member of its conversation) or account to the
/// moderators. One open report per reporter and target.
#[utoipa::path(post, path = "/reports", tag = "safety", security(("bearer" = [])), request_body = NewReportRequest,
    responses(
        (status = 201, description = "Filed", body = ReportView),
        (status = 400, description = "Malformed body (an unknown target type or reason among them)", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such target, or not one the caller may see", body = ErrorBody),
        (status = 409, description = "The caller has an open report on this target already", body = ErrorBody),
        (status = 422, description = "One's own content, or a note over 1000 characters", body = ErrorBody),
        (status = 429, description = "Too many reports; see Retry-After", body = ErrorBody),
    ))]
async fn file_report(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<NewReportRequest>,
) -> AppResult<(StatusCode, AppJson<ReportView>)> {
    Ok((StatusCode::CREATED, AppJson(svc::file(&state, me.id, req).await?)))
}

/// The report queue (moderators): open reports oldest first, or resolved ones, each with a
/// snapshot of what was reported as it was then.
#[utoipa::path(get, path = "/admin/reports", tag = "safety", security(("bearer" = [])), params(ReportQuery),
    responses(
        (status = 200, description = "A page of reports", body = Page<QueuedReport>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator", body = ErrorBody),
        (status = 422, description = "Bad status, cursor or limit", body = ErrorBody),
    ))]
async fn report_queue(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<ReportQuery>,
) -> AppResult<AppJson<Page<QueuedReport>>> {
    Ok(AppJson(svc::queue(&state, me.id, &q).await?))
}

/// The number of open reports (moderators); live as `reports.open` on the `notification` topic.
#[utoipa::path(get, path = "/admin/reports/count", tag = "safety", security(("bearer" = [])),
    responses(
        (status = 200, description = "Open reports", body = OpenCount),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator", body = ErrorBody),
    ))]
async fn report_count(State(state): State<AppState>, me: AuthUser) -> AppResult<AppJson<OpenCount>> {
    Ok(AppJson(svc::open_count(&state, me.id).await?))
}

async fn act(state: &AppState, me: &AuthUser, id: Id, action: ReportAction) -> AppResult<StatusCode> {
    svc::resolve(state, me.id, id, action).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Dismiss a report: nothing is wrong with its target.
#[utoipa::path(post, path = "/admin/reports/{id}/dismiss", tag = "safety", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")),
    responses(
        (status = 204, description = "Dismissed; the reporter is notified"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 409, description = "Resolved already", body = ErrorBody),
    ))]
async fn dismiss_report(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    act(&state, &me, id, ReportAction::Dismiss).await
}

/// Remove the reported post, comment or message (as its author's deletion would); every
/// open report on it is resolved.
#[utoipa::path(post, path = "/admin/reports/{id}/remove", tag = "safety", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")),
    responses(
        (status = 204, description = "Removed; the reporters are notified"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 409, description = "Resolved already", body = ErrorBody),
        (status = 422, description = "An account is reported: suspend it instead", body = ErrorBody),
    ))]
async fn remove_reported(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    act(&state, &me, id, ReportAction::Remove).await
}

/// Suspend the author of the reported content (or the account reported); every open report
/// about that account is resolved.
#[utoipa::path(post, path = "/admin/reports/{id}/suspend", tag = "safety", security(("bearer" = [])),
    params(("id" = String, Path, description = "Report id")),
    responses(
        (status = 204, description = "Suspended; the reporters are notified"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator, or the account is a moderator's", body = ErrorBody),
        (status = 404, description = "No such report", body = ErrorBody),
        (status = 409, description = "Resolved already, or the account is suspended already", body = ErrorBody),
    ))]
async fn suspend_reported(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    act(&state, &me, id, ReportAction::Suspend).await
}

/// Suspend an account: its sessions end, its sockets close (code 4505), its content is
/// hidden from everyone until it is unsuspended. Nothing is deleted.
#[utoipa::path(post, path = "/admin/users/{id}/suspension", tag = "safety", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Suspended"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator, or the account is a moderator's", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "Suspended already", body = ErrorBody),
        (status = 422, description = "One's own account", body = ErrorBody),
    ))]
async fn suspend_user(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::suspend(&state, me.id, id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift an account's suspension.
#[utoipa::path(delete, path = "/admin/users/{id}/suspension", tag = "safety", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 204, description = "Unsuspended"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "Not suspended", body = ErrorBody),
        (status = 422, description = "One's own account", body = ErrorBody),
    ))]
async fn unsuspend_user(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    svc::unsuspend(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set an account's role (admins; not one's own).
#[utoipa::path(put, path = "/admin/users/{id}/role", tag = "safety", security(("bearer" = [])), request_body = SetRole,
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The role now", body = RoleView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 422, description = "Unknown role, or one's own account", body = ErrorBody),
    ))]
async fn set_role(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<SetRole>,
) -> AppResult<AppJson<RoleView>> {
    Ok(AppJson(svc::set_role(&state, me.id, id, req).await?))
}

/// The moderators' audit log, newest first (moderators).
#[utoipa::path(get, path = "/admin/audit", tag = "safety", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of entries", body = Page<AuditEntry>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not a moderator", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn audit_log(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<AuditEntry>>> {
    Ok(AppJson(svc::audit(&state, me.id, &q).await?))
}
