//! `/auth/*`: register, login, refresh, logout, me, password change and reset.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{AppJson, AppPath, ClientIp, Device};
use crate::auth::{AuthUser, MaybeAuthUser};
use crate::domain::Id;
use crate::error::{AppResult, ErrorBody};
use crate::services::auth::{
    self as svc, AuthResponse, ChangeEmailRequest, ChangePasswordRequest, ForgotPasswordRequest, LoginRequest,
    RegisterRequest, ResetPasswordRequest, SessionView, VerifyEmailRequest,
};
use crate::services::users::{self, Me};
use crate::state::AppState;

/// Routes of this area.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me))
        .routes(routes!(change_password))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(sessions))
        .routes(routes!(verify_email))
        .routes(routes!(resend_verification))
        .routes(routes!(change_email))
        .routes(routes!(end_session))
}

/// Create an account; answers with tokens like a login.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and logged in", body = AuthResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 409, description = "Username or e-mail already taken", body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    ))]
async fn register(
    State(state): State<AppState>,
    ip: ClientIp,
    device: Device,
    AppJson(req): AppJson<RegisterRequest>,
) -> AppResult<(StatusCode, AppJson<AuthResponse>)> {
    let client = svc::Client { ip: ip.0.to_string(), device: device.0 };
    Ok((StatusCode::CREATED, AppJson(svc::register(&state, &client, req).await?)))
}

/// Log in with a username or an e-mail address.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = AuthResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Wrong login or password", body = ErrorBody),
        (status = 403, description = "`account_suspended`: a moderator suspended the account", body = ErrorBody),
        (status = 422, description = "Missing fields", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    ))]
async fn login(
    State(state): State<AppState>,
    ip: ClientIp,
    device: Device,
    AppJson(req): AppJson<LoginRequest>,
) -> AppResult<AppJson<AuthResponse>> {
    let client = svc::Client { ip: ip.0.to_string(), device: device.0 };
    Ok(AppJson(svc::login(&state, &client, req).await?))
}

/// `POST /auth/refresh` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh (single use).
    pub refresh_token: String,
}

/// Exchange a refresh token for new tokens. Each refresh token works once; presenting a used
/// one ends the whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = AuthResponse),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Invalid, expired, revoked or reused token", body = ErrorBody),
    ))]
async fn refresh(
    State(state): State<AppState>,
    AppJson(req): AppJson<RefreshRequest>,
) -> AppResult<AppJson<AuthResponse>> {
    Ok(AppJson(svc::refresh(&state, &req.refresh_token).await?))
}

/// End this session: its refresh token, this access token (at once, on every instance) and
/// its sockets.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Logged out"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn logout(State(state): State<AppState>, user: AuthUser) -> AppResult<StatusCode> {
    svc::logout(&state, &user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account, with e-mail and settings.
#[utoipa::path(get, path = "/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = Me),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn me(State(state): State<AppState>, user: AuthUser) -> AppResult<AppJson<Me>> {
    Ok(AppJson(users::me(&state, user.id).await?))
}

/// Change the password; every other session is ended.
#[utoipa::path(put, path = "/auth/password", tag = "auth", security(("bearer" = [])), request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 422, description = "Wrong current password or invalid new one", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address or on this account; see Retry-After", body = ErrorBody),
    ))]
async fn change_password(
    State(state): State<AppState>,
    ip: ClientIp,
    user: AuthUser,
    AppJson(req): AppJson<ChangePasswordRequest>,
) -> AppResult<StatusCode> {
    svc::change_password(&state, &ip.0.to_string(), &user, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password-reset e-mail. Always answers 202, whether or not the address is known.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth", request_body = ForgotPasswordRequest,
    responses(
        (status = 202, description = "If the address belongs to an account, a reset e-mail is on its way"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 422, description = "Not an e-mail address", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    ))]
async fn forgot_password(
    State(state): State<AppState>,
    ip: ClientIp,
    AppJson(req): AppJson<ForgotPasswordRequest>,
) -> AppResult<StatusCode> {
    svc::forgot_password(&state, &ip.0.to_string(), req).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token from the reset e-mail; ends every session.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth", request_body = ResetPasswordRequest,
    responses(
        (status = 204, description = "Password set"),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 422, description = "Invalid or expired token, or invalid password", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address or on this account; see Retry-After", body = ErrorBody),
    ))]
async fn reset_password(
    State(state): State<AppState>,
    ip: ClientIp,
    AppJson(req): AppJson<ResetPasswordRequest>,
) -> AppResult<StatusCode> {
    svc::reset_password(&state, &ip.0.to_string(), req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's open sessions (one per login), latest used first.
#[utoipa::path(get, path = "/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Open sessions", body = Vec<SessionView>),
        (status = 401, description = "Not authenticated", body = ErrorBody),
    ))]
async fn sessions(State(state): State<AppState>, user: AuthUser) -> AppResult<AppJson<Vec<SessionView>>> {
    Ok(AppJson(svc::list_sessions(&state, &user).await?))
}

/// End one of the caller's sessions: its tokens stop working and its sockets close, on
/// every instance.
#[utoipa::path(delete, path = "/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 404, description = "No such open session of the caller's", body = ErrorBody),
    ))]
async fn end_session(State(state): State<AppState>, user: AuthUser, AppPath(id): AppPath<Id>) -> AppResult<StatusCode> {
    svc::end_session(&state, &user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verify the account's e-mail address: the 6-digit code (with the account's token) or the
/// token of the e-mail's link (from anywhere). Each works once, until it expires.
#[utoipa::path(post, path = "/auth/email/verify", tag = "auth", security((), ("bearer" = [])), request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "Verified"),
        (status = 401, description = "A code without the account's token", body = ErrorBody),
        (status = 422, description = "Wrong, used or expired code or token", body = ErrorBody),
        (status = 429, description = "Too many attempts from this address; see Retry-After", body = ErrorBody),
    ))]
async fn verify_email(
    State(state): State<AppState>,
    ip: ClientIp,
    me: MaybeAuthUser,
    AppJson(req): AppJson<VerifyEmailRequest>,
) -> AppResult<StatusCode> {
    svc::verify_email(&state, &ip.0.to_string(), me.0.as_ref(), req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a new verification code and link (the earlier ones stop working).
#[utoipa::path(post, path = "/auth/email/resend", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 202, description = "On its way"),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 409, description = "Verified already", body = ErrorBody),
        (status = 429, description = "Too many resends; see Retry-After", body = ErrorBody),
    ))]
async fn resend_verification(State(state): State<AppState>, me: AuthUser) -> AppResult<StatusCode> {
    svc::resend_verification(&state, &me).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Change the account's e-mail address (with the password); the new one is unverified until
/// its code is used.
#[utoipa::path(put, path = "/auth/email", tag = "auth", security(("bearer" = [])), request_body = ChangeEmailRequest,
    responses(
        (status = 200, description = "Changed; a code is on its way to the new address", body = Me),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 409, description = "The address belongs to another account", body = ErrorBody),
        (status = 422, description = "Wrong password or not an e-mail address", body = ErrorBody),
        (status = 429, description = "Too many attempts; see Retry-After", body = ErrorBody),
    ))]
async fn change_email(
    State(state): State<AppState>,
    ip: ClientIp,
    me: AuthUser,
    AppJson(req): AppJson<ChangeEmailRequest>,
) -> AppResult<AppJson<Me>> {
    Ok(AppJson(svc::change_email(&state, &ip.0.to_string(), &me, req).await?))
}
