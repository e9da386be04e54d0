//! The Redis pub/sub broker.
//!
//! - **One channel per topic** (`{ns}:t:{topic}`), subscribed when this instance's hub gets
//!   its first local subscriber on the topic and unsubscribed with the last one. An instance
//!   only receives what its clients watch — no global firehose to filter.
//! - **One subscriber connection** per process, owned by one task that applies
//!   subscribe/unsubscribe commands in the order the hub issued them and hands every message
//!   to the hub. **One publisher connection**, fed by a bounded queue and written in
//!   pipelines: publishing never blocks a request, and the order of one instance's
//!   publishes is kept (one queue, one connection).
//! - **Reconnects by itself.** When the subscriber connection drops, the broker reports
//!   unhealthy (`/ready`, `chorus_broker_up`), reconnects with backoff, re-subscribes every
//!   topic the hub still holds, and tells the hub, which asks every session to re-read its
//!   durable topics from the database: events published while Redis was away are recovered
//!   that way (they were stored before they were published).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::Sink;
use crate::domain::{Id, now_ms};
use crate::events::{Envelope, EventName};

/// Batches waiting to be published before new ones are dropped (and counted).
const PUBLISH_QUEUE: usize = 8192;

enum Command {
    Subscribe(Arc<str>, oneshot::Sender<()>),
    Unsubscribe(Arc<str>),
}

struct Shared {
    namespace: String,
    healthy: AtomicBool,
    sink: Weak<dyn Sink>,
}

/// Handle on the Redis broker tasks.
#[derive(Clone)]
pub struct RedisBroker {
    shared: Arc<Shared>,
    publish_tx: mpsc::Sender<Vec<Envelope>>,
    commands: mpsc::UnboundedSender<Command>,
}

/// The bytes on the wire: topic in the channel name, the rest here.
#[derive(Serialize)]
struct WireOut<'a> {
    e: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<i64>,
    /// Publish time (ms), for the lag metric.
    t: i64,
    /// The actor ([`Envelope::actor`]), for the hub's per-recipient block filter.
    #[serde(skip_serializing_if = "Option::is_none")]
    a: Option<Id>,
    d: &'a RawValue,
}

#[derive(Deserialize)]
struct WireIn<'a> {
    e: &'a str,
    s: Option<i64>,
    t: i64,
    #[serde(default)]
    a: Option<Id>,
    #[serde(borrow)]
    d: &'a RawValue,
}

/// A reconnecting Redis connection, as every Redis user in Chorus gets it. Without the
/// timeouts, a command sent while Redis restarts could wait forever on a connection that
/// will never answer (seen in the end-to-end test: `/ready` stuck at 503 after Redis came
/// back); with them it fails, and the manager's retries (100 ms doubling, capped at 2 s)
/// reconnect whenever Redis is back.
pub async fn connection_manager(client: redis::Client) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Duration::from_secs(2))
        .set_response_timeout(Duration::from_secs(2))
        .set_max_delay(2000);
    redis::aio::ConnectionManager::new_with_config(client, config).await
}

/// A connection to Redis, before it is given its sink ([`Connected::start`]).
pub struct Connected {
    client: redis::Client,
    publisher: redis::aio::ConnectionManager,
}

impl Connected {
    /// Connects (fails when Redis cannot be reached at start).
    pub async fn open(url: &str) -> anyhow::Result<Connected> {
        let client = redis::Client::open(url)?;
        let publisher = connection_manager(client.clone()).await?;
        Ok(Connected { client, publisher })
    }

    /// Starts the publisher and subscriber tasks (stopped by `shutdown`), delivering to
    /// `sink`.
    pub fn start(self, namespace: &str, sink: Weak<dyn Sink>, shutdown: CancellationToken) -> RedisBroker {
        let shared = Arc::new(Shared { namespace: namespace.to_string(), healthy: AtomicBool::new(false), sink });
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        tokio::spawn(publish_loop(self.publisher, shared.clone(), publish_rx, shutdown.clone()));
        tokio::spawn(subscribe_loop(self.client, shared.clone(), commands_rx, shutdown));
        RedisBroker { shared, publish_tx, commands }
    }
}

impl RedisBroker {
    pub(super) fn publish(&self, envelopes: Vec<Envelope>) {
        if let Err(e) = self.publish_tx.try_send(envelopes) {
            let n = match &e {
                mpsc::error::TrySendError::Full(v) | mpsc::error::TrySendError::Closed(v) => v.len(),
            };
            metrics::counter!("chorus_broker_publish_dropped_total").increment(n as u64);
            tracing::warn!(
                dropped = n,
                "broker publish queue full or closed; durable events will be resumed from the database"
            );
        }
    }

    pub(super) async fn subscribe(&self, topic: &Arc<str>) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Subscribe(topic.clone(), tx)).is_ok() {
            // Resolves when SUBSCRIBE was acknowledged, or at once when Redis is down (the
            // topic is then subscribed on reconnect, followed by a resync).
            let _ = rx.await;
        }
    }

    pub(super) fn unsubscribe(&self, topic: &Arc<str>) {
        let _ = self.commands.send(Command::Unsubscribe(topic.clone()));
    }

    pub(super) fn is_healthy(&self) -> bool {
        self.shared.healthy.load(Ordering::Relaxed)
    }
}

fn channel(ns: &str, topic: &str) -> String {
    format!("{ns}:t:{topic}")
}

async fn publish_loop(
    mut conn: redis::aio::ConnectionManager,
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Vec<Envelope>>,
    shutdown: CancellationToken,
) {
    let mut batch: Vec<Envelope> = Vec::new();
    loop {
        let first = tokio::select! {
            b = rx.recv() => match b { Some(b) => b, None => break },
            _ = shutdown.cancelled() => {
                // Flush what is queued, then stop.
                rx.close();
                match rx.recv().await { Some(b) => b, None => break }
            }
        };
        batch.extend(first);
        // Coalesce whatever else is queued into one pipeline.
        while batch.len() < 1024 {
            match rx.try_recv() {
                Ok(more) => batch.extend(more),
                Err(_) => break,
            }
        }
        let mut pipe = redis::pipe();
        let now = now_ms();
        for env in &batch {
            let data: &RawValue = match serde_json::from_str(&env.data) {
                Ok(d) => d,
                Err(_) => continue,
            };
            let payload =
                serde_json::to_string(&WireOut { e: env.event.as_str(), s: env.seq, t: now, a: env.actor, d: data })
                    .expect("wire envelope serialises");
            pipe.cmd("PUBLISH").arg(channel(&shared.namespace, &env.topic)).arg(payload).ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            metrics::counter!("chorus_broker_publish_dropped_total").increment(batch.len() as u64);
            tracing::warn!(error = %e, dropped = batch.len(), "publishing to Redis failed; durable events will be resumed from the database");
        }
        batch.clear();
    }
}

async fn subscribe_loop(
    client: redis::Client,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut was_connected = false;
    loop {
        let connected = tokio::select! {
            r = client.get_async_pubsub() => r,
            _ = shutdown.cancelled() => return,
        };
        let pubsub = match connected {
            Ok(p) => p,
            Err(e) => {
                set_health(&shared, false);
                tracing::warn!(error = %e, retry_in = ?backoff, "Redis subscriber connection failed");
                // Keep answering subscribe commands so sessions never hang while Redis is down.
                let deadline = tokio::time::sleep(backoff);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        _ = shutdown.cancelled() => return,
                        cmd = commands.recv() => match cmd {
                            Some(Command::Subscribe(_, done)) => { let _ = done.send(()); }
                            Some(Command::Unsubscribe(_)) => {}
                            None => return,
                        },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let (mut sink, mut stream) = pubsub.split();

        // Re-subscribe everything the hub holds (none on first connect).
        let hub = shared.sink.upgrade();
        let held: Vec<Arc<str>> = hub.as_ref().map(|h| h.held_topics()).unwrap_or_default();
        let mut ok = true;
        for chunk in held.chunks(500) {
            let chans: Vec<String> = chunk.iter().map(|t| channel(&shared.namespace, t)).collect();
            if let Err(e) = sink.subscribe(&chans).await {
                tracing::warn!(error = %e, "re-subscribing after reconnect failed");
                ok = false;
                break;
            }
        }
        if !ok {
            continue;
        }
        set_health(&shared, true);
        backoff = Duration::from_millis(100);
        if was_connected {
            metrics::counter!("chorus_broker_reconnects_total").increment(1);
            tracing::info!(topics = held.len(), "Redis subscriber reconnected");
            if let Some(hub) = &hub {
                hub.recovered();
            }
        }
        was_connected = true;

        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                cmd = commands.recv() => match cmd {
                    Some(Command::Subscribe(topic, done)) => {
                        if let Err(e) = sink.subscribe(channel(&shared.namespace, &topic)).await {
                            tracing::warn!(error = %e, "SUBSCRIBE failed");
                        }
                        let _ = done.send(());
                    }
                    Some(Command::Unsubscribe(topic)) => {
                        // The hub may have re-gained a subscriber since it asked.
                        let still_held = shared.sink.upgrade().is_some_and(|h| h.holds(&topic));
                        if !still_held
                            && let Err(e) = sink.unsubscribe(channel(&shared.namespace, &topic)).await
                        {
                            tracing::warn!(error = %e, "UNSUBSCRIBE failed");
                        }
                    }
                    None => return,
                },
                msg = stream.next() => match msg {
                    Some(msg) => deliver(&shared, &msg),
                    None => {
                        set_health(&shared, false);
                        tracing::warn!("Redis subscriber connection lost; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

fn set_health(shared: &Shared, up: bool) {
    shared.healthy.store(up, Ordering::Relaxed);
    metrics::gauge!("chorus_broker_up").set(if up { 1.0 } else { 0.0 });
}

fn deliver(shared: &Shared, msg: &redis::Msg) {
    let Some(topic) = msg.get_channel_name().strip_prefix(&format!("{}:t:", shared.namespace)).map(Arc::<str>::from)
    else {
        return;
    };
    let wire: WireIn<'_> = match serde_json::from_slice(msg.get_payload_bytes()) {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable broker message");
            return;
        }
    };
    let Some(event) = EventName::parse(wire.e) else {
        return;
    };
    let lag_ms = (now_ms() - wire.t).max(0);
    metrics::histogram!("chorus_broker_lag_seconds").record(lag_ms as f64 / 1000.0);
    let env = Envelope { topic, event, seq: wire.s, data: Arc::from(wire.d.get()), actor: wire.a };
    if let Some(hub) = shared.sink.upgrade() {
        hub.deliver(env);
    }
}
