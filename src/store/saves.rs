//! Saved posts: a private bookmark list per user, newest save first.

use super::posts::{PostRow, in_list};
use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// Saves a post for a user; `false` when it already was.
pub async fn save(ex: Ex<'_>, user: Id, post: Id, now: Timestamp) -> StoreResult<bool> {
    let sql = "INSERT INTO saves (user_id, post_id, created_at) VALUES ($1, $2, $3) \
               ON CONFLICT (user_id, post_id) DO NOTHING";
    Ok(exec!(ex, c => sqlx::query(sql).bind(user).bind(post).bind(now).execute(c).await)? == 1)
}

/// Removes a save; `false` when there was none.
pub async fn unsave(ex: Ex<'_>, user: Id, post: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM saves WHERE user_id = $1 AND post_id = $2";
    Ok(exec!(ex, c => sqlx::query(sql).bind(user).bind(post).execute(c).await)? == 1)
}

/// Of `posts`, those `user` saved.
pub async fn saved_among(ex: Ex<'_>, user: Id, posts: &[Id]) -> StoreResult<Vec<Id>> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT post_id FROM saves WHERE user_id = $1 AND post_id IN ({})", in_list(posts));
    Ok(run!(ex, c => sqlx::query_scalar(&sql).bind(user).fetch_all(c).await)?)
}

/// `user`'s saved posts, newest save first, after the `(saved at, post)` cursor.
pub async fn page(
    ex: Ex<'_>,
    user: Id,
    after: Option<(i64, Id)>,
    limit: i64,
) -> StoreResult<Vec<(Timestamp, PostRow)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        saved_at: Timestamp,
        #[sqlx(flatten)]
        post: PostRow,
    }
    let sql = "SELECT s.created_at AS saved_at, p.id, p.author_id, p.caption, p.has_image, p.has_video, \
                      p.comment_count, p.reaction_count, p.created_at, p.updated_at \
               FROM saves s JOIN posts p ON p.id = s.post_id \
               WHERE s.user_id = $1 AND ($2 IS NULL OR s.created_at < $2 OR (s.created_at = $2 AND s.post_id < $3)) \
               ORDER BY s.created_at DESC, s.post_id DESC LIMIT $4";
    let (t, p) = (after.map(|a| a.0), after.map(|a| a.1).unwrap_or(Id(0)));
    let rows = run!(ex, c => sqlx::query_as::<_, Row>(sql).bind(user).bind(t).bind(p).bind(limit).fetch_all(c).await)?;
    Ok(rows.into_iter().map(|r| (r.saved_at, r.post)).collect())
}
