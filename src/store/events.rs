//! The durable event log behind resumable topics: contiguous per-topic sequence numbers
//! (`topic_seqs`) and the events themselves (`events`), written in the transaction of the
//! change they describe.

use sqlx::FromRow;

use super::{Ex, StoreResult};
use crate::domain::{Id, Timestamp};
use crate::{exec, run};

/// Rows per multi-row statement: well below both backends' bound-parameter limits.
const CHUNK: usize = 500;

/// A stored event.
#[derive(Clone, Debug, FromRow)]
pub struct EventRow {
    /// Position in its topic.
    pub seq: i64,
    /// Event name (`post.created`, …).
    pub event: String,
    /// JSON data.
    pub data: String,
    /// Whose action it reports ([`crate::events::Envelope::actor`]).
    pub actor_id: Option<Id>,
}

/// Allocates the next sequence number of each topic (topics must be distinct) and returns
/// them in input order. The upsert takes the topic row's lock until commit, so writers of
/// one topic are serialised and sequence numbers are contiguous and commit in order.
pub async fn next_seqs(ex: Ex<'_>, topics: &[&str]) -> StoreResult<Vec<i64>> {
    run!(ex, c => async {
        let mut out = Vec::with_capacity(topics.len());
        for chunk in topics.chunks(CHUNK) {
            let values = (1..=chunk.len()).map(|i| format!("(${i}, 1)")).collect::<Vec<_>>().join(",");
            let sql = format!(
                "INSERT INTO topic_seqs (topic, seq) VALUES {values} \
                 ON CONFLICT (topic) DO UPDATE SET seq = topic_seqs.seq + 1 RETURNING topic, seq"
            );
            let mut q = sqlx::query_as::<_, (String, i64)>(&sql);
            for t in chunk {
                q = q.bind(*t);
            }
            let rows = q.fetch_all(&mut *c).await?;
            // RETURNING order is not guaranteed: map back by topic.
            for t in chunk {
                let seq = rows.iter().find(|(rt, _)| rt == t).map(|(_, s)| *s).ok_or(super::StoreError::NotFound)?;
                out.push(seq);
            }
        }
        Ok(out)
    }.await)
}

/// Inserts events `(topic, seq, event, data)`.
pub async fn insert(ex: Ex<'_>, rows: &[(&str, i64, &str, &str, Option<Id>)], now: Timestamp) -> StoreResult<()> {
    run!(ex, c => async {
        for chunk in rows.chunks(CHUNK) {
            let values = (0..chunk.len())
                .map(|i| { let b = i * 5; format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, chunk.len() * 5 + 1) })
                .collect::<Vec<_>>()
                .join(",");
            let sql = format!("INSERT INTO events (topic, seq, event, data, actor_id, created_at) VALUES {values}");
            let mut q = sqlx::query(&sql);
            for (topic, seq, event, data, actor) in chunk {
                q = q.bind(*topic).bind(*seq).bind(*event).bind(*data).bind(*actor);
            }
            q.bind(now).execute(&mut *c).await?;
        }
        Ok(())
    }.await)
}

/// Events of `topic` after `after`, oldest first.
pub async fn after(ex: Ex<'_>, topic: &str, after: i64, limit: i64) -> StoreResult<Vec<EventRow>> {
    let sql = "SELECT seq, event, data, actor_id FROM events WHERE topic = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    Ok(run!(ex, c => sqlx::query_as::<_, EventRow>(sql).bind(topic).bind(after).bind(limit).fetch_all(c).await)?)
}

/// `(current seq, oldest retained seq)` of a topic; `(0, None)` for a topic never written.
pub async fn bounds(ex: Ex<'_>, topic: &str) -> StoreResult<(i64, Option<i64>)> {
    let sql = "SELECT COALESCE((SELECT seq FROM topic_seqs WHERE topic = $1), 0), \
                      (SELECT MIN(seq) FROM events WHERE topic = $1)";
    Ok(run!(ex, c => sqlx::query_as(sql).bind(topic).fetch_one(c).await)?)
}

/// Deletes events older than `before`; returns how many.
pub async fn purge_before(ex: Ex<'_>, before: Timestamp) -> StoreResult<u64> {
    let r = exec!(ex, c => sqlx::query("DELETE FROM events WHERE created_at < $1").bind(before).execute(c).await)?;
    Ok(r)
}
