//! What happened inside the cache: events for metrics, logs and tests.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What kind of thing happened.
///
/// ```
/// let kind = t87s::EventKind::Refreshed { changed: true };
/// assert_eq!(kind.name(), "refreshed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A fresh entry was served by the store: a memory store, or a shared
    /// store such as Redis (a round trip).
    Hit,
    /// A fresh entry was served by a shared store's near cache: this
    /// process's copy, with no I/O (see `NearCache`, feature `redis`).
    NearHit,
    /// No usable entry: the fetch runs in the foreground.
    Miss,
    /// A caller waited for another caller's fetch of the same key and got its value.
    Coalesced,
    /// An entry past its TTL but within grace was served; a refresh runs in the background.
    StaleServed,
    /// A background refresh stored a new value.
    Refreshed {
        /// Whether the new value differs from the stale one.
        changed: bool,
    },
    /// A background refresh failed; the key backs off before trying again.
    RefreshFailed,
    /// The `on_refresh` callback panicked; the panic was contained.
    CallbackPanicked,
    /// The fetch failed and a graced (possibly invalidated) entry was served instead.
    FailSafe,
    /// The fetch returned an error (it is returned to the caller, never cached).
    FetchError,
    /// A background verification re-ran the fetch on a fresh hit.
    Verified {
        /// Whether the cached value differed from the fresh one.
        stale: bool,
    },
    /// A background verification's fetch failed.
    VerificationFailed,
    /// The storage adapter failed; the query answered by running the fetch.
    AdapterError,
    /// Bytes under our key could not be decoded as the requested type; treated as a miss.
    Undecodable,
    /// A value was returned but not stored (over `max_value_bytes`).
    NotStored,
    /// A `#[cached]` call ran uncached: an argument's `Serialize` failed, so
    /// its key could not be built (also a `tracing` warning, every time).
    Uncached,
    /// The cache gave up retrying a failed invalidation (it kept failing
    /// for 10 minutes, or too many were waiting): entries of the tag (the
    /// event's key) may be served stale until their TTL.
    InvalidationFailed,
    /// A fetch returned (a value or an error), in the foreground, in a
    /// refresh or in a verification; [`Event::elapsed`] is how long it took.
    Fetched,
    /// A fetched value was written to the store; [`Event::elapsed`] is how
    /// long the write took.
    Stored,
    /// A tag was invalidated (the event's key is its path); one event per
    /// tag of the call, each with the call's [`Event::elapsed`].
    Invalidated,
}

impl EventKind {
    /// A short `snake_case` name, handy as a metric label.
    ///
    /// ```
    /// assert_eq!(t87s::EventKind::StaleServed.name(), "stale_served");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Hit => "hit",
            EventKind::NearHit => "near_hit",
            EventKind::Miss => "miss",
            EventKind::Coalesced => "coalesced",
            EventKind::StaleServed => "stale_served",
            EventKind::Refreshed { .. } => "refreshed",
            EventKind::RefreshFailed => "refresh_failed",
            EventKind::CallbackPanicked => "callback_panicked",
            EventKind::FailSafe => "fail_safe",
            EventKind::FetchError => "fetch_error",
            EventKind::Verified { .. } => "verified",
            EventKind::VerificationFailed => "verification_failed",
            EventKind::AdapterError => "adapter_error",
            EventKind::Undecodable => "undecodable",
            EventKind::NotStored => "not_stored",
            EventKind::Uncached => "uncached",
            EventKind::InvalidationFailed => "invalidation_failed",
            EventKind::Fetched => "fetched",
            EventKind::Stored => "stored",
            EventKind::Invalidated => "invalidated",
        }
    }

    /// Whether the event's key is a tag path (an invalidation) rather than
    /// a query key.
    ///
    /// ```
    /// assert!(t87s::EventKind::Invalidated.is_about_a_tag());
    /// assert!(!t87s::EventKind::Hit.is_about_a_tag());
    /// ```
    pub fn is_about_a_tag(&self) -> bool {
        matches!(self, EventKind::Invalidated | EventKind::InvalidationFailed)
    }
}

/// One event: what happened, to which key, the error behind it if any, and
/// how long it took when it is a timing.
///
/// ```
/// let event = t87s::Event::new(t87s::EventKind::Hit, "blog::post(5)@0c1d2e3f4a5b6c7d:07");
/// assert_eq!(event.query(), "blog::post");
/// assert_eq!(event.to_string(), "hit blog::post(5)@0c1d2e3f4a5b6c7d:07");
/// ```
#[derive(Clone, Copy)]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// The query key (without the cache's prefix); for
    /// [`Invalidated`](EventKind::Invalidated) and
    /// [`InvalidationFailed`](EventKind::InvalidationFailed), the tag's path.
    pub key: &'a str,
    /// The error, for `FetchError`, `RefreshFailed`, `AdapterError`, `Undecodable`.
    pub error: Option<&'a (dyn StdError + 'static)>,
    /// How long it took, for `Fetched`, `Stored` and `Invalidated`.
    pub elapsed: Option<Duration>,
}

impl<'a> Event<'a> {
    /// An event of `kind` about `key`, with no error and no duration.
    ///
    /// ```
    /// let event = t87s::Event::new(t87s::EventKind::Miss, "user:1");
    /// assert!(event.error.is_none() && event.elapsed.is_none());
    /// ```
    pub fn new(kind: EventKind, key: &'a str) -> Self {
        Self {
            kind,
            key,
            error: None,
            elapsed: None,
        }
    }

    /// A bounded name for the event, fit for a metric label or a log field:
    /// never the arguments.
    ///
    /// - a `#[cached]` query: its name, `blog::post` (module and method), or
    ///   the pinned `name = "Blog::post"`: the key up to its `(` (an
    ///   [`Uncached`](EventKind::Uncached) event's key is the name alone);
    /// - a [`Primitives`](crate::engine::Primitives) query: the key up to its
    ///   first `(` or `:` (`user:42` is `user`), so shape keys as
    ///   `name:arguments`; a key with neither is `primitives`;
    /// - an invalidation ([`EventKind::is_about_a_tag`]): the tag's root
    ///   segment (`posts/1/comments` is `posts`).
    ///
    /// ```
    /// use t87s::{Event, EventKind};
    /// assert_eq!(Event::new(EventKind::Hit, "Blog::post(5)@ab:07").query(), "Blog::post");
    /// assert_eq!(Event::new(EventKind::Hit, "user:42").query(), "user");
    /// assert_eq!(Event::new(EventKind::Hit, "user-42").query(), "primitives");
    /// assert_eq!(Event::new(EventKind::Invalidated, "posts/1/comments").query(), "posts");
    /// ```
    pub fn query(&self) -> &'a str {
        let key = self.key;
        if self.kind.is_about_a_tag() {
            return key.split('/').next().unwrap_or(key);
        }
        // Up to the first `(`, or to a `:` before it that is not half of a
        // path's `::` (`blog::post(5)` is `blog::post`, `user:42` is `user`).
        let head = key.split('(').next().unwrap_or(key);
        let bytes = head.as_bytes();
        let mut at = 0;
        while let Some(&byte) = bytes.get(at) {
            if byte == b':' {
                if bytes.get(at + 1) != Some(&b':') {
                    return key.get(..at).unwrap_or(key);
                }
                at += 1;
            }
            at += 1;
        }
        if head.len() < key.len() || key.contains("::") {
            // `blog::post(…`, or `blog::post` alone (an `Uncached` call).
            head
        } else {
            "primitives"
        }
    }
}

/// [`Event::query`] of a query key.
pub(crate) fn query_of(key: &str) -> &str {
    Event::new(EventKind::Miss, key).query()
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("error", &self.error.map(|e| e.to_string()))
            .field("elapsed", &self.elapsed)
            .finish()
    }
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.key)?;
        if let Some(elapsed) = self.elapsed {
            write!(f, " in {elapsed:?}")?;
        }
        if let Some(error) = self.error {
            write!(f, ": {error}")?;
        }
        Ok(())
    }
}

/// Receives every [`Event`]. Set one with
/// [`PrimitivesBuilder::observer`](crate::engine::PrimitivesBuilder::observer) to
/// count hits, alert on adapter errors, or assert behaviour in tests.
///
/// Called inline on the query path: keep it cheap and never block.
/// Every event is also emitted as a `tracing` event at debug level, and
/// with the `metrics` feature counted (see the `t87s::metrics` module).
/// [`Event::query`] is a bounded name to group by; never label by the key.
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// #[derive(Default)]
/// struct Hits(AtomicU64);
/// impl t87s::Observer for Hits {
///     fn on_event(&self, event: &t87s::Event<'_>) {
///         if event.kind == t87s::EventKind::Hit {
///             self.0.fetch_add(1, Ordering::Relaxed);
///         }
///     }
/// }
/// let cache = t87s::engine::Primitives::builder(t87s::MemoryAdapter::new())
///     .observer(Hits::default())
///     .build()?;
/// # Ok::<(), t87s::ConfigError>(())
/// ```
pub trait Observer: Send + Sync + 'static {
    /// Called once per event.
    fn on_event(&self, event: &Event<'_>);

    /// Whether sampled verifications should run for this observer (see
    /// [`PrimitivesBuilder::verify_percent`](crate::engine::PrimitivesBuilder::verify_percent)).
    /// Off by default: a verification re-runs the fetch, which costs a
    /// backend call.
    fn wants_verification(&self) -> bool {
        false
    }
}

/// The observer used when none is set: it ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct NoObserver;

impl Observer for NoObserver {
    fn on_event(&self, _event: &Event<'_>) {}
}
