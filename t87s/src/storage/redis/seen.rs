//! Which entries this process last found in Redis, and until when: the hint
//! that lets a read leave the lease out.
//!
//! A read that may take the fetch lease puts it in the entry's place (`SET
//! key <lease> NX PX ttl GET`), so that a miss costs two round trips, not
//! three. That is a second command beside the `MGET` of the markers, and
//! most reads are hits: an entry this process saw a moment ago is almost
//! always still there. For those, the read is the one `MGET` alone; if the
//! entry turns out to be gone, a second read takes the lease.
//!
//! A hint only ever picks the commands of a read, never a value: a wrong
//! one costs one round trip (an entry gone early: deleted, evicted, or
//! expired on a server whose clock runs ahead) or the lease-taking read a
//! hit did before (two keys in one slot take turns).

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

impl Seen {
    pub(super) fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The slot of `key` and what it holds for `key` until `until_s`.
    fn locate(key: EntryKey<'_>) -> (usize, u64) {
        let hash = xxh3_64_with_seed(key.key.as_bytes(), xxh3_64(key.prefix.as_bytes()));
        // The low bits pick the slot; the high 32 are the fingerprint.
        let slot = usize::try_from(hash % SLOTS as u64).unwrap_or(0);
        (slot, hash & !u64::from(u32::MAX))
    }

    /// Whether `key`'s entry was found (or stored) by this process and
    /// should still be in Redis at `now_ms`.
    pub(super) fn likely(&self, key: EntryKey<'_>, now_ms: u64) -> bool {
        let (slot, fingerprint) = Self::locate(key);
        let Some(held) = self.slots.get(slot) else {
            return false;
        };
        let held = held.load(Ordering::Relaxed);
        held & !u64::from(u32::MAX) == fingerprint && held & u64::from(u32::MAX) > now_ms / 1000
    }

    /// `key`'s entry is in Redis until `until_ms` (the hint keeps whole
    /// seconds, rounded down). A time already past forgets it.
    pub(super) fn saw(&self, key: EntryKey<'_>, until_ms: u64) {
        let (slot, fingerprint) = Self::locate(key);
        if let Some(held) = self.slots.get(slot) {
            let until_s = u32::try_from(until_ms / 1000).unwrap_or(u32::MAX);
            held.store(fingerprint | u64::from(until_s), Ordering::Relaxed);
        }
    }

    /// `key`'s entry is not in Redis (a read found none, or this process
    /// deleted it).
    pub(super) fn forget(&self, key: EntryKey<'_>) {
        let (slot, fingerprint) = Self::locate(key);
        if let Some(held) = self.slots.get(slot) {
            let was = held.load(Ordering::Relaxed);
            if was & !u64::from(u32::MAX) == fingerprint {
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

#[cfg(test)]
mod tests {
    use super::Seen;
    use crate::storage::EntryKey;

    fn key(key: &str) -> EntryKey<'_> {
        EntryKey { prefix: "t", key }
    }

    #[test]
    fn an_entry_is_likely_there_until_its_second_then_not() {
        let seen = Seen::new();
        assert!(!seen.likely(key("a"), 0), "never seen");
        seen.saw(key("a"), 5_999);
        assert!(seen.likely(key("a"), 4_999));
        assert!(!seen.likely(key("a"), 5_000), "whole seconds, rounded down");
        assert!(!seen.likely(key("b"), 0), "another key");
        assert!(
            !seen.likely(
                EntryKey {
                    prefix: "u",
                    key: "a"
                },
                0
            ),
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
        let (slot, _) = Seen::locate(key("a"));
        let other = (0..u32::MAX)
            .map(|i| format!("k{i}"))
            .find(|k| Seen::locate(key(k)).0 == slot)
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
}
