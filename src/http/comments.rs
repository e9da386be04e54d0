//! `/posts/{id}/comments`, `/comments/{id}`, `/comments/{id}/replies`.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::comments::{self as svc, CommentView, CreateComment, UpdateComment};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_comment, list_comments))
        .routes(routes!(list_replies))
        .routes(routes!(update_comment, delete_comment))
}

/// Comment on a post, or reply to one of its comments with `parent_id`.
#[utoipa::path(post, path = "/posts/{id}/comments", tag = "comments", security(("bearer" = [])), request_body = CreateComment,
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 201, description = "Created", body = CommentView),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such post (or parent deleted), or not visible", body = ErrorBody),
        (status = 422, description = "Empty or over-long body; parent of another post or unknown", body = ErrorBody),
    ))]
async fn create_comment(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<CreateComment>,
) -> AppResult<(StatusCode, AppJson<CommentView>)> {
    Ok((StatusCode::CREATED, AppJson(svc::create(&state, me.id, id, req).await?)))
}

/// Top-level comments of a post, oldest first, with their reply counts.
#[utoipa::path(get, path = "/posts/{id}/comments", tag = "comments", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "Post id"), PageQuery),
    responses(
        (status = 200, description = "A page of comments", body = Page<CommentView>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 404, description = "No such post, or not visible", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn list_comments(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<Id>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<CommentView>>> {
    Ok(AppJson(svc::list(&state, me.id(), id, &q).await?))
}

/// Replies to a comment, oldest first.
#[utoipa::path(get, path = "/comments/{id}/replies", tag = "comments", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "Comment id"), PageQuery),
    responses(
        (status = 200, description = "A page of replies", body = Page<CommentView>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 404, description = "No such comment, or not visible", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn list_replies(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<Id>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<CommentView>>> {
    Ok(AppJson(svc::replies(&state, me.id(), id, &q).await?))
}

/// Edit one's own comment.
#[utoipa::path(patch, path = "/comments/{id}", tag = "comments", security(("bearer" = [])), request_body = UpdateComment,
    params(("id" = String, Path, description = "Comment id")),
    responses(
        (status = 200, description = "The updated comment", body = CommentView),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not the author", body = ErrorBody),
        (status = 404, description = "No such comment (or deleted, or not visible)", body = ErrorBody),
        (status = 422, description = "Empty or over-long body", body = ErrorBody),
    ))]
async fn update_comment(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<UpdateComment>,
) -> AppResult<AppJson<CommentView>> {
    Ok(AppJson(svc::update(&state, me.id, id, req).await?))
}

/// Delete a comment (its author, or the post's author — whoever wrote it, a blocked account
/// included). With replies it stays as a
/// tombstone.
#[utoipa::path(delete, path = "/comments/{id}", tag = "comments", security(("bearer" = [])),
    params(("id" = String, Path, description = "Comment id")),
    responses(
        (status = 204, description = "Deleted (or tombstoned)"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Neither the comment's nor the post's author", body = ErrorBody),
        (status = 404, description = "No such comment (or already deleted, or not visible)", body = ErrorBody),
    ))]
async fn delete_comment(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<StatusCode> {
    svc::delete(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
