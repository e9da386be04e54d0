//! `AuthUser` / `MaybeAuthUser`: handlers that need a caller take one of these; the token
//! check is never repeated in a handler.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{AccessClaims, AuthFailure};
use crate::domain::Id;
use crate::error::AppError;
use crate::state::AppState;

/// An authenticated caller.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// User id.
    pub id: Id,
    /// Session (refresh family) id.
    pub sid: Id,
    /// The verified claims.
    pub claims: AccessClaims,
}

/// A caller that may be anonymous. A *bad* token is still an error: clients that send one
/// should learn it, not silently be treated as anonymous.
#[derive(Clone, Debug)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl MaybeAuthUser {
    /// The caller's id, if any.
    pub fn id(&self) -> Option<Id> {
        self.0.as_ref().map(|u| u.id)
    }
}

impl From<AuthFailure> for AppError {
    fn from(f: AuthFailure) -> Self {
        match f {
            AuthFailure::Missing => AppError::Unauthorized("missing access token"),
            AuthFailure::Invalid => AppError::Unauthorized("invalid access token"),
            AuthFailure::Expired => AppError::Unauthorized("access token expired"),
            AuthFailure::Revoked => AppError::Unauthorized("access token revoked"),
        }
    }
}

/// The token of an `Authorization: Bearer …` header, `None` when absent.
pub fn bearer(parts: &Parts) -> Result<Option<&str>, AuthFailure> {
    let Some(h) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let h = h.to_str().map_err(|_| AuthFailure::Invalid)?;
    let (scheme, token) = h.split_once(' ').ok_or(AuthFailure::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthFailure::Invalid);
    }
    Ok(Some(token.trim()))
}

async fn verify(state: &AppState, token: &str) -> Result<AuthUser, AppError> {
    let claims = state.auth.verify_access(&state.revocations, token).await?;
    let (Some(id), Some(sid)) = (claims.user_id(), claims.session_id()) else {
        return Err(AuthFailure::Invalid.into());
    };
    Ok(AuthUser { id, sid, claims })
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?.ok_or(AuthFailure::Missing)?;
        verify(state, token).await
    }
}

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        match bearer(parts)? {
            None => Ok(MaybeAuthUser(None)),
            Some(token) => Ok(MaybeAuthUser(Some(verify(state, token).await?))),
        }
    }
}
