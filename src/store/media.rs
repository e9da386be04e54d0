//! Media items, their stored variants and their attachment to posts.
//!
//! Status transitions are conditional updates (`WHERE status = 'processing'`,
//! `WHERE attached_to IS NULL`) that report whether they applied, so a job racing a user's
//! deletion, or two attaches racing each other, find out instead of overwriting. Which
//! transitions are allowed, and for whom, is decided by `services::media`.

use sqlx::FromRow;

use super::{Backend, Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `media` row.
#[derive(Clone, Debug, FromRow)]
pub struct MediaRow {
    /// Id.
    pub id: Id,
    /// Uploader.
    pub owner_id: Id,
    /// `image` or `video`.
    pub kind: String,
    /// `processing`, `ready` or `failed`.
    pub status: String,
    /// Detected MIME type of the upload.
    pub mime: String,
    /// Uploaded size.
    pub bytes: i64,
    /// Pixels as displayed, once known.
    pub width: Option<i32>,
    /// Pixels as displayed, once known.
    pub height: Option<i32>,
    /// Blurhash.
    pub placeholder: Option<String>,
    /// Why processing failed.
    pub failure: Option<String>,
    /// `post`, `avatar`, `message`, or `None` while unattached.
    pub attached_to: Option<String>,
    /// The uploader's description for people who cannot see it (empty when none).
    pub alt_text: String,
    /// Uploaded.
    pub created_at: Timestamp,
    /// Last change.
    pub updated_at: Timestamp,
}

const COLS: &str = "id, owner_id, kind, status, mime, bytes, width, height, placeholder, failure, attached_to, \
                    alt_text, created_at, updated_at";

/// A `media_variants` row.
#[derive(Clone, Debug, FromRow)]
pub struct VariantRow {
    /// The media item.
    pub media_id: Id,
    /// `thumb`, `feed`, `original`.
    pub name: String,
    /// `local` or `cloudinary`.
    pub backend: String,
    /// Key in that backend.
    pub storage_key: String,
    /// URL (`/files/…` for local objects).
    pub url: String,
    /// MIME type.
    pub content_type: String,
    /// Pixels (0 when unknown, e.g. a video on local disk).
    pub width: i32,
    /// Pixels (0 when unknown).
    pub height: i32,
    /// Stored size.
    pub bytes: i64,
}

/// A media row with the post it is attached to.
#[derive(Clone, Debug, FromRow)]
pub struct PostMediaRow {
    /// The post.
    pub post_id: Id,
    /// The media item.
    #[sqlx(flatten)]
    pub media: MediaRow,
}

/// Values of a new upload.
pub struct NewMedia<'a> {
    /// Id.
    pub id: Id,
    /// Uploader.
    pub owner: Id,
    /// `image` or `video`.
    pub kind: &'a str,
    /// Detected MIME type.
    pub mime: &'a str,
    /// Uploaded size.
    pub bytes: i64,
    /// Upload time.
    pub now: Timestamp,
}

/// `FOR UPDATE` on PostgreSQL; SQLite write transactions are exclusive already.
fn lock_clause(ex: &Ex<'_>) -> &'static str {
    match ex.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    }
}

/// Ids are integers we produced: inlining them keeps one SQL text for both backends
/// (PostgreSQL's `= ANY($1)` has no SQLite equivalent).
fn id_list(ids: &[Id]) -> String {
    ids.iter().map(|i| i.0.to_string()).collect::<Vec<_>>().join(",")
}

/// Inserts an upload in state `processing`.
pub async fn insert(ex: Ex<'_>, m: &NewMedia<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO media (id, owner_id, kind, status, mime, bytes, created_at, updated_at) \
               VALUES ($1, $2, $3, 'processing', $4, $5, $6, $6)";
    exec!(ex, c => sqlx::query(sql).bind(m.id).bind(m.owner).bind(m.kind).bind(m.mime).bind(m.bytes).bind(m.now)
        .execute(c).await)?;
    Ok(())
}

/// Sets an item's description.
pub async fn set_alt_text(ex: Ex<'_>, id: Id, alt: &str, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE media SET alt_text = $2, updated_at = $3 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(alt).bind(now).execute(c).await)?;
    Ok(())
}

/// A media item by id.
pub async fn get(ex: Ex<'_>, id: Id) -> StoreResult<Option<MediaRow>> {
    let sql = format!("SELECT {COLS} FROM media WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, MediaRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// A media item by id, locked until the transaction ends (PostgreSQL).
pub async fn lock(ex: Ex<'_>, id: Id) -> StoreResult<Option<MediaRow>> {
    let sql = format!("SELECT {COLS} FROM media WHERE id = $1{}", lock_clause(&ex));
    Ok(run!(ex, c => sqlx::query_as::<_, MediaRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// Several media items, locked until the transaction ends (PostgreSQL), in no order.
pub async fn lock_many(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<MediaRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLS} FROM media WHERE id IN ({}) ORDER BY id{}", id_list(ids), lock_clause(&ex));
    Ok(run!(ex, c => sqlx::query_as::<_, MediaRow>(&sql).fetch_all(c).await)?)
}

/// Several media items, in no order.
pub async fn get_many(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<MediaRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLS} FROM media WHERE id IN ({})", id_list(ids));
    Ok(run!(ex, c => sqlx::query_as::<_, MediaRow>(&sql).fetch_all(c).await)?)
}

/// The variants of several media items.
pub async fn variants(ex: Ex<'_>, media: &[Id]) -> StoreResult<Vec<VariantRow>> {
    if media.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT media_id, name, backend, storage_key, url, content_type, width, height, bytes \
         FROM media_variants WHERE media_id IN ({}) ORDER BY media_id, width * height, name",
        id_list(media)
    );
    Ok(run!(ex, c => sqlx::query_as::<_, VariantRow>(&sql).fetch_all(c).await)?)
}

/// Inserts or replaces a variant.
pub async fn upsert_variant(ex: Ex<'_>, v: &VariantRow) -> StoreResult<()> {
    let sql = "INSERT INTO media_variants (media_id, name, backend, storage_key, url, content_type, width, height, bytes) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
               ON CONFLICT (media_id, name) DO UPDATE SET backend = excluded.backend, \
                 storage_key = excluded.storage_key, url = excluded.url, content_type = excluded.content_type, \
                 width = excluded.width, height = excluded.height, bytes = excluded.bytes";
    exec!(ex, c => sqlx::query(sql)
        .bind(v.media_id).bind(&v.name).bind(&v.backend).bind(&v.storage_key).bind(&v.url)
        .bind(&v.content_type).bind(v.width).bind(v.height).bind(v.bytes)
        .execute(c).await)?;
    Ok(())
}

/// `processing → ready`; false when the item is gone or no longer processing.
pub async fn mark_ready(
    ex: Ex<'_>,
    id: Id,
    size: Option<(i32, i32)>,
    placeholder: Option<&str>,
    now: Timestamp,
) -> StoreResult<bool> {
    let sql = "UPDATE media SET status = 'ready', width = $2, height = $3, placeholder = $4, updated_at = $5 \
               WHERE id = $1 AND status = 'processing'";
    let n = exec!(ex, c => sqlx::query(sql)
        .bind(id).bind(size.map(|s| s.0)).bind(size.map(|s| s.1)).bind(placeholder).bind(now)
        .execute(c).await)?;
    Ok(n == 1)
}

/// `processing → failed` with a reason; false when the item is gone or no longer processing.
pub async fn mark_failed(ex: Ex<'_>, id: Id, reason: &str, now: Timestamp) -> StoreResult<bool> {
    let sql =
        "UPDATE media SET status = 'failed', failure = $2, updated_at = $3 WHERE id = $1 AND status = 'processing'";
    let n = exec!(ex, c => sqlx::query(sql).bind(id).bind(reason).bind(now).execute(c).await)?;
    Ok(n == 1)
}

/// Deletes a media item (its variants go with it).
pub async fn delete(ex: Ex<'_>, id: Id) -> StoreResult<bool> {
    let n = exec!(ex, c => sqlx::query("DELETE FROM media WHERE id = $1").bind(id).execute(c).await)?;
    Ok(n == 1)
}

/// Deletes a media item only if it is still unattached (the garbage collector's delete).
pub async fn delete_unattached(ex: Ex<'_>, id: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM media WHERE id = $1 AND attached_to IS NULL";
    let n = exec!(ex, c => sqlx::query(sql).bind(id).execute(c).await)?;
    Ok(n == 1)
}

/// Marks ready, unattached items as attached to `to`; returns how many were.
pub async fn attach(ex: Ex<'_>, ids: &[Id], to: &str, now: Timestamp) -> StoreResult<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "UPDATE media SET attached_to = $1, updated_at = $2 \
         WHERE id IN ({}) AND attached_to IS NULL AND status = 'ready'",
        id_list(ids)
    );
    Ok(exec!(ex, c => sqlx::query(&sql).bind(to).bind(now).execute(c).await)?)
}

/// Records a post's media at `position`.
pub async fn insert_post_media(ex: Ex<'_>, post: Id, media: Id, position: i32) -> StoreResult<()> {
    let sql = "INSERT INTO post_media (post_id, media_id, position) VALUES ($1, $2, $3)";
    exec!(ex, c => sqlx::query(sql).bind(post).bind(media).bind(position).execute(c).await)?;
    Ok(())
}

/// Removes a post's media links; returns the media ids, in position order.
pub async fn take_post_media(ex: Ex<'_>, post: Id) -> StoreResult<Vec<Id>> {
    let sql = "DELETE FROM post_media WHERE post_id = $1 RETURNING media_id, position";
    let mut rows: Vec<(Id, i32)> = run!(ex, c => sqlx::query_as(sql).bind(post).fetch_all(c).await)?;
    rows.sort_by_key(|r| r.1);
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// The media of several posts, by post then position.
pub async fn for_posts(ex: Ex<'_>, posts: &[Id]) -> StoreResult<Vec<PostMediaRow>> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let cols = COLS.split(", ").map(|c| format!("m.{}", c.trim())).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT pm.post_id, {cols} FROM post_media pm JOIN media m ON m.id = pm.media_id \
         WHERE pm.post_id IN ({}) ORDER BY pm.post_id, pm.position",
        id_list(posts)
    );
    Ok(run!(ex, c => sqlx::query_as::<_, PostMediaRow>(&sql).fetch_all(c).await)?)
}

/// Up to `limit` unattached items uploaded before `cutoff`, oldest first. On PostgreSQL the
/// rows are locked and rows another instance's sweep holds are skipped.
pub async fn unattached_before(ex: Ex<'_>, cutoff: Timestamp, limit: i64) -> StoreResult<Vec<Id>> {
    let lock = match ex.backend() {
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        Backend::Sqlite => "",
    };
    let sql = format!(
        "SELECT id FROM media WHERE attached_to IS NULL AND created_at < $1 ORDER BY created_at LIMIT $2{lock}"
    );
    Ok(run!(ex, c => sqlx::query_scalar::<_, Id>(&sql).bind(cutoff).bind(limit).fetch_all(c).await)?)
}

/// What an item is attached to, for deciding who may see it: the post holding it, or the
/// conversation of the message holding it (`None` when neither link exists). One query.
pub async fn holder(ex: Ex<'_>, media: Id) -> StoreResult<Holder> {
    let sql = "SELECT TRUE, post_id FROM post_media WHERE media_id = $1 \
               UNION ALL SELECT FALSE, m.conversation_id FROM message_media mm \
               JOIN messages m ON m.id = mm.message_id WHERE mm.media_id = $1";
    let row: Option<(bool, Id)> = run!(ex, c => sqlx::query_as(sql).bind(media).fetch_optional(c).await)?;
    Ok(match row {
        Some((true, post)) => Holder::Post(post),
        Some((false, conv)) => Holder::Conversation(conv),
        None => Holder::None,
    })
}

/// See [`holder`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    /// A post's media.
    Post(Id),
    /// A chat message's media, in this conversation.
    Conversation(Id),
    /// Not linked to a post or message.
    None,
}

/// Unlinks a media item from any post or message still holding it.
pub async fn take_post_media_of(mut ex: Ex<'_>, media: Id) -> StoreResult<()> {
    exec!(ex.reborrow(), c => sqlx::query("DELETE FROM post_media WHERE media_id = $1").bind(media).execute(c).await)?;
    exec!(ex, c => sqlx::query("DELETE FROM message_media WHERE media_id = $1").bind(media).execute(c).await)?;
    Ok(())
}
