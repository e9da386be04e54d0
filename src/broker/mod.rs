//! The broker: how an event published on one instance reaches the hubs of every instance.
//!
//! # Contract
//! - [`Broker::publish`] never blocks the caller and never fails it: a service publishes
//!   after its transaction committed, and the request must not wait on the network.
//! - Every published envelope reaches the hub of **every** instance whose hub holds a local
//!   subscriber for its topic — the publishing instance included, through the same path —
//!   **at most once**, and **in publish order per topic per publishing instance**.
//! - The broker keeps no history. Losses (Redis down, a full publish queue) are recovered
//!   above it: durable topics carry a contiguous `seq` stored with the data, so a session
//!   that sees a gap, or is told the broker reconnected, re-reads what it missed from the
//!   database. Ephemeral events (typing, presence, reactions counts) may be lost.
//! - [`Broker::subscribe`] returns once the subscription is active, so a caller that
//!   subscribes and *then* reads the database cannot miss an event in between.
//!
//! Two implementations: [`memory::MemoryBroker`] (one process; also joins several instances
//! in one test process) and [`redis::RedisBroker`] (pub/sub, one channel per topic with
//! local subscribers, subscribed on the first local subscriber and unsubscribed on the last).

pub mod memory;
pub mod redis;

use std::sync::Arc;

use crate::events::Envelope;

/// What a broker delivers to: this instance's hub, given to the broker when it is made (as
/// a `Weak`, so the broker never keeps a stopped hub alive). The broker sits below the hub
/// and knows nothing else of it; tests drive a broker with a stub.
pub trait Sink: Send + Sync + 'static {
    /// An envelope for the local subscribers of its topic.
    fn deliver(&self, env: Envelope);
    /// The broker lost messages (it reconnected): every session re-reads what it missed.
    fn recovered(&self);
    /// Topics with local subscribers (re-subscribed after a reconnect).
    fn held_topics(&self) -> Vec<Arc<str>>;
    /// Whether `topic` has local subscribers now.
    fn holds(&self, topic: &str) -> bool;
}

/// The broker of this instance.
#[derive(Clone)]
pub enum Broker {
    /// In-process.
    Memory(memory::MemoryBroker),
    /// Redis pub/sub.
    Redis(redis::RedisBroker),
}

impl Broker {
    /// Publishes envelopes (in order) to every instance.
    pub fn publish(&self, envelopes: Vec<Envelope>) {
        metrics::counter!("chorus_events_published_total").increment(envelopes.len() as u64);
        match self {
            Broker::Memory(b) => b.publish(envelopes),
            Broker::Redis(b) => b.publish(envelopes),
        }
    }

    /// Starts receiving `topic` on this instance; returns when active.
    pub async fn subscribe(&self, topic: &Arc<str>) {
        match self {
            Broker::Memory(_) => {}
            Broker::Redis(b) => b.subscribe(topic).await,
        }
    }

    /// Stops receiving `topic` on this instance.
    pub fn unsubscribe(&self, topic: &Arc<str>) {
        match self {
            Broker::Memory(_) => {}
            Broker::Redis(b) => b.unsubscribe(topic),
        }
    }

    /// Whether the broker is connected (for `/ready`).
    pub fn is_healthy(&self) -> bool {
        match self {
            Broker::Memory(_) => true,
            Broker::Redis(b) => b.is_healthy(),
        }
    }

    /// Name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Broker::Memory(_) => "memory",
            Broker::Redis(_) => "redis",
        }
    }
}
