//! What this process knows of its keys in Redis, so that a command can
//! leave out what cannot matter: which entries it last found, and until
//! when (a read leaves the lease out), and which refresh lease keys it may
//! hold (a store leaves the others alone).
//!
//! A read that may take the fetch lease puts it in the entry's place (`SET
//! key <lease> NX PX ttl GET`), so that a miss costs two round trips, not
//! three. That is a second command beside the `MGET` of the markers, and
//! most reads are hits: an entry this process saw a moment ago is almost
//! always still there. For those, the read is the one `MGET` alone; if the
//! entry turns out to be gone, a second read takes the lease.
//!
//! The same goes for the refresh lease key of an entry that exists but
//! wants a fetch ([`LeaseKeys`]): a store or a release touches it only if
//! this process asked for it.
//!
//! A hint only ever picks the commands of a read, never a value: a wrong
//! one costs one round trip (an entry gone early: deleted, evicted, or
//! stored by a process whose clock runs ahead of this one's) or the
//! lease-taking read a hit did before (two keys in one slot take turns).

use std::sync::atomic::{AtomicU64, Ordering};

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use crate::storage::EntryKey;

/// Slots in the table, a power of two: 64 KiB per adapter.
const SLOTS: usize = 8192;

/// One slot per hash of an entry key, holding the key's fingerprint (the
/// hash's high 32 bits) and the second until which the entry should live,
/// packed in one word so that a read or a write of a slot is one atomic
/// access. Races between threads lose a hint, never mix two.
pub(super) struct Seen {
    slots: Box<[AtomicU64]>,
}

/// Where a key's hint lives, found once per read.
#[derive(Clone, Copy)]
pub(super) struct Spot {
    slot: usize,
    fingerprint: u64,
    /// The key's whole hash (see [`LeaseKeys`]).
    hash: u64,
}

/// The fingerprint half of a slot.
const FINGERPRINT: u64 = !(u32::MAX as u64);

impl Spot {
    /// The key's whole hash.
    pub(super) fn hash(self) -> u64 {
        self.hash
    }
}

impl Seen {
    pub(super) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The spot of `key`'s hint (and its key in [`LeaseKeys`]).
    pub(super) fn spot(key: EntryKey<'_>) -> Spot {
        let hash = xxh3_64_with_seed(key.key.as_bytes(), xxh3_64(key.prefix.as_bytes()));
        // The low bits pick the slot; the high 32 are the fingerprint.
        Spot {
            slot: usize::try_from(hash % SLOTS as u64).unwrap_or(0),
            fingerprint: hash & FINGERPRINT,
            hash,
        }
    }

    /// Whether the entry at `spot` was found (or stored) by this process
    /// and should still be in Redis at `now_ms`.
    pub(super) fn likely(&self, spot: Spot, now_ms: u64) -> bool {
        let Some(held) = self.slots.get(spot.slot) else {
            return false;
        };
        let held = held.load(Ordering::Relaxed);
        held & FINGERPRINT == spot.fingerprint && held & !FINGERPRINT > now_ms / 1000
    }

    /// The entry at `spot` is in Redis until `until_ms` (the hint keeps
    /// whole seconds, rounded down). A time already past forgets it.
    pub(super) fn saw(&self, spot: Spot, until_ms: u64) {
        if let Some(held) = self.slots.get(spot.slot) {
            let until_s = u32::try_from(until_ms / 1000).unwrap_or(u32::MAX);
            let hint = spot.fingerprint | u64::from(until_s);
            // A hit of a hot key writes nothing: the slot's cache line
            // stays shared between the threads that read it.
            if held.load(Ordering::Relaxed) != hint {
                held.store(hint, Ordering::Relaxed);
            }
        }
    }

    /// The entry at `spot` is not in Redis (a read found none, or this
    /// process deleted it).
    pub(super) fn forget(&self, spot: Spot) {
        if let Some(held) = self.slots.get(spot.slot) {
            let was = held.load(Ordering::Relaxed);
            if was & FINGERPRINT == spot.fingerprint {
                // Lost to a concurrent `saw` of another key: that one stays.
                let _ = held.compare_exchange(was, 0, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    }

    /// Every hint forgotten (`clear`).
    pub(super) fn clear(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Relaxed);
        }
    }
}

/// Keys whose refresh lease key this process may hold: it asked for the
/// lease there and has not yet stored the entry or released the lease. A
/// store, a release and an extension touch the refresh lease key only for
/// these (a script each: about 5 µs of server time); a miss takes its lease
/// in the entry's place, which the store replaces.
///
/// A key is counted as held from before the asking command is sent until
/// the answer says it was not taken, or the lease is released: an answer
/// lost to a timeout leaves it counted, so a lease this process holds is
/// never left out. If the set ever holds [`MAX_HELD`] keys (leases asked
/// for and never stored nor released), it stops counting and every store
/// releases the refresh lease key, as before it existed.
pub(super) struct LeaseKeys {
    /// Each key's hash, with the lease token it was asked under (engines
    /// that share an adapter hold leases under tokens of their own).
    held: parking_lot::Mutex<Option<hashbrown::HashSet<(u64, u64)>>>,
}

/// See [`LeaseKeys`]: far more than the fetches one process runs at once.
const MAX_HELD: usize = 65_536;

impl LeaseKeys {
    pub(super) fn new() -> Self {
        Self {
            held: parking_lot::Mutex::new(Some(hashbrown::HashSet::new())),
        }
    }

    /// This process is about to ask for the refresh lease key at `spot`
    /// under `token`.
    pub(super) fn asking(&self, spot: Spot, token: u64) {
        let mut held = self.held.lock();
        if let Some(keys) = held.as_mut() {
            if keys.len() >= MAX_HELD {
                *held = None;
            } else {
                keys.insert((spot.hash, token));
            }
        }
    }

    /// Whether this process may hold the refresh lease key at `spot`
    /// under `token`.
    pub(super) fn may_hold(&self, spot: Spot, token: u64) -> bool {
        self.held
            .lock()
            .as_ref()
            .is_none_or(|keys| keys.contains(&(spot.hash, token)))
    }

    /// The refresh lease key at `spot` is not (or no longer) held under
    /// `token`.
    pub(super) fn let_go(&self, spot: Spot, token: u64) {
        if let Some(keys) = self.held.lock().as_mut() {
            keys.remove(&(spot.hash, token));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LeaseKeys, Seen, Spot, MAX_HELD};
    use crate::storage::EntryKey;

    fn key(key: &str) -> Spot {
        Seen::spot(EntryKey { prefix: "t", key })
    }

    #[test]
    fn an_entry_is_likely_there_until_its_second_then_not() {
        let seen = Seen::new();
        assert!(!seen.likely(key("a"), 0), "never seen");
        seen.saw(key("a"), 5_999);
        assert!(seen.likely(key("a"), 4_999));
        assert!(!seen.likely(key("a"), 5_000), "whole seconds, rounded down");
        assert!(!seen.likely(key("b"), 0), "another key");
        let other_prefix = Seen::spot(EntryKey {
            prefix: "u",
            key: "a",
        });
        assert!(
            !seen.likely(other_prefix, 0),
            "the same key under another prefix"
        );
        seen.forget(key("a"));
        assert!(!seen.likely(key("a"), 0));
        seen.saw(key("a"), u64::MAX);
        assert!(seen.likely(key("a"), 4_000_000_000_000), "saturates");
        seen.clear();
        assert!(!seen.likely(key("a"), 0));
    }

    #[test]
    fn forgetting_a_key_leaves_another_in_its_slot() {
        let seen = Seen::new();
        // Find a key that shares "a"'s slot.
        let slot = key("a").slot;
        let other = (0..u32::MAX)
            .map(|i| format!("k{i}"))
            .find(|k| key(k).slot == slot)
            .expect("some key shares the slot");
        seen.saw(key(&other), 10_000);
        seen.forget(key("a"));
        assert!(seen.likely(key(&other), 0));
        seen.saw(key("a"), 10_000);
        assert!(
            !seen.likely(key(&other), 0),
            "one key per slot: the last seen"
        );
    }

    #[test]
    fn a_lease_key_is_held_from_the_asking_to_the_letting_go() {
        let leases = LeaseKeys::new();
        assert!(!leases.may_hold(key("a"), 1));
        leases.asking(key("a"), 1);
        assert!(leases.may_hold(key("a"), 1));
        assert!(!leases.may_hold(key("b"), 1));
        assert!(!leases.may_hold(key("a"), 2), "another engine's token");
        leases.let_go(key("a"), 2);
        assert!(leases.may_hold(key("a"), 1), "still held under token 1");
        leases.let_go(key("a"), 1);
        assert!(!leases.may_hold(key("a"), 1));
    }

    #[test]
    fn too_many_lease_keys_never_let_go_stop_the_counting() {
        let leases = LeaseKeys::new();
        for i in 0..=MAX_HELD {
            leases.asking(key(&format!("k{i}")), 1);
        }
        let never = key("never asked");
        assert!(leases.may_hold(never, 1), "every key may be held");
        leases.let_go(key("k0"), 1);
        assert!(leases.may_hold(key("k0"), 1));
    }
}
