//! Job payloads: plain data beside the job queue, so that the services that enqueue a job
//! and the ones that handle it need not depend on each other (posts enqueue the feed's
//! fan-out; the feed builds post views). Handlers live with their services (`run_*`).

use serde::{Deserialize, Serialize};

use super::Job;
use crate::domain::Id;
use crate::mail::Mail;
use crate::media::storage::StoredObject;

/// What happened to a post, for [`FanOutPost`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostChange {
    /// New: timelines and `post.created`.
    Created,
    /// Caption edited: `post.updated`.
    Updated,
    /// Deleted: `post.deleted` (and Redis timelines cleaned).
    Deleted,
}

/// Job: carry a post change to the author's followers' timelines and `feed` topics.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FanOutPost {
    /// The post.
    pub post: Id,
    /// Its author.
    pub author: Id,
    /// What happened.
    pub change: PostChange,
}

impl Job for FanOutPost {
    const KIND: &'static str = "fan_out_post";
}

/// Job: bring `user`'s timeline in line with a follow of `author` that began (`follow`:
/// backfill recent posts) or ended (prune them).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SyncTimeline {
    /// Whose timeline.
    pub user: Id,
    /// Whose posts.
    pub author: Id,
    /// `true`: the follow became active; `false`: it ended.
    pub follow: bool,
}

impl Job for SyncTimeline {
    const KIND: &'static str = "sync_timeline";
}

/// Job: `author` is back at or below the fan-out threshold; copy the posts fan-out skipped
/// into their followers' timelines (see `services::feed::follower_removed`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BackfillFollowers {
    /// The account.
    pub author: Id,
}

impl Job for BackfillFollowers {
    const KIND: &'static str = "backfill_followers";
}

/// Job: turn an upload into stored variants (or a failure with a reason).
#[derive(Debug, Serialize, Deserialize)]
pub struct ProcessMedia {
    /// The item.
    pub media_id: Id,
    /// Random part of its storage keys, fixed at upload so that retries overwrite the same
    /// objects instead of leaving copies.
    pub token: String,
}

impl Job for ProcessMedia {
    const KIND: &'static str = "process_media";
}

/// Job: delete stored objects from their backends. Carries everything it needs, because
/// the rows are gone by the time it runs.
#[derive(Debug, Serialize, Deserialize)]
pub struct DeleteStoredMedia {
    /// The (deleted) item, for logs.
    pub media_id: Id,
    /// Every object to remove.
    pub objects: Vec<StoredObject>,
}

impl Job for DeleteStoredMedia {
    const KIND: &'static str = "delete_stored_media";
}

/// Job: send an e-mail.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendEmail(pub Mail);

impl Job for SendEmail {
    const KIND: &'static str = "send_email";
}
