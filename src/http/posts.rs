//! `/posts*`, saves, `GET /users/{id}/posts` and `GET /users/me/saved`.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::posts::{self as svc, CreatePost, PostListQuery, PostView, UpdatePost};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_post, list_posts))
        .routes(routes!(get_post, update_post, delete_post))
        .routes(routes!(save_post, unsave_post))
        .routes(routes!(user_posts))
        .routes(routes!(my_saved))
}

/// Publish a post: a caption (up to 2,200 characters, `#hashtags` and `@mentions`
/// recognised) and/or 1–10 media items uploaded before with `POST /media`.
#[utoipa::path(post, path = "/posts", tag = "posts", security(("bearer" = [])), request_body = CreatePost,
    responses(
        (status = 201, description = "Created", body = PostView),
        (status = 400, description = "Malformed body or unknown field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Empty or over-long caption, bad media_ids", body = ErrorBody),
    ))]
async fn create_post(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<CreatePost>,
) -> AppResult<(StatusCode, AppJson<PostView>)> {
    Ok((StatusCode::CREATED, AppJson(svc::create(&state, me.id, req).await?)))
}

/// Posts the caller may see, newest first; `?has=image` or `?has=video` keeps only posts
/// with such media.
#[utoipa::path(get, path = "/posts", tag = "posts", security((), ("bearer" = [])), params(PostListQuery),
    responses(
        (status = 200, description = "A page of posts", body = Page<PostView>),
        (status = 400, description = "Malformed query", body = ErrorBody),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 422, description = "Bad has, cursor or limit", body = ErrorBody),
    ))]
async fn list_posts(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppQuery(q): AppQuery<PostListQuery>,
) -> AppResult<AppJson<Page<PostView>>> {
    Ok(AppJson(svc::list(&state, me.id(), &q).await?))
}

/// One post.
#[utoipa::path(get, path = "/posts/{id}", tag = "posts", security((), ("bearer" = [])), params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 200, description = "The post", body = PostView),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 404, description = "No such post, or not visible to the caller", body = ErrorBody),
    ))]
async fn get_post(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<PostView>> {
    Ok(AppJson(svc::get(&state, me.id(), id).await?))
}

/// Change a post's caption (author only).
#[utoipa::path(patch, path = "/posts/{id}", tag = "posts", security(("bearer" = [])), request_body = UpdatePost,
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 200, description = "The updated post", body = PostView),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not the author", body = ErrorBody),
        (status = 404, description = "No such post (or deleted, or not visible)", body = ErrorBody),
        (status = 422, description = "Empty or over-long caption", body = ErrorBody),
    ))]
async fn update_post(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<UpdatePost>,
) -> AppResult<AppJson<PostView>> {
    Ok(AppJson(svc::update(&state, me.id, id, req).await?))
}

/// Delete a post (author only), with its comments, reactions and media.
#[utoipa::path(delete, path = "/posts/{id}", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Not the author", body = ErrorBody),
        (status = 404, description = "No such post (or already deleted, or not visible)", body = ErrorBody),
    ))]
async fn delete_post(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::delete(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Save a post to the caller's private list (idempotent).
#[utoipa::path(post, path = "/posts/{id}/save", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 204, description = "Saved"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such post, or not visible", body = ErrorBody),
    ))]
async fn save_post(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::save(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a post from the caller's saved list (idempotent).
#[utoipa::path(delete, path = "/posts/{id}/save", tag = "posts", security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 204, description = "Not saved any more"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "Not saved, and no such post or not visible", body = ErrorBody),
    ))]
async fn unsave_post(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::unsave(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A profile's posts, newest first.
#[utoipa::path(get, path = "/users/{id}/posts", tag = "posts", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`"), PageQuery),
    responses(
        (status = 200, description = "A page of posts", body = Page<PostView>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 403, description = "Private account the caller does not follow", body = ErrorBody),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn user_posts(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<PostView>>> {
    Ok(AppJson(svc::by_user(&state, me.id(), &id, &q).await?))
}

/// The caller's saved posts, most recently saved first (posts they can no longer see are
/// left out).
#[utoipa::path(get, path = "/users/me/saved", tag = "posts", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of saved posts", body = Page<PostView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn my_saved(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<PostView>>> {
    Ok(AppJson(svc::saved(&state, me.id, &q).await?))
}
