//! Data exports: everything an account holds, as a ZIP its owner downloads.
//!
//! `POST /users/me/export` records the request and enqueues a durable job in one
//! transaction. The job ([`run_export`]) writes `exports/{id}.zip` in the data directory —
//! `profile.json`, `posts.json`, `comments.json`, `reactions.json`, `follows.json`,
//! `conversations.json` (each with its messages) and `media/` (each upload's stored file) —
//! to a temporary name first and renames it when complete, so a killed job leaves no
//! half-written export behind (the job runs again). Then it marks the export ready and
//! notifies the owner (`export_ready`) in one transaction. The file is the owner's alone
//! (`GET /users/me/exports/{id}/download` with their token) until it expires
//! (`EXPORT_TTL_SECS`), after which it is deleted when next asked for.
//!
//! In a cluster the data directory must be shared by the instances (as for local media).

use std::io::Write as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::EventBatch;
use crate::jobs::{self, Job};
use crate::pagination::PageQuery;
use crate::ratelimit::Bucket;
use crate::services::chat::{self, HistoryQuery};
use crate::services::{comments, media, notifications, posts, users};
use crate::state::AppState;
use crate::store::exports::{self as store, ExportRow};
use crate::store::{comments as comment_store, erasure, posts as post_store, users as user_store};

/// How long a ready export can be downloaded.
pub const EXPORT_TTL_SECS: i64 = 7 * 24 * 3600;

/// Job: write one export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportAccount {
    /// The export.
    pub export: Id,
    /// Whose.
    pub user: Id,
}

impl Job for ExportAccount {
    const KIND: &'static str = "export_account";
}

/// An export as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    /// Id.
    pub id: Id,
    /// `pending` (being written) or `ready`.
    pub status: String,
    /// ZIP size in bytes, once ready.
    pub bytes: Option<i64>,
    /// Asked.
    pub created_at: Timestamp,
    /// Downloadable until.
    pub expires_at: Option<Timestamp>,
    /// Where to download it (with the owner's bearer token), once ready.
    pub download_url: Option<String>,
}

fn view(r: ExportRow) -> ExportView {
    let ready = r.status == "ready";
    ExportView {
        download_url: ready.then(|| format!("/api/v1/users/me/exports/{}/download", r.id)),
        id: r.id,
        status: r.status,
        bytes: r.bytes,
        created_at: r.created_at,
        expires_at: r.expires_at,
    }
}

fn dir(state: &AppState) -> PathBuf {
    state.config.data_dir.join("exports")
}

fn file_of(state: &AppState, id: Id) -> PathBuf {
    dir(state).join(format!("{id}.zip"))
}

/// Asks for an export of my data (limited per account; one at a time: `409` while one is
/// being written).
pub async fn request(state: &AppState, me: Id) -> AppResult<ExportView> {
    state.limits.check(Bucket::AuthAccount, &format!("export:{me}")).await?;
    let mut tx = state.store.begin().await?;
    if store::pending_of(tx.ex(), me).await?.is_some() {
        return Err(AppError::conflict("an export is being written already"));
    }
    let id = state.ids.next();
    store::insert(tx.ex(), id, me, Timestamp::now()).await?;
    jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &ExportAccount { export: id, user: me }).await?;
    let row = store::get(tx.ex(), me, id).await?.ok_or(AppError::NotFound)?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(view(row))
}

/// One of my exports; an expired one is deleted (file and row) and is a `404` from then on.
async fn live(state: &AppState, me: Id, id: Id) -> AppResult<ExportRow> {
    let mut c = state.store.conn().await?;
    let row = store::get(c.ex(), me, id).await?.ok_or(AppError::NotFound)?;
    if row.expires_at.is_some_and(|e| e.0 <= Timestamp::now().0) {
        let _ = tokio::fs::remove_file(file_of(state, id)).await;
        store::delete(c.ex(), id).await?;
        return Err(AppError::NotFound);
    }
    Ok(row)
}

/// One of my exports.
pub async fn get(state: &AppState, me: Id, id: Id) -> AppResult<ExportView> {
    Ok(view(live(state, me, id).await?))
}

/// The ZIP of one of my ready exports.
pub async fn download(state: &AppState, me: Id, id: Id) -> AppResult<Vec<u8>> {
    let row = live(state, me, id).await?;
    if row.status != "ready" {
        return Err(AppError::conflict("the export is not ready yet"));
    }
    tokio::fs::read(file_of(state, id)).await.map_err(|e| AppError::Internal(e.into()))
}

/// Deletes the files of `user`'s exports (an erased account); the rows go with its other rows.
pub async fn delete_files_of(state: &AppState, user: Id) -> AppResult<()> {
    let mut c = state.store.conn().await?;
    for r in store::all_of(c.ex(), user).await? {
        let _ = tokio::fs::remove_file(file_of(state, r.id)).await;
    }
    Ok(())
}

fn pretty(v: &impl Serialize) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec_pretty(v)?)
}

/// Everything the account holds, as the files of the ZIP.
async fn collect(state: &AppState, user: Id) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let me = Some(user);
    let mut files = Vec::new();
    files.push(("profile.json".to_string(), pretty(&users::me(state, user).await?)?));

    let mut c = state.store.conn().await?;
    let post_ids = erasure::post_ids(c.ex(), user, i64::MAX).await?;
    let comment_ids: Vec<Id> =
        erasure::comment_ids(c.ex(), user, i64::MAX).await?.into_iter().map(|(id, _)| id).collect();
    let reactions = store::reactions(c.ex(), user).await?;
    let follows = store::follows(c.ex(), user).await?;
    let media_ids = store::media_ids(c.ex(), user).await?;
    let mut post_rows = Vec::new();
    for chunk in post_ids.chunks(200) {
        post_rows.extend(post_store::get_many(c.ex(), chunk).await?);
    }
    let mut comment_rows = Vec::new();
    for chunk in comment_ids.chunks(200) {
        comment_rows.extend(comment_store::get_many(c.ex(), chunk).await?);
    }
    let mut people: Vec<Id> = follows.iter().flat_map(|f| [f.0, f.1]).filter(|u| *u != user).collect();
    people.sort_unstable();
    people.dedup();
    let names: std::collections::HashMap<Id, String> =
        user_store::get_many(c.ex(), &people).await?.into_iter().map(|u| (u.id, u.username)).collect();
    drop(c);

    files.push(("posts.json".into(), pretty(&posts::views(state, me, post_rows).await?)?));
    files.push(("comments.json".into(), pretty(&comments::views(state, me, comment_rows).await?)?));
    let reactions: Vec<Value> = reactions
        .into_iter()
        .map(|(target, id, kind, at)| json!({"target_type": target, "target_id": id, "type": kind, "created_at": at}))
        .collect();
    files.push(("reactions.json".into(), pretty(&reactions)?));
    let entry = |other: Id, status: &str, at: Timestamp| json!({"user_id": other, "username": names.get(&other), "status": status, "since": at});
    let following: Vec<Value> = follows.iter().filter(|f| f.0 == user).map(|f| entry(f.1, &f.2, f.3)).collect();
    let followers: Vec<Value> = follows.iter().filter(|f| f.1 == user).map(|f| entry(f.0, &f.2, f.3)).collect();
    files.push(("follows.json".into(), pretty(&json!({"following": following, "followers": followers}))?));

    // Conversations, each with its whole history as the member reads it.
    let mut conversations = Vec::new();
    let mut cursor = None;
    loop {
        let page = chat::list(state, user, &PageQuery { cursor, limit: Some(100) }).await?;
        for conv in page.items {
            let mut messages = Vec::new();
            let mut before = None;
            loop {
                let q = HistoryQuery { before, after: None, limit: Some(100) };
                let h = chat::history(state, user, conv.id, &q).await?;
                messages.extend(h.items);
                // The cursor moves past messages a page left out (a hidden sender's).
                match h.next_cursor.and_then(|c| c.parse::<Id>().ok()) {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
            messages.reverse(); // oldest first
            conversations.push(json!({"conversation": conv, "messages": messages}));
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    files.push(("conversations.json".into(), pretty(&conversations)?));

    let mut missing = Vec::new();
    for id in media_ids {
        match media::stored_original(state, id).await {
            Ok(Some((name, bytes))) => files.push((format!("media/{name}"), bytes)),
            Ok(None) => {}
            // One unreadable file does not cost the whole export: it is listed instead.
            Err(e) => {
                tracing::warn!(media = %id, error = %format!("{e:#}"), "export: a stored file could not be read");
                missing.push(id);
            }
        }
    }
    if !missing.is_empty() {
        files.push(("media/missing.json".into(), pretty(&missing)?));
    }
    let readme = "Your Chorus data: profile.json (your account and settings), posts.json, comments.json, \
                  reactions.json, follows.json (who you follow and who follows you), conversations.json (each \
                  conversation with its messages, oldest first) and media/ (the files you uploaded, as stored).\n";
    files.push(("README.txt".into(), readme.as_bytes().to_vec()));
    Ok(files)
}

/// Runs an [`ExportAccount`] job (see the module doc).
pub async fn run_export(state: AppState, job: ExportAccount) -> anyhow::Result<()> {
    let mut c = state.store.conn().await?;
    let Some(row) = store::get(c.ex(), job.user, job.export).await? else { return Ok(()) };
    drop(c);
    if row.status == "ready" {
        return Ok(());
    }
    let mut c = state.store.conn().await?;
    let deleted = user_store::get(c.ex(), job.user).await?.is_none_or(|u| u.deleted_at.is_some());
    drop(c);
    if deleted {
        return Ok(()); // the erasure takes the row; nothing is written for it
    }
    let files = collect(&state, job.user).await?;
    tokio::fs::create_dir_all(dir(&state)).await?;
    let (tmp, done) = (dir(&state).join(format!("{}.zip.partial", job.export)), file_of(&state, job.export));
    let tmp2 = tmp.clone();
    let bytes = tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
        let f = std::fs::File::create(&tmp2)?;
        let mut zip = zip::ZipWriter::new(f);
        let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for (name, data) in files {
            zip.start_file(name, opts)?;
            zip.write_all(&data)?;
        }
        let f = zip.finish()?;
        f.sync_all()?;
        Ok(f.metadata()?.len())
    })
    .await??;
    tokio::fs::rename(&tmp, &done).await?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    if !store::mark_ready(tx.ex(), job.export, bytes as i64, now, Timestamp(now.0 + EXPORT_TTL_SECS * 1000)).await? {
        // The row went meanwhile (the account was erased): the file must not stay.
        drop(tx);
        tokio::fs::remove_file(&done).await?;
        return Ok(());
    }
    notifications::enqueue(&state, &mut tx, notifications::Cause::ExportReady { export: job.export, user: job.user })
        .await?;
    jobs::complete_within(&mut tx).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}
