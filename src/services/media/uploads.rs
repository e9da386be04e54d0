//! Uploads, reading an item, serving its files, deleting it, the avatar.

use super::*;

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
    // Counted before a byte is read: refusing an upload costs nothing.
    state.limits.write(Write::Upload, owner).await?;
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

/// The URL of variant `name` of a public item (an avatar, a public account's post media),
/// judged as anonymous: `<img>` requests carry no credentials. User summaries point at it
/// (`avatar_url`), so a screen of posts shows every author's avatar without asking for each
/// one's media item first. Anything not public is `404`, as if it did not exist.
pub async fn public_variant_url(state: &AppState, id: Id, name: &str) -> AppResult<String> {
    let mut c = state.store.conn().await?;
    let m = store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if crate::services::access::visible_media(state, None, &m).await? != MediaAudience::Public {
        return Err(AppError::NotFound);
    }
    let mut c = state.store.conn().await?;
    let variants = store::variants(c.ex(), &[id]).await?;
    // (A public item is a ready one: the policy shows nothing else to anyone but its owner.)
    let v = variants.iter().find(|v| v.name == name).ok_or(AppError::NotFound)?;
    Ok(variant_url(state, v, MediaAudience::Public))
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

/// Describes one of the caller's media items, attached or not: the uploader writes the alt
/// text, and it shows wherever the item does. Someone else's item is `403` where the caller
/// may see it, `404` where not (as for deletion).
pub async fn set_alt_text(state: &AppState, me: Id, id: Id, req: UpdateMedia) -> AppResult<MediaDetail> {
    let alt = req.alt_text.trim();
    if alt.chars().count() > MAX_ALT_TEXT {
        return Err(AppError::field("alt_text", format!("must be at most {MAX_ALT_TEXT} characters")));
    }
    let mut c = state.store.conn().await?;
    let m = store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if m.owner_id != me {
        // Seen (`403`) or not (`404`, from the policy).
        crate::services::access::visible_media(state, Some(me), &m).await?;
        return Err(AppError::Forbidden("only the uploader describes a medium"));
    }
    let mut tx = state.store.begin().await?;
    store::set_alt_text(tx.ex(), id, alt, Timestamp::now()).await?;
    state.commit(tx, EventBatch::new()).await?;
    get(state, Some(me), id).await
}

/// Deletes an unattached upload of the caller; its stored files are deleted by a job.
pub async fn delete(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    // Someone else's is judged before any write transaction (no lock held while the policy
    // reads): `403` where the caller may see it, `404` (as if unknown) where not.
    let mut c = state.store.conn().await?;
    let seen = store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if seen.owner_id != me {
        crate::services::access::visible_media(state, Some(me), &seen).await?;
        return Err(AppError::Forbidden("only the uploader can delete a media item"));
    }
    let mut tx = state.store.begin().await?;
    let m = store::lock(tx.ex(), id).await?.ok_or(AppError::NotFound)?;
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
