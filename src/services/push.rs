//! Push notifications: what a device needs to subscribe. (The device registry and the
//! sending jobs come with the rest of issue 17.)

use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// `GET /push/vapid-key` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct VapidKey {
    /// The server's VAPID public key (base64url, uncompressed P-256 point): the
    /// `applicationServerKey` of `PushManager.subscribe`.
    pub public_key: String,
}

/// The key browsers subscribe with; `404` where Web Push is off (a cluster without a
/// configured key). Public: it identifies the server, it grants nothing.
pub fn vapid_key(state: &AppState) -> AppResult<VapidKey> {
    let v = state.vapid.as_ref().ok_or(AppError::NotFound)?;
    Ok(VapidKey { public_key: v.public_key() })
}
