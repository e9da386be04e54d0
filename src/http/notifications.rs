//! The caller's notifications: list, unread count, mark read (one or all).

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::AuthUser;
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::Page;
use crate::services::notifications::{self as svc, NotificationQuery, NotificationView, UnreadCount};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(unread_count))
        .routes(routes!(read_one))
        .routes(routes!(read_all))
}

/// The caller's notifications, most recently updated first. Repeated actions on one target
/// are grouped in one unread notification (`actors`, `actor_count`).
#[utoipa::path(get, path = "/notifications", tag = "notifications", security(("bearer" = [])),
    params(NotificationQuery),
    responses(
        (status = 200, description = "A page of notifications", body = Page<NotificationView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<NotificationQuery>,
) -> AppResult<AppJson<Page<NotificationView>>> {
    Ok(AppJson(svc::list(&state, me.id, &q).await?))
}

/// How many of the caller's notifications are unread.
#[utoipa::path(get, path = "/notifications/unread-count", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 200, description = "Unread count", body = UnreadCount),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn unread_count(State(state): State<AppState>, me: AuthUser) -> AppResult<AppJson<UnreadCount>> {
    Ok(AppJson(svc::unread_count(&state, me.id).await?))
}

/// Mark one notification read (idempotent). The caller's other sockets get
/// `notifications.read` with `{"ids":[id]}`.
#[utoipa::path(post, path = "/notifications/{id}/read", tag = "notifications", security(("bearer" = [])),
    params(("id" = String, Path, description = "Notification id")),
    responses(
        (status = 204, description = "Read"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such notification of the caller", body = ErrorBody),
    ))]
async fn read_one(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::mark_read(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark every notification read. The caller's other sockets get `notifications.read` with
/// `{"all":true}`.
#[utoipa::path(post, path = "/notifications/read-all", tag = "notifications", security(("bearer" = [])),
    responses(
        (status = 204, description = "All read"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn read_all(State(state): State<AppState>, me: AuthUser) -> AppResult<StatusCode> {
    svc::mark_all_read(&state, me.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
