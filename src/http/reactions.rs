//! `/reaction-types`, `/posts/{id}/reaction(s)`, `/comments/{id}/reaction(s)`.

use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::reactions::{self as svc, ReactionSummary, ReactionType, Reactor, ReactorQuery, SetReaction};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reaction_types))
        .routes(routes!(react_to_post, unreact_to_post))
        .routes(routes!(post_reactors))
        .routes(routes!(react_to_comment, unreact_to_comment))
        .routes(routes!(comment_reactors))
}

/// `GET …/reactions` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReactorsQuery {
    /// Only reactions of this type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub kind: Option<String>,
    /// Opaque cursor.
    pub cursor: Option<String>,
    /// Page size, 1–100.
    pub limit: Option<u32>,
}

impl ReactorsQuery {
    fn into_query(self) -> ReactorQuery {
        ReactorQuery { kind: self.kind, page: PageQuery { cursor: self.cursor, limit: self.limit } }
    }
}

/// The reaction types that can be chosen, in display order. The set is data
/// (`chorus reactions add|disable`), not code.
#[utoipa::path(get, path = "/reaction-types", tag = "reactions", security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Active reaction types", body = Vec<ReactionType>),
        (status = 401, description = "Bad token", body = ErrorBody),
    ))]
async fn reaction_types(State(state): State<AppState>, _me: MaybeAuthUser) -> AppResult<AppJson<Vec<ReactionType>>> {
    Ok(AppJson(svc::active_types(&state).await?))
}

/// Set or switch the caller's reaction on a post (one per user).
#[utoipa::path(put, path = "/posts/{id}/reaction", tag = "reactions", security(("bearer" = [])), request_body = SetReaction,
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 200, description = "Counts after the change", body = ReactionSummary),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such post, or not visible (blocked, private)", body = ErrorBody),
        (status = 409, description = "Changed concurrently by the same user; retry", body = ErrorBody),
        (status = 422, description = "Unknown or disabled reaction type", body = ErrorBody),
    ))]
async fn react_to_post(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<SetReaction>,
) -> AppResult<AppJson<ReactionSummary>> {
    Ok(AppJson(svc::react_to_post(&state, me.id, id, Some(req)).await?))
}

/// Remove the caller's reaction from a post (idempotent).
#[utoipa::path(delete, path = "/posts/{id}/reaction", tag = "reactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Post id")),
    responses(
        (status = 200, description = "Counts after the change", body = ReactionSummary),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such post, or not visible", body = ErrorBody),
    ))]
async fn unreact_to_post(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<ReactionSummary>> {
    Ok(AppJson(svc::react_to_post(&state, me.id, id, None).await?))
}

/// Who reacted to a post, newest first, optionally of one type.
#[utoipa::path(get, path = "/posts/{id}/reactions", tag = "reactions", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "Post id"), ReactorsQuery),
    responses(
        (status = 200, description = "A page of reactors", body = Page<Reactor>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 404, description = "No such post, or not visible", body = ErrorBody),
        (status = 422, description = "Unknown type, bad cursor or limit", body = ErrorBody),
    ))]
async fn post_reactors(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<Id>,
    AppQuery(q): AppQuery<ReactorsQuery>,
) -> AppResult<AppJson<Page<Reactor>>> {
    Ok(AppJson(svc::post_reactors(&state, me.id(), id, q.into_query()).await?))
}

/// Set or switch the caller's reaction on a comment.
#[utoipa::path(put, path = "/comments/{id}/reaction", tag = "reactions", security(("bearer" = [])), request_body = SetReaction,
    params(("id" = String, Path, description = "Comment id")),
    responses(
        (status = 200, description = "Counts after the change", body = ReactionSummary),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such comment (or deleted, or not visible)", body = ErrorBody),
        (status = 409, description = "Changed concurrently by the same user; retry", body = ErrorBody),
        (status = 422, description = "Unknown or disabled reaction type", body = ErrorBody),
    ))]
async fn react_to_comment(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<SetReaction>,
) -> AppResult<AppJson<ReactionSummary>> {
    Ok(AppJson(svc::react_to_comment(&state, me.id, id, Some(req)).await?))
}

/// Remove the caller's reaction from a comment (idempotent).
#[utoipa::path(delete, path = "/comments/{id}/reaction", tag = "reactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "Comment id")),
    responses(
        (status = 200, description = "Counts after the change", body = ReactionSummary),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such comment (or deleted, or not visible)", body = ErrorBody),
    ))]
async fn unreact_to_comment(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<ReactionSummary>> {
    Ok(AppJson(svc::react_to_comment(&state, me.id, id, None).await?))
}

/// Who reacted to a comment, newest first, optionally of one type.
#[utoipa::path(get, path = "/comments/{id}/reactions", tag = "reactions", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "Comment id"), ReactorsQuery),
    responses(
        (status = 200, description = "A page of reactors", body = Page<Reactor>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 404, description = "No such comment, or not visible", body = ErrorBody),
        (status = 422, description = "Unknown type, bad cursor or limit", body = ErrorBody),
    ))]
async fn comment_reactors(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<Id>,
    AppQuery(q): AppQuery<ReactorsQuery>,
) -> AppResult<AppJson<Page<Reactor>>> {
    Ok(AppJson(svc::comment_reactors(&state, me.id(), id, q.into_query()).await?))
}
