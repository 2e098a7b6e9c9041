//! The raw engine: [`Primitives`], with string keys and [`TagPath`]s.
//!
//! [`QueryCache`](crate::QueryCache) and `#[cached]` are built on it; use it
//! directly when keys and tags come from data rather than from a schema.
//!
//! It knows nothing of macros or schemas. Freshness policy lives here;
//! storage lives in the [adapter](crate::adapter). The engine is split by
//! the decision each part holds:
//!
//! - `look`: what a read of the store means (fresh, graced, invalidated,
//!   dead, missing, undecodable), the one place that decides it;
//! - `hit`: the synchronous hit path and the buffer its keys are built in;
//! - `query`: the query path, per-key flights and the fetch they share;
//! - `flight`: the flight map itself; `share`: how a failed fetch's error
//!   reaches the callers that waited on it;
//! - `lease`: the cross-process lease on fetching a key;
//! - `background`: stale-while-revalidate refreshes, verifications, back-off;
//! - `store`: turning a fetched value into a stored entry;
//! - `task`: the engine's own tasks (counted; panics caught for cleanup);
//! - `raw`: `get`, `set`, `delete`, invalidation, `clear`;
//! - `builder`: the options.

mod background;
mod builder;
mod call;
mod flight;
mod hit;
mod lease;
mod look;
mod options;
mod query;
mod raw;
mod retry;
mod share;
mod store;
mod task;

use std::collections::HashSet;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use self::builder::PrimitivesBuilder;
pub use self::options::{OnRefresh, QueryOptions, SetOptions};
pub use self::share::Share;
pub use crate::tag::{TagError, TagPath};

use self::builder::Settings;
pub(crate) use self::call::Call;
use self::flight::Flights;
pub(crate) use self::hit::First;
use self::hit::FirstPoll;
use crate::codec::{Codec, Postcard};
use crate::entry::{CacheEntry, Entries, StoredEntry, StoredValue};
use crate::observer::{Event, EventKind};
use crate::storage::{EntryKey, MarkerSet, StorageAdapter};

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
/// shared fetches, background refreshes and verifications; without one, a
/// fetch runs in the caller's future and background work is skipped.
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
/// TTL and grace count from when the fetch returned its value; invalidation
/// counts from when it started, so a write during a fetch is never lost.
/// Errors are returned to the caller and never cached.
///
/// # Concurrency
///
/// Concurrent callers of one key share one fetch: the first *leads*, the
/// others wait for its outcome. The leader's own future runs the fetch (a
/// miss spawns no task), and hands it to a task of its own if that future
/// is dropped before the fetch is done, so:
///
/// - **Cancellation.** A caller whose future is dropped (a timeout, a client
///   gone) never cancels the shared fetch: the others still get its value,
///   and it is stored. (A leader's future that is kept but no longer polled
///   holds its fetch, and the callers waiting on it, until it is polled or
///   dropped: drop the futures you stop awaiting.)
/// - **Panics.** A fetch that panics re-raises the panic in the leader's
///   caller; the waiters wake, and one of them fetches instead. No key is
///   left blocked or poisoned.
/// - **Errors.** When the fetch fails, the waiters get the error if it can
///   be shared ([`Share`]: `#[cached]` picks `Clone`, else
///   `From<t87s::Error>`, at compile time), with no second fetch. Otherwise
///   they take turns: at most one fetch per key is in flight at a time, and
///   each caller gets an error of its own.
/// - **Store faults.** A store that cannot be read (down, or a key holding
///   something else) makes the query answer from the fetch (fail-open);
///   concurrent callers of a key still share one fetch.
///
/// # Example
///
/// ```
/// use t87s::engine::{Primitives, QueryOptions, TagPath};
/// use t87s::MemoryAdapter;
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
    /// Keys with a verification running (one per key).
    verifying: Mutex<HashSet<Box<str>>>,
    /// Keys backing off after a failed refresh, with the time it ends.
    /// Bounded: a key pushed out early merely refreshes sooner.
    backoff: quick_cache::sync::Cache<Box<str>, u64>,
    /// Engine tasks running: shared fetches, refreshes, verifications.
    tasks: AtomicUsize,
    /// Invalidations (and clears) this process has completed.
    local_epoch: AtomicU64,
    /// This instance's token on cross-process leases: every caller of the
    /// instance shares its lease on a key (they coalesce in its flights).
    lease_token: u64,
    /// This engine among the owners of decoded values (see
    /// [`decoded`](crate::decoded)).
    decoder: u64,
    /// Invalidations waiting for a retry.
    retries: retry::Retries,
    /// The handles of the `metrics` facade.
    #[cfg(feature = "metrics")]
    metrics: crate::metrics::Metrics,
}

/// How many keys can back off at once.
const BACKOFF_KEYS: usize = 16_384;

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

/// A fetch error as the observer sees it (the caller's `E` is only `Display`).
#[derive(Debug)]
struct FetchFailure(String);

impl fmt::Display for FetchFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for FetchFailure {}

impl Primitives<Postcard> {
    /// An engine over `adapter` with the defaults: prefix `t87s`, ttl 30s, no
    /// grace, `verify_percent` 0.1, the system clock, no observer.
    ///
    /// ```
    /// let cache = t87s::engine::Primitives::new(t87s::MemoryAdapter::new());
    /// assert_eq!(cache.prefix(), "t87s");
    /// ```
    pub fn new(adapter: impl StorageAdapter) -> Self {
        Self::from_builder(PrimitivesBuilder::new(adapter).resolved())
    }

    /// Options: prefix, default ttl and grace, verification, clock, observer, codec.
    ///
    /// ```
    /// let cache = t87s::engine::Primitives::builder(t87s::MemoryAdapter::new())
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
    fn from_builder(settings: Settings<C>) -> Self {
        let verify = settings.verify_percent > 0.0
            && (settings.adapter.accepts_verification() || settings.observer.wants_verification());
        Self {
            inner: Arc::new(Inner {
                settings,
                verify,
                flights: Flights::default(),
                verifying: Mutex::new(HashSet::new()),
                backoff: quick_cache::sync::Cache::new(BACKOFF_KEYS),
                tasks: AtomicUsize::new(0),
                local_epoch: AtomicU64::new(0),
                lease_token: fastrand::u64(1..),
                decoder: crate::decoded::owner_id(),
                retries: retry::Retries::default(),
                #[cfg(feature = "metrics")]
                metrics: crate::metrics::Metrics::default(),
            }),
        }
    }

    /// The prefix every key and marker of this cache lives under.
    ///
    /// ```
    /// let cache = t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).prefix("app").build()?;
    /// assert_eq!(cache.prefix(), "app");
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.inner.settings.prefix
    }

    /// How much work is under way: flights (fetches callers wait on) plus
    /// the engine's tasks (shared fetches, refreshes with their `on_refresh`,
    /// verifications). Zero whenever no query is running and every
    /// background task has ended: nothing outlives its work, even when
    /// callers are cancelled or fetches panic. (The one task that retries
    /// failed invalidations is not counted: it runs while the store is down,
    /// with no query waiting on it.)
    ///
    /// ```
    /// assert_eq!(t87s::engine::Primitives::new(t87s::MemoryAdapter::new()).in_flight(), 0);
    /// ```
    pub fn in_flight(&self) -> usize {
        self.inner.flights.len() + self.inner.tasks.load(Ordering::Acquire)
    }

    /// Runs a cached query: returns the cached value for `key` if it is fresh,
    /// otherwise runs `fetch` (once, however many callers) and caches its
    /// value under `tags`. See the type docs for the freshness rules and
    /// what concurrent callers share.
    ///
    /// The fetch is `'static` because it may outlive this call (a shared
    /// fetch whose caller went away, a stale-while-revalidate refresh or a
    /// verification). A store that fails makes the query run `fetch`
    /// (fail-open); the fault goes to the observer. The callers that waited
    /// on a fetch that failed take turns (errors of any `E` cannot be
    /// shared); [`query_sharing`](Self::query_sharing) shares them.
    ///
    /// The future does nothing until it is polled: its first poll reads
    /// the store (so an invalidation that returned before then is seen) and
    /// answers a fresh entry at once; anything else continues as one boxed
    /// future.
    ///
    /// ```
    /// # use t87s::engine::{Primitives, QueryOptions, TagPath};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Primitives::new(t87s::MemoryAdapter::new());
    /// let tags = [TagPath::new(["posts", "1"])?];
    /// let options = QueryOptions::new().ttl(std::time::Duration::from_secs(60));
    /// let title = cache
    ///     .query("post:1", &tags, options, || async { Ok::<_, std::io::Error>("Hello".to_string()) })
    ///     .await?;
    /// # assert_eq!(title, "Hello");
    /// # Ok(()) }
    /// ```
    pub fn query<'a, T, E, F, Fut>(
        &'a self,
        key: &'a str,
        tags: &'a [TagPath],
        options: QueryOptions<T>,
        fetch: F,
    ) -> impl Future<Output = Result<T, E>> + 'a
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.query_sharing(key, tags, options, Share::Not, fetch)
    }

    /// [`query`](Self::query), saying how the callers that waited on a failed
    /// fetch get its error: [`Share::Cloned`] (they get clones),
    /// [`Share::Converted`] (they get `E::from(Error::SharedFetch { .. })`), or
    /// [`Share::Not`] (they take turns fetching).
    ///
    /// ```
    /// # use t87s::engine::{Primitives, QueryOptions, Share, TagPath};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// #[derive(Debug, Clone)]
    /// struct DbError(String);
    /// impl std::fmt::Display for DbError {
    ///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(&self.0) }
    /// }
    /// let cache = Primitives::new(t87s::MemoryAdapter::new());
    /// let tags = [TagPath::new(["posts", "1"])?];
    /// let result: Result<String, DbError> = cache
    ///     .query_sharing("post:1", &tags, QueryOptions::new(), Share::Cloned(DbError::clone), || async {
    ///         Err(DbError("database is down".into()))
    ///     })
    ///     .await;
    /// assert!(result.is_err());
    /// # Ok(()) }
    /// ```
    pub fn query_sharing<'a, T, E, F, Fut>(
        &'a self,
        key: &'a str,
        tags: &'a [TagPath],
        options: QueryOptions<T>,
        share: Share<E>,
        fetch: F,
    ) -> impl Future<Output = Result<T, E>> + 'a
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // A hit is answered by the first poll with no state machine of its
        // own; the rest of the query is boxed only when there is none.
        FirstPoll::new(
            move || self.hit_now(key),
            move || async move {
                let call = Call::new((), |_: &()| tags, move |_| fetch);
                self.run(key, call, options, share).await.map(|s| s.value)
            },
        )
    }

    /// Like [`query`](Self::query), returning the entry before and after (see [`Entries`]).
    ///
    /// ```
    /// # use t87s::engine::{Primitives, QueryOptions, TagPath};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = Primitives::new(t87s::MemoryAdapter::new());
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
        let served = self.run(key, call, options, Share::Not).await?;
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

    /// How many invalidations this process has completed: a fetch that began
    /// at or after this count saw all of them.
    fn local_epoch(&self) -> u64 {
        self.inner.local_epoch.load(Ordering::Acquire)
    }

    fn key<'a>(&'a self, key: &'a str) -> EntryKey<'a> {
        EntryKey {
            prefix: &self.inner.settings.prefix,
            key,
        }
    }

    fn markers<'a>(&'a self, tags: &'a [TagPath]) -> MarkerSet<'a> {
        MarkerSet::new(&self.inner.settings.prefix, tags)
    }

    /// Whether anyone hears a hit with its key: an observer, or `tracing` at
    /// debug level for `t87s`. The hit path emits (and a typed hit builds
    /// its readable key) only then; otherwise it only
    /// [counts](Self::count_hit) it.
    #[inline]
    fn listening(&self) -> bool {
        self.inner.settings.observed || tracing::enabled!(target: "t87s", tracing::Level::DEBUG)
    }

    /// A hit (`kind`, see [`hit_kind`](Self::hit_kind)) no one hears with
    /// its key: the `metrics` facade (with the feature) still counts it
    /// under its query name, which `key` need only start with (a typed hit
    /// passes its head, `Blog::post(`).
    #[inline]
    fn count_hit(&self, kind: EventKind, key: &str) {
        #[cfg(feature = "metrics")]
        self.inner.metrics.record(&Event::new(kind, key));
        let _ = (kind, key);
    }

    /// What serving the fresh entry `stored` is: a near hit when a byte
    /// store's near copy answered (it holds objects; the store itself
    /// answers bytes), else a hit.
    #[inline]
    fn hit_kind(&self, stored: &StoredEntry) -> EventKind {
        if self.inner.settings.near && matches!(stored.value, StoredValue::Object(_)) {
            EventKind::NearHit
        } else {
            EventKind::Hit
        }
    }

    fn emit(&self, kind: EventKind, key: &str, error: Option<&(dyn StdError + 'static)>) {
        self.emit_event(&Event {
            kind,
            key,
            error,
            elapsed: None,
        });
    }

    /// The span a fetch, a refresh or a verification of `key` runs in
    /// (debug: per-request detail). Background tasks spawned inside it
    /// carry it (see `task`).
    fn work_span(&self, what: &'static str, key: &str, tags: usize) -> tracing::Span {
        match what {
            "refresh" => {
                tracing::debug_span!(target: "t87s", "refresh", query = crate::observer::query_of(key), key, tags)
            }
            "verify" => {
                tracing::debug_span!(target: "t87s", "verify", query = crate::observer::query_of(key), key, tags)
            }
            _ => {
                tracing::debug_span!(target: "t87s", "fetch", query = crate::observer::query_of(key), key, tags)
            }
        }
    }

    /// A timing: a fetch, a store or an invalidation took `elapsed`.
    fn emit_timed(&self, kind: EventKind, key: &str, elapsed: std::time::Duration) {
        self.emit_event(&Event {
            kind,
            key,
            error: None,
            elapsed: Some(elapsed),
        });
    }

    /// Every event goes to `tracing` (debug: the per-request detail), the
    /// `metrics` facade (with the feature) and the observer.
    fn emit_event(&self, event: &Event<'_>) {
        tracing::debug!(
            target: "t87s",
            event = event.kind.name(),
            query = event.query(),
            key = event.key,
            elapsed = event.elapsed.map(tracing::field::debug),
            error = event.error.map(tracing::field::display),
        );
        #[cfg(feature = "metrics")]
        self.inner.metrics.record(event);
        self.inner.settings.observer.on_event(event);
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
