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
use crate::services::access::MediaAudience;
use crate::services::users::{self, Me};
use crate::state::AppState;
use crate::store::media::{self as store, MediaRow, VariantRow};
use crate::store::{Ex, Tx, users as user_store};

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
// Upload, read, delete

/// Refuses an upload whose declared body size can only be too large, before reading it.
pub fn precheck_upload(state: &AppState, declared: Option<u64>) -> AppResult<()> {
    // Multipart framing adds headers and boundaries around the file.
    const FRAMING: u64 = 64 * 1024;
    let cfg = &state.config.media;
    let largest = cfg.max_image_bytes.max(cfg.max_video_bytes);
    match declared {
        Some(n) if n > largest + FRAMING => {
            Err(AppError::PayloadTooLarge(format!("uploads may be at most {}", upload::human_bytes(largest))))
        }
        _ => Ok(()),
    }
}

/// Accepts an upload: streams it to disk (type by content, size limit by type), records it
/// as `processing` and schedules its processing, in one transaction.
pub async fn upload<S>(state: &AppState, owner: Id, chunks: S) -> AppResult<UploadAccepted>
where
    S: Stream<Item = AppResult<Bytes>>,
{
    let cfg = &state.config.media;
    let spooled = upload::spool(state.media.uploads_dir(), chunks, |d| match d.kind {
        MediaKind::Image => (cfg.max_image_bytes, "images".to_string()),
        MediaKind::Video => (cfg.max_video_bytes, "videos".to_string()),
    })
    .await?;
    let id = state.ids.next();
    let kind = spooled.detected.kind;
    let accepted = UploadAccepted { id, kind, status: "processing".into() };

    let mut tx = state.store.begin().await?;
    let new = store::NewMedia {
        id,
        owner,
        kind: kind.as_str(),
        mime: spooled.detected.mime,
        bytes: spooled.bytes as i64,
        now: Timestamp::now(),
    };
    store::insert(tx.ex(), &new).await?;
    let token = hex::encode(rand::random::<[u8; 8]>());
    jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &ProcessMedia { media_id: id, token }).await?;
    // The file is in place before the job can be seen (the commit wakes the worker).
    let path = state.media.upload_path(id);
    spooled.persist(&path).map_err(|e| AppError::Internal(anyhow::Error::new(e).context("keeping an upload")))?;
    let mut events = EventBatch::new();
    events.ephemeral(&[Topic::Image(owner)], EventName::MediaProcessing, &accepted);
    if let Err(e) = state.commit(tx, events).await {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e.into());
    }
    Ok(accepted)
}

/// A media item. Its uploader sees it in every state (with the failure reason); others see
/// a ready item only where `access::visible_media` lets them see what holds it.
pub async fn get(state: &AppState, viewer: Option<Id>, id: Id) -> AppResult<MediaDetail> {
    let mut c = state.store.conn().await?;
    let m = store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    let audience = crate::services::access::visible_media(state, viewer, &m).await?;
    let mine = audience == MediaAudience::Owner;
    let mut c = state.store.conn().await?;
    let variants = store::variants(c.ex(), &[id]).await?;
    Ok(MediaDetail {
        media: view(state, &m, &variants, audience),
        owner_id: m.owner_id,
        mime: m.mime.clone(),
        bytes: m.bytes,
        failure: if mine { m.failure.clone() } else { None },
        attached_to: if mine { m.attached_to.clone() } else { None },
        created_at: m.created_at,
    })
}

/// How a `/files/{key}` request may be served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileAccess {
    /// The item is public now: cacheable by anyone.
    Public,
    /// A valid signature, good for this many more seconds: cacheable by the browser only.
    Signed(u64),
}

/// Whether a local object may be served: with a signature (`exp`, `sig`) that this server
/// made and that has not expired (`403` otherwise), or, unsigned, when the item it belongs
/// to is public now (`404` otherwise: an unsigned URL of a private item does not exist for
/// the caller). Browsers fetch files without credentials, so an unsigned request is judged
/// as anonymous.
pub async fn file_access(state: &AppState, key: &str, exp: Option<u64>, sig: Option<&str>) -> AppResult<FileAccess> {
    let now = crate::domain::now_ms() as u64 / 1000;
    if let (Some(exp), Some(sig)) = (exp, sig) {
        return if state.media.signer.verify(key, exp, sig, now) {
            Ok(FileAccess::Signed(exp - now))
        } else {
            Err(AppError::Forbidden("this media link is invalid or has expired; fetch the item again for a new one"))
        };
    }
    // Keys are `{media id}-{token}/{variant}.{ext}`.
    let id: Id = key.split_once('-').and_then(|(id, _)| id.parse().ok()).ok_or(AppError::NotFound)?;
    let mut c = state.store.conn().await?;
    let m = store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    let variants = store::variants(c.ex(), &[id]).await?;
    drop(c);
    if !variants.iter().any(|v| v.storage_key == key) {
        return Err(AppError::NotFound);
    }
    match crate::services::access::visible_media(state, None, &m).await? {
        MediaAudience::Public => Ok(FileAccess::Public),
        _ => Err(AppError::NotFound),
    }
}

/// Deletes an unattached upload of the caller; its stored files are deleted by a job.
pub async fn delete(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    let m = store::lock(tx.ex(), id).await?.ok_or(AppError::NotFound)?;
    if m.owner_id != me {
        // Someone else's: `403` where the caller may see it, `404` (as if unknown) where not.
        crate::services::access::visible_media(state, Some(me), &m).await?;
        return Err(AppError::Forbidden("only the uploader can delete a media item"));
    }
    if let Some(to) = &m.attached_to {
        return Err(AppError::conflict(format!("the media item is in use ({to}); remove it from there instead")));
    }
    discard(state, &mut tx, id).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// Sets (or with `None` removes) the caller's avatar: one of their own ready, unattached
/// images. The previous avatar's files are deleted by a job.
pub async fn set_avatar(state: &AppState, me: Id, req: SetAvatarRequest) -> AppResult<Me> {
    let media = req.media_id.ok_or_else(|| AppError::field("media_id", "is required (null removes the avatar)"))?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    if let Some(id) = media {
        let m = store::lock(tx.ex(), id).await?;
        let m = m.filter(|m| m.owner_id == me).ok_or_else(|| AppError::field("media_id", "no such media item"))?;
        let current = user_store::get(tx.ex(), me).await?.and_then(|u| u.avatar_media_id);
        if current == Some(id) {
            return users::me(state, me).await;
        }
        if MediaKind::parse(&m.kind) != MediaKind::Image {
            return Err(AppError::field("media_id", "must be an image"));
        }
        if m.status != "ready" {
            return Err(AppError::field("media_id", format!("is not ready (it is {})", m.status)));
        }
        if m.attached_to.is_some() || store::attach(tx.ex(), &[id], "avatar", now).await? != 1 {
            return Err(AppError::field("media_id", "is already in use"));
        }
    }
    let previous = user_store::set_avatar(tx.ex(), me, media, now).await?;
    if let Some(old) = previous.filter(|old| Some(*old) != media) {
        discard(state, &mut tx, old).await?;
    }
    state.commit(tx, EventBatch::new()).await?;
    users::me(state, me).await
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
            (m.id, view(state, m, &mine, MediaAudience::Restricted))
        })
        .collect())
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
/// posts in `restricted` (a private account's) get signed URLs.
pub async fn for_posts(
    state: &AppState,
    posts: &[Id],
    restricted: &HashSet<Id>,
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
        let audience = if restricted.contains(&r.post_id) { MediaAudience::Restricted } else { MediaAudience::Public };
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

// ---------------------------------------------------------------------------------------
// Job handlers

/// Runs a [`ProcessMedia`] job: `processing → ready | failed`, idempotently.
pub async fn run_process_media(state: AppState, job: ProcessMedia) -> anyhow::Result<()> {
    let id = job.media_id;
    let upload = state.media.upload_path(id);
    let row = {
        let mut c = state.store.conn().await?;
        store::get(c.ex(), id).await?
    };
    let Some(m) = row.filter(|m| m.status == "processing") else {
        // Deleted before processing, or done by an earlier attempt.
        let _ = tokio::fs::remove_file(&upload).await;
        return Ok(());
    };
    let kind = MediaKind::parse(&m.kind);
    let processed = match kind {
        MediaKind::Image => match state.media.process_image_file(&upload, &m.mime).await {
            Ok(Ok(p)) => Some(p),
            Ok(Err(rejected)) => return fail(&state, &m, &upload, &rejected.0).await,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return fail(&state, &m, &upload, "the upload was lost before it could be processed").await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context("reading the upload")),
        },
        MediaKind::Video => {
            if !tokio::fs::try_exists(&upload).await? {
                return fail(&state, &m, &upload, "the upload was lost before it could be processed").await;
            }
            None
        }
    };
    store_variants(&state, &m, &job.token, &upload, processed).await?;
    let _ = tokio::fs::remove_file(&upload).await;
    Ok(())
}

/// Records a refusal and tells the uploader.
async fn fail(state: &AppState, m: &MediaRow, upload: &std::path::Path, reason: &str) -> anyhow::Result<()> {
    tracing::info!(media = %m.id, reason, "media processing failed");
    let mut tx = state.store.begin().await?;
    let mut events = EventBatch::new();
    if store::mark_failed(tx.ex(), m.id, reason, Timestamp::now()).await? {
        let data =
            MediaFailed { id: m.id, kind: MediaKind::parse(&m.kind), status: "failed".into(), reason: reason.into() };
        events.ephemeral(&[Topic::Image(m.owner_id)], EventName::MediaFailed, &data);
    }
    state.commit(tx, events).await?;
    let _ = tokio::fs::remove_file(upload).await;
    Ok(())
}

/// One object to store.
struct Planned<'a> {
    row: VariantRow,
    source: Source<'a>,
}

async fn store_variants(
    state: &AppState,
    m: &MediaRow,
    token: &str,
    upload: &std::path::Path,
    processed: Option<ProcessedImage>,
) -> anyhow::Result<()> {
    let storage = &state.media.storage;
    let backend = storage.active().as_str().to_string();
    let plan_row = |name: &str, content_type: &str, width: u32, height: u32, bytes: u64| {
        let key = storage.key_for(m.id, token, name, content_type);
        VariantRow {
            media_id: m.id,
            name: name.to_string(),
            backend: backend.clone(),
            url: storage.planned_url(&key).unwrap_or_default(),
            storage_key: key,
            content_type: content_type.to_string(),
            width: width as i32,
            height: height as i32,
            bytes: bytes as i64,
        }
    };
    let (size, placeholder, mut plan) = match processed {
        Some(p) => {
            let plan: Vec<Planned> = p
                .renditions
                .into_iter()
                .map(|r| Planned {
                    row: plan_row(r.name, r.content_type, r.width, r.height, r.data.len() as u64),
                    source: Source::Bytes(r.data),
                })
                .collect();
            (Some((p.width as i32, p.height as i32)), p.placeholder, plan)
        }
        None => {
            let plan = vec![Planned {
                row: plan_row("original", &m.mime, 0, 0, m.bytes as u64),
                source: Source::File(upload),
            }];
            (None, None, plan)
        }
    };

    // 1. Record the keys before anything is stored: whoever deletes the item from now on
    //    deletes these objects too.
    let mut tx = state.store.begin().await?;
    if store::lock(tx.ex(), m.id).await?.filter(|r| r.status == "processing").is_none() {
        return Ok(());
    }
    for p in &plan {
        store::upsert_variant(tx.ex(), &p.row).await?;
    }
    tx.commit().await?;

    // 2. Store (a retry overwrites the same keys).
    let mut size = size;
    for p in &mut plan {
        let source = std::mem::replace(&mut p.source, Source::Bytes(Vec::new()));
        let put = storage.put(&p.row.storage_key, source, &p.row.content_type).await?;
        p.row.storage_key = put.object.key;
        p.row.url = put.url;
        if put.bytes > 0 {
            p.row.bytes = put.bytes as i64;
        }
        if let (0, 0, Some(w), Some(h)) = (p.row.width, p.row.height, put.width, put.height) {
            // A backend that measured a video tells us its size.
            (p.row.width, p.row.height) = (w as i32, h as i32);
            size = size.or(Some((w as i32, h as i32)));
        }
    }

    // 3. Ready — unless the item was deleted meanwhile: then what was just stored goes.
    let mut tx = state.store.begin().await?;
    let mut events = EventBatch::new();
    let still_processing = store::lock(tx.ex(), m.id).await?.filter(|r| r.status == "processing").is_some();
    if still_processing {
        for p in &plan {
            store::upsert_variant(tx.ex(), &p.row).await?;
        }
        store::mark_ready(tx.ex(), m.id, size, placeholder.as_deref(), Timestamp::now()).await?;
        let ready = store::get(tx.ex(), m.id).await?.ok_or_else(|| anyhow::anyhow!("media row vanished"))?;
        let rows: Vec<VariantRow> = store::variants(tx.ex(), &[m.id]).await?;
        events.ephemeral(
            &[Topic::Image(m.owner_id)],
            EventName::MediaReady,
            &view(state, &ready, &rows, MediaAudience::Owner),
        );
    } else {
        let rows: Vec<VariantRow> = plan.into_iter().map(|p| p.row).collect();
        schedule_deletion(state, &mut tx, m.id, objects_of(&rows)).await?;
    }
    state.commit(tx, events).await?;
    Ok(())
}

/// Runs a [`DeleteStoredMedia`] job: removes every object; idempotent, retried on failure.
pub async fn run_delete_stored_media(state: AppState, job: DeleteStoredMedia) -> anyhow::Result<()> {
    for obj in &job.objects {
        state.media.storage.delete(obj).await.map_err(|e| e.context(format!("deleting media {}", job.media_id)))?;
    }
    metrics::counter!("chorus_media_objects_deleted_total").increment(job.objects.len() as u64);
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Garbage collection

/// Deletes unattached uploads older than `unattached_ttl_secs` (scheduling the deletion of
/// their files like any other deletion) and stale files in the upload directory. Returns
/// how many items were collected. Safe to run on every instance at once.
pub async fn collect_unattached(state: &AppState) -> anyhow::Result<usize> {
    let ttl_ms = state.config.media.unattached_ttl_secs.saturating_mul(1000) as i64;
    let cutoff = Timestamp(Timestamp::now().0 - ttl_ms);
    let mut collected = 0;
    loop {
        let mut tx = state.store.begin().await?;
        let ids = store::unattached_before(tx.ex(), cutoff, 100).await?;
        for id in &ids {
            let variants = store::variants(tx.ex(), &[*id]).await?;
            if store::delete_unattached(tx.ex(), *id).await? {
                schedule_deletion(state, &mut tx, *id, objects_of(&variants)).await?;
                collected += 1;
            }
        }
        state.commit(tx, EventBatch::new()).await?;
        if ids.len() < 100 {
            break;
        }
    }
    let max_age = std::time::Duration::from_secs(state.config.media.unattached_ttl_secs);
    state.media.sweep_uploads(max_age).await?;
    if collected > 0 {
        tracing::info!(collected, "garbage-collected unattached uploads");
    }
    Ok(collected)
}

/// Runs [`collect_unattached`] periodically until `shutdown`: every quarter of the TTL,
/// between once a second and once a minute. Losing a sweep to a restart loses nothing.
pub async fn gc_loop(state: AppState, shutdown: CancellationToken) {
    let secs = (state.config.media.unattached_ttl_secs / 4).clamp(1, 60);
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(secs));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = collect_unattached(&state).await {
            tracing::warn!(error = %format!("{e:#}"), "media garbage collection failed");
        }
    }
}
