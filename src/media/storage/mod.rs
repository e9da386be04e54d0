//! Where stored media objects live: local disk (the default) or Cloudinary (when
//! `CLOUDINARY_URL` is set), behind one [`Storage`] handle.
//!
//! New objects go to the *active* backend. Every stored object remembers its backend
//! ([`StoredObject::backend`], a column of `media_variants` and part of each deletion job),
//! so objects written before a deployment switched to Cloudinary are still deleted from
//! disk, and a deletion job needs no database row to know what to remove.
//!
//! Both backends are idempotent where the jobs need it: putting the same key twice
//! overwrites, deleting a missing object succeeds.

pub mod cloudinary;
pub mod local;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::domain::Id;

pub use cloudinary::CloudinaryStorage;
pub use local::LocalStorage;

/// A storage backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Files under `{data_dir}/media`, served at `/files/…`.
    Local,
    /// Cloudinary's upload API and CDN.
    Cloudinary,
}

impl BackendKind {
    /// Name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Cloudinary => "cloudinary",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "local" => Some(Self::Local),
            "cloudinary" => Some(Self::Cloudinary),
            _ => None,
        }
    }
}

/// One object in a backend: enough to delete it without any other state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredObject {
    /// Which backend holds it.
    pub backend: BackendKind,
    /// Its key there (a relative path, or a Cloudinary `public_id`).
    pub key: String,
    /// Its MIME type (Cloudinary files images and videos under different resource types).
    pub content_type: String,
}

/// What to store.
pub enum Source<'a> {
    /// Bytes in memory (image variants are small).
    Bytes(Vec<u8>),
    /// A file on disk (videos, stored as uploaded; streamed, never read whole).
    File(&'a Path),
}

/// The outcome of a put.
#[derive(Clone, Debug)]
pub struct Put {
    /// The stored object.
    pub object: StoredObject,
    /// Where clients fetch it: `/files/…` for local objects (made absolute with the public
    /// URL when shown), the CDN URL for Cloudinary.
    pub url: String,
    /// Size stored.
    pub bytes: u64,
    /// Pixels, when the backend measured them (Cloudinary does, also for videos).
    pub width: Option<u32>,
    /// Pixels, when the backend measured them.
    pub height: Option<u32>,
}

/// The media storage of an instance.
pub struct Storage {
    local: LocalStorage,
    cloudinary: Option<CloudinaryStorage>,
}

impl Storage {
    /// Local storage under `{data_dir}/media`, plus Cloudinary when `cloudinary_url` is set
    /// (then new objects go there).
    pub fn from_config(cfg: &Config) -> anyhow::Result<Self> {
        let local = LocalStorage::new(cfg.data_dir.join("media"))?;
        let cloudinary = match &cfg.cloudinary_url {
            Some(url) => Some(CloudinaryStorage::with_delivery(
                url,
                &cfg.cloudinary_api_base,
                &cfg.cloudinary_delivery_base,
                cfg.cloudinary_auth_token_key.as_deref(),
            )?),
            None => None,
        };
        Ok(Self { local, cloudinary })
    }

    /// Where new objects go.
    pub fn active(&self) -> BackendKind {
        if self.cloudinary.is_some() { BackendKind::Cloudinary } else { BackendKind::Local }
    }

    /// The Cloudinary backend, when configured (builds delivery URLs).
    pub fn cloudinary(&self) -> Option<&CloudinaryStorage> {
        self.cloudinary.as_ref()
    }

    /// The local backend (also serves `/files/…`).
    pub fn local(&self) -> &LocalStorage {
        &self.local
    }

    /// The key of variant `name` of media `id` in the active backend. `token` is random per
    /// upload, so URLs cannot be guessed from ids.
    pub fn key_for(&self, id: Id, token: &str, name: &str, content_type: &str) -> String {
        match &self.cloudinary {
            Some(_) => CloudinaryStorage::key_for(id, token, name),
            None => LocalStorage::key_for(id, token, name, content_type),
        }
    }

    /// The URL of a key before it is stored, when the backend can tell (`None` for
    /// Cloudinary, whose URL comes back from the upload).
    pub fn planned_url(&self, key: &str) -> Option<String> {
        match &self.cloudinary {
            Some(_) => None,
            None => Some(LocalStorage::url_of(key)),
        }
    }

    /// Stores `src` under `key` in the active backend (overwriting).
    pub async fn put(&self, key: &str, src: Source<'_>, content_type: &str) -> anyhow::Result<Put> {
        match &self.cloudinary {
            Some(c) => c.put(key, src, content_type).await,
            None => self.local.put(key, src, content_type).await,
        }
    }

    /// Deletes an object from its backend. Deleting a missing object succeeds.
    pub async fn delete(&self, obj: &StoredObject) -> anyhow::Result<()> {
        match obj.backend {
            BackendKind::Local => self.local.delete(&obj.key).await,
            BackendKind::Cloudinary => match &self.cloudinary {
                Some(c) => c.delete(&obj.key, &obj.content_type).await,
                // Keep the job (it retries, then dead-letters for an operator) rather than
                // forget an object we can no longer reach.
                None => anyhow::bail!("object {} is in Cloudinary but CLOUDINARY_URL is not set", obj.key),
            },
        }
    }
}
