//! [`PrimitivesBuilder`]: the engine's options, checked once when it is built.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Primitives;
use crate::clock::{millis, Clock, Time};
use crate::codec::{Codec, Postcard};
use crate::duration::IntoDuration;
use crate::error::ConfigError;
use crate::observer::{NoObserver, Observer};
use crate::storage::{MemoryAdapter, StorageAdapter};

/// Options for [`Primitives`]; every error is reported by [`build`](Self::build).
///
/// ```
/// use t87s::engine::Primitives;
/// use t87s::{ManualClock, MemoryAdapter};
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
    clock: Time,
    observer: Arc<dyn Observer>,
    /// Whether an observer was set (else no one hears a hit).
    observed: bool,
    /// The adapter, when it is a [`MemoryAdapter`]: hits call it directly.
    memory: Option<MemoryAdapter>,
    #[cfg(feature = "redis")]
    near_copy: Option<crate::storage::NearCopy>,
    prefix: Box<str>,
    default_ttl: Result<Duration, ConfigError>,
    default_grace: Result<Option<Duration>, ConfigError>,
    refresh_backoff: Result<Duration, ConfigError>,
    lease_timeout: Result<Duration, ConfigError>,
    max_value_bytes: Option<usize>,
    verify_percent: f64,
}

/// The checked options, as the engine uses them.
pub(crate) struct Settings<C> {
    pub(crate) adapter: Arc<dyn StorageAdapter>,
    pub(crate) codec: C,
    pub(crate) clock: Time,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) observed: bool,
    pub(crate) memory: Option<MemoryAdapter>,
    /// A Redis adapter's near copy, read in place by the hit path.
    #[cfg(feature = "redis")]
    pub(crate) near_copy: Option<crate::storage::NearCopy>,
    /// Whether the adapter keeps a near copy of a shared store
    /// ([`StorageAdapter::keeps_objects`]): its answers with no I/O are near
    /// hits.
    pub(crate) near: bool,
    pub(crate) prefix: Box<str>,
    pub(crate) default_ttl_ms: u64,
    pub(crate) default_grace_ms: Option<u64>,
    pub(crate) refresh_backoff_ms: u64,
    pub(crate) lease_timeout: Duration,
    pub(crate) max_value_bytes: Option<usize>,
    pub(crate) verify_percent: f64,
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
    pub(crate) fn new(adapter: impl StorageAdapter) -> Self {
        let memory = (&adapter as &dyn Any)
            .downcast_ref::<MemoryAdapter>()
            .cloned();
        #[cfg(feature = "redis")]
        let near_copy = (&adapter as &dyn Any)
            .downcast_ref::<crate::RedisAdapter>()
            .and_then(crate::RedisAdapter::near_copy);
        Self {
            adapter: Arc::new(adapter),
            codec: Postcard,
            clock: Time::System,
            observer: Arc::new(NoObserver),
            observed: false,
            memory,
            #[cfg(feature = "redis")]
            near_copy,
            prefix: "t87s".into(),
            default_ttl: Ok(Duration::from_secs(30)),
            default_grace: Ok(None),
            refresh_backoff: Ok(Duration::from_secs(1)),
            lease_timeout: Ok(Duration::from_secs(5)),
            max_value_bytes: None,
            verify_percent: 0.1,
        }
    }

    pub(crate) fn resolved(self) -> Settings<Postcard> {
        // The defaults above are all valid.
        self.resolve()
            .unwrap_or_else(|_| unreachable!("default options are valid"))
    }
}

impl<C: Codec> PrimitivesBuilder<C> {
    /// The namespace of this cache's keys and markers (default `t87s`).
    ///
    /// ```
    /// let cache = t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).prefix("app").build()?;
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
    /// t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).default_ttl(std::time::Duration::from_secs(60)).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn default_ttl(mut self, ttl: impl IntoDuration) -> Self {
        self.default_ttl = duration_option("default_ttl", ttl);
        self
    }

    /// Grace when a query names none (default: none).
    ///
    /// ```
    /// t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).default_grace("1h").build()?;
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
    /// t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).refresh_backoff("10s").build()?;
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
    /// t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).lease_timeout("3s").build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn lease_timeout(mut self, timeout: impl IntoDuration) -> Self {
        self.lease_timeout = duration_option("lease_timeout", timeout);
        self
    }

    /// The largest value (its codec encoding, in bytes) the cache stores
    /// (default: no limit). A query whose value is larger still returns it,
    /// stores nothing and reports [`EventKind::NotStored`](crate::EventKind::NotStored); `set` returns
    /// [`Error::ValueTooLarge`](crate::Error::ValueTooLarge).
    ///
    /// ```
    /// t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).max_value_bytes(64 * 1024).build()?;
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
    /// assert!(t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).verify_percent(2.0).build().is_err());
    /// ```
    pub fn verify_percent(mut self, fraction: f64) -> Self {
        self.verify_percent = fraction;
        self
    }

    /// The time source (default: the system clock).
    ///
    /// ```
    /// t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).clock(t87s::ManualClock::new(0)).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Time::of(clock);
        self
    }

    /// Receives every [`Event`](crate::Event).
    ///
    /// ```
    /// struct Quiet;
    /// impl t87s::Observer for Quiet { fn on_event(&self, _: &t87s::Event<'_>) {} }
    /// t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).observer(Quiet).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn observer(mut self, observer: impl Observer) -> Self {
        self.observer = Arc::new(observer);
        self.observed = true;
        self
    }

    /// The codec for adapters that store bytes (default [`Postcard`]).
    ///
    /// ```
    /// let cache: t87s::engine::Primitives<t87s::Postcard> =
    ///     t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).codec(t87s::Postcard).build()?;
    /// # Ok::<(), t87s::ConfigError>(())
    /// ```
    pub fn codec<C2: Codec>(self, codec: C2) -> PrimitivesBuilder<C2> {
        PrimitivesBuilder {
            adapter: self.adapter,
            codec,
            clock: self.clock,
            observer: self.observer,
            observed: self.observed,
            memory: self.memory,
            #[cfg(feature = "redis")]
            near_copy: self.near_copy,
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
    /// let err = t87s::engine::Primitives::builder(t87s::MemoryAdapter::new()).default_grace("1 hour").build().unwrap_err();
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
            #[cfg(feature = "redis")]
            near_copy: self.near_copy,
            near: self.adapter.keeps_objects(),
            adapter: self.adapter,
            codec: self.codec,
            clock: self.clock,
            observer: self.observer,
            observed: self.observed,
            memory: self.memory,
            prefix: self.prefix,
            default_ttl_ms: millis(self.default_ttl?),
            default_grace_ms: self.default_grace?.map(millis),
            refresh_backoff_ms: millis(self.refresh_backoff?),
            lease_timeout: ConfigError::within(
                "lease_timeout",
                self.lease_timeout?,
                Duration::from_millis(1),
                Duration::from_secs(3600),
            )?,
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
