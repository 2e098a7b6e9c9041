//! Per-key coalescing: one fetch per key, however many callers.
//!
//! The first caller of a key becomes its *leader* and holds a [`FlightGuard`];
//! later callers *follow* with a watch receiver. The leader publishes an
//! [`Outcome`], which takes the flight out of the map at once (a caller that
//! cannot use the outcome starts the next flight, never spins on this one).
//! If the guard is dropped unpublished (a panic unwinding through it) its
//! `Drop` removes the flight and drops the sender, so every follower wakes
//! with `None` and retries. Nothing is ever left waiting on a leader that is
//! gone, and no key is poisoned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::share::Failure;
use crate::entry::StoredEntry;

/// What a leader tells its followers.
#[derive(Clone)]
pub(crate) enum Outcome {
    /// The flight has a value.
    Fresh(Fresh),
    /// The fetch failed; this graced entry was served instead.
    FailSafe(Arc<StoredEntry>),
    /// The fetch failed with nothing to fall back on.
    Failed(Arc<Failure>),
}

/// A value a flight produced or found.
#[derive(Clone)]
pub(crate) struct Fresh {
    pub(crate) entry: Arc<StoredEntry>,
    /// Produced by this flight's own fetch, which began only after
    /// [`FlightGuard::start_fetch`] (else: found in the store).
    pub(crate) fetched: bool,
    /// The process's invalidation count when that fetch began.
    pub(crate) epoch: u64,
}

struct Slot {
    tx: watch::Sender<Option<Outcome>>,
    /// Set just before the fetch begins.
    started: AtomicBool,
}

#[derive(Default, Clone)]
pub(crate) struct Flights {
    map: Arc<Mutex<HashMap<Box<str>, Arc<Slot>>>>,
    /// How many flights have published: a read taken before a publish may
    /// predate a value that flight stored.
    published: Arc<AtomicU64>,
}

pub(crate) enum Role {
    Leader(FlightGuard),
    Follower(Following),
}

/// A follower's place in a flight.
pub(crate) struct Following {
    rx: watch::Receiver<Option<Outcome>>,
    /// Whether it joined before the flight's fetch began: then the fetch
    /// began after this caller's query did, and its value is new enough
    /// without checking markers.
    pub(crate) before_start: bool,
}

impl Flights {
    /// Joins the flight for `key`, or starts one and leads it.
    pub(crate) fn join_or_lead(&self, key: &str) -> Role {
        let mut map = self.map.lock();
        if let Some(slot) = map.get(key) {
            return Role::Follower(Following {
                rx: slot.tx.subscribe(),
                before_start: !slot.started.load(Ordering::SeqCst),
            });
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
        let slot = Arc::new(Slot {
            tx: watch::Sender::new(None),
            started: AtomicBool::new(false),
        });
        map.insert(key.into(), Arc::clone(&slot));
        FlightGuard {
            flights: self.clone(),
            key: key.into(),
            slot,
        }
    }

    /// Changes whenever a flight publishes (a read taken while it is
    /// unchanged saw every value this process's flights stored before it).
    pub(crate) fn generation(&self) -> u64 {
        self.published.load(Ordering::Acquire)
    }

    /// How many flights are under way.
    pub(crate) fn len(&self) -> usize {
        self.map.lock().len()
    }
}

/// Held by a leader. Publishing or dropping it ends the flight.
pub(crate) struct FlightGuard {
    flights: Flights,
    key: Box<str>,
    slot: Arc<Slot>,
}

impl FlightGuard {
    /// Marks the fetch as begun: followers joining from now on check the
    /// value against the markers before taking it.
    pub(crate) fn start_fetch(&self) {
        self.slot.started.store(true, Ordering::SeqCst);
    }

    /// Ends the flight and hands the outcome to every follower.
    pub(crate) fn publish(self, outcome: Outcome) {
        self.leave();
        self.flights.published.fetch_add(1, Ordering::AcqRel);
        self.slot.tx.send_replace(Some(outcome));
    }

    /// Takes this flight (and not a later one of the same key) out of the map.
    fn leave(&self) {
        let mut map = self.flights.map.lock();
        if map
            .get(&self.key)
            .is_some_and(|slot| Arc::ptr_eq(slot, &self.slot))
        {
            map.remove(&self.key);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.leave();
    }
}

impl Following {
    /// Waits for the leader's outcome; `None` when the leader went away without one.
    pub(crate) async fn outcome(&mut self) -> Option<Outcome> {
        match self.rx.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        }
    }
}
