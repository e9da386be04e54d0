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

/// Appends one event (`event`, `data`, `actor`) to each of `topics` (distinct) and returns
/// the sequence numbers it got, in input order. Allocating a number upserts the topic's row
/// in `topic_seqs`, which takes its lock until commit: writers of one topic are serialised,
/// so numbers are contiguous and commit in order.
///
/// On PostgreSQL the allocation and the insert are one statement (a data-modifying CTE):
/// every write transaction that emits a durable event pays one round trip for it, not two.
/// SQLite has no DML in CTEs and takes two (it is in-process: a round trip costs nothing).
pub async fn append(
    mut ex: Ex<'_>,
    topics: &[&str],
    event: &str,
    data: &str,
    actor: Option<Id>,
    now: Timestamp,
) -> StoreResult<Vec<i64>> {
    let mut out = Vec::with_capacity(topics.len());
    for chunk in topics.chunks(CHUNK) {
        let n = chunk.len();
        let values = (1..=n).map(|i| format!("(${i}, 1)")).collect::<Vec<_>>().join(",");
        let upsert = format!(
            "INSERT INTO topic_seqs (topic, seq) VALUES {values} \
             ON CONFLICT (topic) DO UPDATE SET seq = topic_seqs.seq + 1 RETURNING topic, seq"
        );
        let rows: Vec<(String, i64)> = match ex.reborrow() {
            Ex::Postgres(c) => {
                let sql = format!(
                    "WITH s AS ({upsert}) INSERT INTO events (topic, seq, event, data, actor_id, created_at) \
                     SELECT topic, seq, ${}, ${}, ${}, ${} FROM s RETURNING topic, seq",
                    n + 1,
                    n + 2,
                    n + 3,
                    n + 4
                );
                let mut q = sqlx::query_as(&sql);
                for t in chunk {
                    q = q.bind(*t);
                }
                q.bind(event).bind(data).bind(actor).bind(now).fetch_all(&mut *c).await?
            }
            Ex::Sqlite(c) => {
                let mut q = sqlx::query_as(&upsert);
                for t in chunk {
                    q = q.bind(*t);
                }
                let rows: Vec<(String, i64)> = q.fetch_all(&mut *c).await?;
                let values = (0..rows.len())
                    .map(|i| {
                        format!(
                            "(${}, ${}, ${n1}, ${n2}, ${n3}, ${n4})",
                            2 * i + 1,
                            2 * i + 2,
                            n1 = 2 * n + 1,
                            n2 = 2 * n + 2,
                            n3 = 2 * n + 3,
                            n4 = 2 * n + 4
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let sql = format!("INSERT INTO events (topic, seq, event, data, actor_id, created_at) VALUES {values}");
                let mut q = sqlx::query(&sql);
                for (topic, seq) in &rows {
                    q = q.bind(topic).bind(*seq);
                }
                q.bind(event).bind(data).bind(actor).bind(now).execute(&mut *c).await?;
                rows
            }
        };
        // RETURNING order is not guaranteed: map back by topic.
        for t in chunk {
            let seq = rows.iter().find(|(rt, _)| rt == t).map(|(_, s)| *s).ok_or(super::StoreError::NotFound)?;
            out.push(seq);
        }
    }
    Ok(out)
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
