//! `/users/*`: profiles, own profile and settings, lists, search, suggestions.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery, ClientIp};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::accounts::{self, DeleteAccountRequest};
use crate::services::exports::{self, ExportView};
use crate::services::users::{self as svc, Me, Profile, Settings, UpdateProfile, UpdateSettings, UserSummary};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(search_users))
        .routes(routes!(suggestions))
        .routes(routes!(get_user))
        .routes(routes!(update_me, delete_me))
        .routes(routes!(request_export))
        .routes(routes!(get_export))
        .routes(routes!(download_export))
        .routes(routes!(update_settings))
}

/// All users, newest first.
#[utoipa::path(get, path = "/users", tag = "users", security((), ("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = Page<UserSummary>),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn list_users(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<UserSummary>>> {
    Ok(AppJson(svc::list(&state, me.id(), &q).await?))
}

/// `GET /users/search` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Prefix of a username or display name (case-insensitive; a leading `@` is ignored).
    pub q: String,
    /// Opaque cursor.
    pub cursor: Option<String>,
    /// Page size, 1–100.
    pub limit: Option<u32>,
}

/// Users whose username or display name starts with `q`, by username.
#[utoipa::path(get, path = "/users/search", tag = "users", security((), ("bearer" = [])), params(SearchQuery),
    responses(
        (status = 200, description = "Matching users", body = Page<UserSummary>),
        (status = 400, description = "Missing q", body = ErrorBody),
        (status = 422, description = "Bad q, cursor or limit", body = ErrorBody),
    ))]
async fn search_users(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppQuery(q): AppQuery<SearchQuery>,
) -> AppResult<AppJson<Page<UserSummary>>> {
    let page = PageQuery { cursor: q.cursor, limit: q.limit };
    Ok(AppJson(svc::search(&state, me.id(), &q.q, &page).await?))
}

/// `GET /users/suggestions` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestionsQuery {
    /// How many, 1–50 (default 10).
    pub limit: Option<u32>,
}

/// Accounts the caller might want to follow.
#[utoipa::path(get, path = "/users/suggestions", tag = "users", security(("bearer" = [])), params(SuggestionsQuery),
    responses(
        (status = 200, description = "Suggested accounts", body = Vec<UserSummary>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad limit", body = ErrorBody),
    ))]
async fn suggestions(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<SuggestionsQuery>,
) -> AppResult<AppJson<Vec<UserSummary>>> {
    Ok(AppJson(svc::suggestions(&state, me.id, q.limit.unwrap_or(10)).await?))
}

/// A profile, by id or by `@username`, with the caller's `relationship` to it.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "User id, or `@username`")),
    responses(
        (status = 200, description = "The profile", body = Profile),
        (status = 404, description = "No such user (or blocked)", body = ErrorBody),
    ))]
async fn get_user(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<String>,
) -> AppResult<AppJson<Profile>> {
    Ok(AppJson(svc::get_profile(&state, me.id(), &id).await?))
}

/// Update the caller's profile: only the fields given change.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateProfile,
    responses(
        (status = 200, description = "The updated account", body = Me),
        (status = 400, description = "Malformed body or unknown field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
    ))]
async fn update_me(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<UpdateProfile>,
) -> AppResult<AppJson<Me>> {
    Ok(AppJson(svc::update_me(&state, me.id, req).await?))
}

/// Change notification preferences (per kind, per channel).
#[utoipa::path(put, path = "/users/me/settings", tag = "users", security(("bearer" = [])), request_body = UpdateSettings,
    responses(
        (status = 200, description = "All settings after the change", body = Settings),
        (status = 400, description = "Malformed body, unknown kind or field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn update_settings(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<UpdateSettings>,
) -> AppResult<AppJson<Settings>> {
    Ok(AppJson(svc::update_settings(&state, me.id, req).await?))
}

/// Delete my account (with the password): signed out everywhere at once and gone for
/// everyone; a durable job then erases its posts, comments, reactions, follows, messages
/// (tombstones from "Deleted account"), notifications and uploads, and frees the username.
#[utoipa::path(delete, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = DeleteAccountRequest,
    responses(
        (status = 202, description = "Deleted; the erasure is under way"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Wrong password", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    ))]
async fn delete_me(
    State(state): State<AppState>,
    ip: ClientIp,
    me: AuthUser,
    AppJson(req): AppJson<DeleteAccountRequest>,
) -> AppResult<StatusCode> {
    accounts::delete_me(&state, &ip.0.to_string(), &me, req).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Ask for an export of my data: a job writes a ZIP (profile, posts, comments, reactions,
/// follows, conversations with their messages, and my uploads) and notifies me
/// (`export_ready`) when it is ready.
#[utoipa::path(post, path = "/users/me/export", tag = "users", security(("bearer" = [])),
    responses(
        (status = 202, description = "Being written", body = ExportView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 409, description = "An export is being written already", body = ErrorBody),
        (status = 429, description = "Too many exports; see Retry-After", body = ErrorBody),
    ))]
async fn request_export(State(state): State<AppState>, me: AuthUser) -> AppResult<(StatusCode, AppJson<ExportView>)> {
    Ok((StatusCode::ACCEPTED, AppJson(exports::request(&state, me.id).await?)))
}

/// One of my exports: its state, and where to download it once ready.
#[utoipa::path(get, path = "/users/me/exports/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "Export id")),
    responses(
        (status = 200, description = "The export", body = ExportView),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such export of mine (or it expired)", body = ErrorBody),
    ))]
async fn get_export(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<ExportView>> {
    Ok(AppJson(exports::get(&state, me.id, id).await?))
}

/// Download one of my ready exports (a ZIP), until it expires.
#[utoipa::path(get, path = "/users/me/exports/{id}/download", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path, description = "Export id")),
    responses(
        (status = 200, description = "The ZIP", content_type = "application/zip", body = Vec<u8>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such export of mine (or it expired)", body = ErrorBody),
        (status = 409, description = "Not ready yet", body = ErrorBody),
    ))]
async fn download_export(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<impl axum::response::IntoResponse> {
    let bytes = exports::download(&state, me.id, id).await?;
    let disposition = format!("attachment; filename=\"chorus-export-{id}.zip\"");
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "application/zip".to_string()),
            (axum::http::header::CONTENT_DISPOSITION, disposition),
            (axum::http::header::CACHE_CONTROL, "private, no-store".to_string()),
        ],
        bytes,
    ))
}
