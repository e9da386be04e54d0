//! The in-process broker: publishing is a direct, synchronous call into each attached hub,
//! in the caller's order. One node attaches one hub; a test process can attach several
//! instances to one [`MemoryBus`] to act as a cluster without Redis.

use std::sync::{Arc, RwLock, Weak};

use crate::events::Envelope;
use crate::realtime::hub::Hub;

/// Hubs joined by one in-process bus.
#[derive(Default)]
pub struct MemoryBus {
    hubs: RwLock<Vec<Weak<Hub>>>,
}

/// One instance's handle on a [`MemoryBus`].
#[derive(Clone)]
pub struct MemoryBroker {
    bus: Arc<MemoryBus>,
}

impl MemoryBroker {
    /// A broker on its own bus (a single node).
    pub fn new() -> Self {
        Self::on(Arc::new(MemoryBus::default()))
    }

    /// A broker on a shared bus (several instances in one process).
    pub fn on(bus: Arc<MemoryBus>) -> Self {
        Self { bus }
    }

    pub(super) fn attach(&self, hub: &Arc<Hub>) {
        let mut hubs = self.bus.hubs.write().expect("bus poisoned");
        hubs.retain(|h| h.strong_count() > 0);
        hubs.push(Arc::downgrade(hub));
    }

    pub(super) fn publish(&self, envelopes: Vec<Envelope>) {
        // Copy the hub list out so no lock is held while delivering.
        let hubs: Vec<Arc<Hub>> =
            self.bus.hubs.read().expect("bus poisoned").iter().filter_map(Weak::upgrade).collect();
        for env in envelopes {
            for hub in &hubs {
                hub.deliver(env.clone());
            }
        }
    }
}

impl Default for MemoryBroker {
    fn default() -> Self {
        Self::new()
    }
}
