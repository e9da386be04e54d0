//! Spooling an upload to disk: the request body is streamed to a temporary file chunk by
//! chunk — never held whole in memory — while its type is sniffed from the first bytes and
//! its size checked against the limit for that type. An unsupported type is refused after
//! the first few bytes and an oversized file as soon as it crosses the limit, without
//! reading the rest.
//!
//! The temporary file deletes itself when dropped, so every early return (and a client
//! that disconnects mid-upload, which drops this future) leaves nothing behind.

use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tempfile::TempPath;
use tokio::io::AsyncWriteExt;

use super::detect::{self, Detected, SNIFF_BYTES};
use crate::error::{AppError, AppResult};

/// An upload safely on disk.
pub struct Spooled {
    /// The temporary file (deleted on drop unless persisted).
    pub path: TempPath,
    /// Its type, from its content.
    pub detected: Detected,
    /// Its size.
    pub bytes: u64,
}

impl Spooled {
    /// Moves the file to `to` (same filesystem), keeping it.
    pub fn persist(self, to: &Path) -> std::io::Result<()> {
        self.path.persist(to).map_err(|e| e.error)
    }
}

/// Streams `chunks` into a new temporary file in `dir`. `limit_of` gives the largest size
/// allowed for the detected type and how to name that type in the 413 message.
pub async fn spool<S>(dir: &Path, chunks: S, limit_of: impl Fn(&Detected) -> (u64, String)) -> AppResult<Spooled>
where
    S: Stream<Item = AppResult<Bytes>>,
{
    let io = |e: std::io::Error| AppError::Internal(anyhow::Error::new(e).context("spooling an upload"));
    let tmp = tempfile::Builder::new().prefix(".spool-").tempfile_in(dir).map_err(io)?;
    let (file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(file);
    let mut chunks = std::pin::pin!(chunks);

    let mut head: Vec<u8> = Vec::with_capacity(SNIFF_BYTES);
    let mut detected: Option<(Detected, u64, String)> = None;
    let mut total: u64 = 0;
    loop {
        let chunk = chunks.next().await.transpose()?;
        let done = chunk.is_none();
        if let Some(c) = &chunk {
            total += c.len() as u64;
        }
        if detected.is_none() {
            if let Some(c) = &chunk {
                head.extend_from_slice(c);
            }
            if head.len() < SNIFF_BYTES && !done {
                continue;
            }
            if head.is_empty() {
                return Err(AppError::field("file", "is empty"));
            }
            let d = detect::sniff(&head).ok_or_else(|| {
                AppError::UnsupportedMediaType(
                    "unsupported file type: upload a JPEG, PNG, WebP or GIF image, or an MP4, WebM or QuickTime video"
                        .into(),
                )
            })?;
            let (limit, what) = limit_of(&d);
            if total > limit {
                return Err(too_large(limit, &what));
            }
            detected = Some((d, limit, what));
            file.write_all(&head).await.map_err(io)?;
            head = Vec::new();
        } else if let (Some(c), Some((_, limit, what))) = (&chunk, &detected) {
            if total > *limit {
                return Err(too_large(*limit, what));
            }
            file.write_all(c).await.map_err(io)?;
        }
        if done {
            break;
        }
    }
    file.flush().await.map_err(io)?;
    file.sync_data().await.map_err(io)?;
    let (detected, _, _) = detected.expect("set before the stream ended");
    Ok(Spooled { path, detected, bytes: total })
}

fn too_large(limit: u64, what: &str) -> AppError {
    AppError::PayloadTooLarge(format!("{what} may be at most {}", human_bytes(limit)))
}

/// `10 MiB`, `512 KiB`, `300 bytes`.
pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: Vec<&'static [u8]>) -> impl Stream<Item = AppResult<Bytes>> {
        futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p))))
    }

    fn limit(_: &Detected) -> (u64, String) {
        (100, "an image".into())
    }

    #[tokio::test]
    async fn spools_in_pieces_and_detects_across_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let s = spool(dir.path(), chunks(vec![&png[..3], &png[3..], b"rest"]), limit).await.unwrap();
        assert_eq!(s.detected.mime, "image/png");
        assert_eq!(s.bytes, png.len() as u64 + 4);
        assert_eq!(std::fs::read(&s.path).unwrap(), [&png[..], b"rest"].concat());
    }

    #[tokio::test]
    async fn refuses_unknown_types_and_oversized_files_leaving_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = spool(dir.path(), chunks(vec![b"just some text, named .png"]), limit).await.err().unwrap();
        assert_eq!(e.status(), 415);
        let big: &'static [u8] = Box::leak(vec![0u8; 80].into_boxed_slice());
        let e = spool(dir.path(), chunks(vec![b"GIF89a", big, big]), limit).await.err().unwrap();
        assert_eq!(e.status(), 413);
        let e = spool(dir.path(), chunks(vec![]), limit).await.err().unwrap();
        assert_eq!(e.status(), 422);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temporary files removed");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(10 << 20), "10 MiB");
        assert_eq!(human_bytes(256 << 10), "256 KiB");
        assert_eq!(human_bytes(1000), "1000 bytes");
    }
}
