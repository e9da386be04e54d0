//! Follows, follow requests, blocks and mutes.
//!
//! - **Follow** a public account: active at once. A private account: a pending request the
//!   owner approves or declines. Self-follow is a `422`, a second follow a `409`.
//! - **Unfollow** removes an active follow or withdraws a request.
//! - **Block** removes follows both ways; from then on each side sees the other as
//!   nonexistent (`services::access`), so no follow, comment or reaction can pass between them.
//! - **Mute** hides an account from my feeds, nothing else.
//!
//! Counters (`users.follower_count`, `following_count`) change in the transaction that
//! activates or removes an active follow. Events (durable, on `follower:{user}`):
//! `follower.added|removed` and `follow.requested` for the followed account,
//! `follow.approved` for the requester. Timelines follow along through durable
//! [`SyncTimeline`] jobs (backfill on a new active follow, prune on unfollow or block); the
//! home feed also filters at read time, so it is right before those jobs run. Notifications
//! (`follow`, `follow_request`, `follow_approved`) are durable `Notify` jobs enqueued in the
//! same transactions; ending a follow or a request removes them (`services::notifications`).

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::jobs;
use crate::pagination::{Page, PageQuery};
use crate::ratelimit::Write;
use crate::services::access;
use crate::services::feed::{self, SyncTimeline};
use crate::services::notifications::{self as notify, Cause};
use crate::services::users::UserSummary;
use crate::state::AppState;
pub use crate::store::graph::FollowStatus;
use crate::store::graph::{self as store};
use crate::store::{Tx, users as user_store};

/// `POST /users/{id}/follow` answer.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FollowResult {
    /// `active`, or `pending` for a private account.
    pub status: FollowStatus,
}

/// An account in a follower, following or request list.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FollowEntry {
    /// The account.
    pub user: UserSummary,
    /// Since when (follow, approval or request time).
    pub since: Timestamp,
}

/// Data of `follower.added|removed`, `follow.requested|approved`: the other account.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct FollowEvent {
    /// Who followed, unfollowed or requested (or, for `follow.approved`, who approved).
    pub user: UserSummary,
}

fn not_self(me: Id, target: Id, what: &str) -> AppResult<()> {
    if me == target { Err(AppError::field("id", format!("you cannot {what} yourself"))) } else { Ok(()) }
}

async fn summary(state: &AppState, id: Id) -> AppResult<UserSummary> {
    let mut c = state.store.conn().await?;
    let u = user_store::get(c.ex(), id).await?.ok_or(AppError::NotFound)?;
    Ok(UserSummary::from(&u))
}

async fn sync(state: &AppState, tx: &mut Tx, user: Id, author: Id, follow: bool) -> AppResult<()> {
    jobs::enqueue(tx, &state.ids, state.config.jobs.max_attempts, &SyncTimeline { user, author, follow }).await?;
    Ok(())
}

/// Follows an account (or asks to, when it is private).
pub async fn follow(state: &AppState, me: Id, target: &str) -> AppResult<FollowResult> {
    let (user, _) = access::visible_user(state, Some(me), target).await?;
    not_self(me, user.id, "follow")?;
    access::may_write(state, me).await?;
    state.limits.write(Write::Follow, me).await?;
    let me_summary = summary(state, me).await?;
    let status = if user.is_private { FollowStatus::Pending } else { FollowStatus::Active };
    let mut tx = state.store.begin().await?;
    // Checked again inside the transaction: a block may have landed since.
    access::not_blocked(tx.ex(), me, user.id).await?;
    if !store::insert_follow(tx.ex(), me, user.id, status, Timestamp::now()).await? {
        return Err(AppError::conflict_field("id", "already following or requested"));
    }
    let mut events = EventBatch::new();
    let data = FollowEvent { user: me_summary };
    if status == FollowStatus::Active {
        store::add_follow_counts(tx.ex(), me, user.id, 1).await?;
        sync(state, &mut tx, me, user.id, true).await?;
        events.add(&mut tx, &[Topic::Follower(user.id)], EventName::FollowerAdded, &data).await?;
        notify::enqueue(state, &mut tx, Cause::Followed { follower: me, followee: user.id }).await?;
    } else {
        events.add(&mut tx, &[Topic::Follower(user.id)], EventName::FollowRequested, &data).await?;
        notify::enqueue(state, &mut tx, Cause::FollowRequested { follower: me, followee: user.id }).await?;
    }
    state.commit(tx, events).await?;
    Ok(FollowResult { status })
}

/// Unfollows an account or withdraws a request (idempotent).
pub async fn unfollow(state: &AppState, me: Id, target: &str) -> AppResult<()> {
    let (user, _) = access::visible_user(state, Some(me), target).await?;
    not_self(me, user.id, "unfollow")?;
    let me_summary = summary(state, me).await?;
    let mut tx = state.store.begin().await?;
    let mut events = EventBatch::new();
    if remove_follow(state, &mut tx, &mut events, me, user.id, me_summary).await? {
        state.commit(tx, events).await?;
    }
    Ok(())
}

/// Removes `follower → followee` inside `tx`; returns whether there was one.
async fn remove_follow(
    state: &AppState,
    tx: &mut Tx,
    events: &mut EventBatch,
    follower: Id,
    followee: Id,
    follower_summary: UserSummary,
) -> AppResult<bool> {
    let removed = store::delete_follow(tx.ex(), follower, followee).await?;
    if removed.is_some() {
        notify::follow_removed(tx, follower, followee).await?;
    }
    match removed {
        Some(FollowStatus::Active) => {
            store::add_follow_counts(tx.ex(), follower, followee, -1).await?;
            sync(state, tx, follower, followee, false).await?;
            feed::follower_removed(state, tx, followee).await?;
            let data = FollowEvent { user: follower_summary };
            events.add(tx, &[Topic::Follower(followee)], EventName::FollowerRemoved, &data).await?;
            // A private account's content was visible through this follow: the follower's
            // live subscriptions are re-checked.
            events.ephemeral(&[Topic::Control(follower)], EventName::AccessChanged, &serde_json::Value::Null);
            Ok(true)
        }
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// An account's active followers, newest first (`403` for a private account one does not
/// follow).
pub async fn followers(
    state: &AppState,
    viewer: Option<Id>,
    target: &str,
    q: &PageQuery,
) -> AppResult<Page<FollowEntry>> {
    let user = access::content_owner(state, viewer, target).await?;
    let p = q.parse::<(i64, Id)>()?;
    let mut c = state.store.conn().await?;
    let rows = store::followers(c.ex(), user.id, FollowStatus::Active, p.after, p.limit).await?;
    drop(c);
    entries(state, viewer, rows, p.limit).await
}

/// Accounts an account follows, newest first (`403` for a private account one does not
/// follow).
pub async fn following(
    state: &AppState,
    viewer: Option<Id>,
    target: &str,
    q: &PageQuery,
) -> AppResult<Page<FollowEntry>> {
    let user = access::content_owner(state, viewer, target).await?;
    let p = q.parse::<(i64, Id)>()?;
    let mut c = state.store.conn().await?;
    let rows = store::following(c.ex(), user.id, p.after, p.limit).await?;
    drop(c);
    entries(state, viewer, rows, p.limit).await
}

/// Requests waiting for the caller's approval, newest first.
pub async fn requests(state: &AppState, me: Id, q: &PageQuery) -> AppResult<Page<FollowEntry>> {
    let p = q.parse::<(i64, Id)>()?;
    let mut c = state.store.conn().await?;
    let rows = store::followers(c.ex(), me, FollowStatus::Pending, p.after, p.limit).await?;
    drop(c);
    entries(state, Some(me), rows, p.limit).await
}

async fn entries(
    state: &AppState,
    viewer: Option<Id>,
    rows: Vec<(Id, Timestamp)>,
    limit: u32,
) -> AppResult<Page<FollowEntry>> {
    let page = Page::from_rows(rows, limit, |(id, t)| (t.0, *id));
    let items = access::filter_blocked(state, viewer, page.items, |r| r.0).await?;
    let mut c = state.store.conn().await?;
    let users = user_store::get_many(c.ex(), &items.iter().map(|r| r.0).collect::<Vec<_>>()).await?;
    let items = items
        .into_iter()
        .filter_map(|(id, since)| {
            users.iter().find(|u| u.id == id).map(|u| FollowEntry { user: UserSummary::from(u), since })
        })
        .collect();
    Ok(Page { items, next_cursor: page.next_cursor })
}

/// Approves a follow request.
pub async fn approve(state: &AppState, me: Id, requester: Id) -> AppResult<()> {
    let me_summary = summary(state, me).await?;
    let requester_summary = summary(state, requester).await?;
    let mut tx = state.store.begin().await?;
    if !store::approve(tx.ex(), requester, me, Timestamp::now()).await? {
        return Err(AppError::NotFound);
    }
    store::add_follow_counts(tx.ex(), requester, me, 1).await?;
    sync(state, &mut tx, requester, me, true).await?;
    notify::request_answered(&mut tx, requester, me).await?;
    notify::enqueue(state, &mut tx, Cause::FollowApproved { follower: requester, followee: me }).await?;
    let mut events = EventBatch::new();
    events
        .add(&mut tx, &[Topic::Follower(requester)], EventName::FollowApproved, &FollowEvent { user: me_summary })
        .await?;
    events
        .add(&mut tx, &[Topic::Follower(me)], EventName::FollowerAdded, &FollowEvent { user: requester_summary })
        .await?;
    state.commit(tx, events).await?;
    Ok(())
}

/// Declines (deletes) a follow request.
pub async fn decline(state: &AppState, me: Id, requester: Id) -> AppResult<()> {
    let mut tx = state.store.begin().await?;
    if !store::delete_request(tx.ex(), requester, me).await? {
        return Err(AppError::NotFound);
    }
    notify::request_answered(&mut tx, requester, me).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// Blocks an account: follows both ways end; each becomes invisible to the other.
pub async fn block(state: &AppState, me: Id, target: &str) -> AppResult<()> {
    let user = access::resolve(state, target).await?;
    not_self(me, user.id, "block")?;
    let me_summary = summary(state, me).await?;
    let mut tx = state.store.begin().await?;
    store::block(tx.ex(), me, user.id, Timestamp::now()).await?;
    notify::blocked(&mut tx, me, user.id).await?;
    let mut events = EventBatch::new();
    remove_follow(state, &mut tx, &mut events, me, user.id, me_summary).await?;
    remove_follow(state, &mut tx, &mut events, user.id, me, UserSummary::from(&user)).await?;
    // Each now sees nothing of the other: both sides' live subscriptions are re-checked.
    events.ephemeral(
        &[Topic::Control(me), Topic::Control(user.id)],
        EventName::AccessChanged,
        &serde_json::Value::Null,
    );
    state.commit(tx, events).await?;
    Ok(())
}

/// Lifts a block (idempotent).
pub async fn unblock(state: &AppState, me: Id, target: &str) -> AppResult<()> {
    let user = access::resolve(state, target).await?;
    not_self(me, user.id, "unblock")?;
    let mut tx = state.store.begin().await?;
    store::unblock(tx.ex(), me, user.id).await?;
    // Both sides' sessions re-read their block sets: live events between them flow again.
    let mut events = EventBatch::new();
    events.ephemeral(
        &[Topic::Control(me), Topic::Control(user.id)],
        EventName::AccessChanged,
        &serde_json::Value::Null,
    );
    state.commit(tx, events).await?;
    Ok(())
}

/// Mutes an account: its posts leave my feeds (idempotent).
pub async fn mute(state: &AppState, me: Id, target: &str) -> AppResult<()> {
    let (user, _) = access::visible_user(state, Some(me), target).await?;
    not_self(me, user.id, "mute")?;
    let mut tx = state.store.begin().await?;
    store::mute(tx.ex(), me, user.id, Timestamp::now()).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// Unmutes an account (idempotent).
pub async fn unmute(state: &AppState, me: Id, target: &str) -> AppResult<()> {
    let (user, _) = access::visible_user(state, Some(me), target).await?;
    not_self(me, user.id, "unmute")?;
    let mut tx = state.store.begin().await?;
    store::unmute(tx.ex(), me, user.id).await?;
    state.commit(tx, EventBatch::new()).await?;
    Ok(())
}

/// Ends every follow and request to and from `user` (an erased account), as unfollows do:
/// counts, timelines and `follower.removed` stay right for everyone else.
pub async fn sever_all(state: &AppState, user: Id) -> AppResult<()> {
    let mut c = state.store.conn().await?;
    let pairs = crate::store::erasure::follows(c.ex(), user).await?;
    drop(c);
    for (follower, followee) in pairs {
        let who = summary(state, follower).await?;
        let mut tx = state.store.begin().await?;
        let mut events = EventBatch::new();
        if remove_follow(state, &mut tx, &mut events, follower, followee, who).await? {
            state.commit(tx, events).await?;
        }
    }
    Ok(())
}
