//! The one application error, shared by REST and sockets.
//!
//! Every failure a client can see is an [`AppError`]. Its HTTP status and its stable
//! snake_case `code` are exhaustive matches with no catch-all arm, so adding a variant forces
//! a decision about both. Internal causes are logged once here and never sent: clients get a
//! generic message. The socket doors reuse [`AppError::code`] and [`AppError::body`] for their
//! error frames, so a REST call and a socket command fail the same way.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

/// Field name → human message, in a stable order.
pub type FieldErrors = BTreeMap<String, String>;

/// Everything that can go wrong in a request or a socket command.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed (not JSON, wrong types, bad query string).
    #[error("{0}")]
    BadRequest(String),
    /// The request is well-formed but some fields are invalid.
    #[error("validation failed")]
    Validation(FieldErrors),
    /// No credentials, or bad/expired/revoked ones.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Authenticated, but not allowed to do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The account's e-mail address is not verified, and writing requires it.
    #[error("verify your e-mail address first (POST /api/v1/auth/email/verify)")]
    EmailUnverified,
    /// The account is suspended (login refused).
    #[error("this account is suspended")]
    AccountSuspended,
    /// The thing does not exist or is not visible to the caller.
    #[error("not found")]
    NotFound,
    /// The request conflicts with existing state (taken username, duplicate follow…).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
        /// The fields responsible, when there are some.
        fields: FieldErrors,
    },
    /// The body or upload is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The upload's content is of a type we do not accept.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Too many requests; retry after the given delay.
    #[error("too many requests")]
    RateLimited(Duration),
    /// A dependency (database, Redis) is unreachable right now.
    #[error("service unavailable")]
    Unavailable,
    /// A bug or an unexpected failure; the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The JSON body of every error response: `{"error":{"code","message","fields"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code, message and per-field messages of an error.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`, `not_found`, `rate_limited`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field messages for `validation_failed` and some `conflict`s.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldErrors>,
}

impl AppError {
    /// A validation error on one field.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        Self::Validation(FieldErrors::from([(name.to_string(), message.into())]))
    }

    /// A conflict on one field.
    pub fn conflict_field(name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::Conflict { message: message.clone(), fields: FieldErrors::from([(name.to_string(), message)]) }
    }

    /// A conflict that is not about a particular field.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict { message: message.into(), fields: FieldErrors::new() }
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::AccountSuspended | Self::EmailUnverified => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable snake_case code, the same on REST and socket error frames.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation(_) => "validation_failed",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::AccountSuspended => "account_suspended",
            Self::EmailUnverified => "email_unverified",
            Self::NotFound => "not_found",
            Self::Conflict { .. } => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::RateLimited(_) => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    /// The client-facing body. Logs internal causes (once, here) and hides them.
    pub fn body(&self) -> ErrorBody {
        let fields = match self {
            Self::Validation(f) => Some(f.clone()),
            Self::Conflict { fields, .. } if !fields.is_empty() => Some(fields.clone()),
            _ => None,
        };
        let message = match self {
            Self::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal server error".to_string()
            }
            Self::Validation(_) => "one or more fields are invalid".to_string(),
            other => other.to_string(),
        };
        ErrorBody { error: ErrorDetail { code: self.code(), message, fields } }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        let retry = match &self {
            // Rounded up: a client that waits this long is not refused again.
            Self::RateLimited(d) => Some((d.as_millis() as u64).div_ceil(1000).max(1)),
            _ => None,
        };
        let mut resp = (status, Json(self.body())).into_response();
        if let Some(secs) = retry {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            StoreError::Conflict(c) => {
                // The constraint's name and text describe the schema: logged, never sent.
                tracing::info!(constraint = %c, "write conflicts with existing data");
                Self::conflict("conflicts with existing data")
            }
            StoreError::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                Self::Unavailable
            }
            StoreError::Other(e) => Self::Internal(e.into()),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge("request body too large".into())
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(r: QueryRejection) -> Self {
        Self::BadRequest(r.body_text())
    }
}

impl From<PathRejection> for AppError {
    fn from(_: PathRejection) -> Self {
        Self::NotFound
    }
}

impl From<axum::extract::multipart::MultipartError> for AppError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::PayloadTooLarge("upload too large".into())
        } else {
            Self::BadRequest(format!("malformed multipart body: {}", e.body_text()))
        }
    }
}

/// Result alias for services and handlers.
pub type AppResult<T> = Result<T, AppError>;

/// Collects field errors while validating a request, then fails once with all of them.
#[derive(Debug, Default)]
pub struct Validator {
    errors: FieldErrors,
}

impl Validator {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `parse` and keeps its value, or records its message under `field`.
    pub fn check<T, E: ToString>(&mut self, field: &str, parsed: Result<T, E>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.entry(field.to_string()).or_insert_with(|| e.to_string());
                None
            }
        }
    }

    /// Records an error under `field`.
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors.entry(field.to_string()).or_insert_with(|| message.into());
    }

    /// `Ok` when nothing failed, else the collected [`AppError::Validation`].
    pub fn finish(self) -> AppResult<()> {
        if self.errors.is_empty() { Ok(()) } else { Err(AppError::Validation(self.errors)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = AppError::Internal(anyhow::anyhow!("password=hunter2 leaked"));
        let body = serde_json::to_string(&e.body()).unwrap();
        assert!(!body.contains("hunter2"));
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn conflicts_hide_the_database_text() {
        let e = AppError::from(StoreError::Conflict("UNIQUE constraint failed: users.username_lower".into()));
        let body = serde_json::to_string(&e.body()).unwrap();
        assert_eq!(e.status(), StatusCode::CONFLICT);
        assert!(!body.contains("users") && !body.contains("UNIQUE"), "{body}");
    }

    #[test]
    fn validation_lists_fields() {
        let mut v = Validator::new();
        v.fail("email", "is not an e-mail address");
        v.fail("email", "second message is ignored");
        let e = v.finish().unwrap_err();
        let body = serde_json::to_value(e.body()).unwrap();
        assert_eq!(body["error"]["code"], "validation_failed");
        assert_eq!(body["error"]["fields"]["email"], "is not an e-mail address");
    }

    #[test]
    fn rate_limited_sets_retry_after() {
        let resp = AppError::RateLimited(Duration::from_millis(2500)).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "3", "rounded up");
    }
}
