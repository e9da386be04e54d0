//! Media as other areas see it: what a post (message, profile) embeds, and the three calls the
//! post use cases make — attach uploads to a new post, read the media of posts, release a
//! deleted post's media for durable deletion.
//!
//! (Uploads, processing and storage backends are implemented by the media area; until then
//! `attach_to_post` refuses non-empty lists and posts have no media.)

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::Id;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::Tx;

/// Image or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// JPEG, PNG, WebP or GIF, re-encoded into variants.
    Image,
    /// MP4, WebM or QuickTime, stored as uploaded.
    Video,
}

/// One stored rendition of a media item.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct Variant {
    /// `thumb`, `feed`, `original`…
    pub name: String,
    /// Where to fetch it.
    pub url: String,
    /// MIME type.
    pub content_type: String,
    /// Pixels.
    pub width: i32,
    /// Pixels.
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

/// Attaches the caller's own ready, unattached uploads to a new post, in the given order,
/// inside the post's transaction. Returns `(has_image, has_video)`. Fails with a
/// `media_ids` field error when an id is unknown, someone else's, not ready, already
/// attached, repeated, or when there are more than 10.
pub async fn attach_to_post(
    _state: &AppState,
    _tx: &mut Tx,
    _owner: Id,
    _post: Id,
    ids: &[Id],
) -> AppResult<(bool, bool)> {
    if ids.is_empty() {
        return Ok((false, false));
    }
    Err(AppError::field("media_ids", "media uploads are not available yet"))
}

/// The media of each post, in attachment order (posts without media are absent).
pub async fn for_posts(_state: &AppState, _posts: &[Id]) -> AppResult<HashMap<Id, Vec<MediaView>>> {
    Ok(HashMap::new())
}

/// Schedules durable deletion of a post's stored media. Call inside the transaction that
/// deletes the post, before deleting it.
pub async fn release_post_media(_state: &AppState, _tx: &mut Tx, _post: Id) -> AppResult<()> {
    Ok(())
}
