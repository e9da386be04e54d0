//! The end of an account: deletion by its owner (signed out at once, hidden at once, then
//! erased by a durable job).
//!
//! # Erasure
//! [`run_erase_account`] takes the account apart in steps, each made of small transactions
//! through the service that owns the data, so that what everyone else sees stays right:
//! 1. posts, as the author's own deletion (comments and reactions on them go, feeds drop
//!    them, media are deleted durably on every backend);
//! 2. comments on others' posts (a tombstone stays where there are replies);
//! 3. reactions (counts go down);
//! 4. messages become tombstones from "Deleted account"; groups are left;
//! 5. follows and requests both ways (follower and following counts go down);
//! 6. the rest of the account's own rows: blocks, mutes, saves, notifications (and its
//!    place in everyone else's), sessions, tokens, links, settings, reports it filed;
//! 7. its remaining uploads (durable deletion);
//! 8. the profile: the row stays as a tombstone named `deleted-{id}`, with no address and no
//!    password, and the username is free; its data exports are deleted.
//!
//! Every step reads what is left and removes it, so a job that dies part way (a killed
//! instance) is run again by the job queue and carries on where the last one stopped.

use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::{AuthUser, password};
use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::EventBatch;
use crate::jobs::{self, Job};
use crate::ratelimit::Bucket;
use crate::realtime::close::CloseCode;
use crate::services::{auth, chat, comments, exports, graph, media, posts, reactions};
use crate::state::AppState;
use crate::store::reactions::Target;
use crate::store::{erasure, notifications as notification_store, users as user_store};

/// How many items a step takes per read.
const BATCH: i64 = 50;

/// `DELETE /users/me` body.
#[derive(Debug, Deserialize, ToSchema)]
pub struct DeleteAccountRequest {
    /// The current password.
    pub password: String,
}

/// Job: erase a deleted account (see the module doc).
#[derive(Clone, Debug, serde::Serialize, Deserialize)]
pub struct EraseAccount {
    /// The account.
    pub user: Id,
}

impl Job for EraseAccount {
    const KIND: &'static str = "erase_account";
}

/// Deletes the caller's account (with the password): every session ends and its sockets
/// close on every instance, the account disappears for everyone, and the erasure job is
/// enqueued in the same transaction.
pub async fn delete_me(state: &AppState, ip: &str, me: &AuthUser, req: DeleteAccountRequest) -> AppResult<()> {
    state.limits.check(Bucket::AuthIp, &format!("delete:{ip}")).await?;
    state.limits.check(Bucket::AuthAccount, &format!("delete:{}", me.id)).await?;
    let mut c = state.store.conn().await?;
    let u = user_store::get(c.ex(), me.id).await?.ok_or(AppError::NotFound)?;
    drop(c);
    if req.password.is_empty() || !password::verify(req.password, u.password_hash.clone()).await? {
        return Err(AppError::field("password", "is incorrect"));
    }
    let mut tx = state.store.begin().await?;
    if !user_store::mark_deleted(tx.ex(), me.id, Timestamp::now()).await? {
        return Err(AppError::NotFound);
    }
    let mut events = EventBatch::new();
    auth::end_every_session(state, &mut tx, &mut events, me.id, CloseCode::TOKEN_REVOKED).await?;
    jobs::enqueue(&mut tx, &state.ids, state.config.jobs.max_attempts, &EraseAccount { user: me.id }).await?;
    state.commit(tx, events).await?;
    Ok(())
}

/// Ignores "already gone": a step that finds its item removed meanwhile has nothing to do.
fn gone_is_fine(r: AppResult<()>) -> AppResult<()> {
    match r {
        Err(AppError::NotFound) => Ok(()),
        other => other,
    }
}

/// Runs an [`EraseAccount`] job (see the module doc).
pub async fn run_erase_account(state: AppState, job: EraseAccount) -> anyhow::Result<()> {
    let user = job.user;
    let st = &state;
    let mut c = st.store.conn().await?;
    let row = user_store::get(c.ex(), user).await?;
    drop(c);
    if row.is_none_or(|u| u.deleted_at.is_none()) {
        return Ok(()); // nothing to erase (a stale job)
    }
    loop {
        let mut c = st.store.conn().await?;
        let ids = erasure::post_ids(c.ex(), user, BATCH).await?;
        drop(c);
        for id in &ids {
            gone_is_fine(posts::remove(st, *id, user).await)?;
        }
        if (ids.len() as i64) < BATCH {
            break;
        }
    }
    loop {
        let mut c = st.store.conn().await?;
        let ids = erasure::comment_ids(c.ex(), user, BATCH).await?;
        drop(c);
        for (id, post) in &ids {
            gone_is_fine(comments::remove(st, *id, *post).await)?;
        }
        if (ids.len() as i64) < BATCH {
            break;
        }
    }
    loop {
        let mut c = st.store.conn().await?;
        let rows = erasure::reactions(c.ex(), user, BATCH).await?;
        drop(c);
        for (kind, id) in &rows {
            let target = match kind.as_str() {
                "post" => Target::Post,
                "comment" => Target::Comment,
                _ => Target::Message,
            };
            reactions::withdraw(st, user, target, *id).await?;
        }
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    loop {
        let mut c = st.store.conn().await?;
        let ids = erasure::message_ids(c.ex(), user, BATCH).await?;
        drop(c);
        for id in &ids {
            gone_is_fine(chat::remove_message(st, *id).await)?;
        }
        if (ids.len() as i64) < BATCH {
            break;
        }
    }
    let mut c = st.store.conn().await?;
    let groups = erasure::group_ids(c.ex(), user).await?;
    drop(c);
    for g in groups {
        gone_is_fine(chat::remove_member(st, user, g, user).await)?;
    }
    graph::sever_all(st, user).await?;
    exports::delete_files_of(st, user).await?;
    let mut tx = st.store.begin().await?;
    notification_store::remove_actor_from_all(tx.ex(), user).await?;
    erasure::delete_private_rows(tx.ex(), user).await?;
    st.commit(tx, EventBatch::new()).await?;
    media::discard_all_of(st, user).await?;
    let mut tx = st.store.begin().await?;
    user_store::anonymize(tx.ex(), user, Timestamp::now()).await?;
    jobs::complete_within(&mut tx).await?;
    st.commit(tx, EventBatch::new()).await?;
    tracing::info!(%user, "account erased");
    Ok(())
}
