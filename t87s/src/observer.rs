//! What happened inside the cache: events for metrics, logs and tests.

use std::error::Error as StdError;
use std::fmt;

/// What kind of thing happened.
///
/// ```
/// let kind = t87s::EventKind::Refreshed { changed: true };
/// assert_eq!(kind.name(), "refreshed");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A fresh entry was served.
    Hit,
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
        }
    }
}

/// One event: what happened, to which key, and the error behind it if any.
///
/// ```
/// let event = t87s::Event { kind: t87s::EventKind::Hit, key: "user:1", error: None };
/// assert_eq!(event.to_string(), "hit user:1");
/// ```
#[derive(Clone, Copy)]
pub struct Event<'a> {
    /// What happened.
    pub kind: EventKind,
    /// The query key (without the cache's prefix).
    pub key: &'a str,
    /// The error, for `FetchError`, `RefreshFailed`, `AdapterError`, `Undecodable`.
    pub error: Option<&'a (dyn StdError + 'static)>,
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("kind", &self.kind)
            .field("key", &self.key)
            .field("error", &self.error.map(|e| e.to_string()))
            .finish()
    }
}

impl fmt::Display for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.key)?;
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
/// Every event is also emitted as a `tracing` event at debug level.
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
