//! What an account erasure reads and deletes in bulk: the account's own rows in the tables
//! whose removal changes nothing anyone else sees. Everything that others see (posts,
//! comments, reactions, follows, messages) goes through its service, one item at a time, so
//! counts, feeds and live events stay right.

use super::{Ex, StoreResult};
use crate::domain::Id;
use crate::{exec, run};

/// Up to `limit` of `user`'s posts.
pub async fn post_ids(ex: Ex<'_>, user: Id, limit: i64) -> StoreResult<Vec<Id>> {
    let sql = "SELECT id FROM posts WHERE author_id = $1 ORDER BY id LIMIT $2";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).bind(limit).fetch_all(c).await)?)
}

/// Up to `limit` of `user`'s live comments: `(comment, post)`.
pub async fn comment_ids(ex: Ex<'_>, user: Id, limit: i64) -> StoreResult<Vec<(Id, Id)>> {
    let sql = "SELECT id, post_id FROM comments WHERE author_id = $1 AND deleted = FALSE ORDER BY id LIMIT $2";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).bind(limit).fetch_all(c).await)?)
}

/// Up to `limit` of `user`'s reactions: `(target kind, target)`.
pub async fn reactions(ex: Ex<'_>, user: Id, limit: i64) -> StoreResult<Vec<(String, Id)>> {
    let sql = "SELECT target_kind, target_id FROM reactions WHERE user_id = $1 ORDER BY target_id LIMIT $2";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).bind(limit).fetch_all(c).await)?)
}

/// Up to `limit` of `user`'s messages not yet tombstones.
pub async fn message_ids(ex: Ex<'_>, user: Id, limit: i64) -> StoreResult<Vec<Id>> {
    let sql = "SELECT id FROM messages WHERE sender_id = $1 AND deleted = FALSE ORDER BY id LIMIT $2";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).bind(limit).fetch_all(c).await)?)
}

/// `user`'s group conversations.
pub async fn group_ids(ex: Ex<'_>, user: Id) -> StoreResult<Vec<Id>> {
    let sql = "SELECT m.conversation_id FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id \
               WHERE m.user_id = $1 AND c.kind = 'group'";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_all(c).await)?)
}

/// Everyone `user` follows or asked to follow, and everyone following or asking to follow
/// `user`: `(follower, followee)`.
pub async fn follows(ex: Ex<'_>, user: Id) -> StoreResult<Vec<(Id, Id)>> {
    let sql = "SELECT follower_id, followee_id FROM follows WHERE follower_id = $1 OR followee_id = $1";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).fetch_all(c).await)?)
}

/// Up to `limit` of `user`'s uploads still stored (unattached, an avatar, processing).
pub async fn media_ids(ex: Ex<'_>, user: Id, limit: i64) -> StoreResult<Vec<Id>> {
    let sql = "SELECT id FROM media WHERE owner_id = $1 ORDER BY id LIMIT $2";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).bind(limit).fetch_all(c).await)?)
}

/// Deletes the account's private rows: blocks and mutes either way, saves, its own
/// notifications, settings and links, sessions and tokens, verification codes, requests,
/// the reports it filed, its home timeline and its personal topics' history.
pub async fn delete_private_rows(mut ex: Ex<'_>, user: Id) -> StoreResult<()> {
    let statements = [
        "DELETE FROM blocks WHERE blocker_id = $1 OR blocked_id = $1",
        "DELETE FROM mutes WHERE muter_id = $1 OR muted_id = $1",
        "DELETE FROM saves WHERE user_id = $1",
        "DELETE FROM notifications WHERE user_id = $1",
        "DELETE FROM user_social_links WHERE user_id = $1",
        "DELETE FROM user_notification_settings WHERE user_id = $1",
        "DELETE FROM refresh_tokens WHERE user_id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM password_resets WHERE user_id = $1",
        "DELETE FROM email_verifications WHERE user_id = $1",
        "DELETE FROM conversation_requests WHERE user_id = $1 OR invited_by = $1",
        "DELETE FROM reports WHERE reporter_id = $1",
        "DELETE FROM timeline_entries WHERE user_id = $1",
        "DELETE FROM exports WHERE user_id = $1",
    ];
    for sql in statements {
        exec!(ex.reborrow(), c => sqlx::query(sql).bind(user).execute(c).await)?;
    }
    for topic in ["feed", "follower", "notification", "image"] {
        let key = format!("{topic}:{user}");
        exec!(ex.reborrow(), c => sqlx::query("DELETE FROM events WHERE topic = $1").bind(&key).execute(c).await)?;
    }
    Ok(())
}
