//! E-mail verification codes and link tokens, stored as hashes only.

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// Wrong codes allowed per sent code before it stops working (with a million codes, five
/// guesses are one chance in 200,000).
pub const MAX_ATTEMPTS: i64 = 5;

/// Records a freshly sent code and link for `email`, ending every earlier one of the user.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    mut ex: Ex<'_>,
    id: Id,
    user: Id,
    email: &str,
    code_hash: &str,
    token_hash: &str,
    now: Timestamp,
    expires: Timestamp,
) -> StoreResult<()> {
    let sql = "UPDATE email_verifications SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL";
    exec!(ex.reborrow(), c => sqlx::query(sql).bind(user).bind(now).execute(c).await)?;
    let sql = "INSERT INTO email_verifications (id, user_id, email, code_hash, token_hash, created_at, expires_at) \
               VALUES ($1, $2, $3, $4, $5, $6, $7)";
    exec!(ex, c => sqlx::query(sql).bind(id).bind(user).bind(email).bind(code_hash).bind(token_hash)
        .bind(now).bind(expires).execute(c).await)?;
    Ok(())
}

/// Uses `user`'s live code if it is `code_hash`: the address it was sent to. A wrong code
/// counts an attempt. One `UPDATE … WHERE used_at IS NULL` so a code works once.
pub async fn use_code(mut ex: Ex<'_>, user: Id, code_hash: &str, now: Timestamp) -> StoreResult<Option<String>> {
    let sql = "UPDATE email_verifications SET used_at = $3 \
               WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL AND expires_at > $3 AND attempts < $4 \
               RETURNING email";
    let hit: Option<String> = run!(ex.reborrow(), c => sqlx::query_scalar(sql)
        .bind(user).bind(code_hash).bind(now).bind(MAX_ATTEMPTS).fetch_optional(c).await)?;
    if hit.is_none() {
        let sql = "UPDATE email_verifications SET attempts = attempts + 1 WHERE user_id = $1 AND used_at IS NULL";
        exec!(ex, c => sqlx::query(sql).bind(user).execute(c).await)?;
    }
    Ok(hit)
}

/// Uses a live link token: `(user, address)`.
pub async fn use_token(ex: Ex<'_>, token_hash: &str, now: Timestamp) -> StoreResult<Option<(Id, String)>> {
    let sql = "UPDATE email_verifications SET used_at = $2 \
               WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_id, email";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(token_hash).bind(now).fetch_optional(c).await)?)
}
