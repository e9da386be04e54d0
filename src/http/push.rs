//! `/push/*`: what browsers and apps need for push notifications.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::AppJson;
use crate::error::{AppResult, ErrorBody};
use crate::services::push::{self as svc, VapidKey};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(vapid_key))
}

/// The server's VAPID public key, for `PushManager.subscribe({applicationServerKey})`.
#[utoipa::path(get, path = "/push/vapid-key", tag = "push", security(()),
    responses(
        (status = 200, description = "The key", body = VapidKey),
        (status = 404, description = "Web Push is off on this server (a cluster without `push.vapid_private_key`)", body = ErrorBody),
    ))]
async fn vapid_key(State(state): State<AppState>) -> AppResult<AppJson<VapidKey>> {
    Ok(AppJson(svc::vapid_key(&state)?))
}
