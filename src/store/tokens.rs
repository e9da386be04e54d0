//! Refresh tokens (rotated, grouped in families), access-token revocations and
//! password-reset tokens. Only hashes of tokens are stored.

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// Stores a newly issued refresh token.
pub async fn insert_refresh(
    ex: Ex<'_>,
    id: Id,
    user: Id,
    family: Id,
    hash: &str,
    now: Timestamp,
    expires: Timestamp,
) -> StoreResult<()> {
    let sql = "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6)";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(user).bind(family).bind(hash).bind(now).bind(expires)
        .execute(c).await)?;
    Ok(())
}

/// Marks a live refresh token used and returns `(user, family)`; `None` when the token is
/// unknown, expired, revoked or already used. The single `UPDATE … WHERE used_at IS NULL`
/// makes two concurrent refreshes with one token produce exactly one winner.
pub async fn use_refresh(ex: Ex<'_>, hash: &str, now: Timestamp) -> StoreResult<Option<(Id, Id)>> {
    let sql = "UPDATE refresh_tokens SET used_at = $2 \
               WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $2 \
               RETURNING user_id, family_id";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(hash).bind(now).fetch_optional(c).await)?)
}

/// The family of a refresh token regardless of its state (reuse detection).
pub async fn family_of(ex: Ex<'_>, hash: &str) -> StoreResult<Option<(Id, Id)>> {
    let sql = "SELECT user_id, family_id FROM refresh_tokens WHERE token_hash = $1";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(hash).fetch_optional(c).await)?)
}

/// Revokes every token of a family (a session).
pub async fn revoke_family(ex: Ex<'_>, family: Id, now: Timestamp) -> StoreResult<()> {
    let sql = "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL";
    exec!(ex, c => sqlx::query(sql).bind(family).bind(now).execute(c).await)?;
    Ok(())
}

/// Revokes every live family of a user except `keep`; returns the families revoked.
pub async fn revoke_user_families(ex: Ex<'_>, user: Id, keep: Option<Id>, now: Timestamp) -> StoreResult<Vec<Id>> {
    let sql = "UPDATE refresh_tokens SET revoked_at = $3 \
               WHERE user_id = $1 AND revoked_at IS NULL AND ($2 IS NULL OR family_id <> $2) \
               RETURNING family_id";
    let keep = keep.map(|k| k.0);
    let mut fams: Vec<Id> = run!(ex, c => sqlx::query_scalar(sql).bind(user).bind(keep).bind(now).fetch_all(c).await)?;
    fams.sort();
    fams.dedup();
    Ok(fams)
}

/// Records a revocation key (`jti:…` or `sid:…`) until `expires`.
pub async fn revoke_key(ex: Ex<'_>, key: &str, expires: Timestamp) -> StoreResult<()> {
    let sql = "INSERT INTO revoked_tokens (key, expires_at) VALUES ($1, $2) \
               ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at";
    exec!(ex, c => sqlx::query(sql).bind(key).bind(expires).execute(c).await)?;
    Ok(())
}

/// Whether any of two keys is revoked now.
pub async fn any_revoked(ex: Ex<'_>, a: &str, b: &str, now: Timestamp) -> StoreResult<bool> {
    let sql = "SELECT COUNT(*) FROM revoked_tokens WHERE key IN ($1, $2) AND expires_at > $3";
    let n: i64 = run!(ex, c => sqlx::query_scalar(sql).bind(a).bind(b).bind(now).fetch_one(c).await)?;
    Ok(n > 0)
}

/// Deletes revocations, used refresh tokens and reset tokens that can no longer matter.
pub async fn purge_expired(ex: Ex<'_>, now: Timestamp) -> StoreResult<u64> {
    run!(ex, c => async {
        let a = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at <= $1").bind(now).execute(&mut *c).await?;
        let b = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at <= $1").bind(now).execute(&mut *c).await?;
        let d = sqlx::query("DELETE FROM password_resets WHERE expires_at <= $1").bind(now).execute(&mut *c).await?;
        Ok(a.rows_affected() + b.rows_affected() + d.rows_affected())
    }.await)
}

/// Stores a password-reset token.
pub async fn insert_reset(
    ex: Ex<'_>,
    id: Id,
    user: Id,
    hash: &str,
    now: Timestamp,
    expires: Timestamp,
) -> StoreResult<()> {
    let sql =
        "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(user).bind(hash).bind(now).bind(expires).execute(c).await)?;
    Ok(())
}

/// The user of a live (unused, unexpired) reset token, without consuming it: lets the
/// service refuse a bad token before it spends an argon2 hash on the new password.
pub async fn reset_owner(ex: Ex<'_>, hash: &str, now: Timestamp) -> StoreResult<Option<Id>> {
    let sql = "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(hash).bind(now).fetch_optional(c).await)?)
}

/// Ends every live reset token of `user` (after a reset or a password change, an older
/// e-mail's token must not set the password again).
pub async fn end_resets(ex: Ex<'_>, user: Id, now: Timestamp) -> StoreResult<u64> {
    let sql = "UPDATE password_resets SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL";
    Ok(exec!(ex, c => sqlx::query(sql).bind(user).bind(now).execute(c).await)?)
}

/// Consumes a live reset token (single use) and returns its user.
pub async fn use_reset(ex: Ex<'_>, hash: &str, now: Timestamp) -> StoreResult<Option<Id>> {
    let sql = "UPDATE password_resets SET used_at = $2 \
               WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id";
    Ok(run!(ex, c => sqlx::query_scalar(sql).bind(hash).bind(now).fetch_optional(c).await)?)
}
