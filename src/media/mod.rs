//! Media mechanics: what a file is ([`detect`]), getting it onto disk without holding it in
//! memory ([`upload`]), turning an image into clean variants ([`process`]), and keeping
//! objects in a backend ([`storage`]).
//!
//! Nothing here decides who may upload, see or delete what, or when a status changes:
//! those rules live in `services::media`, which drives these pieces from the request and
//! from the durable jobs. [`Media`] is the per-instance handle kept in
//! [`crate::state::AppState`].
//!
//! # Where files are
//! - `{data_dir}/uploads/{media_id}.upload` — an accepted upload waiting for its
//!   processing job (removed once processed). In a cluster with local storage, the data dir
//!   must be shared, as it must be for serving `/files/…` anyway.
//! - `{data_dir}/media/{key}` — stored objects of the local backend.

pub mod detect;
pub mod process;
pub mod signing;
pub mod storage;
pub mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::domain::Id;
use process::{ProcessLimits, ProcessedImage, Rejected};
use serde::{Deserialize, Serialize};
use storage::Storage;
use utoipa::ToSchema;

/// The media runtime of one instance.
pub struct Media {
    /// Where stored objects go.
    pub storage: Storage,
    /// Decoding limits.
    pub limits: ProcessLimits,
    /// Signs the URLs of local media not everyone may see.
    pub signer: signing::UrlSigner,
    uploads: PathBuf,
    /// Bounds how many images are decoded at once, hence peak memory: each decode may use
    /// up to `limits.max_alloc`, whatever the job concurrency.
    cpu: Arc<Semaphore>,
}

impl Media {
    /// Sets up the upload directory and the storage backends.
    pub fn new(cfg: &Config, secret: &[u8]) -> anyhow::Result<Self> {
        let uploads = cfg.data_dir.join("uploads");
        std::fs::create_dir_all(&uploads).with_context(|| format!("creating {}", uploads.display()))?;
        let parallel = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).clamp(1, 2);
        Ok(Self {
            storage: Storage::from_config(cfg)?,
            limits: ProcessLimits::for_pixels(cfg.media.max_pixels),
            signer: signing::UrlSigner::new(secret, cfg.media.signed_url_ttl_secs),
            uploads,
            cpu: Arc::new(Semaphore::new(parallel)),
        })
    }

    /// Directory of uploads waiting to be processed (and of in-flight spools).
    pub fn uploads_dir(&self) -> &Path {
        &self.uploads
    }

    /// Where the upload of media `id` waits for processing.
    pub fn upload_path(&self, id: Id) -> PathBuf {
        self.uploads.join(format!("{id}.upload"))
    }

    /// Reads and processes an image file on the blocking pool, at most a few at a time.
    /// `Ok(Err(_))` is a file we refuse (with the reason); `Err(_)` an I/O problem worth a
    /// retry. A panic inside a decoder is a refusal, not a crash.
    pub async fn process_image_file(
        &self,
        path: &Path,
        mime: &str,
    ) -> std::io::Result<Result<ProcessedImage, Rejected>> {
        let _permit = self.cpu.acquire().await.expect("semaphore never closed");
        let (path, mime, limits) = (path.to_path_buf(), mime.to_string(), self.limits);
        let task = tokio::task::spawn_blocking(move || {
            let data = std::fs::read(&path)?;
            Ok(process::process_image(&data, &mime, limits))
        });
        match task.await {
            Ok(r) => r,
            Err(e) if e.is_panic() => {
                tracing::error!(error = %e, "image decoder panicked");
                Ok(Err(Rejected("the image could not be decoded".into())))
            }
            Err(e) => Err(std::io::Error::other(e)),
        }
    }

    /// Removes leftover files in the upload directory older than `max_age`: spools of
    /// interrupted requests and uploads whose item was deleted before processing.
    pub async fn sweep_uploads(&self, max_age: std::time::Duration) -> std::io::Result<usize> {
        let mut removed = 0;
        let mut dir = tokio::fs::read_dir(&self.uploads).await?;
        let now = std::time::SystemTime::now();
        while let Some(entry) = dir.next_entry().await? {
            let Ok(meta) = entry.metadata().await else { continue };
            let old = meta.modified().ok().and_then(|m| now.duration_since(m).ok()).is_some_and(|age| age > max_age);
            if meta.is_file() && old && tokio::fs::remove_file(entry.path()).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Image or video.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// JPEG, PNG, WebP or GIF, re-encoded into variants.
    Image,
    /// MP4, WebM or QuickTime, stored as uploaded.
    Video,
}

impl MediaKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
        }
    }

    /// Parses a stored name (anything unknown reads as an image).
    pub fn parse(s: &str) -> Self {
        if s == "video" { Self::Video } else { Self::Image }
    }
}
