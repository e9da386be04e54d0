//! The social graph: follows (active, or pending while a private account decides), blocks
//! and mutes, plus the follower/following counters kept on `users` in the same transaction.
//!
//! Lists are keyed by `(created_at, user id)`, newest first. Who may *see* a list is decided
//! by `services::access`, never here.

use super::posts::in_list;
use super::{Ex, StoreResult, fetch_limit};
pub use crate::domain::user::FollowStatus;
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// Inserts a follow. Returns `false` when one (of either status) already exists: the
/// primary key decides, so concurrent duplicates are safe.
pub async fn insert_follow(
    ex: Ex<'_>,
    follower: Id,
    followee: Id,
    status: FollowStatus,
    now: Timestamp,
) -> StoreResult<bool> {
    let sql = "INSERT INTO follows (follower_id, followee_id, status, created_at) VALUES ($1, $2, $3, $4) \
               ON CONFLICT (follower_id, followee_id) DO NOTHING";
    let n = exec!(ex, c => sqlx::query(sql).bind(follower).bind(followee).bind(status).bind(now).execute(c).await)?;
    Ok(n == 1)
}

/// Status of `follower → followee`, if any.
pub async fn follow_status(ex: Ex<'_>, follower: Id, followee: Id) -> StoreResult<Option<FollowStatus>> {
    let sql = "SELECT status FROM follows WHERE follower_id = $1 AND followee_id = $2";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(follower).bind(followee).fetch_optional(c).await)?)
}

/// Turns a pending request into an active follow (its time becomes the approval time).
/// Returns `false` when there was no pending request.
pub async fn approve(ex: Ex<'_>, follower: Id, followee: Id, now: Timestamp) -> StoreResult<bool> {
    let sql = "UPDATE follows SET status = 'active', created_at = $3 \
               WHERE follower_id = $1 AND followee_id = $2 AND status = 'pending'";
    let n = exec!(ex, c => sqlx::query(sql).bind(follower).bind(followee).bind(now).execute(c).await)?;
    Ok(n == 1)
}

/// Deletes `follower → followee`; returns the status it had (`None`: there was none).
pub async fn delete_follow(ex: Ex<'_>, follower: Id, followee: Id) -> StoreResult<Option<FollowStatus>> {
    let sql = "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 RETURNING status";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(follower).bind(followee).fetch_optional(c).await)?)
}

/// Deletes a pending request (never an active follow); `false` when there was none.
pub async fn delete_request(ex: Ex<'_>, follower: Id, followee: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM follows WHERE follower_id = $1 AND followee_id = $2 AND status = 'pending'";
    Ok(exec!(ex, c => sqlx::query(sql).bind(follower).bind(followee).execute(c).await)? == 1)
}

/// Adds `delta` to `follower.following_count` and `followee.follower_count`. Always called
/// in the transaction that activated or removed an active follow. One statement for both
/// rows, so two opposite follows lock them in the same (index) order on PostgreSQL.
pub async fn add_follow_counts(ex: Ex<'_>, follower: Id, followee: Id, delta: i64) -> StoreResult<()> {
    let sql = "UPDATE users SET \
                 following_count = following_count + CASE WHEN id = $1 THEN $3 ELSE 0 END, \
                 follower_count = follower_count + CASE WHEN id = $2 THEN $3 ELSE 0 END \
               WHERE id IN ($1, $2)";
    exec!(ex, c => sqlx::query(sql).bind(follower).bind(followee).bind(delta).execute(c).await)?;
    Ok(())
}

/// Followers of `user` with `status`, newest first: `(follower id, since)`.
pub async fn followers(
    ex: Ex<'_>,
    user: Id,
    status: FollowStatus,
    after: Option<(i64, Id)>,
    limit: u32,
) -> StoreResult<Vec<(Id, Timestamp)>> {
    let sql = "SELECT follower_id, created_at FROM follows \
               WHERE followee_id = $1 AND status = $2 \
                 AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND follower_id < $4)) \
               ORDER BY created_at DESC, follower_id DESC LIMIT $5";
    let (t, i) = (after.map(|a| a.0), after.map(|a| a.1).unwrap_or(Id(0)));
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).bind(status).bind(t).bind(i).bind(fetch_limit(limit))
        .fetch_all(c).await)?)
}

/// Accounts `user` actively follows, newest first: `(followee id, since)`.
pub async fn following(
    ex: Ex<'_>,
    user: Id,
    after: Option<(i64, Id)>,
    limit: u32,
) -> StoreResult<Vec<(Id, Timestamp)>> {
    let sql = "SELECT followee_id, created_at FROM follows \
               WHERE follower_id = $1 AND status = 'active' \
                 AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND followee_id < $3)) \
               ORDER BY created_at DESC, followee_id DESC LIMIT $4";
    let (t, i) = (after.map(|a| a.0), after.map(|a| a.1).unwrap_or(Id(0)));
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).bind(t).bind(i).bind(fetch_limit(limit)).fetch_all(c).await)?)
}

/// Every active follower of `user` (fan-out).
pub async fn active_follower_ids(ex: Ex<'_>, user: Id) -> StoreResult<Vec<Id>> {
    let sql = "SELECT follower_id FROM follows WHERE followee_id = $1 AND status = 'active'";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_all(c).await)?)
}

/// Every account `user` actively follows, with that account's follower count and whether
/// fan-out skipped some of its posts (the home feed decides from them which authors are
/// merged at read time).
pub async fn following_for_feed(ex: Ex<'_>, user: Id) -> StoreResult<Vec<(Id, i64, bool)>> {
    let sql = "SELECT f.followee_id, u.follower_count, u.unfanned_since IS NOT NULL \
               FROM follows f JOIN users u ON u.id = f.followee_id \
               WHERE f.follower_id = $1 AND f.status = 'active'";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(user).fetch_all(c).await)?)
}

/// `viewer`'s follows (any status) towards each of `users`: `(followee, status)`.
pub async fn follow_statuses(ex: Ex<'_>, viewer: Id, users: &[Id]) -> StoreResult<Vec<(Id, FollowStatus)>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT followee_id, status FROM follows WHERE follower_id = $1 AND followee_id IN ({})",
        in_list(users)
    );
    Ok(run!(ex, c => sqlx::query_as(&sql).bind(viewer).fetch_all(c).await)?)
}

/// Every follow (any status) of `viewer`: `(followee, status)`.
pub async fn all_follow_statuses(ex: Ex<'_>, viewer: Id) -> StoreResult<Vec<(Id, FollowStatus)>> {
    let sql = "SELECT followee_id, status FROM follows WHERE follower_id = $1";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(viewer).fetch_all(c).await)?)
}

/// Blocks `blocked` by `blocker`; `false` when it already existed.
pub async fn block(ex: Ex<'_>, blocker: Id, blocked: Id, now: Timestamp) -> StoreResult<bool> {
    let sql = "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) \
               ON CONFLICT (blocker_id, blocked_id) DO NOTHING";
    Ok(exec!(ex, c => sqlx::query(sql).bind(blocker).bind(blocked).bind(now).execute(c).await)? == 1)
}

/// Lifts a block; `false` when there was none.
pub async fn unblock(ex: Ex<'_>, blocker: Id, blocked: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2";
    Ok(exec!(ex, c => sqlx::query(sql).bind(blocker).bind(blocked).execute(c).await)? == 1)
}

/// Of `users`, those that `viewer` blocked or that blocked `viewer`.
pub async fn blocked_among(ex: Ex<'_>, viewer: Id, users: &[Id]) -> StoreResult<Vec<Id>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let list = in_list(users);
    let sql = format!(
        "SELECT blocked_id FROM blocks WHERE blocker_id = $1 AND blocked_id IN ({list}) \
         UNION SELECT blocker_id FROM blocks WHERE blocked_id = $1 AND blocker_id IN ({list})"
    );
    Ok(run!(ex, c => sqlx::query_scalar(&sql).bind(viewer).fetch_all(c).await)?)
}

/// Of `users`, those blocked either way with `viewer` (`(id, false)`) and those `viewer`
/// muted (`(id, true)`): one query for both, so an audience costs two in all.
pub async fn blocked_or_muted_among(ex: Ex<'_>, viewer: Id, users: &[Id]) -> StoreResult<Vec<(Id, bool)>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let list = in_list(users);
    let sql = format!(
        "SELECT blocked_id, FALSE FROM blocks WHERE blocker_id = $1 AND blocked_id IN ({list}) \
         UNION SELECT blocker_id, FALSE FROM blocks WHERE blocked_id = $1 AND blocker_id IN ({list}) \
         UNION SELECT muted_id, TRUE FROM mutes WHERE muter_id = $1 AND muted_id IN ({list})"
    );
    Ok(run!(ex, c => sqlx::query_as(&sql).bind(viewer).fetch_all(c).await)?)
}

/// Everyone `user` blocked or was blocked by.
pub async fn block_set(ex: Ex<'_>, user: Id) -> StoreResult<Vec<Id>> {
    let sql =
        "SELECT blocked_id FROM blocks WHERE blocker_id = $1 UNION SELECT blocker_id FROM blocks WHERE blocked_id = $1";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_all(c).await)?)
}

/// Mutes `muted` for `muter`; `false` when it already was.
pub async fn mute(ex: Ex<'_>, muter: Id, muted: Id, now: Timestamp) -> StoreResult<bool> {
    let sql = "INSERT INTO mutes (muter_id, muted_id, created_at) VALUES ($1, $2, $3) \
               ON CONFLICT (muter_id, muted_id) DO NOTHING";
    Ok(exec!(ex, c => sqlx::query(sql).bind(muter).bind(muted).bind(now).execute(c).await)? == 1)
}

/// Unmutes; `false` when it was not muted.
pub async fn unmute(ex: Ex<'_>, muter: Id, muted: Id) -> StoreResult<bool> {
    let sql = "DELETE FROM mutes WHERE muter_id = $1 AND muted_id = $2";
    Ok(exec!(ex, c => sqlx::query(sql).bind(muter).bind(muted).execute(c).await)? == 1)
}

/// Accounts `user` muted.
pub async fn muted_ids(ex: Ex<'_>, user: Id) -> StoreResult<Vec<Id>> {
    let sql = "SELECT muted_id FROM mutes WHERE muter_id = $1";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_all(c).await)?)
}

/// Accounts that muted `user` (their feeds get no live events about `user`'s posts).
pub async fn muters_of(ex: Ex<'_>, user: Id) -> StoreResult<Vec<Id>> {
    let sql = "SELECT muter_id FROM mutes WHERE muted_id = $1";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(user).fetch_all(c).await)?)
}

/// Whether `muter` muted `muted`.
pub async fn is_muted(ex: Ex<'_>, muter: Id, muted: Id) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM mutes WHERE muter_id = $1 AND muted_id = $2";
    let n: i64 = run!(ex, c => sqlx::query_scalar(sql).bind(muter).bind(muted).fetch_one(c).await)?;
    Ok(n > 0)
}

/// Friends of friends of `me`: accounts followed by the accounts `me` follows, ranked by how
/// many of them follow it, excluding `me` and anyone `me` follows, requested, blocked or was
/// blocked by. `(id, mutual count)`.
pub async fn friends_of_friends(ex: Ex<'_>, me: Id, limit: u32) -> StoreResult<Vec<(Id, i64)>> {
    let sql = "SELECT f2.followee_id, COUNT(*) AS mutual FROM follows f1 \
               JOIN follows f2 ON f2.follower_id = f1.followee_id AND f2.status = 'active' \
               WHERE f1.follower_id = $1 AND f1.status = 'active' AND f2.followee_id <> $1 \
                 AND NOT EXISTS (SELECT 1 FROM follows x WHERE x.follower_id = $1 AND x.followee_id = f2.followee_id) \
                 AND NOT EXISTS (SELECT 1 FROM blocks b WHERE (b.blocker_id = $1 AND b.blocked_id = f2.followee_id) \
                                                        OR (b.blocked_id = $1 AND b.blocker_id = f2.followee_id)) \
               GROUP BY f2.followee_id ORDER BY mutual DESC, f2.followee_id DESC LIMIT $2";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(me).bind(limit as i64).fetch_all(c).await)?)
}

/// Inserts many active follows at once (seeding and benchmarks); existing ones are kept.
/// Counters are not touched: call [`recount_follows`] afterwards.
pub async fn insert_follows_bulk(ex: Ex<'_>, pairs: &[(Id, Id)], now: Timestamp) -> StoreResult<u64> {
    run!(ex, c => async {
        let mut n = 0;
        for chunk in pairs.chunks(400) {
            let values = (0..chunk.len())
                .map(|i| format!("(${}, ${}, 'active', ${})", 2 * i + 1, 2 * i + 2, 2 * chunk.len() + 1))
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!(
                "INSERT INTO follows (follower_id, followee_id, status, created_at) VALUES {values} \
                 ON CONFLICT (follower_id, followee_id) DO NOTHING"
            );
            let mut q = sqlx::query(&sql);
            for (a, b) in chunk {
                q = q.bind(*a).bind(*b);
            }
            n += q.bind(now).execute(&mut *c).await?.rows_affected();
        }
        Ok(n)
    }.await)
}

/// Recomputes every user's follower and following counters from `follows` (after bulk loads).
pub async fn recount_follows(ex: Ex<'_>) -> StoreResult<()> {
    let sql = "UPDATE users SET \
                 follower_count = (SELECT COUNT(*) FROM follows f WHERE f.followee_id = users.id AND f.status = 'active'), \
                 following_count = (SELECT COUNT(*) FROM follows f WHERE f.follower_id = users.id AND f.status = 'active')";
    exec!(ex, c => sqlx::query(sql).execute(c).await)?;
    Ok(())
}

/// Of `users`, those who actively follow `followee`.
pub async fn followers_among(ex: Ex<'_>, followee: Id, users: &[Id]) -> StoreResult<Vec<Id>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT follower_id FROM follows WHERE followee_id = $1 AND status = 'active' AND follower_id IN ({})",
        in_list(users)
    );
    Ok(run!(ex, c => sqlx::query_scalar(&sql).bind(followee).fetch_all(c).await)?)
}
