//! Push subscriptions: the devices an account receives push notifications on.

use sqlx::FromRow;

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `push_subscriptions` row.
#[derive(Clone, Debug, FromRow)]
pub struct SubscriptionRow {
    /// Id.
    pub id: Id,
    /// The account.
    pub user_id: Id,
    /// The login session that registered it.
    pub session_id: Id,
    /// `webpush` or `fcm`.
    pub kind: String,
    /// The Web Push endpoint, or the FCM registration token.
    pub endpoint: String,
    /// Web Push: the browser's public key.
    pub p256dh: Option<String>,
    /// Web Push: the auth secret.
    pub auth: Option<String>,
    /// The device's name, as its owner gave it.
    pub label: String,
    /// Notification kinds wanted, comma-separated (empty: all).
    pub kinds: String,
    /// Registered.
    pub created_at: Timestamp,
}

impl SubscriptionRow {
    /// The service it is reached through, as the API and metrics name it: `web_push` or
    /// `fcm`.
    pub fn service(&self) -> &'static str {
        if self.kind == "webpush" { "web_push" } else { "fcm" }
    }
}

const COLS: &str = "id, user_id, session_id, kind, endpoint, p256dh, auth, label, kinds, created_at";

/// Registers a device; its id. An endpoint (or token) is one device: registering it again —
/// from another session or account on the same browser — updates the earlier row and keeps
/// its id, so pushes queued for the device still find it (they check its owner).
pub async fn upsert(ex: Ex<'_>, s: &SubscriptionRow) -> StoreResult<Id> {
    let sql = "INSERT INTO push_subscriptions (id, user_id, session_id, kind, endpoint, p256dh, auth, label, kinds, created_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
               ON CONFLICT (endpoint) DO UPDATE SET user_id = excluded.user_id, \
               session_id = excluded.session_id, kind = excluded.kind, p256dh = excluded.p256dh, auth = excluded.auth, \
               label = excluded.label, kinds = excluded.kinds, created_at = excluded.created_at RETURNING id";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(s.id).bind(s.user_id).bind(s.session_id).bind(&s.kind)
        .bind(&s.endpoint).bind(&s.p256dh).bind(&s.auth).bind(&s.label).bind(&s.kinds).bind(s.created_at)
        .fetch_one(c).await)?)
}

/// One device.
pub async fn get(ex: Ex<'_>, id: Id) -> StoreResult<Option<SubscriptionRow>> {
    let sql = format!("SELECT {COLS} FROM push_subscriptions WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, SubscriptionRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// An account's devices, newest first.
pub async fn for_user(ex: Ex<'_>, user: Id) -> StoreResult<Vec<SubscriptionRow>> {
    let sql = format!("SELECT {COLS} FROM push_subscriptions WHERE user_id = $1 ORDER BY id DESC");
    Ok(run!(ex, c => sqlx::query_as::<_, SubscriptionRow>(&sql).bind(user).fetch_all(c).await)?)
}

/// How many devices an account has besides `endpoint` (which a registration would replace).
pub async fn count_others(ex: Ex<'_>, user: Id, endpoint: &str) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM push_subscriptions WHERE user_id = $1 AND endpoint <> $2";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).bind(endpoint).fetch_one(c).await)?)
}

/// Removes one of `user`'s devices; whether it existed.
pub async fn delete(ex: Ex<'_>, user: Id, id: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM push_subscriptions WHERE id = $1 AND user_id = $2";
    Ok(exec!(ex, c => sqlx::query(sql).bind(id).bind(user).execute(c).await)? == 1)
}

/// Removes the devices registered by these sessions (they ended).
pub async fn delete_for_sessions(ex: Ex<'_>, sessions: &[Id]) -> StoreResult<()> {
    if sessions.is_empty() {
        return Ok(());
    }
    let sql = format!("DELETE FROM push_subscriptions WHERE session_id IN ({})", super::posts::in_list(sessions));
    exec!(ex, c => sqlx::query(&sql).execute(c).await)?;
    Ok(())
}
