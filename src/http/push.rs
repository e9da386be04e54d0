//! `/push/*`: the Web Push key, and the caller's devices for push notifications.

use axum::extract::State;
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath};
use crate::auth::AuthUser;
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::services::push::{self as svc, NewSubscription, SubscriptionView, VapidKey};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(vapid_key)).routes(routes!(subscribe, list)).routes(routes!(unsubscribe))
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

/// Register this device for push notifications: a browser's `PushSubscription`
/// (`{"web_push": subscription.toJSON()}`) or an app's FCM registration token
/// (`{"fcm_token": …}`). It belongs to the session of the access token: logging out, or
/// any other end of the session, removes it. Registering the same endpoint or token again
/// replaces the earlier registration.
#[utoipa::path(post, path = "/push/subscriptions", tag = "push", security(("bearer" = [])),
    request_body = NewSubscription,
    responses(
        (status = 201, description = "Registered", body = SubscriptionView),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 409, description = "20 other devices already", body = ErrorBody),
        (status = 422, description = "Not exactly one of `web_push` and `fcm_token`, a non-`https` endpoint, bad keys or token, a label over 100 characters, or Web Push (FCM) off on this server", body = ErrorBody),
    ))]
async fn subscribe(
    State(state): State<AppState>,
    me: AuthUser,
    AppJson(req): AppJson<NewSubscription>,
) -> AppResult<(StatusCode, AppJson<SubscriptionView>)> {
    Ok((StatusCode::CREATED, AppJson(svc::subscribe(&state, &me, req).await?)))
}

/// The caller's devices registered for push notifications (never their keys).
#[utoipa::path(get, path = "/push/subscriptions", tag = "push", security(("bearer" = [])),
    responses(
        (status = 200, description = "The devices, newest first", body = Vec<SubscriptionView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn list(State(state): State<AppState>, me: AuthUser) -> AppResult<AppJson<Vec<SubscriptionView>>> {
    Ok(AppJson(svc::list(&state, &me).await?))
}

/// Stop pushing to one of the caller's devices.
#[utoipa::path(delete, path = "/push/subscriptions/{id}", tag = "push", security(("bearer" = [])),
    params(("id" = String, Path, description = "Subscription id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such device of the caller's", body = ErrorBody),
    ))]
async fn unsubscribe(State(state): State<AppState>, me: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::unsubscribe(&state, &me, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
