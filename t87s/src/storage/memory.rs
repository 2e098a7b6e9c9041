//! The in-process adapter: a bounded concurrent map plus bounded markers.

use std::collections::VecDeque;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use quick_cache::Equivalent;

use super::{
    AdapterFuture, EntryKey, MarkerKey, MarkerScope, MarkerSet, Read, StorageAdapter, ValueForm,
};
use crate::clock::{Clock, SystemClock};
use crate::entry::StoredEntry;
use crate::error::{AdapterError, ConfigError};
use crate::key::{self, KeyProbe};

const DEFAULT_MAX_ENTRIES: usize = 10_000;
const DEFAULT_MAX_MARKERS: usize = 100_000;
/// Up to how many markers set since a reader's last check are tested
/// against its tags one by one, rather than looked up by key.
const RECENT_MARKERS: usize = 8;

/// The embedded store: entries in a bounded concurrent map with O(1)
/// eviction ([`quick_cache`]), invalidation markers in a bounded table.
///
/// - **Bounded entries.** At most `max_entries` entries (rounded down to a
///   multiple of the internal shard count when it is over 32 per shard); past that the
///   least useful are evicted (CLOCK-Pro, O(1) per insert). A hit takes no
///   exclusive lock, and reads its entry in place under its shard's read
///   lock: nothing is cloned but the value it returns.
/// - **Keys by digest.** Entries are hashed by a 64-bit digest of their key
///   (for a `#[cached]` key, of the method's identity and the canonical bytes
///   of its arguments, so a typed hit builds no key text), and a hit compares
///   the stored key in full: a digest collision costs a comparison, never a
///   wrong value.
/// - **Bounded markers.** A marker is dropped once it is older than the
///   longest entry lifetime (ttl + grace) this adapter has stored, since every
///   entry it could make stale is dead by then; and the oldest markers are
///   dropped past `max_markers`. Either way a store-wide *floor* rises to the
///   dropped marker's version, so an entry it covered can never come back to
///   life: dropping markers costs at worst a refetch, never a stale read.
/// - **Values are kept as objects**, so a hit clones the value instead of
///   decoding bytes. [`MemoryAdapterBuilder::value_form`] can make it keep
///   codec bytes instead (to test a codec, or to share nothing by reference).
///
/// Clones share the same store.
///
/// ```
/// use t87s::MemoryAdapter;
/// use t87s::engine::Primitives;
/// let adapter = MemoryAdapter::builder().max_entries(50_000).build()?;
/// let cache = Primitives::new(adapter);
/// # Ok::<(), t87s::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct MemoryAdapter {
    inner: Arc<Inner>,
}

struct Inner {
    entries: Entries,
    markers: RwLock<Markers>,
    /// The current version: returned by reads, consumed by invalidations.
    version: AtomicU64,
    /// A copy of `markers.floor`, readable without the lock.
    floor: AtomicU64,
    /// The longest `live_until - created_at` of any entry written.
    max_lifetime_ms: AtomicU64,
    max_markers: usize,
    clock: Arc<dyn Clock>,
    form: ValueForm,
}

#[derive(Default)]
struct Markers {
    map: hashbrown::HashMap<Arc<OwnedMarker>, MarkerRecord>,
    /// Markers in the order they were set (so by version), with the version
    /// they had then; a record whose marker was set again since is skipped.
    order: VecDeque<(u64, Arc<OwnedMarker>)>,
    /// Every entry whose version is at or below this is stale.
    floor: u64,
    /// Whether a marker was ever set at another store's version
    /// ([`MemoryAdapter::invalidate_at`]): then `order` is not in this
    /// store's version order, and readers look their markers up by key.
    foreign: bool,
}

#[derive(Clone, Copy)]
struct MarkerRecord {
    version: u64,
    set_at_ms: u64,
}

/// A stored entry's address: the prefix and the key in one allocation.
/// Hashed by the digest of its key alone ([`key::digest`]), which a typed
/// hit computes without the key's text.
#[derive(Debug)]
struct OwnedKey {
    digest: u64,
    /// `prefix` then `key`.
    text: Box<str>,
    /// Where the key starts in `text` (`u32::MAX` for a prefix too long to
    /// say: such a key is never found, only replaced).
    prefix_len: u32,
    /// What the last typed probe that matched this key in full left for the
    /// next (see [`KeyProbe::memo`]); 0 for none.
    memo: AtomicU32,
}

impl OwnedKey {
    fn new(key: EntryKey<'_>) -> Self {
        let mut text = String::with_capacity(key.prefix.len() + key.key.len());
        text.push_str(key.prefix);
        text.push_str(key.key);
        Self {
            digest: key::digest(key.key),
            text: text.into_boxed_str(),
            prefix_len: u32::try_from(key.prefix.len()).unwrap_or(u32::MAX),
            memo: AtomicU32::new(0),
        }
    }

    /// The prefix and the key, as bytes (split with no check of a character
    /// boundary: equality compares bytes). A prefix longer than `u32::MAX`
    /// splits nowhere: its key equals no other.
    #[inline]
    fn parts(&self) -> (&[u8], &[u8]) {
        self.text
            .as_bytes()
            .split_at_checked(self.prefix_len as usize)
            .unwrap_or_default()
    }
}

impl PartialEq for OwnedKey {
    fn eq(&self, other: &Self) -> bool {
        self.prefix_len == other.prefix_len && self.text == other.text
    }
}

impl Eq for OwnedKey {}

impl Hash for OwnedKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

/// An entry looked up by its text (hashes like the [`OwnedKey`] it finds).
struct ByText<'a> {
    digest: u64,
    key: EntryKey<'a>,
}

impl<'a> ByText<'a> {
    #[inline]
    fn new(key: EntryKey<'a>) -> Self {
        Self {
            digest: key::digest(key.key),
            key,
        }
    }
}

impl Hash for ByText<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.digest);
    }
}

impl Equivalent<OwnedKey> for ByText<'_> {
    #[inline]
    fn equivalent(&self, owned: &OwnedKey) -> bool {
        let (prefix, key) = owned.parts();
        key::same(prefix, self.key.prefix.as_bytes()) && key::same(key, self.key.key.as_bytes())
    }
}

/// An entry looked up by a typed call's [`KeyProbe`], whose text is not built.
struct ByProbe<'a> {
    prefix: &'a str,
    probe: &'a KeyProbe<'a>,
}

impl Hash for ByProbe<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.probe.digest());
    }
}

impl Equivalent<OwnedKey> for ByProbe<'_> {
    #[inline]
    fn equivalent(&self, owned: &OwnedKey) -> bool {
        let (prefix, key) = owned.parts();
        if !key::same(prefix, self.prefix.as_bytes()) {
            return false;
        }
        // A key that matched a probe of this name and form length in full
        // needs only its form compared (see `KeyProbe::memo`).
        let memo = self.probe.memo();
        if memo != 0 && owned.memo.load(Ordering::Relaxed) == memo {
            return self.probe.form_ends(key);
        }
        let matched = self.probe.matches(key);
        if matched && memo != 0 {
            owned.memo.store(memo, Ordering::Relaxed);
        }
        matched
    }
}

// Field order and types hash exactly like `MarkerKey` (derived `Hash`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct OwnedMarker {
    prefix: Box<str>,
    path: Box<str>,
    scope: MarkerScope,
}

impl hashbrown::Equivalent<Arc<OwnedMarker>> for MarkerKey<'_> {
    fn equivalent(&self, owned: &Arc<OwnedMarker>) -> bool {
        owned.scope == self.scope && *owned.path == *self.path && *owned.prefix == *self.prefix
    }
}

impl MemoryAdapter {
    /// A store with the defaults: 10,000 entries, 100,000 markers, values kept
    /// as objects, the system clock for marker pruning.
    ///
    /// ```
    /// let adapter = t87s::MemoryAdapter::new();
    /// assert_eq!(adapter.entry_count(), 0);
    /// ```
    pub fn new() -> Self {
        Self::from_builder(MemoryAdapterBuilder::default())
    }

    /// Options: capacity, marker bound, clock, value form.
    ///
    /// ```
    /// let adapter = t87s::MemoryAdapter::builder().max_entries(100).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn builder() -> MemoryAdapterBuilder {
        MemoryAdapterBuilder::default()
    }

    fn from_builder(b: MemoryAdapterBuilder) -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: Entries::new(b.max_entries),
                markers: RwLock::new(Markers::default()),
                version: AtomicU64::new(1),
                floor: AtomicU64::new(0),
                max_lifetime_ms: AtomicU64::new(0),
                max_markers: b.max_markers,
                clock: b.clock,
                form: b.form,
            }),
        }
    }

    /// How many entries are stored (dead ones included until evicted or read).
    ///
    /// ```
    /// assert_eq!(t87s::MemoryAdapter::new().entry_count(), 0);
    /// ```
    pub fn entry_count(&self) -> usize {
        self.inner.entries.len()
    }

    /// How many invalidation markers are kept.
    ///
    /// ```
    /// assert_eq!(t87s::MemoryAdapter::new().marker_count(), 0);
    /// ```
    pub fn marker_count(&self) -> usize {
        self.inner.markers.read().map.len()
    }

    /// `f` of the entry under a typed call's key, found by its probe and
    /// read in place (see [`InPlace`]); `None` when there is none.
    #[inline]
    pub(crate) fn probe_in_place<R>(
        &self,
        prefix: &str,
        probe: &KeyProbe<'_>,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        self.in_place(&ByProbe { prefix, probe }, f)
    }

    /// `f` of the entry under `key`, read in place (see [`InPlace`]).
    #[inline]
    pub(crate) fn text_in_place<R>(
        &self,
        key: EntryKey<'_>,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        self.in_place(&ByText::new(key), f)
    }

    #[inline(always)]
    fn in_place<Q, R>(&self, key: &Q, f: impl FnOnce(InPlace<'_>) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<OwnedKey>,
    {
        let inner = &*self.inner;
        // The order of `read_now`: the version, the entry, then the floor.
        let version = inner.version.load(Ordering::Acquire);
        inner.entries.read(key, |entry| {
            f(InPlace {
                entry,
                version,
                floor: inner.floor.load(Ordering::Acquire),
                store: self,
            })
        })
    }

    /// [`StorageAdapter::try_read_now`], without the dynamic call.
    #[inline]
    pub(crate) fn read_text(&self, key: EntryKey<'_>, markers: MarkerSet<'_>, now_ms: u64) -> Read {
        self.read_now(&ByText::new(key), markers, now_ms)
    }

    #[inline]
    fn read_now<Q>(&self, key: &Q, markers: MarkerSet<'_>, now_ms: u64) -> Read
    where
        Q: Hash + Equivalent<OwnedKey>,
    {
        let inner = &*self.inner;
        // Take the version first: a fetch stamped with it must see every
        // invalidation that completes after this point.
        let version = inner.version.load(Ordering::Acquire);
        let entry = inner.entries.get(key);
        let entry = match entry {
            Some(entry) if entry.live_until() > now_ms => entry,
            Some(dead) => {
                // Dead: free the slot now rather than waiting for eviction,
                // but only if it still holds this very entry: a fresh one
                // written since must survive.
                inner
                    .entries
                    .remove_if(key, |held| Arc::ptr_eq(held, &dead));
                return Read::new(None, 0, version);
            }
            None => return Read::new(None, 0, version),
        };
        Read::new(Some(entry), self.newest(markers), version)
    }

    #[inline(always)]
    fn newest(&self, markers: MarkerSet<'_>) -> u64 {
        if markers.is_empty() {
            // Only the floor: no lock on the hit path.
            return self.inner.floor.load(Ordering::Acquire);
        }
        self.newest_of(markers)
    }

    /// [`newest`](Self::newest) of markers that must be looked up.
    #[inline(never)]
    fn newest_of(&self, markers: MarkerSet<'_>) -> u64 {
        let table = self.inner.markers.read();
        let mut newest = table.floor;
        if table.map.is_empty() {
            return newest;
        }
        // The reader checked every marker set before `since`: when few were
        // set after it (an entry read again after an invalidation or two),
        // test just those against its tags, with no marker key hashed.
        let since = markers.checked_before();
        let recent = || table.order.iter().rev().take_while(|(v, _)| *v >= since);
        if !table.foreign && recent().nth(RECENT_MARKERS).is_none() {
            for (version, marker) in recent() {
                if markers.contains(&marker.prefix, &marker.path, marker.scope) {
                    newest = newest.max(*version);
                }
            }
            return newest;
        }
        for marker in markers.iter() {
            if let Some(record) = table.map.get(&marker) {
                newest = newest.max(record.version);
            }
        }
        newest
    }
}

/// An entry read in place, under its shard's read lock: what a
/// [`Read`] with no markers would say of it, with nothing cloned. Whoever
/// reads it keeps the lock for as long as it looks (a clone of the value,
/// no more).
pub(crate) struct InPlace<'a> {
    pub(crate) entry: &'a StoredEntry,
    /// The store's version when the entry was read ([`Read::version`]).
    pub(crate) version: u64,
    /// The store's floor: every entry at or below it is stale.
    pub(crate) floor: u64,
    store: &'a MemoryAdapter,
}

impl<'a> InPlace<'a> {
    /// The newest of the floor and `markers` ([`Read::newest_marker`]),
    /// read now (the marker table's lock is taken inside the shard's).
    #[inline]
    pub(crate) fn newest(&self, markers: MarkerSet<'_>) -> u64 {
        self.store.newest(markers)
    }

    /// The entry, with its markers and floor already checked by the reader
    /// (a near cache's): version and floor 0, as a near answer's [`Read`].
    #[cfg(feature = "redis")]
    #[inline]
    pub(crate) fn settled(self) -> InPlace<'a> {
        InPlace {
            version: 0,
            floor: 0,
            ..self
        }
    }
}

/// The entries' map: quick_cache shards, each behind a read-write lock of
/// its own. A hit reads its entry in place under the shard's read lock
/// ([`read`](Self::read)), with no `Arc` cloned and dropped: quick_cache's
/// concurrent map hands values out only by clone.
///
/// Lock order: a shard's lock, then the marker table's (a reader in place
/// checks markers); never the other way round.
struct Entries {
    shards: Box<[RwLock<Shard>]>,
    /// Picks the shard; each shard hashes with a copy of it.
    hasher: ByDigest,
}

type Shard = quick_cache::unsync::Cache<
    OwnedKey,
    Arc<StoredEntry>,
    quick_cache::UnitWeighter,
    ByDigest,
    DropOutside,
>;

/// Hands the entries an insert evicts back to the caller, which drops them
/// once the shard's lock is released (a value's drop can take a while).
#[derive(Clone, Copy, Default)]
struct DropOutside;

impl quick_cache::Lifecycle<OwnedKey, Arc<StoredEntry>> for DropOutside {
    type RequestState = Vec<Arc<StoredEntry>>;

    fn on_evict(&self, evicted: &mut Self::RequestState, _: OwnedKey, entry: Arc<StoredEntry>) {
        evicted.push(entry);
    }
}

impl Entries {
    /// A map that never holds more than `max_entries`: each shard holds an
    /// equal share, so pick the shard count here and round the capacity down
    /// to a multiple of it.
    fn new(max_entries: usize) -> Self {
        let parallelism = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut count = (parallelism * 4).next_power_of_two();
        while count > 1 && max_entries / count < 32 {
            count /= 2;
        }
        let share = max_entries / count;
        let hasher = ByDigest::default();
        let shards = (0..count)
            .map(|_| {
                RwLock::new(Shard::with(
                    share,
                    share as u64,
                    quick_cache::UnitWeighter,
                    hasher,
                    DropOutside,
                ))
            })
            .collect();
        Self { shards, hasher }
    }

    /// The shard of `key`, by bits of its hash that the shard's own table
    /// does not use (it takes the low bits for the bucket and the top 7 for
    /// the tag).
    #[inline]
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &RwLock<Shard> {
        let hash = std::hash::BuildHasher::hash_one(&self.hasher, key);
        let at = (hash >> 32) as usize & (self.shards.len() - 1);
        // `at` is masked to the (power-of-two) length: always in range.
        match self.shards.get(at) {
            Some(shard) => shard,
            None => &self.shards[0],
        }
    }

    /// `f` of the entry under `key`, read in place under its shard's read
    /// lock (keep `f` short: writers to the shard wait for it).
    #[inline]
    fn read<Q, R>(&self, key: &Q, f: impl FnOnce(&Arc<StoredEntry>) -> R) -> Option<R>
    where
        Q: Hash + Equivalent<OwnedKey> + ?Sized,
    {
        self.shard(key).read().get(key).map(f)
    }

    #[inline]
    fn get<Q>(&self, key: &Q) -> Option<Arc<StoredEntry>>
    where
        Q: Hash + Equivalent<OwnedKey> + ?Sized,
    {
        self.read(key, Arc::clone)
    }

    fn insert(&self, key: OwnedKey, entry: Arc<StoredEntry>) {
        // Whatever the insert evicts is dropped after the lock is released.
        let evicted = {
            let mut shard = self.shard(&key).write();
            let mut evicted = Vec::new();
            shard.insert_with_lifecycle(key, entry, &mut evicted);
            evicted
        };
        drop(evicted);
    }

    fn remove<Q>(&self, key: &Q)
    where
        Q: Hash + Equivalent<OwnedKey> + ?Sized,
    {
        let removed = self.shard(key).write().remove(key);
        drop(removed);
    }

    /// Removes the entry under `key` if `f` says so.
    fn remove_if<Q>(&self, key: &Q, f: impl FnOnce(&Arc<StoredEntry>) -> bool)
    where
        Q: Hash + Equivalent<OwnedKey> + ?Sized,
    {
        let removed = self.shard(key).write().remove_if(key, f);
        drop(removed);
    }

    fn clear(&self) {
        for shard in &*self.shards {
            // Dropped once the lock is released.
            let drained: Vec<_> = shard.write().drain().collect();
            drop(drained);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    fn capacity(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.read().capacity())
            .sum()
    }
}

/// Hashes an entry key by its digest: the digest is already a 64-bit hash
/// of the key ([`key::digest`], xxh3), which every key type here writes as
/// its one `u64`, so it is only mixed with a seed drawn per map (one
/// multiply), not hashed again. The seed keeps bucket positions
/// unpredictable: keys chosen to collide in a few bits of their digest do
/// not collide in the map.
#[derive(Clone, Copy)]
struct ByDigest {
    seed: u64,
}

impl Default for ByDigest {
    fn default() -> Self {
        Self {
            seed: fastrand::u64(..),
        }
    }
}

impl std::hash::BuildHasher for ByDigest {
    type Hasher = DigestHasher;

    #[inline]
    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(self.seed)
    }
}

/// See [`ByDigest`]: holds the seed until the digest is written.
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    #[inline]
    fn write_u64(&mut self, digest: u64) {
        // A folded multiply: every bit of the product depends on every bit
        // of `digest ^ seed`.
        let product = u128::from(digest ^ self.0) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    /// Never called by the keys here (they write one `u64`); mixes anything
    /// else in rather than ignoring it.
    fn write(&mut self, bytes: &[u8]) {
        self.0 = xxhash_rust::xxh3::xxh3_64_with_seed(bytes, self.0);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for MemoryAdapter {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryAdapter")
            .field("entries", &self.inner.entries.len())
            .field("capacity", &self.inner.entries.capacity())
            .field("markers", &self.marker_count())
            .field("max_markers", &self.inner.max_markers)
            .field("value_form", &self.inner.form)
            .finish()
    }
}

impl Markers {
    fn set(&mut self, marker: MarkerKey<'_>, record: MarkerRecord) {
        if let Some((key, existing)) = self.map.get_key_value_mut(&marker) {
            *existing = record;
            let key = Arc::clone(key);
            self.order.push_back((record.version, key));
        } else {
            let key = Arc::new(OwnedMarker {
                prefix: marker.prefix.into(),
                path: marker.path.into(),
                scope: marker.scope,
            });
            self.map.insert(Arc::clone(&key), record);
            self.order.push_back((record.version, key));
        }
    }

    /// Drops markers older than `max_age_ms` and, past `max_markers`, the
    /// oldest ones; the floor rises to every dropped marker's version.
    fn prune(&mut self, now_ms: u64, max_age_ms: u64, max_markers: usize) {
        while let Some((version, key)) = self.order.front() {
            let current = self.map.get(key).copied();
            match current {
                Some(record) if record.version == *version => {
                    let expired = record.set_at_ms.saturating_add(max_age_ms) < now_ms;
                    if !expired && self.map.len() <= max_markers {
                        break;
                    }
                    self.floor = self.floor.max(record.version);
                    self.map.remove(key);
                }
                // Superseded by a later `set` of the same marker, or gone.
                _ => {}
            }
            self.order.pop_front();
        }
        // Records superseded in the middle of the queue: compact now and then,
        // so the queue stays within a constant factor of the table.
        if self.order.len() > 2 * self.map.len() + 64 {
            let map = &self.map;
            self.order
                .retain(|(version, key)| map.get(key).is_some_and(|r| r.version == *version));
        }
    }
}

impl MemoryAdapter {
    /// Applies an invalidation made in another store, at that store's
    /// `version`: each of `markers` rises to it (never falls), or, with no
    /// markers, the floor does (every entry at or below it is stale). A near
    /// cache keeps its copy coherent this way; its entries carry the shared
    /// store's versions.
    ///
    /// This store's own version moves past `version` and moves in any case,
    /// so an entry checked clean before this call is checked again.
    pub(crate) fn insert(&self, key: EntryKey<'_>, entry: Arc<StoredEntry>) {
        let inner = &*self.inner;
        inner
            .max_lifetime_ms
            .fetch_max(entry.lifetime_ms(), Ordering::AcqRel);
        inner.entries.insert(OwnedKey::new(key), entry);
    }

    pub(crate) fn remove(&self, key: EntryKey<'_>) {
        self.inner.entries.remove(&ByText::new(key));
    }

    #[cfg(feature = "redis")]
    pub(crate) fn invalidate_at(&self, markers: &[MarkerKey<'_>], version: u64) {
        let inner = &*self.inner;
        let now_ms = inner.clock.now_ms();
        let max_age = inner.max_lifetime_ms.load(Ordering::Acquire);
        let mut table = inner.markers.write();
        // Versions from another store: the recent-marker test (which reads
        // `order` as this store's versions, newest last) no longer holds.
        table.foreign = true;
        let next = |current: u64| Some(current.saturating_add(1).max(version.saturating_add(1)));
        // `fetch_update` with a closure that always returns `Some` cannot fail.
        let _ = inner
            .version
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, next);
        if markers.is_empty() {
            table.floor = table.floor.max(version);
        }
        let record = MarkerRecord {
            version,
            set_at_ms: now_ms,
        };
        for marker in markers {
            if table
                .map
                .get(marker)
                .is_none_or(|held| held.version < version)
            {
                table.set(*marker, record);
            }
        }
        table.prune(now_ms, max_age, inner.max_markers);
        inner.floor.store(table.floor, Ordering::Release);
    }
}

impl StorageAdapter for MemoryAdapter {
    fn value_form(&self) -> ValueForm {
        self.inner.form
    }

    fn read<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
    ) -> AdapterFuture<'a, Read> {
        Box::pin(std::future::ready(Ok(self.read_text(key, markers, now_ms))))
    }

    fn try_read_now(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
    ) -> Option<Result<Read, AdapterError>> {
        Some(Ok(self.read_text(key, markers, now_ms)))
    }

    fn newest_marker<'a>(&'a self, markers: MarkerSet<'a>) -> AdapterFuture<'a, u64> {
        Box::pin(std::future::ready(Ok(self.newest(markers))))
    }

    fn version(&self) -> AdapterFuture<'_, u64> {
        let version = self.inner.version.load(Ordering::Acquire);
        Box::pin(std::future::ready(Ok(version)))
    }

    fn write<'a>(&'a self, key: EntryKey<'a>, entry: Arc<StoredEntry>) -> AdapterFuture<'a, ()> {
        self.insert(key, entry);
        Box::pin(std::future::ready(Ok(())))
    }

    fn delete<'a>(&'a self, key: EntryKey<'a>) -> AdapterFuture<'a, ()> {
        self.remove(key);
        Box::pin(std::future::ready(Ok(())))
    }

    fn invalidate<'a>(&'a self, markers: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()> {
        let inner = &*self.inner;
        let now_ms = inner.clock.now_ms();
        let max_age = inner.max_lifetime_ms.load(Ordering::Acquire);
        let mut table = inner.markers.write();
        // Under the table lock, so markers are queued in version order.
        let version = inner.version.fetch_add(1, Ordering::AcqRel);
        let record = MarkerRecord {
            version,
            set_at_ms: now_ms,
        };
        for marker in markers {
            table.set(*marker, record);
        }
        table.prune(now_ms, max_age, inner.max_markers);
        inner.floor.store(table.floor, Ordering::Release);
        Box::pin(std::future::ready(Ok(())))
    }

    fn clear(&self) -> AdapterFuture<'_, ()> {
        let inner = &*self.inner;
        let mut table = inner.markers.write();
        let version = inner.version.fetch_add(1, Ordering::AcqRel);
        table.map.clear();
        table.order.clear();
        table.floor = version;
        inner.floor.store(version, Ordering::Release);
        // Every entry is below the floor now. The table's lock is released
        // first: a reader in place holds a shard's lock, then the table's.
        drop(table);
        inner.entries.clear();
        Box::pin(std::future::ready(Ok(())))
    }

    fn disconnect(&self) -> AdapterFuture<'_, ()> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// Options for a [`MemoryAdapter`].
///
/// ```
/// use t87s::{ManualClock, MemoryAdapter};
/// use t87s::adapter::ValueForm;
/// let clock = ManualClock::new(0);
/// let adapter = MemoryAdapter::builder()
///     .max_entries(1_000)
///     .max_markers(10_000)
///     .clock(clock)
///     .value_form(ValueForm::Bytes)
///     .build()?;
/// # Ok::<(), t87s::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryAdapterBuilder {
    max_entries: usize,
    max_markers: usize,
    clock: Arc<dyn Clock>,
    form: ValueForm,
}

impl Default for MemoryAdapterBuilder {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_markers: DEFAULT_MAX_MARKERS,
            clock: Arc::new(SystemClock),
            form: ValueForm::Object,
        }
    }
}

impl MemoryAdapterBuilder {
    /// The most entries kept (default 10,000).
    ///
    /// ```
    /// t87s::MemoryAdapter::builder().max_entries(1_000_000).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// The most invalidation markers kept (default 100,000). Past it the
    /// oldest are dropped and the store-wide floor rises (see [`MemoryAdapter`]).
    ///
    /// ```
    /// t87s::MemoryAdapter::builder().max_markers(10_000).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn max_markers(mut self, n: usize) -> Self {
        self.max_markers = n;
        self
    }

    /// The clock used to age markers (default: the system clock). Give it
    /// the same clock as the [`Primitives`](crate::engine::Primitives) in tests.
    ///
    /// ```
    /// t87s::MemoryAdapter::builder().clock(t87s::ManualClock::new(0)).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Keep values as objects (default) or as codec bytes.
    ///
    /// ```
    /// use t87s::adapter::StorageAdapter;
    /// let adapter = t87s::MemoryAdapter::builder().value_form(t87s::adapter::ValueForm::Bytes).build()?;
    /// assert_eq!(adapter.value_form(), t87s::adapter::ValueForm::Bytes);
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn value_form(mut self, form: ValueForm) -> Self {
        self.form = form;
        self
    }

    /// Builds the adapter; zero capacities are refused.
    ///
    /// ```
    /// assert!(t87s::MemoryAdapter::builder().max_entries(0).build().is_err());
    /// ```
    pub fn build(self) -> Result<MemoryAdapter, ConfigError> {
        if self.max_entries == 0 {
            return Err(ConfigError::ZeroCapacity("max_entries"));
        }
        if self.max_markers == 0 {
            return Err(ConfigError::ZeroCapacity("max_markers"));
        }
        Ok(MemoryAdapter::from_builder(self))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{ByDigest, ByProbe, ByText, Equivalent, MemoryAdapter, OwnedKey, RECENT_MARKERS};
    use crate::clock::ManualClock;
    use crate::entry::{StoredEntry, StoredValue};
    use crate::key::{identity_seed, KeyName, KeyParts};
    use crate::storage::{EntryKey, MarkerKey, MarkerScope, MarkerSet, StorageAdapter};
    use crate::tag::TagPath;

    static POST: KeyName = KeyName::new(
        "blog::post(",
        ")@0123456789abcdef:",
        identity_seed(b"0123456789abcdef"),
    );
    /// Another name with the same text: a number of its own.
    static POST_AGAIN: KeyName = KeyName::new(
        "blog::post(",
        ")@0123456789abcdef:",
        identity_seed(b"0123456789abcdef"),
    );

    /// A typed key's text, and its canonical bytes for a probe.
    fn typed(arg: &(impl serde::Serialize + ?Sized)) -> (String, KeyParts) {
        let mut text = KeyParts::default();
        text.begin("blog::post(");
        text.arg(arg).expect("encodes");
        text.finish(")@0123456789abcdef:");
        let mut silent = KeyParts::default();
        silent.begin_silent();
        silent.arg(arg).expect("encodes");
        (text.text, silent)
    }

    fn stored(prefix: &str, text: &str) -> OwnedKey {
        OwnedKey::new(EntryKey { prefix, key: text })
    }

    /// A key remembers the probe that matched it in full, and then only the
    /// form is compared: never a probe of a shorter form that its form ends
    /// with, another form of the same length, another prefix, or a key that
    /// was never matched in full.
    #[test]
    fn a_remembered_match_compares_the_form_and_nothing_less() {
        let (text, one) = typed(&1u64); // canonical bytes 07 01: "0701"
        let (_, unit) = typed(&()); // canonical bytes 01: "01", which "0701" ends with
        let (_, two) = typed(&2u64); // "0702": the same length
        let key = stored("t87s", &text);
        let probe = |parts: &KeyParts, name: &'static KeyName, prefix: &str| {
            let probe = parts.probe(name);
            Equivalent::equivalent(
                &ByProbe {
                    prefix,
                    probe: &probe,
                },
                &key,
            )
        };
        for round in 0..2 {
            assert!(probe(&one, &POST, "t87s"), "round {round}: its own probe");
            assert_ne!(key.memo.load(super::Ordering::Relaxed), 0, "remembered");
            assert!(
                !probe(&unit, &POST, "t87s"),
                "round {round}: a shorter form"
            );
            assert!(!probe(&two, &POST, "t87s"), "round {round}: another form");
            assert!(
                !probe(&one, &POST, "other"),
                "round {round}: another prefix"
            );
        }
        // Another name with the same text is compared in full, and matches.
        assert!(probe(&one, &POST_AGAIN, "t87s"));
        assert!(probe(&one, &POST, "t87s"));

        // A key that ends like this one under another head never matches,
        // however often it is probed.
        let other = stored("t87s", &text.replace("blog::post(", "blog::posts("));
        let (_, one) = typed(&1u64);
        let probe = one.probe(&POST);
        for _ in 0..2 {
            let by = ByProbe {
                prefix: "t87s",
                probe: &probe,
            };
            assert!(!Equivalent::equivalent(&by, &other));
            assert_eq!(other.memo.load(super::Ordering::Relaxed), 0);
        }
    }

    /// Digests that differ only in their high bits (as keys chosen to
    /// collide in a map's low bits would) land in different buckets, and
    /// where a digest lands depends on the map's seed.
    #[test]
    fn digests_are_mixed_with_a_seed_per_map() {
        let map = ByDigest::default();
        let low_bits = |h: u64| h & 0xffff;
        let hashes: Vec<u64> = (0..64u64).map(|i| map.hash_one_digest(i << 48)).collect();
        let mut buckets: Vec<u64> = hashes.iter().map(|h| low_bits(*h)).collect();
        buckets.sort_unstable();
        buckets.dedup();
        assert!(
            buckets.len() > 60,
            "high-bit-only digests crowd {} buckets",
            buckets.len()
        );
        let (a, b) = (ByDigest { seed: 1 }, ByDigest { seed: 2 });
        assert_ne!(a.hash_one_digest(7), b.hash_one_digest(7));
        assert_eq!(a.hash_one_digest(7), a.hash_one_digest(7));
    }

    impl ByDigest {
        fn hash_one_digest(&self, digest: u64) -> u64 {
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = self.build_hasher();
            hasher.write_u64(digest);
            hasher.finish()
        }
    }

    /// A reader that checked its markers at some version tests only the
    /// markers set since against its tags; the answer is the one the full
    /// lookup gives.
    #[test]
    fn markers_set_since_a_check_are_tested_against_the_tags() {
        // A clock that stands still: no marker ages out during the test.
        let adapter = MemoryAdapter::builder()
            .clock(ManualClock::new(0))
            .build()
            .expect("adapter");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let set = |path: &str, scope| {
            let marker = [MarkerKey {
                prefix: "t87s",
                path,
                scope,
            }];
            runtime.block_on(adapter.invalidate(&marker)).expect("set");
        };
        let tags = [TagPath::new(["posts", "1"]).expect("tag")];
        let markers = MarkerSet::new("t87s", &tags);
        set("unrelated", MarkerScope::Prefix); // version 1
        assert_eq!(adapter.newest(markers.since(1)), 0);
        set("posts", MarkerScope::Prefix); // 2: an ancestor
        assert_eq!(adapter.newest(markers.since(1)), 2);
        set("posts/1", MarkerScope::Exact); // 3: the tag itself
        assert_eq!(adapter.newest(markers.since(3)), 3);
        set("posts/1/x", MarkerScope::Prefix); // 4: below the tag
        set("posts/10", MarkerScope::Prefix); // 5: not an ancestor
        set("posts/1", MarkerScope::Exact); // 6, under another prefix
        let other = [MarkerKey {
            prefix: "other",
            path: "posts/1",
            scope: MarkerScope::Exact,
        }];
        runtime.block_on(adapter.invalidate(&other)).expect("set");
        assert_eq!(adapter.newest(markers.since(4)), 6);
        assert_eq!(adapter.newest(markers.since(7)), 0);
        // Past the window, every marker of the tags is looked up by key.
        for i in 0..=RECENT_MARKERS {
            set(&format!("other/{i}"), MarkerScope::Prefix);
        }
        assert_eq!(adapter.newest(markers.since(4)), 6);
        assert_eq!(adapter.newest(markers), 6);
    }

    /// Markers applied at another store's versions (a near cache's copy)
    /// can arrive below a reader's last check: every marker of the tags is
    /// then looked up, so none is missed.
    #[cfg(feature = "redis")]
    #[test]
    fn markers_at_another_stores_versions_are_looked_up_by_key() {
        let adapter = MemoryAdapter::builder()
            .clock(ManualClock::new(0))
            .build()
            .expect("adapter");
        let tags = [TagPath::new(["posts", "1"]).expect("tag")];
        let markers = MarkerSet::new("t87s", &tags);
        let unrelated = [MarkerKey {
            prefix: "t87s",
            path: "other",
            scope: MarkerScope::Prefix,
        }];
        adapter.invalidate_at(&unrelated, 10);
        adapter.invalidate_at(&unrelated, 10);
        // A reader checked at this store's version (12, past the shared 10),
        // then the shared store's next invalidation (11) covers its tag.
        let covering = [MarkerKey {
            prefix: "t87s",
            path: "posts",
            scope: MarkerScope::Prefix,
        }];
        adapter.invalidate_at(&covering, 11);
        assert_eq!(adapter.newest(markers.since(12)), 11);
    }

    fn entry_with(value: StoredValue, tags: &[TagPath]) -> Arc<StoredEntry> {
        Arc::new(StoredEntry::new(value, Arc::from(tags), 1).lifetime(0, u64::MAX, None))
    }

    /// The answer of a memory store's future, which is ready at once.
    fn ready<T>(mut future: crate::storage::AdapterFuture<'_, T>) -> T {
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(answer) => answer.expect("a memory store does not fail"),
            Poll::Pending => panic!("a memory store's future is ready at once"),
        }
    }

    /// Runs `work` on a thread of its own and fails, rather than hangs,
    /// if it does not finish within 20 s (a deadlock).
    fn finishes(work: impl FnOnce() + Send + 'static) {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            work();
            let _ = done.send(());
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("deadlocked: did not finish within 20 s");
    }

    /// A reader in place holds its shard's lock while it reads markers;
    /// `clear` takes the marker table's lock and then every shard's. Taken
    /// in that order together, the two would deadlock: `clear` lets go of
    /// the table first.
    #[test]
    fn clearing_while_readers_check_markers_in_place_never_deadlocks() {
        let adapter = MemoryAdapter::new();
        let tags = [TagPath::new(["posts", "1"]).expect("tag")];
        let key = EntryKey {
            prefix: "t87s",
            key: "post:1",
        };
        let reader = adapter.clone();
        finishes(move || {
            let stop = std::sync::atomic::AtomicBool::new(false);
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    for _ in 0..20_000 {
                        ready(adapter.clear());
                    }
                    stop.store(true, std::sync::atomic::Ordering::Relaxed);
                });
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    reader.insert(
                        key,
                        entry_with(StoredValue::Bytes(Arc::from(&b"1"[..])), &tags),
                    );
                    // Held in place, the entry's markers are read.
                    let _ = reader
                        .text_in_place(key, |read| read.newest(MarkerSet::new("t87s", &tags)));
                }
            });
        });
    }

    /// What an insert evicts is dropped after the shard's lock is released:
    /// a value whose drop reads the store does not deadlock it.
    #[test]
    fn evicted_values_are_dropped_outside_the_lock() {
        struct ReadsOnDrop(MemoryAdapter);
        impl Drop for ReadsOnDrop {
            fn drop(&mut self) {
                // Takes every shard's read lock.
                let _ = self.0.entry_count();
            }
        }
        let adapter = MemoryAdapter::builder()
            .max_entries(64)
            .build()
            .expect("adapter");
        let writer = adapter.clone();
        finishes(move || {
            for i in 0..1_000 {
                let key = format!("key:{i}");
                let value = StoredValue::Object(Arc::new(ReadsOnDrop(writer.clone())));
                writer.insert(
                    EntryKey {
                        prefix: "t87s",
                        key: &key,
                    },
                    entry_with(value, &[]),
                );
            }
        });
        assert!(adapter.entry_count() <= 64);
        // The survivors hold clones of the adapter: let them go.
        ready(adapter.clear());
    }

    /// Two keys whose digests collide are still told apart by their text:
    /// a collision costs a comparison, never a wrong value.
    #[test]
    fn a_digest_collision_is_never_a_hit() {
        let adapter = MemoryAdapter::new();
        let stored = EntryKey {
            prefix: "t87s",
            key: "user:1",
        };
        let entry = StoredEntry::new(
            StoredValue::Bytes(Arc::from(&b"1"[..])),
            Arc::from(vec![]),
            1,
        )
        .lifetime(0, u64::MAX, None);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime
            .block_on(adapter.write(stored, Arc::new(entry)))
            .expect("written");
        let colliding = ByText {
            digest: ByText::new(stored).digest,
            key: EntryKey {
                prefix: "t87s",
                key: "user:2",
            },
        };
        let read = adapter.read_now(&colliding, MarkerSet::empty(), 0);
        assert!(read.entry.is_none());
        let other_prefix = ByText::new(EntryKey {
            prefix: "t88s",
            key: "user:1",
        });
        assert!(adapter
            .read_now(&other_prefix, MarkerSet::empty(), 0)
            .entry
            .is_none());
        assert!(adapter
            .read_text(stored, MarkerSet::empty(), 0)
            .entry
            .is_some());
    }
}
