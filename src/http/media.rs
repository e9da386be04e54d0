//! `/media*` and `/users/me/avatar`: uploads, their status, deletion, the avatar — and the
//! `/files/…` service of the local storage backend.

use axum::Router;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tower_http::services::ServeDir;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::domain::Id;
use crate::error::{AppError, AppResult, ErrorBody};
use crate::services::media::{self as svc, MediaDetail, SetAvatarRequest, UpdateMedia, UploadAccepted};
use crate::services::users::Me;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    // Uploads are limited per type while they stream (services::media::upload), not by the
    // JSON body limit.
    let uploads = OpenApiRouter::new().routes(routes!(upload)).layer(DefaultBodyLimit::disable());
    OpenApiRouter::new()
        .merge(uploads)
        .routes(routes!(get_media, delete_media, update_media))
        .routes(routes!(variant))
        .routes(routes!(set_avatar))
}

/// The multipart body of `POST /media`: one part, `file`.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The file: a JPEG, PNG, WebP or GIF image (≤ 10 MiB, ≤ 40 megapixels by default) or an
    /// MP4, WebM or QuickTime video (≤ 100 MiB). The type is read from the content; the
    /// file name and part `Content-Type` are ignored.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// Upload an image or a video. Answers at once; processing continues in the background and
/// its outcome is pushed on the `image` topic (`media.ready` / `media.failed`) and visible in
/// `GET /media/{id}`.
#[utoipa::path(post, path = "/media", tag = "media", security(("bearer" = [])),
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Accepted; processing", body = UploadAccepted),
        (status = 400, description = "Malformed multipart body or an unexpected field", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 413, description = "Larger than allowed for its type", body = ErrorBody),
        (status = 415, description = "Not an accepted image or video type", body = ErrorBody),
        (status = 422, description = "No `file` field, or an empty file", body = ErrorBody),
    ))]
async fn upload(
    State(state): State<AppState>,
    me: AuthUser,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> AppResult<(StatusCode, AppJson<UploadAccepted>)> {
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    svc::precheck_upload(&state, declared)?;
    let is_multipart = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(AppError::UnsupportedMediaType("expected multipart/form-data with a `file` field".into()));
    }
    let mut multipart = multipart.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let Some(field) = multipart.next_field().await? else {
        return Err(AppError::field("file", "is required"));
    };
    if field.name() != Some("file") {
        let name = field.name().unwrap_or_default().to_string();
        return Err(AppError::BadRequest(format!("unexpected multipart field {name:?}: send only `file`")));
    }
    let chunks = field.map(|c| c.map_err(AppError::from));
    Ok((StatusCode::CREATED, AppJson(svc::upload(&state, me.id, chunks).await?)))
}

/// A media item: its uploader sees it in every state (with `failure`); others see a ready
/// item only where they may see what holds it — everyone an avatar, a post's media those
/// who see the post, a message's media the conversation's members; an unattached upload
/// nobody. Variant URLs of anything not public are signed and expire
/// (`media.signed_url_ttl_secs`, an hour by default): fetch the item again for fresh ones.
#[utoipa::path(get, path = "/media/{id}", tag = "media", security((), ("bearer" = [])),
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 200, description = "The item", body = MediaDetail),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 404, description = "No such item, or not visible", body = ErrorBody),
    ))]
async fn get_media(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(id): AppPath<Id>,
) -> AppResult<AppJson<MediaDetail>> {
    Ok(AppJson(svc::get(&state, me.id(), id).await?))
}

/// Describe one of the caller's media items (its alt text), before or after it is attached:
/// the description shows wherever the item does (`alt_text` of every media view).
#[utoipa::path(patch, path = "/media/{id}", tag = "media", security(("bearer" = [])),
    request_body = UpdateMedia,
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 200, description = "The item with its description", body = MediaDetail),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Someone else's item that the caller may see", body = ErrorBody),
        (status = 404, description = "No such item, or not visible to the caller", body = ErrorBody),
        (status = 422, description = "Description longer than 1,500 characters", body = ErrorBody),
    ))]
async fn update_media(
    State(state): State<AppState>,
    me: AuthUser,
    AppPath(id): AppPath<Id>,
    AppJson(req): AppJson<UpdateMedia>,
) -> AppResult<AppJson<MediaDetail>> {
    Ok(AppJson(svc::set_alt_text(&state, me.id, id, req).await?))
}

/// Redirect (`302`) to variant `name` (`thumb`, `feed`) of a public item: an avatar, or media
/// of a public account's post. Judged as anonymous, because browsers load `<img>` sources
/// without credentials; anything else is `404`. `avatar_url` in every user summary points
/// here, so a client shows avatars straight from the objects it already has.
#[utoipa::path(get, path = "/media/{id}/variants/{name}", tag = "media", security(()),
    params(("id" = String, Path, description = "Media id"), ("name" = String, Path, description = "Variant: `thumb` or `feed`")),
    responses(
        (status = 302, description = "To the variant's URL (`Location`); cacheable for an hour"),
        (status = 400, description = "Malformed id", body = ErrorBody),
        (status = 404, description = "No such item or variant, or not public", body = ErrorBody),
    ))]
async fn variant(State(state): State<AppState>, AppPath((id, name)): AppPath<(Id, String)>) -> AppResult<Response> {
    let url = svc::public_variant_url(&state, id, &name).await?;
    let location = HeaderValue::from_str(&url).map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, location), (header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=3600"))],
    )
        .into_response())
}

/// Delete one of the caller's unattached uploads. Its stored files are removed in the
/// background (durably, with retries).
#[utoipa::path(delete, path = "/media/{id}", tag = "media", security(("bearer" = [])),
    params(("id" = String, Path, description = "Media id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "Someone else's upload that the caller may see", body = ErrorBody),
        (status = 404, description = "No such item, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "Attached to a post or the avatar", body = ErrorBody),
    ))]
async fn delete_media(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::delete(&state, me.id, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Set the caller's avatar to one of their ready image uploads, or remove it with
/// `{"media_id": null}`. The previous avatar's files are deleted in the background.
#[utoipa::path(put, path = "/users/me/avatar", tag = "media", security(("bearer" = [])),
    request_body = SetAvatarRequest,
    responses(
        (status = 200, description = "The account with its new avatar", body = Me),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Not the caller's ready, unused image", body = ErrorBody),
    ))]
async fn set_avatar(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<SetAvatarRequest>,
) -> AppResult<AppJson<Me>> {
    Ok(AppJson(svc::set_avatar(&state, me.id, req).await?))
}

/// `/files/…`: the local backend's objects, with immutable cache headers (a key never
/// changes content) and content types from their extensions. `ServeDir` refuses `..` and
/// absolute paths, so nothing outside the media directory is reachable.
///
/// Each request asks the policy first ([`svc::file_access`]): a signed URL is checked
/// against its signature and expiry, an unsigned one against whether its item is public
/// *now*. Public files are cacheable by anyone for a day (an item that stops being public
/// stops being served from shared caches within that); signed ones only by the browser,
/// until the signature expires.
pub fn files(state: &AppState) -> Router<AppState> {
    let dir = ServeDir::new(state.media.storage.local().root()).append_index_html_on_directories(false);
    Router::new().nest_service("/files", dir).layer(axum::middleware::from_fn_with_state(state.clone(), guard_files))
}

async fn guard_files(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let key = req.uri().path().strip_prefix("/files/").unwrap_or_default().to_string();
    let (mut exp, mut sig) = (None, None);
    for (k, v) in url::form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
        match &*k {
            "exp" => exp = v.parse::<u64>().ok(),
            "sig" => sig = Some(v.into_owned()),
            _ => {}
        }
    }
    let access = match svc::file_access(&state, &key, exp, sig.as_deref()).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let mut resp = next.run(req).await;
    let status = resp.status();
    if status.is_success() || status == StatusCode::NOT_MODIFIED {
        let cache = match access {
            svc::FileAccess::Public => HeaderValue::from_static("public, max-age=86400"),
            svc::FileAccess::Signed(left) => {
                HeaderValue::from_str(&format!("private, max-age={left}")).expect("ascii header")
            }
        };
        let h = resp.headers_mut();
        h.insert(header::CACHE_CONTROL, cache);
        h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        resp
    } else if status == StatusCode::NOT_FOUND {
        AppError::NotFound.into_response()
    } else {
        resp
    }
}
