//! Per-key coalescing: one fetch per key, however many callers.
//!
//! The first caller of a key becomes its *leader* and holds a [`FlightGuard`];
//! later callers *follow* with a watch receiver. The leader publishes an
//! [`Outcome`]; if it is dropped first (its future cancelled, or a panic
//! unwinding through it) the guard's `Drop` removes the flight and drops the
//! sender, so every follower wakes with `None` and retries. Nothing is ever
//! left waiting on a leader that is gone, and no key is poisoned.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::entry::StoredEntry;

/// What a leader tells its followers.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The fetch succeeded; this entry was stored.
    Fresh(Arc<StoredEntry>),
    /// The fetch failed; this graced entry was served instead.
    FailSafe(Arc<StoredEntry>),
    /// The fetch failed with nothing to fall back on.
    Failed,
}

type Slot = watch::Sender<Option<Outcome>>;

#[derive(Default, Clone)]
pub(crate) struct Flights {
    map: Arc<Mutex<HashMap<Box<str>, Arc<Slot>>>>,
}

pub(crate) enum Role {
    Leader(FlightGuard),
    Follower(watch::Receiver<Option<Outcome>>),
}

impl Flights {
    /// Joins the flight for `key`, or starts one and leads it.
    pub(crate) fn join_or_lead(&self, key: &str) -> Role {
        let mut map = self.map.lock();
        if let Some(slot) = map.get(key) {
            return Role::Follower(slot.subscribe());
        }
        Role::Leader(self.start(&mut map, key))
    }

    /// Starts a flight for `key` only if none is under way.
    pub(crate) fn try_lead(&self, key: &str) -> Option<FlightGuard> {
        let mut map = self.map.lock();
        if map.contains_key(key) {
            return None;
        }
        Some(self.start(&mut map, key))
    }

    fn start(&self, map: &mut HashMap<Box<str>, Arc<Slot>>, key: &str) -> FlightGuard {
        let slot = Arc::new(watch::Sender::new(None));
        map.insert(key.into(), Arc::clone(&slot));
        FlightGuard {
            flights: self.clone(),
            key: key.into(),
            slot,
        }
    }

    /// How many flights are under way (for tests: zero once all callers are done).
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// Held by a leader. Dropping it ends the flight.
pub(crate) struct FlightGuard {
    flights: Flights,
    key: Box<str>,
    slot: Arc<Slot>,
}

impl FlightGuard {
    /// Hands the outcome to every follower, present and future, of this flight.
    pub(crate) fn publish(&self, outcome: Outcome) {
        self.slot.send_replace(Some(outcome));
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        let mut map = self.flights.map.lock();
        if map
            .get(&self.key)
            .is_some_and(|slot| Arc::ptr_eq(slot, &self.slot))
        {
            map.remove(&self.key);
        }
    }
}

/// Waits for the leader's outcome; `None` when the leader went away without one.
pub(crate) async fn follow(mut rx: watch::Receiver<Option<Outcome>>) -> Option<Outcome> {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone(),
        Err(_) => None,
    }
}
