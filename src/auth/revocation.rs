//! The access-token revocation list: keys `jti:{jti}` (one token, on logout) and
//! `sid:{session}` (every token of a session, on password change or reuse detection), kept
//! until the longest-lived access token they could match has expired.
//!
//! With Redis configured the keys live there (with a TTL), so a logout on one instance
//! holds on every instance at once; otherwise they live in the database.

use redis::AsyncCommands;

use super::AccessClaims;
use crate::domain::{Timestamp, now_ms};
use crate::store::{Store, tokens};

/// Where revocations are kept.
#[derive(Clone)]
pub enum Revocations {
    /// In the `revoked_tokens` table.
    Database(Store),
    /// In Redis, under `{namespace}:revoked:{key}`.
    Redis {
        /// Command connection.
        conn: redis::aio::ConnectionManager,
        /// Key prefix.
        namespace: String,
    },
}

impl Revocations {
    /// Whether the token's `jti` or its session is revoked.
    pub async fn is_revoked(&self, claims: &AccessClaims) -> anyhow::Result<bool> {
        let jti = format!("jti:{}", claims.jti);
        let sid = format!("sid:{}", claims.sid);
        match self {
            Revocations::Database(store) => {
                let mut c = store.conn().await?;
                Ok(tokens::any_revoked(c.ex(), &jti, &sid, Timestamp::now()).await?)
            }
            Revocations::Redis { conn, namespace } => {
                let mut conn = conn.clone();
                let n: i64 =
                    conn.exists(&[format!("{namespace}:revoked:{jti}"), format!("{namespace}:revoked:{sid}")]).await?;
                Ok(n > 0)
            }
        }
    }

    /// Revokes `key` (`jti:…` or `sid:…`) for `ttl_secs`. In database mode it is written in
    /// the caller's transaction, so it commits with the logout itself.
    pub async fn revoke(&self, tx: &mut crate::store::Tx, key: &str, ttl_secs: i64) -> anyhow::Result<()> {
        match self {
            Revocations::Database(_) => {
                tokens::revoke_key(tx.ex(), key, Timestamp(now_ms() + ttl_secs * 1000)).await?;
            }
            Revocations::Redis { conn, namespace } => {
                let mut conn = conn.clone();
                let _: () = conn.set_ex(format!("{namespace}:revoked:{key}"), 1, ttl_secs.max(1) as u64).await?;
            }
        }
        Ok(())
    }
}
