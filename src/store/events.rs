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
        let params: Vec<String> = (1..=n).map(|i| format!("${i}")).collect();
        let upsert = format!(
            "INSERT INTO topic_seqs (topic, seq) VALUES {} \
             ON CONFLICT (topic) DO UPDATE SET seq = topic_seqs.seq + 1 RETURNING topic, seq",
            params.iter().map(|p| format!("({p}, 1)")).collect::<Vec<_>>().join(",")
        );
        // The event's columns from the allocated numbers: the CTE's rows on PostgreSQL, the
        // topics' rows (just upserted in this transaction) on SQLite. Both bind the topics,
        // then event, data, actor and time.
        let insert = format!(
            "INSERT INTO events (topic, seq, event, data, actor_id, created_at) SELECT topic, seq, ${}, ${}, ${}, ${} FROM",
            n + 1,
            n + 2,
            n + 3,
            n + 4
        );
        let rows: Vec<(String, i64)> = match ex.reborrow() {
            Ex::Postgres(c) => {
                let sql = format!("WITH s AS ({upsert}) {insert} s RETURNING topic, seq");
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
                let rows = q.fetch_all(&mut *c).await?;
                let sql = format!("{insert} topic_seqs WHERE topic IN ({})", params.join(","));
                let mut q = sqlx::query(&sql);
                for t in chunk {
                    q = q.bind(*t);
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
