//! Posts, their hashtags and mentions, and the post lists every feed is cut from.
//!
//! Lists return candidates in id order (ids are time-ordered, so newest first is `id DESC`);
//! which of them a viewer may see is decided by `services::access`.

use sqlx::FromRow;

use super::{Backend, Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// A `posts` row.
#[derive(Clone, Debug, FromRow)]
pub struct PostRow {
    /// Id (time-ordered).
    pub id: Id,
    /// Author.
    pub author_id: Id,
    /// Caption (may be empty when the post has media).
    pub caption: String,
    /// At least one image attached.
    pub has_image: bool,
    /// At least one video attached.
    pub has_video: bool,
    /// Live (non-deleted) comments, replies included.
    pub comment_count: i64,
    /// Reactions of every type, disabled types included.
    pub reaction_count: i64,
    /// Created.
    pub created_at: Timestamp,
    /// Last caption change.
    pub updated_at: Timestamp,
}

const COLS: &str =
    "id, author_id, caption, has_image, has_video, comment_count, reaction_count, created_at, updated_at";

/// Ids as an SQL list (`1,2,3`). Ids are integers we produced, so inlining them is safe, and
/// it keeps one SQL text for both backends (PostgreSQL's `= ANY($1)` has no SQLite twin).
pub fn in_list(ids: &[Id]) -> String {
    ids.iter().map(|i| i.0.to_string()).collect::<Vec<_>>().join(",")
}

/// A row lock taken by a `SELECT` inside a write transaction (PostgreSQL). SQLite write
/// transactions are exclusive already and know no `FOR …` clause.
///
/// Writers follow one order to stay deadlock-free: the post row, then its comment rows, then
/// reaction rows, then count rows by kind key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowLock {
    /// `FOR KEY SHARE`: the row must stay (not be deleted) until commit; many may hold it
    /// and it does not conflict with counter updates.
    KeyShare,
    /// `FOR NO KEY UPDATE`: about to update counters of the row.
    NoKeyUpdate,
    /// `FOR UPDATE`: about to delete the row.
    Update,
}

impl RowLock {
    /// The clause to append to a `SELECT` on `backend`.
    pub fn clause(self, backend: Backend) -> &'static str {
        match (backend, self) {
            (Backend::Sqlite, _) => "",
            (Backend::Postgres, RowLock::KeyShare) => " FOR KEY SHARE",
            (Backend::Postgres, RowLock::NoKeyUpdate) => " FOR NO KEY UPDATE",
            (Backend::Postgres, RowLock::Update) => " FOR UPDATE",
        }
    }
}

/// Values of a new post.
pub struct NewPost<'a> {
    /// Id.
    pub id: Id,
    /// Author.
    pub author_id: Id,
    /// Caption.
    pub caption: &'a str,
    /// Has an image.
    pub has_image: bool,
    /// Has a video.
    pub has_video: bool,
    /// Creation time.
    pub now: Timestamp,
}

/// Inserts a post and counts it on its author.
pub async fn insert(ex: Ex<'_>, p: &NewPost<'_>) -> StoreResult<()> {
    let sql = "INSERT INTO posts (id, author_id, caption, has_image, has_video, created_at, updated_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $6)";
    let count = "UPDATE users SET post_count = post_count + 1 WHERE id = $1";
    run!(ex, c => async {
        sqlx::query(sql).bind(p.id).bind(p.author_id).bind(p.caption).bind(p.has_image).bind(p.has_video).bind(p.now)
            .execute(&mut *c).await?;
        sqlx::query(count).bind(p.author_id).execute(&mut *c).await?;
        Ok(())
    }.await)
}

/// A post by id.
pub async fn get(ex: Ex<'_>, id: Id) -> StoreResult<Option<PostRow>> {
    let sql = format!("SELECT {COLS} FROM posts WHERE id = $1");
    Ok(run!(ex, c => sqlx::query_as::<_, PostRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// A post by id, locked for the rest of the transaction (see [`RowLock`]).
pub async fn lock(ex: Ex<'_>, id: Id, lock: RowLock) -> StoreResult<Option<PostRow>> {
    let sql = format!("SELECT {COLS} FROM posts WHERE id = $1{}", lock.clause(ex.backend()));
    Ok(run!(ex, c => sqlx::query_as::<_, PostRow>(&sql).bind(id).fetch_optional(c).await)?)
}

/// Several posts by id, in no particular order (missing ids are simply absent).
pub async fn get_many(ex: Ex<'_>, ids: &[Id]) -> StoreResult<Vec<PostRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT {COLS} FROM posts WHERE id IN ({})", in_list(ids));
    Ok(run!(ex, c => sqlx::query_as::<_, PostRow>(&sql).fetch_all(c).await)?)
}

/// Records which kinds of media the post carries.
pub async fn set_media_flags(ex: Ex<'_>, id: Id, has_image: bool, has_video: bool) -> StoreResult<()> {
    let sql = "UPDATE posts SET has_image = $2, has_video = $3 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(has_image).bind(has_video).execute(c).await)?;
    Ok(())
}

/// Replaces the caption.
pub async fn update_caption(ex: Ex<'_>, id: Id, caption: &str, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE posts SET caption = $2, updated_at = $3 WHERE id = $1";
    let n = exec!(ex, c => sqlx::query(sql).bind(id).bind(caption).bind(now).execute(c).await)?;
    if n == 0 {
        return Err(super::StoreError::NotFound);
    }
    Ok(())
}

/// Adds `delta` to the comment counter.
pub async fn add_comment_count(ex: Ex<'_>, id: Id, delta: i64) -> StoreResult<()> {
    let sql = "UPDATE posts SET comment_count = comment_count + $2 WHERE id = $1";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(delta).execute(c).await)?;
    Ok(())
}

/// Deletes a post with everything that hangs off it: reactions on it and on its comments
/// (polymorphic, so no foreign key cascades them), then the row itself (cascading comments,
/// hashtags, mentions, saves, timeline entries). Uncounts it on its author.
pub async fn delete(ex: Ex<'_>, id: Id, author: Id) -> StoreResult<()> {
    let stmts = [
        "DELETE FROM reactions WHERE target_kind = 'comment' AND target_id IN (SELECT id FROM comments WHERE post_id = $1)",
        "DELETE FROM reaction_counts WHERE target_kind = 'comment' AND target_id IN (SELECT id FROM comments WHERE post_id = $1)",
        "DELETE FROM reactions WHERE target_kind = 'post' AND target_id = $1",
        "DELETE FROM reaction_counts WHERE target_kind = 'post' AND target_id = $1",
        "DELETE FROM posts WHERE id = $1",
    ];
    let count = "UPDATE users SET post_count = post_count - 1 WHERE id = $1 AND post_count > 0";
    run!(ex, c => async {
        for s in stmts {
            sqlx::query(s).bind(id).execute(&mut *c).await?;
        }
        sqlx::query(count).bind(author).execute(&mut *c).await?;
        Ok(())
    }.await)
}

/// Replaces the hashtags of a post (lower-case, without `#`).
pub async fn set_hashtags(ex: Ex<'_>, post: Id, tags: &[String]) -> StoreResult<()> {
    run!(ex, c => async {
        sqlx::query("DELETE FROM post_hashtags WHERE post_id = $1").bind(post).execute(&mut *c).await?;
        if !tags.is_empty() {
            let values = (0..tags.len()).map(|i| format!("(${}, $1)", i + 2)).collect::<Vec<_>>().join(",");
            let sql = format!("INSERT INTO post_hashtags (tag, post_id) VALUES {values}");
            let mut q = sqlx::query(&sql).bind(post);
            for t in tags {
                q = q.bind(t);
            }
            q.execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Replaces the users mentioned by a post.
pub async fn set_mentions(ex: Ex<'_>, post: Id, users: &[Id]) -> StoreResult<()> {
    run!(ex, c => async {
        sqlx::query("DELETE FROM post_mentions WHERE post_id = $1").bind(post).execute(&mut *c).await?;
        if !users.is_empty() {
            let values = users.iter().map(|u| format!("($1, {})", u.0)).collect::<Vec<_>>().join(",");
            let sql = format!("INSERT INTO post_mentions (post_id, user_id) VALUES {values}");
            sqlx::query(&sql).bind(post).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// `(post, tag)` for each of `posts`, tags in alphabetical order.
pub async fn hashtags_of(ex: Ex<'_>, posts: &[Id]) -> StoreResult<Vec<(Id, String)>> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT post_id, tag FROM post_hashtags WHERE post_id IN ({}) ORDER BY tag", in_list(posts));
    Ok(run!(ex, c => sqlx::query_as(&sql).fetch_all(c).await)?)
}

/// `(post, mentioned user)` for each of `posts`.
pub async fn mentions_of(ex: Ex<'_>, posts: &[Id]) -> StoreResult<Vec<(Id, Id)>> {
    if posts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!("SELECT post_id, user_id FROM post_mentions WHERE post_id IN ({})", in_list(posts));
    Ok(run!(ex, c => sqlx::query_as(&sql).fetch_all(c).await)?)
}

/// Posts of the given authors before `before`, newest first.
pub async fn by_authors(ex: Ex<'_>, authors: &[Id], before: Option<Id>, limit: i64) -> StoreResult<Vec<PostRow>> {
    if authors.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLS} FROM posts WHERE author_id IN ({}) AND ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        in_list(authors)
    );
    Ok(run!(ex, c => sqlx::query_as::<_, PostRow>(&sql).bind(before).bind(limit).fetch_all(c).await)?)
}

/// Ids of the posts of the given authors before `before`, newest first.
pub async fn ids_by_authors(ex: Ex<'_>, authors: &[Id], before: Option<Id>, limit: i64) -> StoreResult<Vec<Id>> {
    if authors.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT id FROM posts WHERE author_id IN ({}) AND ($1 IS NULL OR id < $1) ORDER BY id DESC LIMIT $2",
        in_list(authors)
    );
    Ok(run!(ex, c => sqlx::query_scalar(&sql).bind(before).bind(limit).fetch_all(c).await)?)
}

/// Ids of an author's posts at or after `from`, newest first (timeline clean-up).
pub async fn ids_of_author_since(ex: Ex<'_>, author: Id, from: Id, limit: i64) -> StoreResult<Vec<Id>> {
    let sql = "SELECT id FROM posts WHERE author_id = $1 AND id >= $2 ORDER BY id DESC LIMIT $3";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(author).bind(from).bind(limit).fetch_all(c).await)?)
}

/// Which media a post list asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasMedia {
    /// Posts with at least one image.
    Image,
    /// Posts with at least one video.
    Video,
}

/// All posts before `before`, newest first, optionally only those with images or videos.
pub async fn recent(ex: Ex<'_>, has: Option<HasMedia>, before: Option<Id>, limit: i64) -> StoreResult<Vec<PostRow>> {
    let filter = match has {
        None => "",
        Some(HasMedia::Image) => " AND has_image = TRUE",
        Some(HasMedia::Video) => " AND has_video = TRUE",
    };
    let sql = format!("SELECT {COLS} FROM posts WHERE ($1 IS NULL OR id < $1){filter} ORDER BY id DESC LIMIT $2");
    Ok(run!(ex, c => sqlx::query_as::<_, PostRow>(&sql).bind(before).bind(limit).fetch_all(c).await)?)
}

/// Posts tagged `tag` before `before`, newest first.
pub async fn by_hashtag(ex: Ex<'_>, tag: &str, before: Option<Id>, limit: i64) -> StoreResult<Vec<PostRow>> {
    let sql = format!(
        "SELECT {COLS} FROM posts WHERE id IN (\
           SELECT post_id FROM post_hashtags WHERE tag = $1 AND ($2 IS NULL OR post_id < $2) \
           ORDER BY post_id DESC LIMIT $3) \
         ORDER BY id DESC"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, PostRow>(&sql).bind(tag).bind(before).bind(limit).fetch_all(c).await)?)
}

/// The explore window: the newest `limit` posts with ids up to `max_id`, created at or after
/// `since`, by accounts that are not private, other than `exclude`.
pub async fn recent_by_public_authors(
    ex: Ex<'_>,
    exclude: Option<Id>,
    since: Timestamp,
    max_id: Id,
    limit: i64,
) -> StoreResult<Vec<PostRow>> {
    let cols = COLS.split(", ").map(|c| format!("p.{c}")).collect::<Vec<_>>().join(", ");
    let sql = format!(
        "SELECT {cols} FROM posts p JOIN users u ON u.id = p.author_id \
         WHERE p.id <= $1 AND p.created_at >= $2 AND u.is_private = FALSE AND ($3 IS NULL OR p.author_id <> $3) \
         ORDER BY p.id DESC LIMIT $4"
    );
    Ok(run!(ex, c => sqlx::query_as::<_, PostRow>(&sql).bind(max_id).bind(since).bind(exclude).bind(limit)
        .fetch_all(c).await)?)
}

/// The newest post id, if any.
pub async fn max_id(ex: Ex<'_>) -> StoreResult<Option<Id>> {
    Ok(run!(ex, c => sqlx::query_scalar("SELECT MAX(id) FROM posts").fetch_one(c).await)?)
}

/// Number of posts by `author`.
pub async fn count_by(ex: Ex<'_>, author: Id) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM posts WHERE author_id = $1";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(author).fetch_one(c).await)?)
}

/// Inserts many caption-only posts at once (benchmarks): `(id, author, caption, created_at)`.
/// Counters are not touched: call [`recount_posts`] afterwards.
pub async fn insert_bulk(ex: Ex<'_>, rows: &[(Id, Id, String, Timestamp)]) -> StoreResult<()> {
    run!(ex, c => async {
        for chunk in rows.chunks(200) {
            let values = (0..chunk.len())
                .map(|i| { let b = i * 4; format!("(${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 4) })
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!("INSERT INTO posts (id, author_id, caption, created_at, updated_at) VALUES {values}");
            let mut q = sqlx::query(&sql);
            for (id, author, caption, at) in chunk {
                q = q.bind(*id).bind(*author).bind(caption).bind(*at);
            }
            q.execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Recomputes every user's post counter (after bulk loads).
pub async fn recount_posts(ex: Ex<'_>) -> StoreResult<()> {
    let sql = "UPDATE users SET post_count = (SELECT COUNT(*) FROM posts p WHERE p.author_id = users.id)";
    exec!(ex, c => sqlx::query(sql).execute(c).await)?;
    Ok(())
}

/// Row counts of the social tables (seeding reports, idempotence checks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromRow)]
pub struct SocialCounts {
    /// Users.
    pub users: i64,
    /// Follows (any status).
    pub follows: i64,
    /// Posts.
    pub posts: i64,
    /// Top-level comments.
    pub comments: i64,
    /// Replies.
    pub replies: i64,
    /// Reactions (all targets).
    pub reactions: i64,
    /// Hashtag uses.
    pub hashtags: i64,
}

/// Counts the rows of the social tables.
pub async fn social_counts(ex: Ex<'_>) -> StoreResult<SocialCounts> {
    let sql = "SELECT (SELECT COUNT(*) FROM users) AS users, (SELECT COUNT(*) FROM follows) AS follows, \
                      (SELECT COUNT(*) FROM posts) AS posts, \
                      (SELECT COUNT(*) FROM comments WHERE parent_id IS NULL) AS comments, \
                      (SELECT COUNT(*) FROM comments WHERE parent_id IS NOT NULL) AS replies, \
                      (SELECT COUNT(*) FROM reactions) AS reactions, (SELECT COUNT(*) FROM post_hashtags) AS hashtags";
    Ok(run!(ex, c => sqlx::query_as::<_, SocialCounts>(sql).fetch_one(c).await)?)
}
