//! Push notifications: the key browsers subscribe with, and the registry of an account's
//! devices (a browser's Web Push subscription or an app's FCM registration token), each
//! tied to the login session that registered it — ending the session (logout, a password
//! change elsewhere, `DELETE /auth/sessions/{id}`, a suspension, the account's deletion)
//! removes it (`services::auth`).
//!
//! # Sending
//! `services::notifications` calls [`enqueue`] in the transaction that makes a
//! notification: one [`SendPush`] job per device of the recipient that wants the kind, so
//! a notification is pushed exactly when it committed, and each device's send is retried
//! on its own. The job ([`run_send_push`]):
//! - sends nothing when the device is gone (the session ended, the device was removed);
//!   when what it describes changed since ([`Recheck`]): the in-app notification is gone
//!   or its actor left it (the post deleted, the reaction taken back), more actors joined
//!   it (a newer push of the group is queued), a block or mute now stands between the
//!   recipient and the actor, the post is no longer the recipient's to see, the chat
//!   message was deleted, the recipient left or muted the conversation; or when the
//!   recipient has a socket open on any instance now (they see it live);
//! - retries with the queue's backoff on timeouts and 5xx, after `Retry-After` on 429;
//! - removes the device when the push service says it no longer exists (Web Push 404/410,
//!   FCM `UNREGISTERED` or `SENDER_ID_MISMATCH`);
//! - carries the message fixed at enqueue, with the group's `Topic`/collapse key: a send
//!   repeated after a crash between the push service's answer and the job's completion
//!   replaces itself on the device instead of showing twice.
//!
//! Counted in `chorus_push_sent_total`, `chorus_push_failed_total{reason}`,
//! `chorus_push_skipped_total{reason}` and `chorus_push_subscriptions_removed_total`, each
//! by `service` (`web_push`, `fcm`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthUser;
use crate::domain::user::NotificationKind;
use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::jobs::{self, Job};
use crate::push::{Device, Message, Outcome, webpush};
use crate::services::access;
use crate::state::AppState;
use crate::store::chat as chat_store;
use crate::store::notifications as notification_store;
use crate::store::push::{self as store, SubscriptionRow};
use crate::store::{Ex, Tx};

/// Most devices one account may register.
pub const MAX_DEVICES: i64 = 20;

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
    let v = state.push.vapid().ok_or(AppError::NotFound)?;
    Ok(VapidKey { public_key: v.public_key() })
}

/// A browser's `PushSubscription` as `JSON.stringify(subscription)` gives it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WebPushSubscription {
    /// The push service URL to post to (`https://`).
    pub endpoint: String,
    /// The subscription's keys.
    pub keys: WebPushKeys,
    /// Ignored (browsers send it).
    #[serde(default, rename = "expirationTime")]
    #[schema(value_type = Option<f64>)]
    pub expiration_time: Option<serde_json::Value>,
}

/// `keys` of a `PushSubscription`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebPushKeys {
    /// The browser's P-256 public key (base64url).
    pub p256dh: String,
    /// The 16-byte auth secret (base64url).
    pub auth: String,
}

/// `POST /push/subscriptions` body: exactly one of `web_push` and `fcm_token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// A browser's Web Push subscription.
    #[serde(default)]
    pub web_push: Option<WebPushSubscription>,
    /// An app's Firebase Cloud Messaging registration token.
    #[serde(default)]
    pub fcm_token: Option<String>,
    /// A name for the device ("Firefox on my laptop"), up to 100 characters.
    #[serde(default)]
    pub label: Option<String>,
    /// The notification kinds this device wants (default: all the account's push kinds).
    #[serde(default)]
    pub kinds: Option<Vec<NotificationKind>>,
}

/// A registered device, as its owner sees it (never its keys).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// Id.
    pub id: Id,
    /// `web_push` or `fcm`.
    pub kind: String,
    /// The device's name.
    pub label: String,
    /// The notification kinds it wants (empty: all).
    pub kinds: Vec<NotificationKind>,
    /// The push service's host (Web Push), or `fcm.googleapis.com`.
    pub service: String,
    /// Registered.
    pub created_at: Timestamp,
    /// Whether it was registered by the session making this request.
    pub this_session: bool,
}

fn view(r: &SubscriptionRow, sid: Id) -> SubscriptionView {
    let kinds = r.kinds.split(',').filter_map(NotificationKind::from_key).collect();
    let service = match r.kind.as_str() {
        "webpush" => {
            url::Url::parse(&r.endpoint).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default()
        }
        _ => "fcm.googleapis.com".to_string(),
    };
    let kind = r.service().to_string();
    SubscriptionView {
        id: r.id,
        kind,
        label: r.label.clone(),
        kinds,
        service,
        created_at: r.created_at,
        this_session: r.session_id == sid,
    }
}

/// Registers the caller's device for the caller's current session (`201`), replacing an
/// earlier registration of the same endpoint or token.
pub async fn subscribe(state: &AppState, me: &AuthUser, req: NewSubscription) -> AppResult<SubscriptionView> {
    let (kind, endpoint, p256dh, auth) = match (req.web_push, req.fcm_token) {
        (Some(w), None) => {
            let url = url::Url::parse(&w.endpoint).map_err(|_| AppError::field("web_push.endpoint", "is not a URL"))?;
            let secure =
                url.scheme() == "https" || (url.scheme() == "http" && state.config.push.allow_insecure_endpoints);
            if !secure || url.host_str().is_none() || w.endpoint.len() > 2048 {
                return Err(AppError::field("web_push.endpoint", "must be an https:// push service URL"));
            }
            webpush::Keys::parse(&w.keys.p256dh, &w.keys.auth).map_err(|e| {
                let name =
                    if e == webpush::Error::BadAuthSecret { "web_push.keys.auth" } else { "web_push.keys.p256dh" };
                AppError::field(name, e.to_string())
            })?;
            if state.push.vapid().is_none() {
                return Err(AppError::field("web_push", "Web Push is off on this server"));
            }
            ("webpush", w.endpoint, Some(w.keys.p256dh), Some(w.keys.auth))
        }
        (None, Some(token)) => {
            let ok = (1..=4096).contains(&token.len())
                && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b));
            if !ok {
                return Err(AppError::field("fcm_token", "is not an FCM registration token"));
            }
            if !state.push.has_fcm() {
                return Err(AppError::field("fcm_token", "FCM is not configured on this server"));
            }
            ("fcm", token, None, None)
        }
        _ => return Err(AppError::field("web_push", "send exactly one of web_push and fcm_token")),
    };
    let label = req.label.unwrap_or_default().trim().to_string();
    if label.chars().count() > 100 {
        return Err(AppError::field("label", "must be at most 100 characters"));
    }
    let mut kinds: Vec<&str> = req.kinds.unwrap_or_default().into_iter().map(NotificationKind::key).collect();
    kinds.sort();
    kinds.dedup();
    let mut row = SubscriptionRow {
        id: state.ids.next(),
        user_id: me.id,
        session_id: me.sid,
        kind: kind.to_string(),
        endpoint,
        p256dh,
        auth,
        label,
        kinds: kinds.join(","),
        created_at: Timestamp::now(),
    };
    let mut tx = state.store.begin().await?;
    if store::count_others(tx.ex(), me.id, &row.endpoint).await? >= MAX_DEVICES {
        return Err(AppError::conflict(format!("at most {MAX_DEVICES} devices: remove one first")));
    }
    row.id = store::upsert(tx.ex(), &row).await?;
    tx.commit().await?;
    Ok(view(&row, me.sid))
}

/// The caller's devices.
pub async fn list(state: &AppState, me: &AuthUser) -> AppResult<Vec<SubscriptionView>> {
    let mut c = state.store.conn().await?;
    Ok(store::for_user(c.ex(), me.id).await?.iter().map(|r| view(r, me.sid)).collect())
}

/// Removes one of the caller's devices (`404` for anyone else's, as if it did not exist).
pub async fn unsubscribe(state: &AppState, me: &AuthUser, id: Id) -> AppResult<()> {
    let mut c = state.store.conn().await?;
    if store::delete(c.ex(), me.id, id).await? { Ok(()) } else { Err(AppError::NotFound) }
}

// ---- sending --------------------------------------------------------------------------

/// Job: push one notification to one device.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendPush {
    /// The device (`push_subscriptions.id`).
    pub device: Id,
    /// Its owner, the recipient.
    pub user: Id,
    /// What it shows.
    pub message: Message,
    /// What is checked again when it is sent.
    #[serde(default)]
    pub recheck: Recheck,
}

/// What a push is checked against again when it is sent: whatever changed since the
/// notification was made (a block, a deleted post or message, a mute, a newer push of the
/// group) must not reach the device.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Recheck {
    /// The account whose action it reports (`None`: a notice of the service's own): the
    /// recipient must still accept notifications from them (no block or mute either way).
    pub actor: Option<Id>,
    /// The author of the post concerned: the recipient must still be allowed to see it.
    pub post_author: Option<Id>,
    /// The in-app notification's actor count when this was made: a job that finds more is
    /// stale (a newer one, with the newer sentence, is queued) and sends nothing.
    pub actors: i64,
    /// A chat message `(conversation, message)`: it must not be deleted, and the recipient
    /// must still be a member who has not muted the conversation.
    pub chat: Option<(Id, Id)>,
}

impl Job for SendPush {
    const KIND: &'static str = "send_push";
}

/// In the caller's transaction: one [`SendPush`] per device of `user` that wants `kind`
/// (and whose push service this server can reach).
pub async fn enqueue(
    state: &AppState,
    tx: &mut Tx,
    user: Id,
    kind: NotificationKind,
    message: &Message,
    recheck: &Recheck,
) -> AppResult<()> {
    for d in store::for_user(tx.ex(), user).await? {
        let wants = d.kinds.is_empty() || d.kinds.split(',').any(|k| k == kind.key());
        let reachable = if d.kind == "webpush" { state.push.vapid().is_some() } else { state.push.has_fcm() };
        if wants && reachable {
            let job = SendPush { device: d.id, user, message: message.clone(), recheck: recheck.clone() };
            jobs::enqueue(tx, &state.ids, state.config.jobs.max_attempts, &job).await?;
        }
    }
    Ok(())
}

/// Runs a [`SendPush`] job (see the module doc).
pub async fn run_send_push(state: AppState, job: SendPush) -> anyhow::Result<()> {
    let mut c = state.store.conn().await?;
    let device = store::get(c.ex(), job.device).await?.filter(|d| d.user_id == job.user);
    let skip = stale(c.ex(), &job).await?;
    drop(c);
    let Some(d) = device else {
        metrics::counter!("chorus_push_skipped_total", "service" => "any", "reason" => "no_device").increment(1);
        return Ok(());
    };
    if let Some(reason) = skip {
        metrics::counter!("chorus_push_skipped_total", "service" => "any", "reason" => reason).increment(1);
        return Ok(());
    }
    let service = d.service();
    if !state.presence.online_among(&[job.user]).await?.is_empty() {
        metrics::counter!("chorus_push_skipped_total", "service" => service, "reason" => "online").increment(1);
        return Ok(());
    }
    let target = match (d.kind.as_str(), &d.p256dh, &d.auth) {
        ("webpush", Some(p256dh), Some(auth)) => Device::WebPush { endpoint: &d.endpoint, p256dh, auth },
        ("fcm", ..) => Device::Fcm(&d.endpoint),
        _ => {
            // The registry never writes such a row; one that is there cannot be sent to.
            tracing::warn!(device = %d.id, kind = d.kind, "push subscription without its keys; skipped");
            return Ok(());
        }
    };
    let failed = |reason: &'static str| {
        metrics::counter!("chorus_push_failed_total", "service" => service, "reason" => reason).increment(1);
    };
    match state.push.send(target, &job.message).await {
        Outcome::Delivered => {
            metrics::counter!("chorus_push_sent_total", "service" => service).increment(1);
        }
        Outcome::Gone => {
            let mut c = state.store.conn().await?;
            store::delete(c.ex(), job.user, d.id).await?;
            metrics::counter!("chorus_push_subscriptions_removed_total", "service" => service).increment(1);
            tracing::info!(device = %d.id, service, "push subscription expired at its service; removed");
        }
        Outcome::RetryAfter(wait) => {
            failed("throttled");
            return Err(jobs::RetryAfter(wait).into());
        }
        Outcome::Transient(e) => {
            failed("transient");
            anyhow::bail!(e);
        }
        Outcome::Rejected(e) => {
            // Trying again would be refused the same way: count it and let the job end.
            failed("rejected");
            tracing::warn!(device = %d.id, service, error = %e, "push refused");
        }
    }
    Ok(())
}

/// Why `job` must not be sent any more, if it must not (see [`Recheck`]).
async fn stale(mut ex: Ex<'_>, job: &SendPush) -> anyhow::Result<Option<&'static str>> {
    let r = &job.recheck;
    if let Some(id) = job.message.notification_id {
        // The in-app notification went (its post or comment deleted, a block), or the
        // actor left it (a reaction taken back), or more actors joined it: a newer push of
        // the group is queued (a popular post under a `Retry-After` sends the latest
        // sentence, not every one).
        let Some(n) = notification_store::get(ex.reborrow(), id).await? else { return Ok(Some("withdrawn")) };
        if n.actor_count > r.actors {
            return Ok(Some("superseded"));
        }
        if let Some(a) = r.actor
            && !notification_store::has_actor(ex.reborrow(), n.user_id, &n.kind, &n.target_type, n.target_id, a).await?
        {
            return Ok(Some("withdrawn"));
        }
    }
    if let Some(a) = r.actor
        && !access::may_notify(ex.reborrow(), job.user, a, r.post_author).await?
    {
        return Ok(Some("withdrawn"));
    }
    if let Some((conversation, message)) = r.chat {
        if chat_store::get_message(ex.reborrow(), message, None).await?.is_none_or(|m| m.deleted) {
            return Ok(Some("withdrawn"));
        }
        if chat_store::member(ex, conversation, job.user).await?.is_none_or(|m| m.muted) {
            return Ok(Some("muted"));
        }
    }
    Ok(None)
}
