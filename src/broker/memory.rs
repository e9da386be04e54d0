//! The in-process broker: publishing is a direct, synchronous call into each joined sink
//! (hub), in the caller's order. One node joins one hub; a test process can join several
//! instances to one [`MemoryBus`] to act as a cluster without Redis.

use std::sync::{Arc, RwLock, Weak};

use super::Sink;
use crate::events::Envelope;

/// Sinks (hubs) joined by one in-process bus.
#[derive(Default)]
pub struct MemoryBus {
    sinks: RwLock<Vec<Weak<dyn Sink>>>,
}

/// One instance's handle on a [`MemoryBus`].
#[derive(Clone)]
pub struct MemoryBroker {
    bus: Arc<MemoryBus>,
}

impl MemoryBroker {
    /// Joins `sink` to `bus` (a single node's own bus, or one shared by a test cluster).
    pub fn join(bus: Arc<MemoryBus>, sink: Weak<dyn Sink>) -> Self {
        let mut sinks = bus.sinks.write().expect("bus poisoned");
        sinks.retain(|s| s.strong_count() > 0);
        sinks.push(sink);
        drop(sinks);
        Self { bus }
    }

    pub(super) fn publish(&self, envelopes: Vec<Envelope>) {
        // Copy the list out so no lock is held while delivering.
        let sinks: Vec<Arc<dyn Sink>> =
            self.bus.sinks.read().expect("bus poisoned").iter().filter_map(Weak::upgrade).collect();
        for env in envelopes {
            for sink in &sinks {
                sink.deliver(env.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::events::EventName;

    /// Records what it is given.
    #[derive(Default)]
    struct Stub(Mutex<Vec<(Arc<str>, Option<i64>)>>);

    impl Sink for Stub {
        fn deliver(&self, env: Envelope) {
            self.0.lock().unwrap().push((env.topic, env.seq));
        }
        fn recovered(&self) {}
        fn held_topics(&self) -> Vec<Arc<str>> {
            Vec::new()
        }
        fn holds(&self, _: &str) -> bool {
            true
        }
    }

    fn env(topic: &str, seq: i64) -> Envelope {
        Envelope { topic: topic.into(), event: EventName::PostCreated, seq: Some(seq), data: "{}".into(), actor: None }
    }

    #[test]
    fn every_joined_sink_gets_every_envelope_in_order_and_a_dropped_one_is_forgotten() {
        let bus = Arc::new(MemoryBus::default());
        let (a, b) = (Arc::new(Stub::default()), Arc::new(Stub::default()));
        let a_dyn: Arc<dyn Sink> = a.clone();
        let b_dyn: Arc<dyn Sink> = b.clone();
        let broker = MemoryBroker::join(bus.clone(), Arc::downgrade(&a_dyn));
        MemoryBroker::join(bus.clone(), Arc::downgrade(&b_dyn));
        broker.publish(vec![env("feed:1", 1), env("feed:1", 2), env("post:9", 3)]);
        let want: Vec<(Arc<str>, Option<i64>)> =
            vec![("feed:1".into(), Some(1)), ("feed:1".into(), Some(2)), ("post:9".into(), Some(3))];
        assert_eq!(*a.0.lock().unwrap(), want);
        assert_eq!(*b.0.lock().unwrap(), want);
        drop((b, b_dyn));
        broker.publish(vec![env("feed:1", 4)]);
        assert_eq!(a.0.lock().unwrap().len(), 4);
        let c: Arc<dyn Sink> = Arc::new(Stub::default());
        MemoryBroker::join(bus.clone(), Arc::downgrade(&c));
        assert_eq!(bus.sinks.read().unwrap().len(), 2, "the dropped sink left the bus");
    }
}
