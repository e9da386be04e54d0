//! Durable background work: a transactional outbox on the database, drained by a worker in
//! every instance.
//!
//! # Guarantees
//! - **No lost or phantom jobs.** [`enqueue`] writes the job row in the caller's
//!   transaction: the job exists exactly when the change that caused it committed.
//! - **At-least-once.** A worker *claims* a job by leasing it (`locked_until`). If the process
//!   dies mid-job, the lease runs out and any instance claims it again. Handlers are therefore
//!   written to be idempotent (deleting a deleted file succeeds, fan-out upserts…).
//! - **Exactly-once effects where the effect is one transaction.** Such a handler calls
//!   [`complete_within`] in that transaction: the job's completion commits with its effect,
//!   so a crash between the two cannot run it twice (the feed fan-out does this, so a killed
//!   instance never duplicates a durable `post.created`).
//! - **Retries with exponential backoff** (`backoff_base_ms · 2^(attempt-1)`, capped, with
//!   jitter), then a **dead-letter** state after `max_attempts`, kept for inspection.
//! - **Observable:** queue depth per kind and status, runs, failures and dead letters are in
//!   `/metrics`.
//!
//! Why an outbox rather than a queue crate: the enqueue must be part of the business
//! transaction on both SQLite and PostgreSQL, which the job-queue crates (apalis' storages
//! among them) do not offer across both backends; the table, the claim query and the loop
//! below are all it takes.
//!
//! Handlers are registered by name ([`Registry::register`]); the worker never knows what a
//! job does.

pub mod payloads;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::domain::{Id, IdGen, Timestamp, now_ms};
use crate::state::AppState;
use crate::store::{StoreResult, Tx, jobs as store};

/// A kind of job: its payload type and its name in the table.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name stored with each job.
    const KIND: &'static str;
}

tokio::task_local! {
    /// The job the current task is running and its claim (attempt) number, set by the
    /// worker around each handler.
    static CURRENT_JOB: (Id, i32);
}

/// Marks the running job done inside the handler's own transaction `tx` (see the module
/// doc); the worker's own completion afterwards then finds nothing left to do. Fails — and
/// the caller must then not commit — when the job's lease ran out and another worker
/// claimed it meanwhile (a handler stalled on a dependency): that worker's run counts, this
/// one's effects roll back. Outside a job (a handler called directly) this does nothing.
pub async fn complete_within(tx: &mut Tx) -> anyhow::Result<()> {
    let Ok((id, attempts)) = CURRENT_JOB.try_with(|j| *j) else { return Ok(()) };
    anyhow::ensure!(
        store::complete_claimed(tx.ex(), id, attempts).await?,
        "job {id} outlived its lease and was claimed again; this run rolls back"
    );
    Ok(())
}

/// A handler's error asking to be run again after this long rather than after the
/// backoff: a dependency said when (an HTTP `Retry-After`). Still counts as an attempt.
#[derive(Debug, thiserror::Error)]
#[error("asked to retry after {0:?}")]
pub struct RetryAfter(pub Duration);

/// Enqueues `job` in the caller's transaction, runnable now.
pub async fn enqueue<J: Job>(tx: &mut Tx, ids: &IdGen, max_attempts: i32, job: &J) -> StoreResult<Id> {
    enqueue_at(tx, ids, max_attempts, job, Timestamp::now()).await
}

/// Enqueues `job` in the caller's transaction, runnable from `at`.
pub async fn enqueue_at<J: Job>(
    tx: &mut Tx,
    ids: &IdGen,
    max_attempts: i32,
    job: &J,
    at: Timestamp,
) -> StoreResult<Id> {
    let id = ids.next();
    let payload = serde_json::to_string(job).expect("job payloads serialise");
    store::insert(tx.ex(), id, J::KIND, &payload, max_attempts, at, Timestamp::now()).await?;
    Ok(id)
}

type BoxFut = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
type Handler = Arc<dyn Fn(AppState, String) -> BoxFut + Send + Sync>;

/// Job handlers by kind.
#[derive(Clone, Default)]
pub struct Registry {
    handlers: HashMap<&'static str, Handler>,
}

impl Registry {
    /// Registers the handler of `J`.
    pub fn register<J, F, Fut>(&mut self, f: F)
    where
        J: Job,
        F: Fn(AppState, J) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let f = Arc::new(f);
        let h: Handler = Arc::new(move |state, payload| {
            let f = f.clone();
            Box::pin(async move {
                let job: J = serde_json::from_str(&payload)
                    .map_err(|e| anyhow::anyhow!("undecodable {} payload: {e}", J::KIND))?;
                f(state, job).await
            })
        });
        assert!(self.handlers.insert(J::KIND, h).is_none(), "job kind {} registered twice", J::KIND);
    }

    /// Registered kinds.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.handlers.keys().copied().collect()
    }
}

/// Handle to this instance's worker: wake it after committing new jobs.
#[derive(Default)]
pub struct Queue {
    wake: Notify,
}

impl Queue {
    /// Wakes the worker now instead of at its next poll.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Runs the worker until `shutdown`, then waits for running jobs (bounded by the caller's
/// shutdown deadline: unfinished jobs keep their lease and are re-run after it expires).
pub async fn run_worker(state: AppState, registry: Registry, shutdown: CancellationToken) {
    let cfg = state.config.jobs.clone();
    let slots = Arc::new(Semaphore::new(cfg.concurrency));
    let poll = Duration::from_millis(cfg.poll_ms);
    let registry = Arc::new(registry);
    loop {
        // Wait for a free slot, then for work.
        let free = slots.available_permits();
        if free > 0 {
            match claim(&state, free as i64).await {
                Ok(jobs) if !jobs.is_empty() => {
                    let claimed = jobs.len();
                    for job in jobs {
                        let permit = slots.clone().acquire_owned().await.expect("semaphore open");
                        let (state, registry) = (state.clone(), registry.clone());
                        tokio::spawn(async move {
                            execute(&state, &registry, job).await;
                            drop(permit);
                        });
                    }
                    if claimed == free {
                        // There may be more due right now: loop without sleeping.
                        continue;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming jobs failed"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = state.jobs.wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
    }
    // Let running jobs finish: wait until every permit is back.
    let _ = slots.acquire_many(cfg.concurrency as u32).await;
}

async fn claim(state: &AppState, limit: i64) -> anyhow::Result<Vec<store::JobRow>> {
    let mut tx = state.store.begin().await?;
    let jobs = store::claim(tx.ex(), Timestamp::now(), state.config.jobs.lease_ms as i64, limit).await?;
    tx.commit().await?;
    Ok(jobs)
}

async fn execute(state: &AppState, registry: &Registry, job: store::JobRow) {
    let kind = job.kind.clone();
    let result = match registry.handlers.get(kind.as_str()) {
        Some(h) => {
            let started = std::time::Instant::now();
            let r = CURRENT_JOB.scope((job.id, job.attempts), h(state.clone(), job.payload.clone())).await;
            metrics::histogram!("chorus_job_duration_seconds", "kind" => kind.clone()).record(started.elapsed());
            r
        }
        None => Err(anyhow::anyhow!("no handler registered for job kind {kind}")),
    };
    let outcome = match result {
        Ok(()) => {
            metrics::counter!("chorus_jobs_total", "kind" => kind.clone(), "outcome" => "ok").increment(1);
            finish(state, job.id, None).await
        }
        Err(e) => {
            let dead = job.attempts >= job.max_attempts;
            let outcome = if dead { "dead" } else { "retry" };
            metrics::counter!("chorus_jobs_total", "kind" => kind.clone(), "outcome" => outcome).increment(1);
            if dead {
                tracing::error!(job = %job.id, kind, attempts = job.attempts, error = %format!("{e:#}"), "job dead-lettered");
            } else {
                tracing::warn!(job = %job.id, kind, attempts = job.attempts, error = %format!("{e:#}"), "job failed; will retry");
            }
            let wait = match e.downcast_ref::<RetryAfter>() {
                Some(RetryAfter(d)) => d.as_millis() as i64,
                None => backoff_ms(state, job.attempts),
            };
            let retry_at = (!dead).then(|| Timestamp(now_ms() + wait));
            finish(state, job.id, Some((format!("{e:#}"), retry_at))).await
        }
    };
    if let Err(e) = outcome {
        // The lease will expire and the job run again: at-least-once.
        tracing::warn!(job = %job.id, error = %e, "recording job outcome failed");
    }
}

async fn finish(state: &AppState, id: Id, failure: Option<(String, Option<Timestamp>)>) -> anyhow::Result<()> {
    let mut tx = state.store.begin().await?;
    match failure {
        None => store::complete(tx.ex(), id).await?,
        Some((err, retry_at)) => store::fail(tx.ex(), id, &err, retry_at, Timestamp::now()).await?,
    }
    tx.commit().await?;
    Ok(())
}

/// Backoff before attempt `attempts + 1`: base · 2^(attempts-1), capped, ±20 % jitter.
fn backoff_ms(state: &AppState, attempts: i32) -> i64 {
    let cfg = &state.config.jobs;
    let exp = (attempts.max(1) - 1).min(30) as u32;
    let raw = (cfg.backoff_base_ms as i64).saturating_mul(1i64 << exp).min(cfg.backoff_max_ms as i64);
    let jitter = rand::thread_rng().gen_range(0.8..1.2);
    (raw as f64 * jitter) as i64
}

/// Publishes queue depth per kind and status as gauges (called when `/metrics` renders).
pub async fn record_depth(state: &AppState) {
    let Ok(mut c) = state.store.conn().await else {
        return;
    };
    if let Ok(rows) = store::depth(c.ex()).await {
        for (kind, status, n) in rows {
            metrics::gauge!("chorus_job_queue_depth", "kind" => kind, "status" => status).set(n as f64);
        }
    }
}
