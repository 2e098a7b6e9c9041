//! The storage seam: where entries and invalidation markers live.
//!
//! The engine decides *what* is fresh; an adapter only stores and reads. Its
//! one piece of semantics is ordering: it hands out increasing *versions*
//! and stamps invalidation markers with them, so a process never compares its
//! own clock with another's.

mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

#[cfg(feature = "redis")]
pub(crate) use self::redis::NearCopy;
#[cfg(feature = "redis")]
pub use self::redis::{NearCache, NearMode, NearStatus, RedisAdapter, RedisAdapterBuilder};
pub(crate) use memory::InPlace;
pub use memory::{MemoryAdapter, MemoryAdapterBuilder};

use crate::entry::StoredEntry;
use crate::error::AdapterError;
use crate::tag::{Prefixes, TagPath};

/// The boxed future the adapter trait returns, so adapters can be stored as
/// `Arc<dyn StorageAdapter>` (what lets `QueryCache<Schema>` name no adapter type).
pub type AdapterFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, AdapterError>> + Send + 'a>>;

/// How an adapter keeps values.
///
/// ```
/// use t87s::adapter::{StorageAdapter, ValueForm};
/// assert_eq!(t87s::MemoryAdapter::new().value_form(), ValueForm::Object);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueForm {
    /// The value itself, in this process ([`StoredValue::Object`](crate::adapter::StoredValue::Object)).
    Object,
    /// Bytes from the [`Codec`](crate::Codec) ([`StoredValue::Bytes`](crate::adapter::StoredValue::Bytes)).
    Bytes,
}

/// The address of an entry: the cache's prefix and the query key.
///
/// Kept in two parts so in-process adapters can look an entry up without
/// building a string; adapters that need one string join them with `:`.
///
/// ```
/// let key = t87s::adapter::EntryKey { prefix: "t87s", key: "user:1" };
/// assert_eq!(key.to_string(), "t87s:user:1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EntryKey<'a> {
    /// The cache's prefix (`Primitives` option `prefix`).
    pub prefix: &'a str,
    /// The query key.
    pub key: &'a str,
}

impl fmt::Display for EntryKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.prefix, self.key)
    }
}

/// Whether a marker covers a path and everything below it, or the path only.
///
/// ```
/// assert_ne!(t87s::adapter::MarkerScope::Prefix, t87s::adapter::MarkerScope::Exact);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MarkerScope {
    /// Set by `invalidate`: covers entries tagged with the path or below it.
    Prefix,
    /// Set by `invalidate_exact`: covers entries tagged with exactly the path.
    Exact,
}

/// One invalidation marker: a scope and an encoded tag path, in a prefix.
///
/// ```
/// let m = t87s::adapter::MarkerKey { prefix: "t87s", path: "posts/1", scope: t87s::adapter::MarkerScope::Exact };
/// assert_eq!(m.path, "posts/1");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MarkerKey<'a> {
    /// The cache's prefix.
    pub prefix: &'a str,
    /// An encoded [`TagPath`] (see [`TagPath::as_str`]).
    pub path: &'a str,
    /// Prefix or exact.
    pub scope: MarkerScope,
}

/// The markers that decide whether an entry with the given tags is stale: for
/// each tag, the prefix marker of every one of its prefixes and its own exact
/// marker. Built by the engine; adapters iterate it.
///
/// ```
/// let tags = [t87s::engine::TagPath::new(["posts", "1"])?];
/// let markers = t87s::adapter::MarkerSet::new("t87s", &tags);
/// let paths: Vec<_> = markers.iter().map(|m| (m.path, m.scope)).collect();
/// assert_eq!(paths, [
///     ("posts", t87s::adapter::MarkerScope::Prefix),
///     ("posts/1", t87s::adapter::MarkerScope::Prefix),
///     ("posts/1", t87s::adapter::MarkerScope::Exact),
/// ]);
/// # Ok::<(), t87s::engine::TagError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MarkerSet<'a> {
    prefix: &'a str,
    tags: &'a [TagPath],
    /// Markers older than this are known not to make the reader stale (it
    /// checked them): a store may test only newer ones. `0`: test all.
    since: u64,
}

impl<'a> MarkerSet<'a> {
    /// The markers of `tags` under `prefix`.
    ///
    /// ```
    /// let tags = [t87s::engine::TagPath::new(["a", "b"])?];
    /// assert_eq!(t87s::adapter::MarkerSet::new("p", &tags).iter().count(), 3);
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn new(prefix: &'a str, tags: &'a [TagPath]) -> Self {
        Self {
            prefix,
            tags,
            since: 0,
        }
    }

    /// The same markers, for a reader that has checked every marker older
    /// than version `since` (an entry checked clean at that version, or
    /// fetched at it).
    pub(crate) fn since(self, since: u64) -> Self {
        Self { since, ..self }
    }

    /// See [`since`](Self::since).
    pub(crate) fn checked_before(&self) -> u64 {
        self.since
    }

    /// Whether the marker at `path` with `scope`, under `prefix`, is one of
    /// these, tested on the tags' text (no marker key is built or hashed):
    /// a prefix marker covers a tag it is an ancestor of (or equal to), an
    /// exact one a tag equal to it.
    pub(crate) fn contains(&self, prefix: &str, path: &str, scope: MarkerScope) -> bool {
        self.prefix == prefix
            && self.tags.iter().any(|tag| {
                let tag = tag.as_str();
                match scope {
                    MarkerScope::Exact => tag == path,
                    MarkerScope::Prefix => {
                        tag.starts_with(path)
                            && (tag.len() == path.len()
                                || tag.as_bytes().get(path.len()) == Some(&b'/'))
                    }
                }
            })
    }

    /// No markers at all.
    ///
    /// ```
    /// assert!(t87s::adapter::MarkerSet::empty().is_empty());
    /// ```
    pub fn empty() -> Self {
        Self {
            prefix: "",
            tags: &[],
            since: 0,
        }
    }

    /// Whether there are no markers to read.
    ///
    /// ```
    /// let tags = [t87s::engine::TagPath::new(["a"])?];
    /// assert!(!t87s::adapter::MarkerSet::new("p", &tags).is_empty());
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// How many marker keys [`iter`](Self::iter) yields: each tag's
    /// prefixes and the tag itself.
    ///
    /// ```
    /// let tags = [t87s::engine::TagPath::new(["posts", "1"])?];
    /// let markers = t87s::adapter::MarkerSet::new("p", &tags);
    /// assert_eq!(markers.len(), 3); // posts*, posts/1*, posts/1
    /// assert_eq!(markers.len(), markers.iter().count());
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.tags.iter().map(|tag| tag.depth() + 1).sum()
    }

    /// Every marker key, without allocating.
    ///
    /// ```
    /// let tags = [t87s::engine::TagPath::new(["a"])?];
    /// let scopes: Vec<_> = t87s::adapter::MarkerSet::new("p", &tags).iter().map(|m| m.scope).collect();
    /// assert_eq!(scopes, [t87s::adapter::MarkerScope::Prefix, t87s::adapter::MarkerScope::Exact]);
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = MarkerKey<'a>> + 'a {
        MarkerIter {
            prefix: self.prefix,
            tags: self.tags.iter(),
            tag: None,
        }
    }
}

/// The markers of a [`MarkerSet`], in order: each tag's prefixes, shortest
/// first, as prefix markers, then the tag's exact marker (one scan per tag,
/// no chain of iterators: a reader builds every marker key of its tags on
/// each read).
struct MarkerIter<'a> {
    prefix: &'a str,
    tags: std::slice::Iter<'a, TagPath>,
    /// The tag being walked and its prefixes not yet given (its exact
    /// marker comes after the last).
    tag: Option<(&'a str, Prefixes<'a>)>,
}

impl<'a> Iterator for MarkerIter<'a> {
    type Item = MarkerKey<'a>;

    #[inline]
    fn next(&mut self) -> Option<MarkerKey<'a>> {
        let (text, prefixes) = match &mut self.tag {
            Some(walking) => walking,
            None => {
                let text = self.tags.next()?.as_str();
                self.tag.insert((text, Prefixes::of(text)))
            }
        };
        let (path, scope) = match prefixes.next() {
            Some(path) => (path, MarkerScope::Prefix),
            None => {
                let text = *text;
                self.tag = None;
                (text, MarkerScope::Exact)
            }
        };
        Some(MarkerKey {
            prefix: self.prefix,
            path,
            scope,
        })
    }
}

/// What [`StorageAdapter::read`] found.
///
/// ```
/// let read = t87s::adapter::Read::new(None, 0, 1);
/// assert!(read.entry.is_none());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Read {
    /// The entry under the key, if any.
    pub entry: Option<Arc<StoredEntry>>,
    /// The newest version among the requested markers (and any store-wide
    /// marker, such as the one `clear` sets); `0` when none is set or when the
    /// markers were not read because the entry was missing or dead.
    pub newest_marker: u64,
    /// The store's current version: a fetch that starts after this read is
    /// stamped with it. When the entry is fresh by the markers read, an
    /// adapter may answer the entry's own version instead (never newer than
    /// the store's; the engine serves that entry with no fetch, and a fetch
    /// stamped with a lower version can only be judged stale early).
    pub version: u64,
    /// What the lease asked for by [`StorageAdapter::read_leasing`] came to;
    /// `None` when none was asked, or the entry did not
    /// [want a fetch](Self::wants_fetch).
    pub lease: Option<Lease>,
}

impl Read {
    /// What a read found: the entry, the newest of the requested markers
    /// (see the field docs), and the store's current version.
    ///
    /// ```
    /// let nothing_yet = t87s::adapter::Read::new(None, 0, 42);
    /// assert_eq!(nothing_yet.version, 42);
    /// ```
    #[inline]
    pub fn new(entry: Option<Arc<StoredEntry>>, newest_marker: u64, version: u64) -> Self {
        Self {
            entry,
            newest_marker,
            version,
            lease: None,
        }
    }

    /// The read, with the answer to its lease ask.
    ///
    /// ```
    /// use t87s::adapter::{Lease, Read};
    /// let read = Read::new(None, 0, 7).with_lease(Lease::Acquired);
    /// assert_eq!(read.lease, Some(Lease::Acquired));
    /// ```
    pub fn with_lease(mut self, lease: Lease) -> Self {
        self.lease = Some(lease);
        self
    }

    /// Whether the entry read wants a fetch at `now_ms`: there is none, it is
    /// past its TTL, or a marker is as new as its version. This is the rule
    /// [`StorageAdapter::read_leasing`] takes the lease by (an adapter that
    /// does it in the store, as a script, mirrors it); the engine decides the
    /// rest (grace, value types) after.
    ///
    /// ```
    /// use t87s::adapter::{Read, StoredEntry, StoredValue};
    /// let entry = StoredEntry::new(StoredValue::Bytes(vec![1].into()), [].into(), 5)
    ///     .lifetime(0, 1_000, None);
    /// let read = Read::new(Some(entry.into()), 4, 6);
    /// assert!(!read.wants_fetch(999));
    /// assert!(read.wants_fetch(1_000)); // past its TTL
    /// ```
    pub fn wants_fetch(&self, now_ms: u64) -> bool {
        !self
            .entry
            .as_ref()
            .is_some_and(|e| now_ms < e.expires_at && self.newest_marker < e.version)
    }
}

/// The lease a process asks for: its token (one per cache instance, so every
/// caller in the process shares the lease) and how long it lasts unless
/// [extended](StorageAdapter::extend_lease).
///
/// ```
/// let ask = t87s::adapter::LeaseAsk::new(42, 5_000);
/// assert_eq!((ask.token, ask.ttl_ms), (42, 5_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseAsk {
    /// Who holds the lease: the same for every caller of one cache instance.
    pub token: u64,
    /// How long the lease lasts if its holder goes away (at least 1).
    pub ttl_ms: u64,
}

impl LeaseAsk {
    /// A lease for `token`, lasting `ttl_ms` unless extended.
    ///
    /// ```
    /// let ask = t87s::adapter::LeaseAsk::new(7, 3_000);
    /// assert_eq!(ask.ttl_ms, 3_000);
    /// ```
    pub fn new(token: u64, ttl_ms: u64) -> Self {
        Self {
            token,
            ttl_ms: ttl_ms.max(1),
        }
    }
}

/// A storage backend for the engine.
///
/// # Contract
///
/// - **Versions.** [`read`](Self::read) and [`version`](Self::version) return
///   the store's current version `v`; [`invalidate`](Self::invalidate) stamps
///   each marker with a version `m` such that every version returned before it
///   began is `<= m` and every version returned after it returned is `> m`.
///   The engine treats an entry as stale when a marker is `>=` its version, so
///   an invalidation is never lost to a fetch in flight, and no host's clock
///   takes part.
/// - **Dead entries.** `read` may skip reading markers when the entry is
///   missing or its [`live_until`](StoredEntry::live_until) is `<= now_ms`.
/// - **No policy.** Adapters never decide freshness, never retry, never log
///   values.
///
/// The trait is object safe (futures are boxed) so the cache can hold any
/// adapter behind one type. [`try_read_now`](Self::try_read_now) lets an
/// in-process adapter answer a read with no future at all, which keeps the
/// memory hit path free of allocation.
///
/// ```
/// use t87s::adapter::{EntryKey, MarkerSet, StorageAdapter};
/// # tokio_test_block_on(async {
/// let adapter = t87s::MemoryAdapter::new();
/// let read = adapter.read(EntryKey { prefix: "t87s", key: "k" }, MarkerSet::empty(), 0).await?;
/// assert!(read.entry.is_none());
/// # Ok::<(), t87s::AdapterError>(())
/// # });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
pub trait StorageAdapter: Send + Sync + fmt::Debug + 'static {
    /// How this adapter keeps values.
    fn value_form(&self) -> ValueForm;

    /// Reads the entry at `key` and the newest of `markers` (see the contract
    /// on dead entries), and the current version.
    fn read<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
    ) -> AdapterFuture<'a, Read>;

    /// Like [`read`](Self::read), answered at once when the adapter can do so
    /// without I/O. The default answers `None` (go through `read`).
    fn try_read_now(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
    ) -> Option<Result<Read, AdapterError>> {
        let _ = (key, markers, now_ms);
        None
    }

    /// Like [`read`](Self::read), and when the entry
    /// [wants a fetch](Read::wants_fetch), takes the lease on fetching `key`
    /// too ([`lease`](Self::lease)), reporting it in [`Read::lease`].
    ///
    /// A shared store should do both in one round trip and atomically, so a
    /// process that reads a miss and takes the lease knows no other process
    /// stored the value in between. The default reads, then leases.
    fn read_leasing<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
        ask: LeaseAsk,
    ) -> AdapterFuture<'a, Read> {
        Box::pin(async move {
            let read = self.read(key, markers, now_ms).await?;
            if !read.wants_fetch(now_ms) {
                return Ok(read);
            }
            let lease = self.lease(key, ask).await?;
            Ok(read.with_lease(lease))
        })
    }

    /// The newest version among `markers` (and any store-wide marker).
    fn newest_marker<'a>(&'a self, markers: MarkerSet<'a>) -> AdapterFuture<'a, u64>;

    /// The store's current version (see the contract).
    fn version(&self) -> AdapterFuture<'_, u64>;

    /// Stores `entry` at `key`, replacing what was there. The adapter may drop
    /// it once [`live_until`](StoredEntry::live_until) has passed.
    fn write<'a>(&'a self, key: EntryKey<'a>, entry: Arc<StoredEntry>) -> AdapterFuture<'a, ()>;

    /// Removes the entry at `key`.
    fn delete<'a>(&'a self, key: EntryKey<'a>) -> AdapterFuture<'a, ()>;

    /// Stamps each marker with a new version (see the contract), keeping it at
    /// least as long as the longest entry lifetime the adapter has stored.
    fn invalidate<'a>(&'a self, markers: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()>;

    /// Removes every entry and marker, and makes every entry written by a fetch
    /// that started before the call stale.
    fn clear(&self) -> AdapterFuture<'_, ()>;

    /// Releases connections. The adapter may refuse work afterwards.
    fn disconnect(&self) -> AdapterFuture<'_, ()>;

    /// Takes the cross-process lease on fetching `key` for `ask.ttl_ms` (it
    /// frees itself if the holder dies): [`Lease::Acquired`] when it was free
    /// or already held under `ask.token`, [`Lease::Held`] when another token
    /// holds it. The default answers [`Lease::Unsupported`]: in-process
    /// coalescing is enough for stores that one process owns.
    fn lease<'a>(&'a self, key: EntryKey<'a>, ask: LeaseAsk) -> AdapterFuture<'a, Lease> {
        let _ = (key, ask);
        Box::pin(std::future::ready(Ok(Lease::Unsupported)))
    }

    /// Extends a lease held under `ask.token` to `ask.ttl_ms` from now (the
    /// engine does so while the fetch runs, so others wait exactly as long as
    /// the holder lives); does nothing if the token no longer holds it.
    fn extend_lease<'a>(&'a self, key: EntryKey<'a>, ask: LeaseAsk) -> AdapterFuture<'a, ()> {
        let _ = (key, ask);
        Box::pin(std::future::ready(Ok(())))
    }

    /// Releases a lease held under `token` (only if it still holds it).
    fn release<'a>(&'a self, key: EntryKey<'a>, token: u64) -> AdapterFuture<'a, ()> {
        let _ = (key, token);
        Box::pin(std::future::ready(Ok(())))
    }

    /// [`write`](Self::write), then [`release`](Self::release) of the lease
    /// held under `token`, if any. A shared store should do both in one
    /// round trip; the entry must be in place before the lease goes, so a
    /// process waiting on the lease finds the value. The default writes,
    /// then releases.
    fn write_releasing<'a>(
        &'a self,
        key: EntryKey<'a>,
        entry: Arc<StoredEntry>,
        token: Option<u64>,
    ) -> AdapterFuture<'a, ()> {
        Box::pin(async move {
            self.write(key, entry).await?;
            match token {
                Some(token) => self.release(key, token).await,
                None => Ok(()),
            }
        })
    }

    /// Whether this store keeps a near copy of entries as in-process objects
    /// (see [`keep_object`](Self::keep_object)). Off by default; when off,
    /// the engine never builds the objects.
    fn keeps_objects(&self) -> bool {
        false
    }

    /// A byte store with a near copy (the Redis adapter with a near cache)
    /// receives each entry it wrote or served as the engine holds it in
    /// process: the value as an object
    /// ([`StoredValue::Object`](crate::adapter::StoredValue::Object)), with the
    /// version, tags and lifetime of the stored entry. It may keep it to
    /// answer [`try_read_now`](Self::try_read_now) with no I/O and no
    /// decoding. Called only when [`keeps_objects`](Self::keeps_objects) is
    /// true; the default drops it.
    fn keep_object(&self, key: EntryKey<'_>, entry: &Arc<StoredEntry>) {
        let _ = (key, entry);
    }

    /// Whether [`report_verification`](Self::report_verification) does
    /// anything; when neither the adapter nor the observer wants reports, the
    /// engine runs no verifications.
    fn accepts_verification(&self) -> bool {
        false
    }

    /// Receives the outcome of a sampled verification. The default drops it.
    fn report_verification<'a>(&'a self, report: &'a VerificationReport) -> AdapterFuture<'a, ()> {
        let _ = report;
        Box::pin(std::future::ready(Ok(())))
    }
}

/// The answer to [`StorageAdapter::lease`]: whether this process may fetch a
/// key that every process sharing the store is missing.
///
/// ```
/// use t87s::adapter::{EntryKey, Lease, LeaseAsk, StorageAdapter};
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let key = EntryKey { prefix: "t87s", key: "k" };
/// let lease = t87s::MemoryAdapter::new().lease(key, LeaseAsk::new(1, 100)).await?;
/// assert_eq!(lease, Lease::Unsupported); // one process owns a memory store
/// # Ok::<(), t87s::AdapterError>(())
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lease {
    /// This process holds the lease (under its token).
    Acquired,
    /// Another process holds it and is fetching: wait for its value.
    Held,
    /// The store is not shared between processes: no lease is needed.
    Unsupported,
}

/// The outcome of a verification: the fetch re-run on a fresh hit, compared
/// with the cached value.
///
/// An adapter that wants reports reads them in
/// [`StorageAdapter::report_verification`]:
///
/// ```
/// fn record(report: &t87s::adapter::VerificationReport) {
///     if report.stale {
///         eprintln!("{} was stale: an invalidation is missing", report.key);
///     }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerificationReport {
    /// The query key.
    pub key: String,
    /// Whether the cached value differed from what the fetch returns now.
    pub stale: bool,
}

impl<A: StorageAdapter + ?Sized> StorageAdapter for Arc<A> {
    fn value_form(&self) -> ValueForm {
        (**self).value_form()
    }
    fn read<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
    ) -> AdapterFuture<'a, Read> {
        (**self).read(key, markers, now_ms)
    }
    fn try_read_now(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
    ) -> Option<Result<Read, AdapterError>> {
        (**self).try_read_now(key, markers, now_ms)
    }
    fn read_leasing<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
        ask: LeaseAsk,
    ) -> AdapterFuture<'a, Read> {
        (**self).read_leasing(key, markers, now_ms, ask)
    }
    fn newest_marker<'a>(&'a self, markers: MarkerSet<'a>) -> AdapterFuture<'a, u64> {
        (**self).newest_marker(markers)
    }
    fn version(&self) -> AdapterFuture<'_, u64> {
        (**self).version()
    }
    fn write<'a>(&'a self, key: EntryKey<'a>, entry: Arc<StoredEntry>) -> AdapterFuture<'a, ()> {
        (**self).write(key, entry)
    }
    fn delete<'a>(&'a self, key: EntryKey<'a>) -> AdapterFuture<'a, ()> {
        (**self).delete(key)
    }
    fn invalidate<'a>(&'a self, markers: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()> {
        (**self).invalidate(markers)
    }
    fn clear(&self) -> AdapterFuture<'_, ()> {
        (**self).clear()
    }
    fn disconnect(&self) -> AdapterFuture<'_, ()> {
        (**self).disconnect()
    }
    fn lease<'a>(&'a self, key: EntryKey<'a>, ask: LeaseAsk) -> AdapterFuture<'a, Lease> {
        (**self).lease(key, ask)
    }
    fn extend_lease<'a>(&'a self, key: EntryKey<'a>, ask: LeaseAsk) -> AdapterFuture<'a, ()> {
        (**self).extend_lease(key, ask)
    }
    fn release<'a>(&'a self, key: EntryKey<'a>, token: u64) -> AdapterFuture<'a, ()> {
        (**self).release(key, token)
    }
    fn write_releasing<'a>(
        &'a self,
        key: EntryKey<'a>,
        entry: Arc<StoredEntry>,
        token: Option<u64>,
    ) -> AdapterFuture<'a, ()> {
        (**self).write_releasing(key, entry, token)
    }
    fn keeps_objects(&self) -> bool {
        (**self).keeps_objects()
    }
    fn keep_object(&self, key: EntryKey<'_>, entry: &Arc<StoredEntry>) {
        (**self).keep_object(key, entry)
    }
    fn accepts_verification(&self) -> bool {
        (**self).accepts_verification()
    }
    fn report_verification<'a>(&'a self, report: &'a VerificationReport) -> AdapterFuture<'a, ()> {
        (**self).report_verification(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_set_walks_every_prefix_then_the_exact_marker_of_each_tag() {
        let tags = [
            TagPath::new(["posts", "1", "comments"]).unwrap(),
            TagPath::new(["a/b", ""]).unwrap(),
            TagPath::new(["x"]).unwrap(),
        ];
        let set = MarkerSet::new("p", &tags);
        let got: Vec<(String, MarkerScope)> = set
            .iter()
            .map(|m| {
                assert_eq!(m.prefix, "p");
                (m.path.to_owned(), m.scope)
            })
            .collect();
        // The reference: each tag's prefixes (`TagPath::prefixes`), then itself.
        let want: Vec<(String, MarkerScope)> = tags
            .iter()
            .flat_map(|tag| {
                let prefixes = tag.prefixes().map(|p| (p.to_owned(), MarkerScope::Prefix));
                prefixes.chain([(tag.as_str().to_owned(), MarkerScope::Exact)])
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(got.len(), set.len());
        assert_eq!(got.len(), 4 + 3 + 2);
        assert_eq!(MarkerSet::new("p", &[]).iter().count(), 0);
    }
}
