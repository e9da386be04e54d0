//! Feeds: home (`/feed`), explore, hashtag.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, AppQuery};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::error::{AppResult, ErrorBody};
use crate::pagination::{Page, PageQuery};
use crate::services::feed as svc;
use crate::services::posts::PostView;
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(home)).routes(routes!(explore)).routes(routes!(hashtag))
}

/// The caller's home feed: their own posts and those of the accounts they follow (minus
/// muted ones), newest first. Pages never skip or repeat a post while new ones arrive.
#[utoipa::path(get, path = "/feed", tag = "feeds", security(("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of the home feed", body = Page<PostView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
        (status = 503, description = "Timeline store (Redis) unavailable", body = ErrorBody),
    ))]
async fn home(
    State(state): State<AppState>,
    me: AuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<PostView>>> {
    Ok(AppJson(svc::home(&state, me.id, &q).await?))
}

/// Recent public posts from accounts the caller does not follow, ranked by engagement with
/// time decay.
#[utoipa::path(get, path = "/explore", tag = "feeds", security((), ("bearer" = [])), params(PageQuery),
    responses(
        (status = 200, description = "A page of ranked posts", body = Page<PostView>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 422, description = "Bad cursor or limit", body = ErrorBody),
    ))]
async fn explore(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<PostView>>> {
    Ok(AppJson(svc::explore(&state, me.id(), &q).await?))
}

/// Posts with a hashtag that the caller may see, newest first.
#[utoipa::path(get, path = "/tags/{tag}/posts", tag = "feeds", security((), ("bearer" = [])),
    params(("tag" = String, Path, description = "Hashtag, with or without `#`, any case"), PageQuery),
    responses(
        (status = 200, description = "A page of posts", body = Page<PostView>),
        (status = 401, description = "Bad token", body = ErrorBody),
        (status = 422, description = "Bad tag, cursor or limit", body = ErrorBody),
    ))]
async fn hashtag(
    State(state): State<AppState>,
    me: MaybeAuthUser,
    AppPath(tag): AppPath<String>,
    AppQuery(q): AppQuery<PageQuery>,
) -> AppResult<AppJson<Page<PostView>>> {
    Ok(AppJson(svc::hashtag(&state, me.id(), &tag, &q).await?))
}
