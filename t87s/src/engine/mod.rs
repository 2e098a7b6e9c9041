//! The engine: `query` and the raw operations, over any [`StorageAdapter`].
//!
//! It knows nothing of macros or schemas: keys are strings, tags are
//! [`TagPath`]s. Freshness policy lives here; storage lives in the adapter.

mod call;
mod flight;
mod options;

use std::any::type_name;
use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use options::{OnRefresh, QueryOptions, SetOptions};

pub(crate) use self::call::Call;
use self::flight::{Flights, Outcome, Role};
use crate::clock::{millis, Clock, SystemClock};
use crate::codec::{Codec, CodecError, Postcard};
use crate::duration::IntoDuration;
use crate::entry::{value_type_of, CacheEntry, CheckedAt, Entries, StoredEntry, StoredValue};
use crate::error::{AdapterError, ConfigError, Error};
use crate::observer::{Event, EventKind, NoObserver, Observer};
use crate::storage::{
    EntryKey, Lease, MarkerKey, MarkerScope, MarkerSet, Read, StorageAdapter, ValueForm,
    VerificationReport,
};
use crate::tag::TagPath;

/// How many times a caller re-checks the cache after its leader went away or
/// produced a value it cannot accept, before fetching on its own.
const MAX_ATTEMPTS: usize = 8;
/// Past this many keys in back-off, expired back-offs are swept.
const BACKOFF_SWEEP_AT: usize = 4_096;

/// A value the cache can hold.
///
/// Implemented for every type that is `Serialize + DeserializeOwned + Clone +
/// PartialEq + Send + Sync + 'static`. `PartialEq` is how a refresh or a
/// verification tells whether the value changed: equal values never read as
/// changed, whatever order a map's keys serialize in.
///
/// ```
/// #[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// struct Post { id: u64, title: String }
/// fn assert_cacheable<T: t87s::Cacheable>() {}
/// assert_cacheable::<Post>();
/// assert_cacheable::<Vec<Post>>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be stored in the cache",
    label = "not cacheable",
    note = "a cached value must be `Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static`; derive the missing traits on `{Self}`"
)]
pub trait Cacheable:
    Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static
{
}

impl<T> Cacheable for T where
    T: Serialize + DeserializeOwned + Clone + PartialEq + Send + Sync + 'static
{
}

/// The cache engine: stampede-protected tagged queries plus raw escape hatches.
///
/// Cheap to clone (clones share everything). Needs a tokio runtime for
/// background refreshes and verifications; without one they are skipped.
///
/// # Freshness
///
/// A `query` finds one of:
/// - a **fresh** entry (within its TTL, no invalidation of its tags since its
///   fetch started): returned at once;
/// - a **stale** entry within grace, not invalidated: returned at once, and
///   one background refresh runs for the key (then `on_refresh` is called);
/// - an **invalidated** entry, a dead one, or none: the fetch runs in the
///   foreground. If it fails and the old entry is inside its grace, the old
///   value is served instead (fail-safe) and the observer is told.
///
/// Errors are returned to the caller and never cached.
///
/// # Concurrency
///
/// Concurrent callers of one key run the fetch once: the first leads, the
/// others wait for its result. If the leader's future is dropped or its fetch
/// panics, the waiters wake and one of them leads instead; no key is ever
/// left blocked. If the leader's fetch fails, each waiter runs its own fetch
/// once (so each gets its own error; errors are not `Clone`).
///
/// # Example
///
/// ```
/// use t87s::{MemoryAdapter, Primitives, QueryOptions, TagPath};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cache = Primitives::new(MemoryAdapter::new());
/// let tags = [TagPath::new(["users", "1"])?];
/// let user: String = cache
///     .query("user:1", &tags, QueryOptions::new(), || async { Ok::<_, std::io::Error>("ada".to_string()) })
///     .await?;
/// assert_eq!(user, "ada");
/// cache.invalidate(&tags).await?;
/// # Ok(()) }
/// ```
pub struct Primitives<C: Codec = Postcard> {
    inner: Arc<Inner<C>>,
}

impl<C: Codec> Clone for Primitives<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<C> {
    settings: Settings<C>,
    /// Whether anyone listens to verifications; if not, none run.
    verify: bool,
    flights: Flights,
    verifying: Mutex<HashSet<Box<str>>>,
    backoff: Mutex<HashMap<Box<str>, u64>>,
}

/// What a query served, with the entries behind it.
pub(crate) struct Served<T> {
    pub(crate) value: T,
    before: Option<Arc<StoredEntry>>,
    after: Arc<StoredEntry>,
}

impl<T> Served<T> {
    /// Served from an entry as it was: before and after are the same.
    fn hit(value: T, stored: Arc<StoredEntry>) -> Self {
        Self {
            value,
            before: Some(Arc::clone(&stored)),
            after: stored,
        }
    }
}

/// The newest marker of a read that applies to its entry: the markers read
/// were the query's, so they apply only if the entry carries the same tags.
fn applicable(read: &Read, tags: &[TagPath]) -> Option<u64> {
    match &read.entry {
        Some(entry) if *entry.tags != *tags => None,
        _ => Some(read.newest_marker),
    }
}

/// What a read found, once freshness is decided.
enum Found<T> {
    Fresh(Arc<StoredEntry>, T),
    Graced(Arc<StoredEntry>, T),
    /// Nothing servable without a fetch; the entry, if any, is the fail-safe
    /// candidate (invalidated, possibly still inside grace).
    Stale(Option<Arc<StoredEntry>>),
}

/// How waiting on another process's lease ended.
enum Waited<T> {
    /// It stored a fresh value.
    Served(Served<T>),
    /// Fetch here, under this lease.
    Lease(Lease),
}

/// A fetch error as the observer sees it (the caller's `E` is only `Display`).
#[derive(Debug)]
struct FetchFailure(String);

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for FetchFailure {}

/// Lifetimes of one write, resolved from the options and the defaults.
#[derive(Clone, Copy)]
struct Lifetimes {
    ttl_ms: u64,
    grace_ms: Option<u64>,
}

impl Primitives<Postcard> {
    /// An engine over `adapter` with the defaults: prefix `t87s`, ttl 30s, no
    /// grace, `verify_percent` 0.1, the system clock, no observer.
    ///
    /// ```
    /// let cache = t87s::Primitives::new(t87s::MemoryAdapter::new());
    /// assert_eq!(cache.prefix(), "t87s");
    /// ```
    pub fn new(adapter: impl StorageAdapter) -> Self {
        Self::from_builder(PrimitivesBuilder::new(adapter).resolved())
    }

    /// Options: prefix, default ttl and grace, verification, clock, observer, codec.
    ///
    /// ```
    /// let cache = t87s::Primitives::builder(t87s::MemoryAdapter::new())
    ///     .prefix("blog")
    ///     .default_ttl("1m")
    ///     .default_grace("1h")
    ///     .build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn builder(adapter: impl StorageAdapter) -> PrimitivesBuilder<Postcard> {
        PrimitivesBuilder::new(adapter)
    }
}

impl<C: Codec> Primitives<C> {
    fn from_builder(b: Settings<C>) -> Self {
        let verify = b.verify_percent > 0.0
            && (b.adapter.accepts_verification() || b.observer.wants_verification());
        Self {
            inner: Arc::new(Inner {
                settings: b,
                verify,
                flights: Flights::default(),
                verifying: Mutex::new(HashSet::new()),
                backoff: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The prefix every key and marker of this cache lives under.
    ///
    /// ```
    /// let cache = t87s::Primitives::builder(t87s::MemoryAdapter::new()).prefix("app").build()?;
    /// assert_eq!(cache.prefix(), "app");
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.inner.settings.prefix
    }

    /// How many fetches are under way: foreground leaders, background
    /// refreshes and verifications. Zero whenever no query is running: no
    /// flight outlives its callers, even when they are cancelled or panic.
    ///
    /// ```
    /// assert_eq!(t87s::Primitives::new(t87s::MemoryAdapter::new()).in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.flights.len() + self.inner.verifying.lock().len()
    }

    /// Runs a cached query: returns the cached value for `key` if it is fresh,
    /// otherwise runs `fetch` (once, however many callers) and caches its
    /// value under `tags`. See the type docs for the freshness rules.
    ///
    /// The fetch is `'static` because it may run in the background (a
    /// stale-while-revalidate refresh or a verification) after this call
    /// has returned. A store that fails makes the query run `fetch` (fail-open);
    /// the fault goes to the observer.
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, Primitives, QueryOptions, TagPath};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Primitives::new(MemoryAdapter::new());
    /// let tags = [TagPath::new(["posts", "1"])?];
    /// let options = QueryOptions::new().ttl(std::time::Duration::from_secs(60));
    /// let title = cache
    ///     .query("post:1", &tags, options, || async { Ok::<_, std::io::Error>("Hello".to_string()) })
    ///     .await?;
    /// # assert_eq!(title, "Hello");
    /// # Ok(()) }
    /// ```
    pub async fn query<T, E, F, Fut>(
        &self,
        key: &str,
        tags: &[TagPath],
        options: QueryOptions<T>,
        fetch: F,
    ) -> Result<T, E>
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if let Some(value) = self.hit_now(key) {
            return Ok(value);
        }
        let call = Call::new((), |_: &()| tags, move |_| fetch);
        // Boxed: the full path's future is large, and the hit path above
        // should not pay for moving it around.
        Box::pin(self.run(key, call, options))
            .await
            .map(|s| s.value)
    }

    /// The hit path without the query machinery: a store that answers at
    /// once holds a fresh entry, and no marker of its tags is as new as its
    /// fetch (not even read when nothing was invalidated since). `None` sends
    /// the caller down the full path (which also covers sampled verification,
    /// grace and every slower case).
    pub(crate) fn hit_now<T: Cacheable>(&self, key: &str) -> Option<T> {
        let settings = &self.inner.settings;
        if self.inner.verify {
            return None;
        }
        let now = settings.clock.now_ms();
        let read = settings
            .adapter
            .try_read_now(self.key(key), MarkerSet::empty(), now)?
            .ok()?;
        let entry = read.entry.as_ref()?;
        if now >= entry.expires_at {
            return None;
        }
        if entry.version < read.version && entry.checked_at.get() < read.version {
            // Something was invalidated since the entry's fetch began, or
            // since it was last checked: read the markers of its own tags
            // (still without I/O), and remember the check.
            let markers = MarkerSet::new(&settings.prefix, &entry.tags);
            let again = settings
                .adapter
                .try_read_now(self.key(key), markers, now)?
                .ok()?;
            let same = again.entry.as_ref().is_some_and(|e| Arc::ptr_eq(e, entry));
            if !same || again.newest_marker >= entry.version {
                return None;
            }
            entry.checked_at.raise(again.version);
        }
        let value = self.value_of::<T>(entry).ok()?;
        self.emit(EventKind::Hit, key, None);
        Some(value)
    }

    /// Like [`query`](Self::query), returning the entry before and after (see [`Entries`]).
    ///
    /// ```
    /// # use t87s::{MemoryAdapter, Primitives, QueryOptions, TagPath};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Primitives::new(MemoryAdapter::new());
    /// let tags = [TagPath::new(["n"])?];
    /// let first = cache.query_with_entries("n", &tags, QueryOptions::new(), || async { Ok::<_, std::io::Error>(1) }).await?;
    /// assert!(first.before.is_none());
    /// let second = cache.query_with_entries("n", &tags, QueryOptions::new(), || async { Ok::<_, std::io::Error>(2) }).await?;
    /// assert_eq!(second.before.as_ref().map(|e| e.value), Some(1));
    /// assert_eq!(second.after.value, 1);
    /// # Ok(()) }
    /// ```
    pub async fn query_with_entries<T, E, F, Fut>(
        &self,
        key: &str,
        tags: &[TagPath],
        options: QueryOptions<T>,
        fetch: F,
    ) -> Result<Entries<T>, E>
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let call = Call::new((), |_: &()| tags, move |_| fetch);
        let served = self.run(key, call, options).await?;
        Ok(self.entries_of(served))
    }

    pub(crate) fn entries_of<T: Cacheable>(&self, served: Served<T>) -> Entries<T> {
        let before = served.before.as_deref().and_then(|stored| {
            let value = self.value_of::<T>(stored).ok()?;
            Some(entry_of(stored, value))
        });
        Entries {
            before,
            after: entry_of(&served.after, served.value),
        }
    }

    /// Reads `key` without fetching: the value if it is fresh or within grace
    /// and not invalidated, else `None`. An entry of another type, or bytes
    /// that do not decode, read as `None`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache = t87s::Primitives::new(t87s::MemoryAdapter::new());
    /// assert_eq!(cache.get::<String>("nothing").await?, None);
    /// # Ok(()) }
    /// ```
    pub async fn get<T: Cacheable>(&self, key: &str) -> Result<Option<T>, Error> {
        let now = self.inner.settings.clock.now_ms();
        let read = self.read(self.key(key), MarkerSet::empty(), now).await?;
        let Some(stored) = read.entry.filter(|e| e.live_until() > now) else {
            return Ok(None);
        };
        let newest = self
            .inner
            .settings
            .adapter
            .newest_marker(MarkerSet::new(&self.inner.settings.prefix, &stored.tags))
            .await?;
        if newest >= stored.version {
            return Ok(None);
        }
        match self.value_of::<T>(&stored) {
            Ok(value) => Ok(Some(value)),
            Err(error) => {
                self.emit(EventKind::Undecodable, key, Some(&error));
                Ok(None)
            }
        }
    }

    /// Stores `value` at `key` under the options' tags, as if a fetch had
    /// just produced it.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache = t87s::Primitives::new(t87s::MemoryAdapter::new());
    /// let tag = t87s::TagPath::new(["config"])?;
    /// cache.set("config", &"dark".to_string(), t87s::SetOptions::new([tag])).await?;
    /// assert_eq!(cache.get::<String>("config").await?, Some("dark".into()));
    /// # Ok(()) }
    /// ```
    pub async fn set<T: Cacheable>(
        &self,
        key: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<(), Error> {
        let version = self.inner.settings.adapter.version().await?;
        let lifetimes = self.lifetimes(options.ttl, options.grace);
        let now = self.inner.settings.clock.now_ms();
        let object = self.object_entry(
            Arc::new(value.clone()),
            options.tags,
            lifetimes,
            version,
            now,
        );
        let stored = self.stored_form(&object, value)?;
        self.inner
            .settings
            .adapter
            .write(self.key(key), stored)
            .await?;
        Ok(())
    }

    /// Removes `key`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache = t87s::Primitives::new(t87s::MemoryAdapter::new());
    /// cache.delete("gone").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        self.inner.settings.adapter.delete(self.key(key)).await?;
        Ok(())
    }

    /// Makes stale every entry tagged with one of `tags` or with a path below
    /// one of them. When it returns, no query anywhere that shares the store
    /// serves a value fetched before the call. O(1) in the number of entries.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache = t87s::Primitives::new(t87s::MemoryAdapter::new());
    /// cache.invalidate(&[t87s::TagPath::new(["posts"])?]).await?; // every post
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, tags: &[TagPath]) -> Result<(), Error> {
        self.mark(tags, MarkerScope::Prefix).await
    }

    /// Makes stale only the entries tagged with exactly one of `tags`; entries
    /// tagged below them stay fresh.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// let cache = t87s::Primitives::new(t87s::MemoryAdapter::new());
    /// cache.invalidate_exact(&[t87s::TagPath::new(["posts"])?]).await?; // the post list only
    /// # Ok(()) }
    /// ```
    pub async fn invalidate_exact(&self, tags: &[TagPath]) -> Result<(), Error> {
        self.mark(tags, MarkerScope::Exact).await
    }

    /// Removes every entry and marker from the store; values fetched before
    /// the call are never served afterwards.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// t87s::Primitives::new(t87s::MemoryAdapter::new()).clear().await?;
    /// # Ok(()) }
    /// ```
    pub async fn clear(&self) -> Result<(), Error> {
        self.inner.settings.adapter.clear().await?;
        Ok(())
    }

    /// Releases the adapter's connections.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), t87s::Error> {
    /// t87s::Primitives::new(t87s::MemoryAdapter::new()).disconnect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn disconnect(&self) -> Result<(), Error> {
        self.inner.settings.adapter.disconnect().await?;
        Ok(())
    }

    async fn mark(&self, tags: &[TagPath], scope: MarkerScope) -> Result<(), Error> {
        if tags.is_empty() {
            return Ok(());
        }
        let markers: Vec<MarkerKey<'_>> = tags
            .iter()
            .map(|tag| MarkerKey {
                prefix: &self.inner.settings.prefix,
                path: tag.as_str(),
                scope,
            })
            .collect();
        self.inner.settings.adapter.invalidate(&markers).await?;
        Ok(())
    }

    fn key<'a>(&'a self, key: &'a str) -> EntryKey<'a> {
        EntryKey {
            prefix: &self.inner.settings.prefix,
            key,
        }
    }

    async fn read(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
    ) -> Result<Read, AdapterError> {
        match self
            .inner
            .settings
            .adapter
            .try_read_now(key, markers, now_ms)
        {
            Some(read) => read,
            None => self.inner.settings.adapter.read(key, markers, now_ms).await,
        }
    }

    /// The engine's whole decision procedure for one query. The call builds
    /// its tags and its fetch only when they are needed, so a hit pays for
    /// neither.
    pub(crate) async fn run<T, E, S, TG, TT, M, F, Fut>(
        &self,
        key: &str,
        mut call: Call<S, TG, TT, M>,
        options: QueryOptions<T>,
    ) -> Result<Served<T>, E>
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        TG: Fn(&S) -> TT,
        TT: AsRef<[TagPath]>,
        M: FnOnce(S) -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let mut before = None;
        let mut version = None;
        for _ in 0..MAX_ATTEMPTS {
            let now = self.inner.settings.clock.now_ms();
            let (read, newest) = match self.look(key, &mut call, now).await {
                Ok(look) => look,
                Err(error) => {
                    // Fail-open: answer from the source, store nothing.
                    self.emit(EventKind::AdapterError, key, Some(&error));
                    let (tags, fetch) = call.split();
                    return self
                        .fetch_alone(key, tags.as_ref(), &options, before, None, fetch)
                        .await;
                }
            };
            version = Some(read.version);
            match self.inspect::<T>(key, read.entry, newest, now).await {
                Found::Fresh(stored, value) => {
                    self.emit(EventKind::Hit, key, None);
                    if self.inner.verify {
                        self.maybe_verify(key, &value, call);
                    }
                    return Ok(Served::hit(value, stored));
                }
                Found::Graced(stored, value) => {
                    self.emit(EventKind::StaleServed, key, None);
                    self.maybe_refresh(key, &options, read.version, &value, call, now);
                    return Ok(Served::hit(value, stored));
                }
                Found::Stale(stale) => before = stale,
            }

            match self.inner.flights.join_or_lead(key) {
                Role::Leader(guard) => {
                    let (tags, fetch) = call.split();
                    return self.lead(guard, key, tags.as_ref(), &options, fetch).await;
                }
                Role::Follower(rx) => match flight::follow(rx).await {
                    Some(Outcome::Fresh(stored)) => {
                        if let Some(value) = self.accept::<T>(key, &stored).await {
                            self.emit(EventKind::Coalesced, key, None);
                            return Ok(Served {
                                value,
                                before,
                                after: stored,
                            });
                        }
                    }
                    Some(Outcome::FailSafe(stored)) => {
                        let now = self.inner.settings.clock.now_ms();
                        if stored.live_until() > now {
                            if let Ok(value) = self.value_of::<T>(&stored) {
                                self.emit(EventKind::FailSafe, key, None);
                                return Ok(Served::hit(value, stored));
                            }
                        }
                    }
                    Some(Outcome::Failed) => {
                        let (tags, fetch) = call.split();
                        return self
                            .fetch_alone(key, tags.as_ref(), &options, before, version, fetch)
                            .await;
                    }
                    // The leader was cancelled or panicked: look again.
                    None => {}
                },
            }
        }
        let (tags, fetch) = call.split();
        self.fetch_alone(key, tags.as_ref(), &options, before, version, fetch)
            .await
    }

    /// One look at the store: the read, and the newest marker that applies
    /// to the entry it found (`None`: unknown, so read the entry's own).
    ///
    /// A store that answers at once is asked for the entry first; if nothing
    /// was invalidated since the entry's fetch began (its version is the
    /// store's current one), no marker can be newer and none is read, nor are
    /// the query's tags built. Otherwise the entry's own markers are read.
    async fn look<S, TG, TT, M, F>(
        &self,
        key: &str,
        call: &mut Call<S, TG, TT, M>,
        now: u64,
    ) -> Result<(Read, Option<u64>), AdapterError>
    where
        TG: Fn(&S) -> TT,
        TT: AsRef<[TagPath]>,
        M: FnOnce(S) -> F,
    {
        let adapter = &self.inner.settings.adapter;
        let entry_key = self.key(key);
        if let Some(first) = adapter.try_read_now(entry_key, MarkerSet::empty(), now) {
            let first = first?;
            let invalidated_since = first
                .entry
                .as_ref()
                .is_some_and(|e| e.version < first.version);
            let Some(entry) = first.entry.as_ref().filter(|_| invalidated_since).cloned() else {
                let newest = first.newest_marker;
                return Ok((first, Some(newest)));
            };
            let markers = MarkerSet::new(&self.inner.settings.prefix, &entry.tags);
            if let Some(second) = adapter.try_read_now(entry_key, markers, now) {
                let second = second?;
                let same = second
                    .entry
                    .as_ref()
                    .is_some_and(|e| Arc::ptr_eq(e, &entry));
                let newest = same.then_some(second.newest_marker);
                return Ok((second, newest));
            }
            return Ok((first, None));
        }
        let tags = call.tags();
        let markers = MarkerSet::new(&self.inner.settings.prefix, tags);
        let read = adapter.read(entry_key, markers, now).await?;
        let newest = applicable(&read, tags);
        Ok((read, newest))
    }

    /// Decides what a read found. `newest` is the newest marker that applies
    /// to the entry, if known; if not, the entry's own markers are read.
    async fn inspect<T: Cacheable>(
        &self,
        key: &str,
        entry: Option<Arc<StoredEntry>>,
        newest: Option<u64>,
        now: u64,
    ) -> Found<T> {
        let Some(stored) = entry.filter(|e| e.live_until() > now) else {
            return Found::Stale(None);
        };
        let newest = if let Some(newest) = newest {
            newest
        } else {
            let markers = MarkerSet::new(&self.inner.settings.prefix, &stored.tags);
            match self.inner.settings.adapter.newest_marker(markers).await {
                Ok(newest) => newest,
                Err(error) => {
                    self.emit(EventKind::AdapterError, key, Some(&error));
                    u64::MAX
                }
            }
        };
        if newest >= stored.version {
            return Found::Stale(Some(stored));
        }
        let value = match self.value_of::<T>(&stored) {
            Ok(value) => value,
            Err(error) => {
                self.emit(EventKind::Undecodable, key, Some(&error));
                return Found::Stale(None);
            }
        };
        if now < stored.expires_at {
            Found::Fresh(stored, value)
        } else {
            Found::Graced(stored, value)
        }
    }

    /// Leads the flight for `key`: looks once more (another leader may just
    /// have stored a value), then fetches and publishes the outcome.
    async fn lead<T, E, F, Fut>(
        &self,
        guard: flight::FlightGuard,
        key: &str,
        tags: &[TagPath],
        options: &QueryOptions<T>,
        fetch: F,
    ) -> Result<Served<T>, E>
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // The cross-process lease first, then one more look: a value stored
        // by the lease's previous holder (in this process or another) is
        // seen, never fetched again.
        let mut lease = self.lease(key).await;
        if lease == Lease::Held {
            match self.await_other_process::<T>(key, tags).await {
                Waited::Served(served) => {
                    guard.publish(Outcome::Fresh(Arc::clone(&served.after)));
                    return Ok(served);
                }
                Waited::Lease(next) => lease = next,
            }
        }
        let now = self.inner.settings.clock.now_ms();
        let markers = MarkerSet::new(&self.inner.settings.prefix, tags);
        let read = match self.read(self.key(key), markers, now).await {
            Ok(read) => read,
            Err(error) => {
                self.emit(EventKind::AdapterError, key, Some(&error));
                self.release(key, lease).await;
                drop(guard);
                return self
                    .fetch_alone(key, tags, options, None, None, fetch)
                    .await;
            }
        };
        let newest = applicable(&read, tags);
        let before = match self.inspect::<T>(key, read.entry, newest, now).await {
            Found::Fresh(stored, value) => {
                self.release(key, lease).await;
                guard.publish(Outcome::Fresh(Arc::clone(&stored)));
                self.emit(EventKind::Hit, key, None);
                return Ok(Served::hit(value, stored));
            }
            Found::Graced(stored, _) => Some(stored),
            Found::Stale(stale) => stale,
        };
        let version = read.version;
        self.emit(EventKind::Miss, key, None);
        let started = self.inner.settings.clock.now_ms();
        let outcome = match fetch().await {
            Ok(value) => {
                let after = self
                    .store(key, tags, options, value.clone(), version, started)
                    .await;
                guard.publish(Outcome::Fresh(Arc::clone(&after)));
                Ok(Served {
                    value,
                    before,
                    after,
                })
            }
            Err(error) => match self.fail_safe::<T>(key, &error, before) {
                Some(served) => {
                    guard.publish(Outcome::FailSafe(Arc::clone(&served.after)));
                    Ok(served)
                }
                None => {
                    guard.publish(Outcome::Failed);
                    Err(error)
                }
            },
        };
        // Only now, with the value stored: a process waiting on the lease
        // must find the value, not a free lease and an empty key.
        self.release(key, lease).await;
        outcome
    }

    /// Releases a lease this process took (and reports a store fault).
    async fn release(&self, key: &str, lease: Lease) {
        if let Lease::Acquired(token) = lease {
            let released = self
                .inner
                .settings
                .adapter
                .release(self.key(key), token)
                .await;
            if let Err(error) = released {
                self.emit(EventKind::AdapterError, key, Some(&error));
            }
        }
    }

    /// Takes the store's cross-process lease on fetching `key`.
    async fn lease(&self, key: &str) -> Lease {
        let ttl = millis(self.inner.settings.lease_timeout);
        match self.inner.settings.adapter.lease(self.key(key), ttl).await {
            Ok(lease) => lease,
            Err(error) => {
                self.emit(EventKind::AdapterError, key, Some(&error));
                Lease::Unsupported
            }
        }
    }

    /// Another process holds the lease: poll for the value it will store,
    /// until the lease timeout. Takes the lease if it frees up first (its
    /// holder failed or died).
    async fn await_other_process<T: Cacheable>(&self, key: &str, tags: &[TagPath]) -> Waited<T> {
        let deadline = tokio::time::Instant::now() + self.inner.settings.lease_timeout;
        let markers = MarkerSet::new(&self.inner.settings.prefix, tags);
        let mut pause = Duration::from_millis(2);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            let now = self.inner.settings.clock.now_ms();
            let read = match self.read(self.key(key), markers, now).await {
                Ok(read) => read,
                Err(_) => return Waited::Lease(Lease::Unsupported),
            };
            let newest = applicable(&read, tags);
            let found = self.inspect::<T>(key, read.entry, newest, now).await;
            if let Found::Fresh(stored, value) = found {
                self.emit(EventKind::Coalesced, key, None);
                return Waited::Served(Served {
                    value,
                    before: None,
                    after: stored,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Waited::Lease(Lease::Unsupported);
            }
            match self.lease(key).await {
                Lease::Held => {}
                lease => return Waited::Lease(lease),
            }
        }
    }

    /// Fetches without coalescing: after an adapter fault, after the leader's
    /// fetch failed, or when retries ran out. Stores the value only when
    /// `version` (from a read before the fetch) is known.
    async fn fetch_alone<T, E, F, Fut>(
        &self,
        key: &str,
        tags: &[TagPath],
        options: &QueryOptions<T>,
        before: Option<Arc<StoredEntry>>,
        version: Option<u64>,
        fetch: F,
    ) -> Result<Served<T>, E>
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.emit(EventKind::Miss, key, None);
        let started = self.inner.settings.clock.now_ms();
        match fetch().await {
            Ok(value) => {
                let after = match version {
                    Some(version) => {
                        self.store(key, tags, options, value.clone(), version, started)
                            .await
                    }
                    None => {
                        let lifetimes = self.lifetimes(options.ttl, options.grace);
                        self.object_entry(
                            Arc::new(value.clone()),
                            tags.into(),
                            lifetimes,
                            0,
                            started,
                        )
                    }
                };
                Ok(Served {
                    value,
                    before,
                    after,
                })
            }
            Err(error) => self.fail_safe::<T>(key, &error, before).ok_or(error),
        }
    }

    /// After a failed fetch: the graced old entry, if it is still inside grace.
    fn fail_safe<T: Cacheable>(
        &self,
        key: &str,
        error: &dyn fmt::Display,
        before: Option<Arc<StoredEntry>>,
    ) -> Option<Served<T>> {
        let failure = FetchFailure(error.to_string());
        self.emit(EventKind::FetchError, key, Some(&failure));
        let now = self.inner.settings.clock.now_ms();
        let stored = before.filter(|b| b.grace_until.is_some_and(|g| g > now))?;
        let value = self.value_of::<T>(&stored).ok()?;
        self.emit(EventKind::FailSafe, key, Some(&failure));
        Some(Served {
            value,
            before: Some(Arc::clone(&stored)),
            after: stored,
        })
    }

    /// A follower checks the leader's entry against the markers as they are
    /// now: a leader whose fetch started before an invalidation that this
    /// caller could have seen is not good enough.
    async fn accept<T: Cacheable>(&self, key: &str, stored: &StoredEntry) -> Option<T> {
        let markers = MarkerSet::new(&self.inner.settings.prefix, &stored.tags);
        match self.inner.settings.adapter.newest_marker(markers).await {
            Ok(newest) if newest < stored.version => self.value_of::<T>(stored).ok(),
            Ok(_) => None,
            Err(error) => {
                self.emit(EventKind::AdapterError, key, Some(&error));
                None
            }
        }
    }

    /// Writes a fetched value (in the adapter's form) and returns it as an
    /// in-process entry. A failed write is reported, never returned: the
    /// caller still gets its value.
    async fn store<T: Cacheable>(
        &self,
        key: &str,
        tags: &[TagPath],
        options: &QueryOptions<T>,
        value: T,
        version: u64,
        started: u64,
    ) -> Arc<StoredEntry> {
        let lifetimes = self.lifetimes(options.ttl, options.grace);
        let value = Arc::new(value);
        let object =
            self.object_entry(Arc::clone(&value), tags.into(), lifetimes, version, started);
        match self.stored_form(&object, &*value) {
            Ok(stored) => {
                if let Err(error) = self
                    .inner
                    .settings
                    .adapter
                    .write(self.key(key), stored)
                    .await
                {
                    self.emit(EventKind::AdapterError, key, Some(&error));
                }
            }
            Err(error @ Error::ValueTooLarge { .. }) => {
                self.emit(EventKind::NotStored, key, Some(&error));
            }
            Err(error) => self.emit(EventKind::AdapterError, key, Some(&error)),
        }
        object
    }

    fn lifetimes(&self, ttl: Option<Duration>, grace: Option<Duration>) -> Lifetimes {
        Lifetimes {
            ttl_ms: ttl.map_or(self.inner.settings.default_ttl_ms, millis),
            grace_ms: grace
                .map(millis)
                .or(self.inner.settings.default_grace_ms)
                .filter(|g| *g > 0),
        }
    }

    fn object_entry<T: Cacheable>(
        &self,
        value: Arc<T>,
        tags: Arc<[TagPath]>,
        lifetimes: Lifetimes,
        version: u64,
        created_at: u64,
    ) -> Arc<StoredEntry> {
        let expires_at = created_at.saturating_add(lifetimes.ttl_ms);
        Arc::new(StoredEntry {
            value: StoredValue::Object(value),
            tags,
            created_at,
            expires_at,
            grace_until: lifetimes.grace_ms.map(|g| expires_at.saturating_add(g)),
            version,
            value_type: value_type_of::<T>(),
            checked_at: CheckedAt::default(),
        })
    }

    /// The entry as the adapter keeps it: the same `Arc` for object stores,
    /// a copy holding the codec's bytes of `value` for byte stores. Refuses
    /// values whose encoding is over `max_value_bytes`.
    fn stored_form<T: Cacheable>(
        &self,
        object: &Arc<StoredEntry>,
        value: &T,
    ) -> Result<Arc<StoredEntry>, Error> {
        let settings = &self.inner.settings;
        let check = |size: usize| match settings.max_value_bytes {
            Some(limit) if size > limit => Err(Error::ValueTooLarge { size, limit }),
            _ => Ok(()),
        };
        match settings.adapter.value_form() {
            ValueForm::Object => {
                if settings.max_value_bytes.is_some() {
                    check(settings.codec.encode(value)?.len())?;
                }
                Ok(Arc::clone(object))
            }
            ValueForm::Bytes => {
                let bytes = settings.codec.encode(value)?;
                check(bytes.len())?;
                Ok(Arc::new(StoredEntry {
                    value: StoredValue::Bytes(bytes.into()),
                    tags: Arc::clone(&object.tags),
                    checked_at: CheckedAt::default(),
                    created_at: object.created_at,
                    expires_at: object.expires_at,
                    grace_until: object.grace_until,
                    version: object.version,
                    value_type: object.value_type,
                }))
            }
        }
    }

    fn value_of<T: Cacheable>(&self, stored: &StoredEntry) -> Result<T, CodecError> {
        let other_type = || {
            CodecError::Decode(format!(
                "the entry holds a value of another type than `{}`",
                type_name::<T>()
            ))
        };
        match &stored.value {
            StoredValue::Object(any) => any.downcast_ref::<T>().cloned().ok_or_else(other_type),
            StoredValue::Bytes(_) if stored.value_type != value_type_of::<T>() => Err(other_type()),
            StoredValue::Bytes(bytes) => self.inner.settings.codec.decode(bytes),
        }
    }

    fn emit(&self, kind: EventKind, key: &str, error: Option<&(dyn StdError + 'static)>) {
        tracing::debug!(
            target: "t87s",
            event = kind.name(),
            key,
            error = error.map(tracing::field::display),
        );
        self.inner
            .settings
            .observer
            .on_event(&Event { kind, key, error });
    }
}

impl<C: Codec> Primitives<C> {
    /// On a sampled fresh hit, re-runs the fetch in the background and reports
    /// whether the cached value was stale. At most one per key at a time.
    fn maybe_verify<T, E, S, TG, TT, M, F, Fut>(
        &self,
        key: &str,
        cached: &T,
        call: Call<S, TG, TT, M>,
    ) where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        TG: Fn(&S) -> TT,
        TT: AsRef<[TagPath]>,
        M: FnOnce(S) -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if fastrand::f64() >= self.inner.settings.verify_percent {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.inner.verifying.lock().insert(key.into()) {
            return;
        }
        let done = Verifying {
            cache: self.clone(),
            key: key.into(),
        };
        let cached = cached.clone();
        let fetch = call.into_fetch();
        runtime.spawn(async move {
            let this = &done.cache;
            let key = &*done.key;
            match fetch().await {
                Ok(fresh) => {
                    let stale = fresh != cached;
                    this.emit(EventKind::Verified { stale }, key, None);
                    this.report(key, stale).await;
                }
                Err(error) => {
                    let failure = FetchFailure(error.to_string());
                    this.emit(EventKind::VerificationFailed, key, Some(&failure));
                }
            }
        });
    }

    /// Starts the one background refresh of a graced key, unless one is under
    /// way or the key is backing off after a failed refresh.
    #[allow(clippy::too_many_arguments)]
    fn maybe_refresh<T, E, S, TG, TT, M, F, Fut>(
        &self,
        key: &str,
        options: &QueryOptions<T>,
        version: u64,
        old: &T,
        call: Call<S, TG, TT, M>,
        now: u64,
    ) where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        TG: Fn(&S) -> TT,
        TT: AsRef<[TagPath]>,
        M: FnOnce(S) -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if self.backing_off(key, now) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(guard) = self.inner.flights.try_lead(key) else {
            return;
        };
        let this = self.clone();
        let key: Box<str> = key.into();
        let (tags, fetch) = call.split();
        let tags: Arc<[TagPath]> = tags.as_ref().into();
        let options = options.clone();
        let old = old.clone();
        runtime.spawn(async move {
            let started = this.inner.settings.clock.now_ms();
            match fetch().await {
                Ok(new) => {
                    let after = this
                        .store(&key, &tags, &options, new.clone(), version, started)
                        .await;
                    guard.publish(Outcome::Fresh(after));
                    let changed = new != old;
                    this.emit(EventKind::Refreshed { changed }, &key, None);
                    this.report(&key, changed).await;
                    if let Some(on_refresh) = &options.on_refresh {
                        let call =
                            catch_unwind(AssertUnwindSafe(|| on_refresh(&old, &new, changed)));
                        if call.is_err() {
                            this.emit(EventKind::CallbackPanicked, &key, None);
                        }
                    }
                    // The flight ends only now, so `in_flight() == 0` means
                    // the whole refresh, callback included, is done.
                    drop(guard);
                }
                Err(error) => {
                    let failure = FetchFailure(error.to_string());
                    this.emit(EventKind::RefreshFailed, &key, Some(&failure));
                    this.back_off(&key);
                    guard.publish(Outcome::Failed);
                }
            }
        });
    }

    fn backing_off(&self, key: &str, now: u64) -> bool {
        let mut backoff = self.inner.backoff.lock();
        match backoff.get(key) {
            Some(until) if now < *until => true,
            Some(_) => {
                backoff.remove(key);
                false
            }
            None => false,
        }
    }

    fn back_off(&self, key: &str) {
        let now = self.inner.settings.clock.now_ms();
        let mut backoff = self.inner.backoff.lock();
        if backoff.len() >= BACKOFF_SWEEP_AT {
            backoff.retain(|_, until| *until > now);
        }
        backoff.insert(
            key.into(),
            now.saturating_add(self.inner.settings.refresh_backoff_ms),
        );
    }

    async fn report(&self, key: &str, stale: bool) {
        if !self.inner.settings.adapter.accepts_verification() {
            return;
        }
        let report = VerificationReport {
            key: key.to_owned(),
            stale,
        };
        if let Err(error) = self
            .inner
            .settings
            .adapter
            .report_verification(&report)
            .await
        {
            self.emit(EventKind::AdapterError, key, Some(&error));
        }
    }
}

/// Clears a key's verification slot however the verification ends.
struct Verifying<C: Codec> {
    cache: Primitives<C>,
    key: Box<str>,
}

impl<C: Codec> Drop for Verifying<C> {
    fn drop(&mut self) {
        self.cache.inner.verifying.lock().remove(&self.key);
    }
}

fn entry_of<T>(stored: &StoredEntry, value: T) -> CacheEntry<T> {
    CacheEntry {
        value,
        tags: Arc::clone(&stored.tags),
        created_at: stored.created_at,
        expires_at: stored.expires_at,
        grace_until: stored.grace_until,
        version: stored.version,
    }
}

impl<C: Codec> fmt::Debug for Primitives<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("Primitives")
            .field("adapter", &inner.settings.adapter)
            .field("codec", &inner.settings.codec)
            .field("prefix", &inner.settings.prefix)
            .field("default_ttl_ms", &inner.settings.default_ttl_ms)
            .field("default_grace_ms", &inner.settings.default_grace_ms)
            .field("verify_percent", &inner.settings.verify_percent)
            .finish_non_exhaustive()
    }
}

/// Options for [`Primitives`]; every error is reported by [`build`](Self::build).
///
/// ```
/// use t87s::{ManualClock, MemoryAdapter, Primitives};
/// let clock = ManualClock::new(0);
/// let cache = Primitives::builder(MemoryAdapter::new())
///     .prefix("app")
///     .default_ttl("5m")
///     .default_grace(std::time::Duration::from_secs(3600))
///     .verify_percent(0.0)
///     .refresh_backoff("10s")
///     .clock(clock)
///     .build()?;
/// # Ok::<(), t87s::ConfigError>(())
/// ```
pub struct PrimitivesBuilder<C: Codec = Postcard> {
    adapter: Arc<dyn StorageAdapter>,
    codec: C,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    prefix: Box<str>,
    default_ttl: Result<Duration, ConfigError>,
    default_grace: Result<Option<Duration>, ConfigError>,
    refresh_backoff: Result<Duration, ConfigError>,
    lease_timeout: Result<Duration, ConfigError>,
    max_value_bytes: Option<usize>,
    verify_percent: f64,
}

/// The checked options, as the engine uses them.
struct Settings<C> {
    adapter: Arc<dyn StorageAdapter>,
    codec: C,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn Observer>,
    prefix: Box<str>,
    default_ttl_ms: u64,
    default_grace_ms: Option<u64>,
    refresh_backoff_ms: u64,
    lease_timeout: Duration,
    max_value_bytes: Option<usize>,
    verify_percent: f64,
}

fn duration_option(
    option: &'static str,
    value: impl IntoDuration,
) -> Result<Duration, ConfigError> {
    value
        .into_duration()
        .map_err(|source| ConfigError::Duration { option, source })
}

impl PrimitivesBuilder<Postcard> {
    fn new(adapter: impl StorageAdapter) -> Self {
        Self {
            adapter: Arc::new(adapter),
            codec: Postcard,
            clock: Arc::new(SystemClock),
            observer: Arc::new(NoObserver),
            prefix: "t87s".into(),
            default_ttl: Ok(Duration::from_secs(30)),
            default_grace: Ok(None),
            refresh_backoff: Ok(Duration::from_secs(1)),
            lease_timeout: Ok(Duration::from_secs(5)),
            max_value_bytes: None,
            verify_percent: 0.1,
        }
    }

    fn resolved(self) -> Settings<Postcard> {
        // The defaults above are all valid.
        self.resolve()
            .unwrap_or_else(|_| unreachable!("default options are valid"))
    }
}

impl<C: Codec> PrimitivesBuilder<C> {
    /// The namespace of this cache's keys and markers (default `t87s`).
    ///
    /// ```
    /// let cache = t87s::Primitives::builder(t87s::MemoryAdapter::new()).prefix("app").build()?;
    /// assert_eq!(cache.prefix(), "app");
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into_boxed_str();
        self
    }

    /// How long values stay fresh when a query names no ttl (default 30s).
    ///
    /// ```
    /// t87s::Primitives::builder(t87s::MemoryAdapter::new()).default_ttl(std::time::Duration::from_secs(60)).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn default_ttl(mut self, ttl: impl IntoDuration) -> Self {
        self.default_ttl = duration_option("default_ttl", ttl);
        self
    }

    /// Grace when a query names none (default: none).
    ///
    /// ```
    /// t87s::Primitives::builder(t87s::MemoryAdapter::new()).default_grace("1h").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn default_grace(mut self, grace: impl IntoDuration) -> Self {
        self.default_grace = duration_option("default_grace", grace).map(Some);
        self
    }

    /// How long a key waits after a failed background refresh before the next
    /// one (default 1s). It keeps serving its graced value meanwhile.
    ///
    /// ```
    /// t87s::Primitives::builder(t87s::MemoryAdapter::new()).refresh_backoff("10s").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn refresh_backoff(mut self, backoff: impl IntoDuration) -> Self {
        self.refresh_backoff = duration_option("refresh_backoff", backoff);
        self
    }

    /// With a store shared by several processes (Redis): how long one process
    /// holds the lease on fetching a missing key, and how long the others wait
    /// for its value before fetching themselves (default 5s). A holder that
    /// dies frees the lease when it expires.
    ///
    /// ```
    /// t87s::Primitives::builder(t87s::MemoryAdapter::new()).lease_timeout("3s").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn lease_timeout(mut self, timeout: impl IntoDuration) -> Self {
        self.lease_timeout = duration_option("lease_timeout", timeout);
        self
    }

    /// The largest value (its codec encoding, in bytes) the cache stores
    /// (default: no limit). A query whose value is larger still returns it,
    /// stores nothing and reports [`EventKind::NotStored`]; `set` returns
    /// [`Error::ValueTooLarge`].
    ///
    /// ```
    /// t87s::Primitives::builder(t87s::MemoryAdapter::new()).max_value_bytes(64 * 1024).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn max_value_bytes(mut self, limit: usize) -> Self {
        self.max_value_bytes = Some(limit);
        self
    }

    /// The fraction of fresh hits (0.0 to 1.0, default 0.1) that re-run the
    /// fetch in the background to check the cached value. Runs only when the
    /// adapter or the observer wants verification reports.
    ///
    /// ```
    /// assert!(t87s::Primitives::builder(t87s::MemoryAdapter::new()).verify_percent(2.0).build().is_err());
    /// ```
    pub fn verify_percent(mut self, fraction: f64) -> Self {
        self.verify_percent = fraction;
        self
    }

    /// The time source (default: the system clock).
    ///
    /// ```
    /// t87s::Primitives::builder(t87s::MemoryAdapter::new()).clock(t87s::ManualClock::new(0)).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Receives every [`Event`].
    ///
    /// ```
    /// struct Quiet;
    /// impl t87s::Observer for Quiet { fn on_event(&self, _: &t87s::Event<'_>) {} }
    /// t87s::Primitives::builder(t87s::MemoryAdapter::new()).observer(Quiet).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Arc::new(observer);
        self
    }

    /// The codec for adapters that store bytes (default [`Postcard`]).
    ///
    /// ```
    /// let cache: t87s::Primitives<t87s::Postcard> = t87s::Primitives::builder(t87s::MemoryAdapter::new()).codec(t87s::Postcard).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn codec<C2: Codec>(self, codec: C2) -> PrimitivesBuilder<C2> {
        PrimitivesBuilder {
            adapter: self.adapter,
            codec,
            clock: self.clock,
            observer: self.observer,
            prefix: self.prefix,
            default_ttl: self.default_ttl,
            default_grace: self.default_grace,
            refresh_backoff: self.refresh_backoff,
            lease_timeout: self.lease_timeout,
            max_value_bytes: self.max_value_bytes,
            verify_percent: self.verify_percent,
        }
    }

    /// Checks every option and builds the engine.
    ///
    /// ```
    /// let err = t87s::Primitives::builder(t87s::MemoryAdapter::new()).default_grace("1 hour").build().unwrap_err();
    /// assert!(matches!(err, t87s::ConfigError::Duration { option: "default_grace", .. }));
    /// ```
    pub fn build(self) -> Result<Primitives<C>, ConfigError> {
        Ok(Primitives::from_builder(self.resolve()?))
    }

    fn resolve(self) -> Result<Settings<C>, ConfigError> {
        if !(0.0..=1.0).contains(&self.verify_percent) {
            return Err(ConfigError::VerifyPercent(self.verify_percent));
        }
        Ok(Settings {
            adapter: self.adapter,
            codec: self.codec,
            clock: self.clock,
            observer: self.observer,
            prefix: self.prefix,
            default_ttl_ms: millis(self.default_ttl?),
            default_grace_ms: self.default_grace?.map(millis),
            refresh_backoff_ms: millis(self.refresh_backoff?),
            lease_timeout: self.lease_timeout?,
            max_value_bytes: self.max_value_bytes,
            verify_percent: self.verify_percent,
        })
    }
}

impl<C: Codec> fmt::Debug for PrimitivesBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrimitivesBuilder")
            .field("adapter", &self.adapter)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}
