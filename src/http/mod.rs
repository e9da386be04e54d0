//! The REST edge: one file per area under `/api/v1`, plus ops endpoints and the docs.
//! Handlers extract, call a service, and serialise; they hold no rules.
//!
//! Cross-cutting behaviour lives here once: the JSON body limit, the JSON 404 for unknown
//! routes, panics turned into the 500 shape, request metrics and tracing.

pub mod auth;
pub mod chat;
pub mod client;
pub mod comments;
pub mod docs;
pub mod extract;
pub mod feeds;
pub mod graph;
pub mod media;
pub mod notifications;
pub mod ops;
pub mod posts;
pub mod push;
pub mod reactions;
pub mod safety;
pub mod users;

use std::any::Any;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any as CorsAny, CorsLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::AppError;
use crate::state::AppState;

/// The `/api/v1` routes with their OpenAPI document.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(graph::router())
        .merge(posts::router())
        .merge(reactions::router())
        .merge(comments::router())
        .merge(feeds::router())
        .merge(notifications::router())
        .merge(media::router())
        .merge(chat::router())
        .merge(safety::router())
        .merge(push::router())
}

/// The OpenAPI document of everything served.
pub fn openapi() -> utoipa::openapi::OpenApi {
    full().1
}

/// The routes and their document, completed with the statuses every operation of a kind
/// can answer ([`docs::add_common_responses`]).
fn full() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = OpenApiRouter::with_openapi(docs::ApiDoc::openapi())
        .nest("/api/v1", api())
        .merge(ops::router())
        .split_for_parts();
    docs::add_common_responses(&mut doc);
    (routes, doc)
}

/// The whole HTTP application (sockets are layered on by the realtime module).
pub fn router(state: AppState) -> Router {
    let (routes, doc) = full();
    let body_limit = state.config.body_limit_bytes;
    routes
        .merge(SwaggerUi::new("/api-docs").url("/api/v1/openapi.json", doc))
        .merge(media::files(&state))
        .merge(client::router())
        .fallback(client::fallback)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TraceLayer::new_for_http())
        .layer(CorsLayer::new().allow_origin(CorsAny).allow_headers(CorsAny).allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ]))
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    let mut resp = AppError::BadRequest("method not allowed on this route".into()).into_response();
    *resp.status_mut() = axum::http::StatusCode::METHOD_NOT_ALLOWED;
    resp
}

fn panic_response(err: Box<dyn Any + Send + 'static>) -> Response {
    let detail = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    AppError::Internal(anyhow::anyhow!("handler panicked: {detail}")).into_response()
}
