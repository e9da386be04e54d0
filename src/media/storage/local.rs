//! Local disk storage: objects are files under `{data_dir}/media/{key}`, served by the HTTP
//! edge at `/files/{key}` (with immutable cache headers: a key is never reused for other
//! content).
//!
//! Writes go to a temporary file in the target directory and are renamed into place, so a
//! reader (or a crash) never sees half a file. Keys are made here and checked again on every
//! use: relative, `[A-Za-z0-9._-]` segments, no `..` — a deletion job payload cannot point
//! outside the media directory.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{BackendKind, Put, Source, StoredObject};
use crate::domain::Id;
use crate::media::detect::extension_of;

/// Files under one root directory.
pub struct LocalStorage {
    root: PathBuf,
}

impl LocalStorage {
    /// Storage rooted at `root` (created if missing).
    pub fn new(root: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating media dir {}", root.display()))?;
        Ok(Self { root })
    }

    /// The directory served at `/files/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `{id}-{token}/{name}.{ext}`.
    pub fn key_for(id: Id, token: &str, name: &str, content_type: &str) -> String {
        format!("{id}-{token}/{name}.{}", extension_of(content_type))
    }

    /// The URL path of a key.
    pub fn url_of(key: &str) -> String {
        format!("/files/{key}")
    }

    /// The file of a key, refusing anything that is not a plain relative path.
    pub fn path_of(&self, key: &str) -> anyhow::Result<PathBuf> {
        let ok_chars = key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
        // Every segment non-empty and not starting with a dot: no `..`, no `.`, no hidden
        // (temporary) files, no absolute path.
        let ok_parts = key.split('/').all(|s| !s.is_empty() && !s.starts_with('.'));
        anyhow::ensure!(ok_chars && ok_parts, "invalid local storage key {key:?}");
        Ok(self.root.join(key))
    }

    /// Writes an object (replacing any previous one with the same key).
    pub async fn put(&self, key: &str, src: Source<'_>, content_type: &str) -> anyhow::Result<Put> {
        let path = self.path_of(key)?;
        let dir = path.parent().context("key has a directory")?;
        tokio::fs::create_dir_all(dir).await.with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".tmp-{}", crate::auth::tokens::random_token(8)));
        let written = async {
            match src {
                Source::Bytes(b) => {
                    tokio::fs::write(&tmp, &b).await?;
                }
                Source::File(from) => {
                    // A hard link costs nothing; copy when the upload dir is another filesystem.
                    if tokio::fs::hard_link(from, &tmp).await.is_err() {
                        tokio::fs::copy(from, &tmp).await?;
                    }
                }
            }
            tokio::fs::rename(&tmp, &path).await?;
            tokio::fs::metadata(&path).await.map(|m| m.len())
        }
        .await;
        let bytes = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(anyhow::Error::new(e).context(format!("writing {}", path.display())));
            }
        };
        Ok(Put {
            object: StoredObject {
                backend: BackendKind::Local,
                key: key.to_string(),
                content_type: content_type.into(),
            },
            url: Self::url_of(key),
            bytes,
            width: None,
            height: None,
        })
    }

    /// Removes an object and, when it was the last one, its directory. Missing is fine.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(anyhow::Error::new(e).context(format!("deleting {}", path.display()))),
        }
        if let Some(dir) = path.parent().filter(|d| *d != self.root) {
            // Fails (harmlessly) while other variants are still there.
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        let s = LocalStorage { root: PathBuf::from("/srv/media") };
        assert!(s.path_of("123-abc/thumb.jpg").is_ok());
        for bad in ["", "../etc/passwd", "/etc/passwd", "a/../../b", "a/.hidden", "a\\b", "a b", "a/./b"] {
            assert!(s.path_of(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn put_overwrites_and_delete_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalStorage::new(dir.path().join("media")).unwrap();
        let key = LocalStorage::key_for(Id(7), "tok", "thumb", "image/jpeg");
        assert_eq!(key, "7-tok/thumb.jpg");
        s.put(&key, Source::Bytes(b"one".to_vec()), "image/jpeg").await.unwrap();
        let put = s.put(&key, Source::Bytes(b"second".to_vec()), "image/jpeg").await.unwrap();
        assert_eq!(put.bytes, 6);
        assert_eq!(put.url, "/files/7-tok/thumb.jpg");
        assert_eq!(std::fs::read(s.path_of(&key).unwrap()).unwrap(), b"second");
        s.delete(&key).await.unwrap();
        s.delete(&key).await.unwrap();
        assert!(!dir.path().join("media/7-tok").exists(), "empty directory removed");
    }
}
