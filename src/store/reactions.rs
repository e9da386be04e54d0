//! Reaction types (data, not code), reactions on posts, comments and chat messages (one per
//! user per target), and per-type counts kept in the transaction that changes a reaction.
//!
//! # Exact counts under concurrency
//! A reaction change is one transaction that (1) locks the target row `FOR KEY SHARE` (it
//! cannot be deleted meanwhile, and other reactors are not blocked), (2) reads the user's
//! current reaction `FOR UPDATE` (two changes by one user queue here), (3) writes the
//! reaction, (4) applies `±1` to the count rows *sorted by kind key* with atomic upserts, and
//! (5) adjusts the target's total. Every writer takes locks in that order, so PostgreSQL
//! never deadlocks and never loses an increment; SQLite runs one write transaction at a time.

use sqlx::FromRow;

use super::posts::in_list;
use super::{Ex, StoreResult, fetch_limit};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// Reaction counts by type key, zero counts omitted: `{"love":3,"like":1}` (what the
/// count queries add up to, shown as they are by every view).
pub type Counts = std::collections::BTreeMap<String, i64>;

/// What a reaction is attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// A post.
    Post,
    /// A comment.
    Comment,
    /// A chat message.
    Message,
}

impl Target {
    /// `reactions.target_kind`.
    pub fn kind(self) -> &'static str {
        match self {
            Target::Post => "post",
            Target::Comment => "comment",
            Target::Message => "message",
        }
    }

    /// The table holding the target rows (with a `reaction_count` column, except messages).
    fn table(self) -> Option<&'static str> {
        match self {
            Target::Post => Some("posts"),
            Target::Comment => Some("comments"),
            Target::Message => None,
        }
    }
}

/// A `reaction_types` row.
#[derive(Clone, Debug, FromRow)]
pub struct ReactionTypeRow {
    /// Stable key (`love`).
    pub key: String,
    /// Emoji shown.
    pub emoji: String,
    /// Human label.
    pub label: String,
    /// Display order.
    pub position: i32,
    /// Whether it can still be chosen.
    pub active: bool,
}

/// Every reaction type, in display order.
pub async fn types(ex: Ex<'_>) -> StoreResult<Vec<ReactionTypeRow>> {
    let sql = "SELECT key, emoji, label, position, active FROM reaction_types ORDER BY position, key";
    Ok(run!(ex, c => sqlx::query_as::<_, ReactionTypeRow>(sql).fetch_all(c).await)?)
}

/// One reaction type.
pub async fn get_type(ex: Ex<'_>, key: &str) -> StoreResult<Option<ReactionTypeRow>> {
    let sql = "SELECT key, emoji, label, position, active FROM reaction_types WHERE key = $1";
    Ok(run!(ex, c => sqlx::query_as::<_, ReactionTypeRow>(sql).bind(key).fetch_optional(c).await)?)
}

/// Creates a type, or updates and re-enables an existing one. `position` `None` appends it
/// after the others (or keeps an existing type's position).
pub async fn upsert_type(ex: Ex<'_>, key: &str, emoji: &str, label: &str, position: Option<i32>) -> StoreResult<()> {
    let sql = "INSERT INTO reaction_types (key, emoji, label, position, active) \
               VALUES ($1, $2, $3, COALESCE($4, (SELECT COALESCE(MAX(position), 0) + 1 FROM reaction_types)), TRUE) \
               ON CONFLICT (key) DO UPDATE SET emoji = excluded.emoji, label = excluded.label, active = TRUE, \
                 position = COALESCE($4, reaction_types.position)";
    exec!(ex, c => sqlx::query(sql).bind(key).bind(emoji).bind(label).bind(position).execute(c).await)?;
    Ok(())
}

/// Enables or disables a type; `false` when the key is unknown.
pub async fn set_type_active(ex: Ex<'_>, key: &str, active: bool) -> StoreResult<bool> {
    let sql = "UPDATE reaction_types SET active = $2 WHERE key = $1";
    Ok(exec!(ex, c => sqlx::query(sql).bind(key).bind(active).execute(c).await)? == 1)
}

/// The user's current reaction on a target, locked until commit (PostgreSQL).
pub async fn current_for_update(ex: Ex<'_>, target: Target, id: Id, user: Id) -> StoreResult<Option<String>> {
    let lock = if ex.backend() == super::Backend::Postgres { " FOR UPDATE" } else { "" };
    let sql = format!("SELECT kind FROM reactions WHERE target_kind = $1 AND target_id = $2 AND user_id = $3{lock}");
    Ok(run!(ex, c => sqlx::query_scalar(&sql).bind(target.kind()).bind(id).bind(user).fetch_optional(c).await)?)
}

/// Inserts a reaction; `false` when the user already has one on the target (a concurrent
/// insert won: the caller retries).
pub async fn insert(ex: Ex<'_>, target: Target, id: Id, user: Id, kind: &str, now: Timestamp) -> StoreResult<bool> {
    let sql = "INSERT INTO reactions (target_kind, target_id, user_id, kind, created_at) VALUES ($1, $2, $3, $4, $5) \
               ON CONFLICT (target_kind, target_id, user_id) DO NOTHING";
    let n = exec!(ex, c => sqlx::query(sql).bind(target.kind()).bind(id).bind(user).bind(kind).bind(now)
        .execute(c).await)?;
    Ok(n == 1)
}

/// Switches the type of an existing (locked) reaction.
pub async fn switch(ex: Ex<'_>, target: Target, id: Id, user: Id, kind: &str, now: Timestamp) -> StoreResult<()> {
    let sql =
        "UPDATE reactions SET kind = $4, created_at = $5 WHERE target_kind = $1 AND target_id = $2 AND user_id = $3";
    exec!(ex, c => sqlx::query(sql).bind(target.kind()).bind(id).bind(user).bind(kind).bind(now).execute(c).await)?;
    Ok(())
}

/// Removes the user's reaction; returns its type (`None`: there was none).
pub async fn delete(ex: Ex<'_>, target: Target, id: Id, user: Id) -> StoreResult<Option<String>> {
    let sql = "DELETE FROM reactions WHERE target_kind = $1 AND target_id = $2 AND user_id = $3 RETURNING kind";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(target.kind()).bind(id).bind(user).fetch_optional(c).await)?)
}

/// Applies count changes `(kind, ±n)` to a target, in kind-key order (the lock order), and
/// adds their sum to the target's total.
pub async fn apply_counts(ex: Ex<'_>, target: Target, id: Id, changes: &[(&str, i64)]) -> StoreResult<()> {
    let mut changes: Vec<(&str, i64)> = changes.iter().copied().filter(|(_, d)| *d != 0).collect();
    changes.sort_by(|a, b| a.0.cmp(b.0));
    let total: i64 = changes.iter().map(|c| c.1).sum();
    let upsert = "INSERT INTO reaction_counts (target_kind, target_id, kind, count) VALUES ($1, $2, $3, $4) \
                  ON CONFLICT (target_kind, target_id, kind) DO UPDATE SET count = reaction_counts.count + excluded.count";
    let total_sql =
        target.table().map(|t| format!("UPDATE {t} SET reaction_count = reaction_count + $2 WHERE id = $1"));
    run!(ex, c => async {
        for (kind, delta) in &changes {
            sqlx::query(upsert).bind(target.kind()).bind(id).bind(*kind).bind(*delta).execute(&mut *c).await?;
        }
        if let Some(sql) = &total_sql
            && total != 0
        {
            sqlx::query(sql).bind(id).bind(total).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Non-zero counts `(target, kind, count)` of each target.
pub async fn counts_of(ex: Ex<'_>, target: Target, ids: &[Id]) -> StoreResult<Vec<(Id, String, i64)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT target_id, kind, count FROM reaction_counts WHERE target_kind = $1 AND target_id IN ({}) AND count > 0",
        in_list(ids)
    );
    Ok(run!(ex, c => sqlx::query_as(&sql).bind(target.kind()).fetch_all(c).await)?)
}

/// `user`'s reaction on each of the targets that has one: `(target, kind)`.
pub async fn mine_of(ex: Ex<'_>, target: Target, ids: &[Id], user: Id) -> StoreResult<Vec<(Id, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT target_id, kind FROM reactions WHERE target_kind = $1 AND user_id = $2 AND target_id IN ({})",
        in_list(ids)
    );
    Ok(run!(ex, c => sqlx::query_as(&sql).bind(target.kind()).bind(user).fetch_all(c).await)?)
}

/// Who reacted to a target (optionally with one type), newest first:
/// `(user, kind, reacted at)`, after the `(time, user)` cursor.
pub async fn reactors(
    ex: Ex<'_>,
    target: Target,
    id: Id,
    kind: Option<&str>,
    after: Option<(i64, Id)>,
    limit: u32,
) -> StoreResult<Vec<(Id, String, Timestamp)>> {
    let sql = "SELECT user_id, kind, created_at FROM reactions \
               WHERE target_kind = $1 AND target_id = $2 AND ($3 IS NULL OR kind = $3) \
                 AND ($4 IS NULL OR created_at < $4 OR (created_at = $4 AND user_id < $5)) \
               ORDER BY created_at DESC, user_id DESC LIMIT $6";
    let (t, u) = (after.map(|a| a.0), after.map(|a| a.1).unwrap_or(Id(0)));
    Ok(run!(ex, c => sqlx::query_as(sql).bind(target.kind()).bind(id).bind(kind).bind(t).bind(u)
        .bind(fetch_limit(limit)).fetch_all(c).await)?)
}

/// Total of the count rows of a target, and the number of reaction rows (consistency checks).
pub async fn totals(ex: Ex<'_>, target: Target, id: Id) -> StoreResult<(i64, i64)> {
    let sql = "SELECT \
                 (SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM reaction_counts WHERE target_kind = $1 AND target_id = $2), \
                 (SELECT COUNT(*) FROM reactions WHERE target_kind = $1 AND target_id = $2)";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(target.kind()).bind(id).fetch_one(c).await)?)
}
