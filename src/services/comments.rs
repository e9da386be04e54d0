//! Comments: on a post or on a comment (`parent_id`), to any depth. Top-level comments and
//! replies are listed oldest first with their reply counts. Authors edit and delete their
//! own; the post's author may delete any comment on it. A deleted comment that has replies
//! becomes a tombstone (`deleted: true`, no body, no author) so the thread stays readable;
//! one without replies is removed, and so are tombstones left with no replies.
//!
//! Lock order in write transactions (PostgreSQL): the post row first, then comment rows —
//! the same order as reactions, so writers never deadlock.
//!
//! Notifications (comment, reply, mentions) are a durable `Notify` job enqueued with the
//! comment; deleting the comment removes them.
//!
//! Events on `post:{id}`: `comment.created|updated` with the comment, `comment.deleted` with
//! `{id, post_id, tombstone}`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::user::bounded_text;
use crate::domain::{Id, Timestamp};
use crate::error::{AppError, AppResult};
use crate::events::{EventBatch, EventName, Topic};
use crate::pagination::{Page, PageQuery};
use crate::ratelimit::Write;
use crate::services::access;
use crate::services::notifications::{self, Cause};
use crate::services::posts::resolve_mentions;
use crate::services::reactions::{self, Counts};
use crate::services::users::UserSummary;
use crate::state::AppState;
use crate::store::comments::{self as store, CommentRow, NewComment};
use crate::store::posts::{self as post_store, RowLock};
use crate::store::reactions::Target;
use crate::store::users as user_store;

/// Longest comment, in characters.
pub const MAX_BODY: usize = 2200;

/// A comment as clients see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommentView {
    /// Id.
    pub id: Id,
    /// The post.
    pub post_id: Id,
    /// The comment this replies to, `null` for a top-level comment.
    pub parent_id: Option<Id>,
    /// Author; `null` on a tombstone.
    pub author: Option<UserSummary>,
    /// Text; `null` on a tombstone.
    pub body: Option<String>,
    /// Tombstone: the comment was deleted but its replies remain.
    pub deleted: bool,
    /// Existing users mentioned in the body.
    pub mentions: Vec<UserSummary>,
    /// Direct replies.
    pub reply_count: i64,
    /// Reaction counts by type, zero counts omitted.
    pub reaction_counts: Counts,
    /// The viewer's reaction type, if any.
    pub my_reaction: Option<String>,
    /// Created.
    pub created_at: Timestamp,
    /// Last edit.
    pub updated_at: Timestamp,
}

/// `comment.deleted` data.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CommentDeleted {
    /// The comment.
    pub id: Id,
    /// Its post.
    pub post_id: Id,
    /// `true`: it stays as a tombstone (it has replies); `false`: it is gone.
    pub tombstone: bool,
}

/// `POST /posts/{id}/comments` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateComment {
    /// 1–2,200 characters; `@mentions` are recognised.
    pub body: String,
    /// Reply to this comment (of the same post).
    #[serde(default)]
    pub parent_id: Option<Id>,
}

/// `PATCH /comments/{id}` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateComment {
    /// 1–2,200 characters.
    pub body: String,
}

fn validate_body(raw: &str) -> AppResult<String> {
    let body = bounded_text(raw, MAX_BODY).map_err(|m| AppError::field("body", m))?;
    if body.is_empty() {
        return Err(AppError::field("body", "must not be empty"));
    }
    Ok(body)
}

/// Builds the views of `rows` (in order) with a fixed number of queries.
pub async fn views(state: &AppState, viewer: Option<Id>, rows: Vec<CommentRow>) -> AppResult<Vec<CommentView>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Id> = rows.iter().map(|c| c.id).collect();
    let mut c = state.store.conn().await?;
    let mentions = store::mentions_of(c.ex(), &ids).await?;
    let mut user_ids: Vec<Id> = rows.iter().map(|r| r.author_id).chain(mentions.iter().map(|m| m.1)).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let users: HashMap<Id, UserSummary> =
        user_store::get_many(c.ex(), &user_ids).await?.iter().map(|u| (u.id, UserSummary::from(u))).collect();
    // A mention of an account blocked either way with the viewer is not shown to them.
    let mention_ids: Vec<Id> = mentions.iter().map(|m| m.1).collect();
    let audience = access::audience_on(c.ex(), viewer, &mention_ids).await?;
    let mut mentioned: HashMap<Id, Vec<UserSummary>> = HashMap::new();
    for (comment, user) in mentions {
        if let Some(u) = users.get(&user).filter(|_| audience.may_see_profile(user)) {
            mentioned.entry(comment).or_default().push(u.clone());
        }
    }
    let (mut counts, mut mine) = reactions::counts_and_mine(&mut c, Target::Comment, &ids, viewer).await?;
    Ok(rows
        .into_iter()
        .map(|r| CommentView {
            id: r.id,
            post_id: r.post_id,
            parent_id: r.parent_id,
            author: if r.deleted { None } else { users.get(&r.author_id).cloned() },
            body: if r.deleted { None } else { Some(r.body) },
            deleted: r.deleted,
            mentions: if r.deleted { Vec::new() } else { mentioned.remove(&r.id).unwrap_or_default() },
            reply_count: r.reply_count,
            reaction_counts: counts.remove(&r.id).unwrap_or_default(),
            my_reaction: mine.remove(&r.id),
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
        .collect())
}

/// Comments on a post, or replies to a comment of it.
pub async fn create(state: &AppState, me: Id, post: Id, req: CreateComment) -> AppResult<CommentView> {
    access::may_write(state, me).await?;
    state.limits.write(Write::Comment, me).await?;
    access::visible_post(state, Some(me), post).await?;
    let body = validate_body(&req.body)?;
    if let Some(parent) = req.parent_id {
        let (p, _) = match access::visible_comment(state, Some(me), parent).await {
            Err(AppError::NotFound) => return Err(AppError::field("parent_id", "no such comment")),
            other => other?,
        };
        if p.post_id != post {
            return Err(AppError::field("parent_id", "belongs to another post"));
        }
        if p.deleted {
            return Err(AppError::NotFound);
        }
    }
    let mentions = resolve_mentions(state, me, &body).await?;
    let id = state.ids.next();
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    post_store::lock(tx.ex(), post, RowLock::NoKeyUpdate).await?.ok_or(AppError::NotFound)?;
    if let Some(parent) = req.parent_id {
        match store::lock(tx.ex(), parent, RowLock::NoKeyUpdate).await? {
            Some(p) if !p.deleted && p.post_id == post => store::add_reply_count(tx.ex(), parent, 1).await?,
            _ => return Err(AppError::NotFound),
        }
    }
    store::insert(
        tx.ex(),
        &NewComment { id, post_id: post, author_id: me, parent_id: req.parent_id, body: &body, now },
    )
    .await?;
    store::set_mentions(tx.ex(), id, &mentions).await?;
    post_store::add_comment_count(tx.ex(), post, 1).await?;
    notifications::enqueue(state, &mut tx, Cause::Commented { comment: id }).await?;
    state.commit(tx, EventBatch::new()).await?;

    let row = CommentRow {
        id,
        post_id: post,
        author_id: me,
        parent_id: req.parent_id,
        body,
        deleted: false,
        reply_count: 0,
        reaction_count: 0,
        created_at: now,
        updated_at: now,
    };
    let view = views(state, Some(me), vec![row]).await?.pop().ok_or(AppError::NotFound)?;
    let mut events = EventBatch::by(me);
    events.ephemeral(&[Topic::Post(post)], EventName::CommentCreated, &view);
    state.publish(events);
    Ok(view)
}

async fn page(state: &AppState, viewer: Option<Id>, rows: Vec<CommentRow>, limit: u32) -> AppResult<Page<CommentView>> {
    let page = Page::from_rows(rows, limit, |c| c.id);
    // Comments by accounts blocked either way are left out (tombstones have no author).
    let items =
        access::filter_blocked(state, viewer, page.items, |c| if c.deleted { Id(0) } else { c.author_id }).await?;
    Ok(Page { items: views(state, viewer, items).await?, next_cursor: page.next_cursor })
}

/// Top-level comments of a post, oldest first, with their reply counts.
pub async fn list(state: &AppState, viewer: Option<Id>, post: Id, q: &PageQuery) -> AppResult<Page<CommentView>> {
    access::visible_post(state, viewer, post).await?;
    let p = q.parse::<Id>()?;
    let mut c = state.store.conn().await?;
    let rows = store::top_level(c.ex(), post, p.after, p.limit).await?;
    drop(c);
    page(state, viewer, rows, p.limit).await
}

/// Replies to a comment, oldest first.
pub async fn replies(state: &AppState, viewer: Option<Id>, comment: Id, q: &PageQuery) -> AppResult<Page<CommentView>> {
    access::visible_comment(state, viewer, comment).await?;
    let p = q.parse::<Id>()?;
    let mut c = state.store.conn().await?;
    let rows = store::replies(c.ex(), comment, p.after, p.limit).await?;
    drop(c);
    page(state, viewer, rows, p.limit).await
}

/// Edits one's own comment.
pub async fn update(state: &AppState, me: Id, id: Id, req: UpdateComment) -> AppResult<CommentView> {
    let (comment, _) = access::visible_comment(state, Some(me), id).await?;
    if comment.deleted {
        return Err(AppError::NotFound);
    }
    if comment.author_id != me {
        return Err(AppError::Forbidden("only the author can edit a comment"));
    }
    let body = validate_body(&req.body)?;
    let mentions = resolve_mentions(state, me, &body).await?;
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    let mut row = match store::lock(tx.ex(), id, RowLock::NoKeyUpdate).await? {
        Some(r) if !r.deleted => r,
        _ => return Err(AppError::NotFound),
    };
    let before: Vec<Id> = store::mentions_of(tx.ex(), &[id]).await?.into_iter().map(|m| m.1).collect();
    store::update_body(tx.ex(), id, &body, now).await?;
    store::set_mentions(tx.ex(), id, &mentions).await?;
    let added: Vec<Id> = mentions.iter().copied().filter(|m| !before.contains(m)).collect();
    if !added.is_empty() {
        let cause = Cause::Mentioned { post: row.post_id, comment: Some(id), users: added };
        notifications::enqueue(state, &mut tx, cause).await?;
    }
    state.commit(tx, EventBatch::new()).await?;

    row.body = body;
    row.updated_at = now;
    let view = views(state, Some(me), vec![row]).await?.pop().ok_or(AppError::NotFound)?;
    let mut events = EventBatch::by(me);
    events.ephemeral(
        &[Topic::Post(view.post_id)],
        EventName::CommentUpdated,
        &CommentView { my_reaction: None, ..view.clone() },
    );
    state.publish(events);
    Ok(view)
}

/// Deletes a comment (its author, or the post's author): a tombstone if it has replies,
/// else removed — with any tombstoned ancestors it leaves without replies.
pub async fn delete(state: &AppState, me: Id, id: Id) -> AppResult<()> {
    let (comment, post) = access::deletable_comment(state, me, id).await?;
    if comment.deleted {
        return Err(AppError::NotFound);
    }
    remove(state, id, post.id).await
}

/// Removes comment `id` of post `post` — by its author, the post's author or a moderator
/// alike. `404` when it is already gone.
pub async fn remove(state: &AppState, id: Id, post: Id) -> AppResult<()> {
    let now = Timestamp::now();
    let mut tx = state.store.begin().await?;
    post_store::lock(tx.ex(), post, RowLock::NoKeyUpdate).await?.ok_or(AppError::NotFound)?;
    let row = match store::lock(tx.ex(), id, RowLock::Update).await? {
        Some(r) if !r.deleted => r,
        _ => return Err(AppError::NotFound),
    };
    // The removal is reported as the comment's writer's (whoever removes it): those blocked
    // with the writer never saw it appear.
    let mut events = EventBatch::by(row.author_id);
    let topic = [Topic::Post(post)];
    if row.reply_count > 0 {
        store::tombstone(tx.ex(), id, now).await?;
        notifications::comment_removed(&mut tx, id).await?;
        events.ephemeral(&topic, EventName::CommentDeleted, &CommentDeleted { id, post_id: post, tombstone: true });
    } else {
        store::delete(tx.ex(), id).await?;
        events.ephemeral(&topic, EventName::CommentDeleted, &CommentDeleted { id, post_id: post, tombstone: false });
        // Walk up: a tombstone whose last reply went is removed too.
        let mut parent = row.parent_id;
        while let Some(pid) = parent {
            store::add_reply_count(tx.ex(), pid, -1).await?;
            match store::lock(tx.ex(), pid, RowLock::Update).await? {
                Some(p) if p.deleted && p.reply_count == 0 => {
                    store::delete(tx.ex(), pid).await?;
                    events.ephemeral(
                        &topic,
                        EventName::CommentDeleted,
                        &CommentDeleted { id: pid, post_id: post, tombstone: false },
                    );
                    parent = p.parent_id;
                }
                _ => parent = None,
            }
        }
    }
    post_store::add_comment_count(tx.ex(), post, -1).await?;
    state.commit(tx, events).await?;
    Ok(())
}
