//! Home-feed timelines written by fan-out on write: per user, the ids of the posts of the
//! accounts they follow, newest first. Two interchangeable homes:
//!
//! - the `timeline_entries` table (single node, no Redis): the functions at module level;
//! - Redis sorted sets `{ns}:tl:{user}` when `REDIS_URL` is set: [`RedisTimelines`], kept
//!   beside the table so the feed service sees one shape of data (ids newest first).
//!
//! Neither is the source of truth: a timeline is a cache of "who posted what for whom" that
//! the feed service filters at read time (follows, blocks, mutes, deletions), so a stale
//! entry is never shown and clean-up jobs may lag.
//!
//! # Redis scores
//! The score of an entry is the post id. Ids are 63-bit and a score is a double (53-bit
//! mantissa), so nearby ids can round to one score. Members are therefore the ids
//! zero-padded to 19 digits: Redis orders equal scores by member bytes, which is id order,
//! so `ZREVRANGEBYSCORE` returns exact id order; a page read is inclusive of the cursor's
//! rounded score and drops ids `>= cursor` in Rust. Exact, with at most a few extra members
//! read.

use redis::aio::ConnectionManager;

use super::posts::in_list;
use super::{Ex, StoreResult};
use crate::domain::Id;
use crate::{exec, run};

/// Rows per multi-row insert (three parameters each, well under both backends' limits).
const CHUNK: usize = 500;

/// Adds `post` (by `author`) to the timelines of `users`; entries already there are kept.
pub async fn push(ex: Ex<'_>, post: Id, author: Id, users: &[Id]) -> StoreResult<()> {
    run!(ex, c => async {
        for chunk in users.chunks(CHUNK) {
            // User ids are integers we produced: inlined like `in_list`.
            let values = chunk.iter().map(|u| format!("({}, $1, $2)", u.0)).collect::<Vec<_>>().join(",");
            let sql = format!(
                "INSERT INTO timeline_entries (user_id, post_id, author_id) VALUES {values} \
                 ON CONFLICT (user_id, post_id) DO NOTHING"
            );
            sqlx::query(&sql).bind(post).bind(author).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Post ids of `user`'s timeline before `before`, newest first.
pub async fn page(ex: Ex<'_>, user: Id, before: Option<Id>, limit: i64) -> StoreResult<Vec<Id>> {
    let sql = "SELECT post_id FROM timeline_entries WHERE user_id = $1 AND ($2 IS NULL OR post_id < $2) \
               ORDER BY post_id DESC LIMIT $3";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).bind(before).bind(limit).fetch_all(c).await)?)
}

/// Removes `author`'s posts from `user`'s timeline (unfollow, block).
pub async fn remove_author(ex: Ex<'_>, user: Id, author: Id) -> StoreResult<u64> {
    let sql = "DELETE FROM timeline_entries WHERE user_id = $1 AND author_id = $2";
    Ok(exec!(ex, c => sqlx::query(sql).bind(user).bind(author).execute(c).await)?)
}

/// Adds `author`'s `limit` newest posts — of those from `from` on, if given — to the
/// timelines of `users`; entries already there are kept.
pub async fn backfill(ex: Ex<'_>, users: &[Id], author: Id, from: Option<Id>, limit: i64) -> StoreResult<()> {
    run!(ex, c => async {
        for chunk in users.chunks(CHUNK) {
            // The WHERE clause also settles SQLite's INSERT … SELECT … ON CONFLICT parsing
            // ambiguity. User ids are integers we produced: inlined like `in_list`.
            let sql = format!(
                "INSERT INTO timeline_entries (user_id, post_id, author_id) \
                 SELECT u.id, p.id, p.author_id FROM users u CROSS JOIN \
                   (SELECT id, author_id FROM posts WHERE author_id = $1 AND ($3 IS NULL OR id >= $3) \
                    ORDER BY id DESC LIMIT $2) p \
                 WHERE u.id IN ({}) \
                 ON CONFLICT (user_id, post_id) DO NOTHING",
                in_list(chunk)
            );
            sqlx::query(&sql).bind(author).bind(limit).bind(from).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Cuts each of `users`' timelines to its `max_len` newest entries.
pub async fn trim(ex: Ex<'_>, users: &[Id], max_len: i64) -> StoreResult<()> {
    let sql = "DELETE FROM timeline_entries WHERE user_id = $1 AND post_id < \
               (SELECT post_id FROM timeline_entries WHERE user_id = $1 ORDER BY post_id DESC LIMIT 1 OFFSET $2)";
    run!(ex, c => async {
        for u in users {
            sqlx::query(sql).bind(*u).bind(max_len - 1).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Number of entries in `user`'s timeline.
pub async fn len(ex: Ex<'_>, user: Id) -> StoreResult<i64> {
    let sql = "SELECT COUNT(*) FROM timeline_entries WHERE user_id = $1";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_one(c).await)?)
}

/// Inserts many `(user, post, author)` entries at once (bulk loads for benchmarks; a running
/// server fans out instead). Existing entries are kept.
pub async fn insert_bulk(ex: Ex<'_>, rows: &[(Id, Id, Id)]) -> StoreResult<()> {
    run!(ex, c => async {
        for chunk in rows.chunks(CHUNK) {
            // All three are integers we produced: inlined like `in_list`.
            let values =
                chunk.iter().map(|(u, p, a)| format!("({}, {}, {})", u.0, p.0, a.0)).collect::<Vec<_>>().join(",");
            let sql = format!(
                "INSERT INTO timeline_entries (user_id, post_id, author_id) VALUES {values} \
                 ON CONFLICT (user_id, post_id) DO NOTHING"
            );
            sqlx::query(&sql).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Empties every timeline (benchmarks rebuilding them under another threshold).
pub async fn clear_all(ex: Ex<'_>) -> StoreResult<()> {
    exec!(ex, c => sqlx::query("DELETE FROM timeline_entries").execute(c).await)?;
    Ok(())
}

/// Whether any of `posts` is in `user`'s timeline (tests, diagnostics).
pub async fn contains_any(ex: Ex<'_>, user: Id, posts: &[Id]) -> StoreResult<bool> {
    if posts.is_empty() {
        return Ok(false);
    }
    let sql = format!("SELECT COUNT(*) FROM timeline_entries WHERE user_id = $1 AND post_id IN ({})", in_list(posts));
    let n: i64 = run!(ex, c => sqlx::query_scalar(&sql).bind(user).fetch_one(c).await)?;
    Ok(n > 0)
}

/// Timelines in Redis sorted sets, `{namespace}:tl:{user}`, each with a mark
/// `{namespace}:tlb:{user}` saying it was built from the database once on this Redis.
#[derive(Clone)]
pub struct RedisTimelines {
    conn: ConnectionManager,
    namespace: String,
}

/// Extra members read past a page to absorb score rounding (ids sharing a double).
const ROUNDING_SLACK: i64 = 64;

fn member(post: Id) -> String {
    format!("{:019}", post.0)
}

impl RedisTimelines {
    /// Timelines on this connection under `namespace`.
    pub fn new(conn: ConnectionManager, namespace: &str) -> Self {
        Self { conn, namespace: namespace.to_string() }
    }

    /// The key of `user`'s timeline.
    pub fn key(&self, user: Id) -> String {
        format!("{}:tl:{}", self.namespace, user)
    }

    /// The key that says `user`'s timeline was built on this Redis (see [`Self::rebuild`]).
    fn built_key(&self, user: Id) -> String {
        format!("{}:tlb:{}", self.namespace, user)
    }

    /// Queues adding `posts` to `user`'s timeline and trimming it to `max_len`.
    fn add(&self, pipe: &mut redis::Pipeline, posts: &[Id], user: Id, max_len: i64) {
        let key = self.key(user);
        let mut zadd = redis::cmd("ZADD");
        zadd.arg(&key);
        for p in posts {
            zadd.arg(p.0 as f64).arg(member(*p));
        }
        pipe.add_command(zadd).ignore();
        pipe.cmd("ZREMRANGEBYRANK").arg(&key).arg(0).arg(-(max_len + 1)).ignore();
    }

    /// Adds `posts` to each of `users`' timelines and trims each to `max_len`, in one
    /// pipeline (idempotent: re-adding a member changes nothing).
    pub async fn push(&self, posts: &[Id], users: &[Id], max_len: i64) -> redis::RedisResult<()> {
        if posts.is_empty() || users.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for u in users {
            self.add(&mut pipe, posts, *u, max_len);
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Fills `user`'s timeline with `posts` (trimmed to `max_len`) and marks it built, in one
    /// pipeline: the mark comes after the entries, so a timeline marked built holds them.
    pub async fn rebuild(&self, user: Id, posts: &[Id], max_len: i64) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        if !posts.is_empty() {
            self.add(&mut pipe, posts, user, max_len);
        }
        pipe.cmd("SET").arg(self.built_key(user)).arg(1).ignore();
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Post ids of `user`'s timeline before `before`, newest first — or `None` when the
    /// timeline was never built on this Redis (a new user, or a Redis that restarted empty
    /// or evicted the mark): then the caller rebuilds it from the database. One round trip.
    pub async fn page(&self, user: Id, before: Option<Id>, limit: i64) -> redis::RedisResult<Option<Vec<Id>>> {
        let max = match before {
            Some(b) => format!("{}", b.0 as f64),
            None => "+inf".to_string(),
        };
        let slack = if before.is_some() { ROUNDING_SLACK } else { 0 };
        let (built, members): (bool, Vec<String>) = redis::pipe()
            .exists(self.built_key(user))
            .cmd("ZREVRANGEBYSCORE")
            .arg(self.key(user))
            .arg(max)
            .arg("-inf")
            .arg("LIMIT")
            .arg(0)
            .arg(limit + slack)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(built.then(|| {
            members
                .iter()
                .filter_map(|m| m.parse::<i64>().ok().map(Id))
                .filter(|id| before.is_none_or(|b| *id < b))
                .take(limit as usize)
                .collect()
        }))
    }

    /// Removes `posts` from `user`'s timeline.
    pub async fn remove(&self, user: Id, posts: &[Id]) -> redis::RedisResult<()> {
        if posts.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZREM");
        cmd.arg(self.key(user));
        for p in posts {
            cmd.arg(member(*p));
        }
        cmd.query_async::<()>(&mut self.conn.clone()).await
    }

    /// Removes `post` from each of `users`' timelines.
    pub async fn remove_everywhere(&self, post: Id, users: &[Id]) -> redis::RedisResult<()> {
        if users.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for u in users {
            pipe.cmd("ZREM").arg(self.key(*u)).arg(member(post)).ignore();
        }
        pipe.query_async::<()>(&mut self.conn.clone()).await
    }

    /// The oldest post id in `user`'s timeline.
    pub async fn oldest(&self, user: Id) -> redis::RedisResult<Option<Id>> {
        let first: Vec<String> =
            redis::cmd("ZRANGE").arg(self.key(user)).arg(0).arg(0).query_async(&mut self.conn.clone()).await?;
        Ok(first.first().and_then(|m| m.parse::<i64>().ok()).map(Id))
    }

    /// Number of entries in `user`'s timeline.
    pub async fn len(&self, user: Id) -> redis::RedisResult<i64> {
        redis::cmd("ZCARD").arg(self.key(user)).query_async(&mut self.conn.clone()).await
    }
}
