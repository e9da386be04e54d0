//! Comments: nested through `parent_id` to any depth, with a reply counter on each comment
//! and a tombstone (`deleted`) for a deleted comment that still has replies.
//!
//! Threads are listed oldest first (conversation order), keyed by id.

use sqlx::FromRow;

use super::posts::{RowLock, in_list};
use super::{Ex, StoreResult, fetch_limit};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `comments` row.
#[derive(Clone, Debug, FromRow)]
pub struct CommentRow {
    /// Id (time-ordered).
    pub id: Id,
    /// The post commented on.
    pub post_id: Id,
    /// Author.
    pub author_id: Id,
    /// The comment replied to, `None` for a top-level comment.
    pub parent_id: Option<Id>,
    /// Text (empty once tombstoned).
    pub body: String,
    /// Tombstone: deleted, kept because it has replies.
    pub deleted: bool,
    /// Direct replies still stored (tombstones included).
    pub reply_count: i64,
    /// Reactions of every type.
    pub reaction_count: i64,
    /// Created.
    pub created_at: Timestamp,
    /// Last edit.
    pub updated_at: Timestamp,
}

const COLS: &str =
    "id, post_id, author_id, parent_id, body, deleted, reply_count, reaction_count, created_at, updated_at";

/// Values of a new comment.
pub struct NewComment<'a> {
    /// Id.
    pub id: Id,
    /// Post.
    pub post_id: Id,
    /// Author.
    pub author_id: Id,
    /// Parent comment.
    pub parent_id: Option<Id>,
    /// Text.
    pub body: &'a str,
    /// Creation time.
    pub now: Timestamp,
}

/// Inserts a comment.
pub async fn insert(ex: Ex<'_>, c: &NewComment<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO comments (id, post_id, author_id, parent_id, body, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $6)";
    exec!(ex, x => sqlx::query(sql).bind(c.id).bind(c.post_id).bind(c.author_id).bind(c.parent_id).bind(c.body)
        .bind(c.now).execute(x).await)?;
    Ok(())
}

/// A comment by id.
pub async fn get(ex: Ex<'_>, id: Id) -> StoreResult<Option<CommentRow>> {
    let sql = format!("SELECT {COLS} FROM comments WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, CommentRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// A comment by id, locked for the rest of the transaction.
pub async fn lock(ex: Ex<'_>, id: Id, lock: RowLock) -> StoreResult<Option<CommentRow>> {
    let sql = format!("SELECT {COLS} FROM comments WHERE id = $1{}", lock.clause(ex.backend()));
    Ok(run!(ex, c => sqlx::query_as::<_, CommentRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// Several comments by id, in no particular order.
pub async fn get_many(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<CommentRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLS} FROM comments WHERE id IN ({})", in_list(ids));
    Ok(run!(ex, c => sqlx::query_as::<_, CommentRow>(&sql).fetch_all(c).await)?)
}

/// Top-level comments of a post after the cursor id, oldest first.
pub async fn top_level(ex: Ex<'_>, post: Id, after: Option<Id>, limit: u32) -> StoreResult<Vec<CommentRow>> {
    let sql = format!(
        "SELECT {COLS} FROM comments WHERE post_id = $1 AND parent_id IS NULL AND ($2 IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, CommentRow>(&sql).bind(post).bind(after).bind(fetch_limit(limit))
        .fetch_all(c).await)?)
}

/// Direct replies to a comment after the cursor id, oldest first.
pub async fn replies(ex: Ex<'_>, parent: Id, after: Option<Id>, limit: u32) -> StoreResult<Vec<CommentRow>> {
    let sql =
        format!("SELECT {COLS} FROM comments WHERE parent_id = $1 AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3");
    Ok(run!(ex, c => sqlx::query_as::<_, CommentRow>(&sql).bind(parent).bind(after).bind(fetch_limit(limit))
        .fetch_all(c).await)?)
}

/// Replaces the body.
pub async fn update_body(ex: Ex<'_>, id: Id, body: &str, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE comments SET body = $2, updated_at = $3 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(body).bind(now).execute(c).await)?;
    Ok(())
}

/// Adds `delta` to a comment's reply counter.
pub async fn add_reply_count(ex: Ex<'_>, id: Id, delta: i64) -> StoreResult<()> {
    let sql = "UPDATE comments SET reply_count = reply_count + $2 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(delta).execute(c).await)?;
    Ok(())
}

/// Turns a comment into a tombstone: body and mentions gone, row kept for its replies.
pub async fn tombstone(ex: Ex<'_>, id: Id, now: Timestamp) -> StoreResult<()> {
    run!(ex, c => async {
        sqlx::query("UPDATE comments SET deleted = TRUE, body = '', updated_at = $2 WHERE id = $1")
            .bind(id).bind(now).execute(&mut *c).await?;
        sqlx::query("DELETE FROM comment_mentions WHERE comment_id = $1").bind(id).execute(&mut *c).await?;
        Ok(())
    }.await)
}

/// Deletes a comment row (it has no replies left) and the reactions on it.
pub async fn delete(ex: Ex<'_>, id: Id) -> StoreResult<()> {
    let stmts = [
        "DELETE FROM reactions WHERE target_kind = 'comment' AND target_id = $1",
        "DELETE FROM reaction_counts WHERE target_kind = 'comment' AND target_id = $1",
        "DELETE FROM comments WHERE id = $1",
    ];
    run!(ex, c => async {
        for s in stmts {
            sqlx::query(s).bind(id).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Replaces the users mentioned by a comment.
pub async fn set_mentions(ex: Ex<'_>, comment: Id, users: &[Id]) -> StoreResult<()> {
    run!(ex, c => async {
        sqlx::query("DELETE FROM comment_mentions WHERE comment_id = $1").bind(comment).execute(&mut *c).await?;
        if !users.is_empty() {
            let values = users.iter().map(|u| format!("($1, {})", u.0)).collect::<Vec<_>>().join(",");
            let sql = format!("INSERT INTO comment_mentions (comment_id, user_id) VALUES {values}");
            sqlx::query(&sql).bind(comment).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// `(comment, mentioned user)` for each of `comments`.
pub async fn mentions_of(ex: Ex<'_>, comments: &[Id]) -> StoreResult<Vec<(Id, Id)>> {
    if comments.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT comment_id, user_id FROM comment_mentions WHERE comment_id IN ({})", in_list(comments));
    Ok(run!(ex, c => sqlx::query_as(&sql).fetch_all(c).await)?)
}

/// Number of comments on a post (tombstones included).
pub async fn count_on(ex: Ex<'_>, post: Id) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM comments WHERE post_id = $1";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(post).fetch_one(c).await)?)
}
