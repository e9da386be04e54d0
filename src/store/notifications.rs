//! Notifications and the actors grouped in each (see `services::notifications` for the
//! rules). A notification is unread while `is_read` is false; while unread it carries a
//! `group_key` (`kind:target_type:target_id`), unique per recipient, which is how repeated
//! actions on one target accumulate actors instead of adding rows.

use sqlx::FromRow;

use super::posts::in_list;
use super::{Ex, StoreResult, fetch_limit};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `notifications` row.
#[derive(Clone, Debug, FromRow)]
pub struct NotificationRow {
    /// Id.
    pub id: Id,
    /// Recipient.
    pub user_id: Id,
    /// `NotificationKind` key.
    pub kind: String,
    /// `post`, `comment`, `user` or `conversation`.
    pub target_type: String,
    /// The target's id.
    pub target_id: Id,
    /// The post concerned, if any.
    pub post_id: Option<Id>,
    /// The comment concerned, if any.
    pub comment_id: Option<Id>,
    /// The conversation concerned, if any.
    pub conversation_id: Option<Id>,
    /// Excerpt of the comment or message.
    pub preview: Option<String>,
    /// Distinct actors so far.
    pub actor_count: i64,
    /// Read.
    pub is_read: bool,
    /// Created.
    pub created_at: Timestamp,
    /// Last actor added (or message grouped).
    pub updated_at: Timestamp,
}

const COLS: &str = "id, user_id, kind, target_type, target_id, post_id, comment_id, conversation_id, preview, \
                    actor_count, is_read, created_at, updated_at";

/// Values of a new notification.
pub struct NewNotification<'a> {
    /// Id.
    pub id: Id,
    /// Recipient.
    pub user_id: Id,
    /// Kind key.
    pub kind: &'a str,
    /// Target type.
    pub target_type: &'a str,
    /// Target id.
    pub target_id: Id,
    /// Post concerned.
    pub post_id: Option<Id>,
    /// Comment concerned.
    pub comment_id: Option<Id>,
    /// Conversation concerned.
    pub conversation_id: Option<Id>,
    /// Excerpt.
    pub preview: Option<&'a str>,
    /// Creation time.
    pub now: Timestamp,
}

/// The group key of a target: what makes two actions "the same notification".
pub fn group_key(kind: &str, target_type: &str, target_id: Id) -> String {
    format!("{kind}:{target_type}:{target_id}")
}

/// The unread notification of `user` for a group, if any.
pub async fn find_group(ex: Ex<'_>, user: Id, key: &str) -> StoreResult<Option<NotificationRow>> {
    let sql = format!("SELECT {COLS} FROM notifications WHERE user_id = $1 AND group_key = $2");
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(&sql).bind(user).bind(key).fetch_optional(c).await)?)
}

/// Inserts an unread notification with no actor yet; `false` when its unread group exists
/// already (a concurrent job created it first: the caller joins that one). The unique
/// `(user_id, group_key)` index decides.
pub async fn insert(ex: Ex<'_>, n: &NewNotification<'_>) -> StoreResult<bool> {
    let sql = "INSERT INTO notifications (id, user_id, kind, target_type, target_id, post_id, comment_id, \
               conversation_id, preview, group_key, actor_count, is_read, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, FALSE, $11, $11) \
               ON CONFLICT (user_id, group_key) DO NOTHING";
    let key = group_key(n.kind, n.target_type, n.target_id);
    let inserted = exec!(ex, c => sqlx::query(sql)
        .bind(n.id).bind(n.user_id).bind(n.kind).bind(n.target_type).bind(n.target_id)
        .bind(n.post_id).bind(n.comment_id).bind(n.conversation_id).bind(n.preview).bind(&key).bind(n.now)
        .execute(c).await)?;
    Ok(inserted == 1)
}

/// Forgets the preview of unread `message` notifications of `conversation` that show
/// `preview` (the text of a message deleted for everyone).
pub async fn clear_message_preview(ex: Ex<'_>, conversation: Id, preview: &str) -> StoreResult<()> {
    let sql = "UPDATE notifications SET preview = NULL \
               WHERE kind = 'message' AND target_type = 'conversation' AND target_id = $1 \
               AND is_read = FALSE AND preview = $2";
    exec!(ex, c => sqlx::query(sql).bind(conversation).bind(preview).execute(c).await)?;
    Ok(())
}

/// Adds `actor` to a notification; `false` when they were in it already. A new actor bumps
/// the count and `updated_at` (and the preview, when given).
pub async fn add_actor(ex: Ex<'_>, id: Id, actor: Id, preview: Option<&str>, now: Timestamp) -> StoreResult<bool> {
    let ins = "INSERT INTO notification_actors (notification_id, actor_id, created_at) VALUES ($1, $2, $3) \
               ON CONFLICT (notification_id, actor_id) DO NOTHING";
    let upd = "UPDATE notifications SET actor_count = actor_count + 1, updated_at = $2, \
               preview = COALESCE($3, preview) WHERE id = $1";
    run!(ex, c => async {
        let added = sqlx::query(ins).bind(id).bind(actor).bind(now).execute(&mut *c).await?.rows_affected() == 1;
        if added {
            sqlx::query(upd).bind(id).bind(now).bind(preview).execute(&mut *c).await?;
        }
        Ok(added)
    }.await)
}

/// Refreshes an existing actor's entry (a further chat message from the same sender): the
/// preview, `updated_at`, and the actor's position among the latest.
pub async fn touch(ex: Ex<'_>, id: Id, actor: Id, preview: Option<&str>, now: Timestamp) -> StoreResult<()> {
    let a = "UPDATE notification_actors SET created_at = $3 WHERE notification_id = $1 AND actor_id = $2";
    let n = "UPDATE notifications SET updated_at = $2, preview = COALESCE($3, preview) WHERE id = $1";
    run!(ex, c => async {
        sqlx::query(a).bind(id).bind(actor).bind(now).execute(&mut *c).await?;
        sqlx::query(n).bind(id).bind(now).bind(preview).execute(&mut *c).await?;
        Ok(())
    }.await)
}

/// Whether `actor` is already in any notification (read or not) of `user` for this kind
/// and target: the job that would add them again is a retry or a repeat.
pub async fn has_actor(
    ex: Ex<'_>,
    user: Id,
    kind: &str,
    target_type: &str,
    target_id: Id,
    actor: Id,
) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM notification_actors a JOIN notifications n ON n.id = a.notification_id \
               WHERE n.user_id = $1 AND n.kind = $2 AND n.target_type = $3 AND n.target_id = $4 AND a.actor_id = $5";
    let n: i64 = run!(ex, c => sqlx::query_scalar(sql)
        .bind(user).bind(kind).bind(target_type).bind(target_id).bind(actor).fetch_one(c).await)?;
    Ok(n > 0)
}

/// One notification by id.
pub async fn get(ex: Ex<'_>, id: Id) -> StoreResult<Option<NotificationRow>> {
    let sql = format!("SELECT {COLS} FROM notifications WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// A user's notifications, most recently updated first, after the `(updated_at, id)` cursor.
pub async fn page(
    ex: Ex<'_>,
    user: Id,
    unread_only: bool,
    after: Option<(i64, Id)>,
    limit: u32,
) -> StoreResult<Vec<NotificationRow>> {
    let sql = format!(
        "SELECT {COLS} FROM notifications WHERE user_id = $1 AND ($2 = FALSE OR is_read = FALSE) \
           AND ($3 IS NULL OR updated_at < $3 OR (updated_at = $3 AND id < $4)) \
         ORDER BY updated_at DESC, id DESC LIMIT $5"
    );
    let (t, id) = match after {
        Some((t, id)) => (Some(t), Some(id.0)),
        None => (None, None),
    };
    Ok(run!(ex, c => sqlx::query_as::<_, NotificationRow>(&sql)
        .bind(user).bind(unread_only).bind(t).bind(id).bind(fetch_limit(limit))
        .fetch_all(c).await)?)
}

/// Unread notifications of a user.
pub async fn unread_count(ex: Ex<'_>, user: Id) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM notifications WHERE user_id = $1 AND is_read = FALSE";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_one(c).await)?)
}

/// Up to `per` latest actors of each notification: `(notification, actor)`, latest first.
pub async fn latest_actors(ex: Ex<'_>, ids: &[Id], per: i64) -> StoreResult<Vec<(Id, Id)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT notification_id, actor_id FROM ( \
           SELECT notification_id, actor_id, created_at, \
                  ROW_NUMBER() OVER (PARTITION BY notification_id ORDER BY created_at DESC, actor_id DESC) AS rn \
           FROM notification_actors WHERE notification_id IN ({})) t \
         WHERE rn <= $1 ORDER BY notification_id, rn",
        in_list(ids)
    );
    Ok(run!(ex, c => sqlx::query_as(&sql).bind(per).fetch_all(c).await)?)
}

/// Marks one notification of `user` read. `None` when it is not theirs (or does not exist),
/// else whether it was unread.
pub async fn mark_read(ex: Ex<'_>, user: Id, id: Id) -> StoreResult<Option<bool>> {
    let upd = "UPDATE notifications SET is_read = TRUE, group_key = NULL \
               WHERE id = $1 AND user_id = $2 AND is_read = FALSE";
    let exists = "SELECT COUNT(*) FROM notifications WHERE id = $1 AND user_id = $2";
    run!(ex, c => async {
        if sqlx::query(upd).bind(id).bind(user).execute(&mut *c).await?.rows_affected() == 1 {
            return Ok(Some(true));
        }
        let n: i64 = sqlx::query_scalar(exists).bind(id).bind(user).fetch_one(&mut *c).await?;
        Ok((n > 0).then_some(false))
    }.await)
}

/// Marks every notification of `user` read; how many were unread.
pub async fn mark_all_read(ex: Ex<'_>, user: Id) -> StoreResult<u64> {
    let sql = "UPDATE notifications SET is_read = TRUE, group_key = NULL WHERE user_id = $1 AND is_read = FALSE";
    Ok(exec!(ex, c => sqlx::query(sql).bind(user).execute(c).await)?)
}

/// Removes `actor` from the notifications selected by `filter` (an SQL condition on
/// `notifications` with `$1` = actor and further parameters bound by `bind`), then recounts
/// them and deletes those left without actors. Returns the notifications touched.
async fn remove_actor_where(ex: Ex<'_>, actor: Id, filter: &str, binds: &[Bind<'_>]) -> StoreResult<Vec<Id>> {
    let select = format!(
        "SELECT n.id FROM notifications n JOIN notification_actors a ON a.notification_id = n.id \
         WHERE a.actor_id = $1 AND {filter}"
    );
    run!(ex, c => async {
        let mut q = sqlx::query_scalar::<_, Id>(&select).bind(actor);
        for b in binds {
            q = match b {
                Bind::Id(v) => q.bind(*v),
                Bind::Text(v) => q.bind(*v),
            };
        }
        let ids: Vec<Id> = q.fetch_all(&mut *c).await?;
        if ids.is_empty() {
            return Ok(ids);
        }
        let list = in_list(&ids);
        sqlx::query(&format!("DELETE FROM notification_actors WHERE actor_id = $1 AND notification_id IN ({list})"))
            .bind(actor).execute(&mut *c).await?;
        sqlx::query(&format!(
            "UPDATE notifications SET actor_count = \
               (SELECT COUNT(*) FROM notification_actors a WHERE a.notification_id = notifications.id) \
             WHERE id IN ({list})"
        )).execute(&mut *c).await?;
        sqlx::query(&format!("DELETE FROM notifications WHERE id IN ({list}) AND actor_count = 0"))
            .execute(&mut *c).await?;
        Ok(ids)
    }.await)
}

enum Bind<'a> {
    Id(Id),
    Text(&'a str),
}

/// Takes `actor` out of `user`'s notifications of `kind` about one target (a reaction
/// removed, a follow withdrawn): the group shrinks, or goes when it was the only actor.
pub async fn remove_actor(
    ex: Ex<'_>,
    user: Id,
    kind: &str,
    target_type: &str,
    target_id: Id,
    actor: Id,
) -> StoreResult<()> {
    let filter = "n.user_id = $2 AND n.kind = $3 AND n.target_type = $4 AND n.target_id = $5";
    remove_actor_where(
        ex,
        actor,
        filter,
        &[Bind::Id(user), Bind::Text(kind), Bind::Text(target_type), Bind::Id(target_id)],
    )
    .await?;
    Ok(())
}

/// Takes `actor` out of every notification of `user` (after a block).
pub async fn remove_actor_everywhere(ex: Ex<'_>, user: Id, actor: Id) -> StoreResult<()> {
    remove_actor_where(ex, actor, "n.user_id = $2", &[Bind::Id(user)]).await?;
    Ok(())
}

/// Deletes every notification about a comment (it became a tombstone; a hard delete
/// cascades by foreign key).
pub async fn delete_for_comment(ex: Ex<'_>, comment: Id) -> StoreResult<()> {
    exec!(ex, c => sqlx::query("DELETE FROM notifications WHERE comment_id = $1").bind(comment).execute(c).await)?;
    Ok(())
}

/// Deletes `user`'s notifications of `kind` about a target.
pub async fn delete_for_target(ex: Ex<'_>, user: Id, kind: &str, target_type: &str, target_id: Id) -> StoreResult<()> {
    let sql = "DELETE FROM notifications WHERE user_id = $1 AND kind = $2 AND target_type = $3 AND target_id = $4";
    exec!(ex, c => sqlx::query(sql).bind(user).bind(kind).bind(target_type).bind(target_id).execute(c).await)?;
    Ok(())
}

/// Takes `actor` out of everyone's notifications (an erased account).
pub async fn remove_actor_from_all(ex: Ex<'_>, actor: Id) -> StoreResult<()> {
    remove_actor_where(ex, actor, "1 = 1", &[]).await?;
    Ok(())
}
