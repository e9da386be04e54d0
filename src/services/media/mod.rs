//! Media use cases: upload, read, delete, set the avatar — and the three calls the post use
//! cases make: attach uploads to a new post, read the media of posts, release a deleted
//! post's media for durable deletion. Also the jobs that do the slow work.
//!
//! # Lifecycle
//! ```text
//!  POST /media ──► row `processing` + ProcessMedia job (one transaction) ──► 201
//!                       │ job: decode, orient, strip, variants ─► storage
//!                       ├─► `ready`  (+ media.ready with URLs on the uploader's `image` topic)
//!                       └─► `failed` (+ media.failed with the reason)
//!  attach (post, avatar) ─► attached_to set: no longer garbage
//!  delete / post deleted / avatar replaced / unattached past the TTL
//!        ─► row deleted + DeleteStoredMedia job with every object's backend and key
//! ```
//!
//! # Why nothing is lost
//! Every deletion is a job row written in the same transaction that removes the media row,
//! so "row gone" and "deletion scheduled" commit together; the job carries the storage keys
//! (the rows are gone by then), retries with backoff while the backend is down, survives
//! restarts, and is idempotent (a missing object counts as deleted). Processing writes the
//! variant rows — with their keys — *before* uploading, so a deletion that happens while an
//! upload is in flight knows every key; and if the item disappears while processing, the job
//! schedules the deletion of what it just stored itself.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::jobs;
pub use crate::jobs::payloads::{DeleteStoredMedia, ProcessMedia};
pub use crate::media::MediaKind;
use crate::media::process::ProcessedImage;
use crate::media::storage::{BackendKind, Source, StoredObject};
use crate::media::upload;
use crate::ratelimit::Write;
use crate::services::access::MediaAudience;
use crate::services::users::{self, Me};
use crate::state::AppState;
use crate::store::media::{self as store, MediaRow, VariantRow};
use crate::store::{Ex, Tx, users as user_store};

mod handlers;
mod uploads;

pub use handlers::{collect_unattached, gc_loop, run_delete_stored_media, run_process_media};
pub use uploads::{
    FileAccess, delete, file_access, get, precheck_upload, public_variant_url, set_alt_text, set_avatar, upload,
};

/// Most media items on one post.
pub const MAX_POST_MEDIA: usize = 10;

/// One stored rendition of a media item.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Variant {
    /// `thumb`, `feed`, `original`…
    pub name: String,
    /// Where to fetch it.
    pub url: String,
    /// MIME type.
    pub content_type: String,
    /// Pixels (0 when unknown, e.g. a video stored on local disk).
    pub width: i32,
    /// Pixels (0 when unknown).
    pub height: i32,
}

/// A media item as embedded in posts, messages and profiles.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MediaView {
    /// Id.
    pub id: Id,
    /// Image or video.
    pub kind: MediaKind,
    /// `processing`, `ready` or `failed`.
    pub status: String,
    /// Pixels (once known).
    pub width: Option<i32>,
    /// Pixels (once known).
    pub height: Option<i32>,
    /// Blurhash for a placeholder while loading.
    pub placeholder: Option<String>,
    /// The uploader's description for people who cannot see it (`""` when none): render it
    /// as the image's `alt`.
    pub alt_text: String,
    /// Stored renditions, smallest first.
    pub variants: Vec<Variant>,
}

/// `GET /media/{id}`: the item, plus what only its uploader sees.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MediaDetail {
    /// The item.
    #[serde(flatten)]
    pub media: MediaView,
    /// Uploader.
    pub owner_id: Id,
    /// Detected type of the upload.
    pub mime: String,
    /// Uploaded size in bytes.
    pub bytes: i64,
    /// Why processing failed (uploader only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// What it is attached to, `post` or `avatar` (uploader only; absent while unattached —
    /// unattached uploads are deleted after a day).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<String>,
    /// Uploaded.
    pub created_at: Timestamp,
}

/// `201` answer of `POST /media`, also the data of `media.processing`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UploadAccepted {
    /// Id of the new media item.
    pub id: Id,
    /// Image or video, from the file's content.
    pub kind: MediaKind,
    /// Always `processing`: watch the `image` topic or poll `GET /media/{id}`.
    pub status: String,
}

/// Data of `media.failed`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct MediaFailed {
    /// Id.
    pub id: Id,
    /// Image or video.
    pub kind: MediaKind,
    /// Always `failed`.
    pub status: String,
    /// Why, for the uploader.
    pub reason: String,
}

/// `PUT /users/me/avatar` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAvatarRequest {
    /// A ready image uploaded by the caller, or `null` to remove the avatar.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true)]
    pub media_id: Option<Option<Id>>,
}

/// `PATCH /media/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMedia {
    /// A description of the image or video for people who cannot see it, up to 1,500
    /// characters (`""` removes it).
    pub alt_text: String,
}

/// Longest description of a medium (Mastodon's limit).
pub const MAX_ALT_TEXT: usize = 1500;

/// Distinguishes `"media_id": null` (Some(None)) from a missing field (None).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Id>>, D::Error> {
    Option::<Id>::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------
// Jobs

// ---------------------------------------------------------------------------------------
// Views

fn absolute(state: &AppState, url: &str) -> String {
    if url.starts_with('/') { format!("{}{url}", state.config.public_url()) } else { url.to_string() }
}

/// A variant's URL for an item seen by `audience`. Local: as stored for public items
/// (long-lived, cacheable), signed and expiring for anything else. Cloudinary: always
/// signed (its objects are `authenticated`), with an expiring token for anything not public.
fn variant_url(state: &AppState, v: &VariantRow, audience: MediaAudience) -> String {
    let now = crate::domain::now_ms() as u64 / 1000;
    match (BackendKind::parse(&v.backend), state.media.storage.cloudinary()) {
        (Some(BackendKind::Cloudinary), Some(c)) => {
            let expires = (audience != MediaAudience::Public).then(|| state.media.signer.expiry(now));
            c.delivery_url(&v.storage_key, &v.content_type, &v.url, expires)
        }
        (Some(BackendKind::Local), _) if audience != MediaAudience::Public => {
            absolute(state, &state.media.signer.signed_url(&v.url, &v.storage_key, now))
        }
        _ => absolute(state, &v.url),
    }
}

fn view(state: &AppState, m: &MediaRow, variants: &[VariantRow], audience: MediaAudience) -> MediaView {
    let ready = m.status == "ready";
    MediaView {
        id: m.id,
        kind: MediaKind::parse(&m.kind),
        status: m.status.clone(),
        width: m.width,
        height: m.height,
        placeholder: m.placeholder.clone(),
        alt_text: m.alt_text.clone(),
        // Variant rows exist (with their keys) while processing; they are shown once ready.
        variants: variants
            .iter()
            .filter(|v| ready && v.media_id == m.id)
            .map(|v| Variant {
                name: v.name.clone(),
                url: variant_url(state, v, audience),
                content_type: v.content_type.clone(),
                width: v.width,
                height: v.height,
            })
            .collect(),
    }
}

fn objects_of(variants: &[VariantRow]) -> Vec<StoredObject> {
    variants
        .iter()
        .filter_map(|v| {
            let backend = BackendKind::parse(&v.backend)?;
            Some(StoredObject { backend, key: v.storage_key.clone(), content_type: v.content_type.clone() })
        })
        .collect()
}

/// Deletes a media row inside `tx` and schedules the deletion of its stored objects in the
/// same transaction. Post links must be gone already.
async fn discard(state: &AppState, tx: &mut Tx, id: Id) -> AppResult<()> {
    let variants = store::variants(tx.ex(), &[id]).await?;
    store::delete(tx.ex(), id).await?;
    schedule_deletion(state, tx, id, objects_of(&variants)).await
}

async fn schedule_deletion(state: &AppState, tx: &mut Tx, id: Id, objects: Vec<StoredObject>) -> AppResult<()> {
    if !objects.is_empty() {
        let job = DeleteStoredMedia { media_id: id, objects };
        jobs::enqueue(tx, &state.ids, state.config.jobs.max_attempts, &job).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The interface of the post use cases

/// Attaches the caller's own ready, unattached uploads to a new post, in the given order,
/// inside the post's transaction. Returns `(has_image, has_video)`. Fails with a
/// `media_ids` field error when an id is unknown, someone else's, not ready, already
/// attached, repeated, or when there are more than 10.
pub async fn attach_to_post(
    _state: &AppState,
    tx: &mut Tx,
    owner: Id,
    post: Id,
    ids: &[Id],
) -> AppResult<(bool, bool)> {
    let kinds = claim_uploads(tx, owner, ids, "post").await?;
    for (pos, id) in ids.iter().enumerate() {
        store::insert_post_media(tx.ex(), post, *id, pos as i32).await?;
    }
    Ok(kinds)
}

/// Attaches the caller's own ready, unattached uploads to a new chat message (same rules
/// as [`attach_to_post`]).
pub async fn attach_to_message(tx: &mut Tx, owner: Id, message: Id, ids: &[Id]) -> AppResult<()> {
    claim_uploads(tx, owner, ids, "message").await?;
    for (pos, id) in ids.iter().enumerate() {
        crate::store::chat::insert_message_media(tx.ex(), message, *id, pos as i32).await?;
    }
    Ok(())
}

/// Checks and marks uploads as attached to `to`; `(has_image, has_video)`.
async fn claim_uploads(tx: &mut Tx, owner: Id, ids: &[Id], to: &str) -> AppResult<(bool, bool)> {
    if ids.is_empty() {
        return Ok((false, false));
    }
    let bad = |m: String| AppError::field("media_ids", m);
    if ids.len() > MAX_POST_MEDIA {
        return Err(bad(format!("at most {MAX_POST_MEDIA} media items per {to}")));
    }
    let mut seen = HashSet::new();
    if let Some(dup) = ids.iter().find(|i| !seen.insert(**i)) {
        return Err(bad(format!("media {dup} is listed twice")));
    }
    let rows = store::lock_many(tx.ex(), ids).await?;
    let (mut has_image, mut has_video) = (false, false);
    for id in ids {
        // Someone else's upload reads as unknown: ids of unattached uploads are not public.
        let m = rows.iter().find(|m| m.id == *id && m.owner_id == owner);
        let m = m.ok_or_else(|| bad(format!("media {id} not found")))?;
        if m.status != "ready" {
            return Err(bad(format!("media {id} is not ready (it is {})", m.status)));
        }
        if m.attached_to.is_some() {
            return Err(bad(format!("media {id} is already in use")));
        }
        match MediaKind::parse(&m.kind) {
            MediaKind::Image => has_image = true,
            MediaKind::Video => has_video = true,
        }
    }
    if store::attach(tx.ex(), ids, to, Timestamp::now()).await? != ids.len() as u64 {
        return Err(bad("some media items are already in use".into()));
    }
    Ok((has_image, has_video))
}

/// Views of chat messages' media items by id (unknown ids are absent), read through `ex` (a
/// connection, or the transaction that attached them). Their URLs are signed: only the
/// conversation's members see them.
pub async fn message_views(state: &AppState, mut ex: Ex<'_>, ids: &[Id]) -> AppResult<HashMap<Id, MediaView>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = store::get_many(ex.reborrow(), ids).await?;
    let variants = store::variants(ex, ids).await?;
    Ok(rows
        .iter()
        .map(|m| {
            let mine: Vec<VariantRow> = variants.iter().filter(|v| v.media_id == m.id).cloned().collect();
            (m.id, view(state, m, &mine, crate::services::access::MESSAGE_MEDIA))
        })
        .collect())
}

/// The fullest stored file of a ready media item (a video's original, an image's `feed`
/// rendition), for a data export: `(file name, bytes)`.
pub async fn stored_original(state: &AppState, id: Id) -> anyhow::Result<Option<(String, Vec<u8>)>> {
    let mut c = state.store.conn().await?;
    let variants = store::variants(c.ex(), &[id]).await?;
    drop(c);
    let rank = |v: &VariantRow| match v.name.as_str() {
        "original" => 2,
        "feed" => 1,
        _ => 0,
    };
    let Some(v) = variants.into_iter().max_by_key(|v| (rank(v), v.bytes)) else { return Ok(None) };
    let ext = v.storage_key.rsplit('.').next().filter(|e| e.len() <= 5).unwrap_or("bin").to_string();
    let name = format!("{id}-{}.{ext}", v.name);
    let bytes = match BackendKind::parse(&v.backend) {
        Some(BackendKind::Local) => tokio::fs::read(state.media.storage.local().path_of(&v.storage_key)?).await?,
        _ => {
            let url = variant_url(state, &v, MediaAudience::Owner);
            let resp = reqwest::get(&url).await?.error_for_status()?;
            resp.bytes().await?.to_vec()
        }
    };
    Ok(Some((name, bytes)))
}

/// Deletes every upload `owner` still has (unattached, the avatar, still processing) and
/// schedules their stored objects' durable deletion; to run after their posts and messages
/// are gone.
pub async fn discard_all_of(state: &AppState, owner: Id) -> AppResult<()> {
    loop {
        let mut tx = state.store.begin().await?;
        user_store::set_avatar(tx.ex(), owner, None, Timestamp::now()).await?;
        let ids = crate::store::erasure::media_ids(tx.ex(), owner, 100).await?;
        for id in &ids {
            store::take_post_media_of(tx.ex(), *id).await?;
            discard(state, &mut tx, *id).await?;
        }
        state.commit(tx, EventBatch::new()).await?;
        if ids.len() < 100 {
            return Ok(());
        }
    }
}

/// Schedules durable deletion of a chat message's stored media (the message was deleted
/// for everyone). Call inside that transaction.
pub async fn release_message_media(state: &AppState, tx: &mut Tx, message: Id) -> AppResult<()> {
    for id in crate::store::chat::take_message_media(tx.ex(), message).await? {
        discard(state, tx, id).await?;
    }
    Ok(())
}

/// The media of each post, in attachment order (posts without media are absent). The
/// posts in `by_private` (written by a private account) get the URLs the policy gives
/// their audience (`access::post_media_audience`).
pub async fn for_posts(
    state: &AppState,
    posts: &[Id],
    by_private: &HashSet<Id>,
) -> AppResult<HashMap<Id, Vec<MediaView>>> {
    let mut out: HashMap<Id, Vec<MediaView>> = HashMap::new();
    if posts.is_empty() {
        return Ok(out);
    }
    let mut c = state.store.conn().await?;
    let rows = store::for_posts(c.ex(), posts).await?;
    let ids: Vec<Id> = rows.iter().map(|r| r.media.id).collect();
    let variants = store::variants(c.ex(), &ids).await?;
    for r in rows {
        let mine: Vec<VariantRow> = variants.iter().filter(|v| v.media_id == r.media.id).cloned().collect();
        let audience = crate::services::access::post_media_audience(by_private.contains(&r.post_id));
        out.entry(r.post_id).or_default().push(view(state, &r.media, &mine, audience));
    }
    Ok(out)
}

/// Schedules durable deletion of a post's stored media. Call inside the transaction that
/// deletes the post, before deleting it.
pub async fn release_post_media(state: &AppState, tx: &mut Tx, post: Id) -> AppResult<()> {
    for id in store::take_post_media(tx.ex(), post).await? {
        discard(state, tx, id).await?;
    }
    Ok(())
}
