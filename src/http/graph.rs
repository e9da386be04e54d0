//! The social graph: follow, followers/following, follow requests, block, mute.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::graph::{self as svc, FollowEntry, FollowResult};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(follow, unfollow))
        .routes(routes!(followers))
        .routes(routes!(following))
        .routes(routes!(follow_requests))
        .routes(routes!(approve_request))
        .routes(routes!(decline_request))
        .routes(routes!(block, unblock))
        .routes(routes!(mute, unmute))
}

/// Follow an account; for a private account this sends a request (`status: pending`).
#[utoipa::path(post, path = "/users/{id}/follow", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`")),
    responses(
        (status = 200, description = "Following, or requested", body = FollowResult),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 409, description = "Already following or requested", body = ErrorBody),
        (status = 422, description = "Following oneself", body = ErrorBody),
    ))]
async fn follow(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<FollowResult>> {
    Ok(AppJson(svc::follow(&state, me.id, &id).await?))
}

/// Unfollow an account, or withdraw a request (idempotent).
#[utoipa::path(delete, path = "/users/{id}/follow", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`")),
    responses(
        (status = 204, description = "Not following any more"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 422, description = "Unfollowing oneself", body = ErrorBody),
    ))]
async fn unfollow(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<String>) -> AppResult<StatusCode> {
    svc::unfollow(&state, me.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An account's followers, newest first. A private account's lists are visible to its
/// active followers and itself.
#[utoipa::path(get, path = "/users/{id}/followers", tag = "graph", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`"), PageQuery),
    responses(
        (status = 200, description = "A page of followers", body = Page<FollowEntry>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 403, description = "Private account the caller does not follow", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn followers(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<FollowEntry>>> {
    Ok(AppJson(svc::followers(&state, me.id(), &id, &q).await?))
}

/// The accounts an account follows, newest first.
#[utoipa::path(get, path = "/users/{id}/following", tag = "graph", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`"), PageQuery),
    responses(
        (status = 200, description = "A page of followed accounts", body = Page<FollowEntry>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 403, description = "Private account the caller does not follow", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn following(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<FollowEntry>>> {
    Ok(AppJson(svc::following(&state, me.id(), &id, &q).await?))
}

/// Follow requests waiting for the caller's approval, newest first.
#[utoipa::path(get, path = "/users/me/follow-requests", tag = "graph", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of requests", body = Page<FollowEntry>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn follow_requests(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<FollowEntry>>> {
    Ok(AppJson(svc::requests(&state, me.id, &q).await?))
}

/// Approve a follow request.
#[utoipa::path(post, path = "/users/me/follow-requests/{id}/approve", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "Id of the requesting user")),
    responses(
        (status = 204, description = "Approved: they follow the caller now"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
    ))]
async fn approve_request(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    svc::approve(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Decline a follow request.
#[utoipa::path(delete, path = "/users/me/follow-requests/{id}", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "Id of the requesting user")),
    responses(
        (status = 204, description = "Declined"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such request", body = ErrorBody),
    ))]
async fn decline_request(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    svc::decline(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Block an account (idempotent): follows both ways end, and each sees the other as
/// nonexistent.
#[utoipa::path(post, path = "/users/{id}/block", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`")),
    responses(
        (status = 204, description = "Blocked"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Blocking oneself", body = ErrorBody),
    ))]
async fn block(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<String>) -> AppResult<StatusCode> {
    svc::block(&state, me.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift a block (idempotent).
#[utoipa::path(delete, path = "/users/{id}/block", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`")),
    responses(
        (status = 204, description = "Not blocked any more"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Unblocking oneself", body = ErrorBody),
    ))]
async fn unblock(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<String>) -> AppResult<StatusCode> {
    svc::unblock(&state, me.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mute an account: its posts leave the caller's feeds; nothing else changes (idempotent).
#[utoipa::path(post, path = "/users/{id}/mute", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`")),
    responses(
        (status = 204, description = "Muted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 422, description = "Muting oneself", body = ErrorBody),
    ))]
async fn mute(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<String>) -> AppResult<StatusCode> {
    svc::mute(&state, me.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Unmute an account (idempotent).
#[utoipa::path(delete, path = "/users/{id}/mute", tag = "graph", security(("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`")),
    responses(
        (status = 204, description = "Not muted any more"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 422, description = "Unmuting oneself", body = ErrorBody),
    ))]
async fn unmute(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<String>) -> AppResult<StatusCode> {
    svc::unmute(&state, me.id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
