//! `AppState`: the handles every edge and service needs, cheap to clone (one `Arc`), and
//! passed explicitly — no globals, so several Chorus instances can run in one process.

use std::ops::Deref;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::{Auth, Revocations};
use crate::broker::Broker;
use crate::config::Config;
use crate::domain::IdGen;
use crate::events::EventBatch;
use crate::jobs::Queue;
use crate::mail::Mailer;
use crate::media::Media;
use crate::ratelimit::RateLimits;
use crate::realtime::hub::Hub;
use crate::realtime::presence::Presence;
use crate::store::{Store, StoreResult, Tx};

/// Shared state of one instance.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    /// Configuration.
    pub config: Config,
    /// Database.
    pub store: Store,
    /// Id generator of this instance.
    pub ids: IdGen,
    /// Token keys.
    pub auth: Auth,
    /// Access-token revocation list.
    pub revocations: Revocations,
    /// Outgoing mail.
    pub mailer: Mailer,
    /// Media storage backends and processing limits.
    pub media: Media,
    /// Push services: Web Push (`vapid()` is `None` in a cluster without a configured
    /// VAPID key) and FCM (when configured).
    pub push: crate::push::Pusher,
    /// Rate limiters.
    pub limits: RateLimits,
    /// Job worker wake-up.
    pub jobs: Queue,
    /// Local socket registry.
    pub hub: Arc<Hub>,
    /// Cross-instance delivery.
    pub broker: Broker,
    /// Who is online.
    pub presence: Presence,
    /// Shared Redis connection, when configured.
    pub redis: Option<redis::aio::ConnectionManager>,
    /// Cancelled when the instance starts shutting down.
    pub shutdown: CancellationToken,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Wraps the parts.
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    /// Finishes a write: commits the transaction, then publishes its events and wakes the
    /// job worker. The one way services end a change, so that nothing is published or run
    /// for a change that did not commit.
    pub async fn commit(&self, tx: Tx, events: EventBatch) -> StoreResult<()> {
        tx.commit().await?;
        self.publish(events);
        self.jobs.wake();
        Ok(())
    }

    /// Publishes events that need no transaction (ephemeral ones).
    pub fn publish(&self, events: EventBatch) {
        if !events.is_empty() {
            self.broker.publish(events.into_envelopes());
        }
    }
}
