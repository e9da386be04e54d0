//! Job handlers (processing, durable deletion) and the garbage collector of unattached uploads.

use super::*;

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
