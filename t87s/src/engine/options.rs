//! Per-call options: [`QueryOptions`] and [`SetOptions`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::tag::TagPath;

/// The `on_refresh` callback: `(old, new, changed)`.
pub type OnRefresh<T> = Arc<dyn Fn(&T, &T, bool) + Send + Sync>;

/// Options of one [`Primitives::query`](crate::engine::Primitives::query).
///
/// Durations are [`Duration`]s; parse strings with
/// [`parse_duration`](crate::parse_duration) so a bad one fails where it is written.
///
/// ```
/// use std::time::Duration;
/// use t87s::engine::QueryOptions;
/// let options = QueryOptions::<String>::new()
///     .ttl(t87s::parse_duration("10m")?)
///     .grace(Duration::from_secs(3600))
///     .on_refresh(|old, new, changed| println!("{old} -> {new} ({changed})"));
/// # Ok::<(), t87s::DurationError>(())
/// ```
pub struct QueryOptions<T> {
    pub(crate) ttl: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) on_refresh: Option<OnRefresh<T>>,
}

impl<T> QueryOptions<T> {
    /// The cache's defaults for ttl and grace, no callback.
    ///
    /// ```
    /// let options = t87s::engine::QueryOptions::<u32>::new();
    /// ```
    pub fn new() -> Self {
        Self {
            ttl: None,
            grace: None,
            on_refresh: None,
        }
    }

    /// How long the value is fresh (default: the cache's `default_ttl`).
    ///
    /// ```
    /// let options = t87s::engine::QueryOptions::<u32>::new().ttl(std::time::Duration::from_secs(60));
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long after the TTL a stale value may still be served while it is
    /// refreshed in the background, or served if the fetch fails (default: the
    /// cache's `default_grace`). `Duration::ZERO` turns grace off.
    ///
    /// ```
    /// let options = t87s::engine::QueryOptions::<u32>::new().grace(std::time::Duration::ZERO); // no grace
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Called after a background refresh with `(old, new, changed)`. A panic
    /// inside is caught and reported to the observer.
    ///
    /// ```
    /// let options = t87s::engine::QueryOptions::<u32>::new().on_refresh(|old, new, changed| {
    ///     if changed { println!("{old} -> {new}") }
    /// });
    /// ```
    pub fn on_refresh(mut self, f: impl Fn(&T, &T, bool) + Send + Sync + 'static) -> Self {
        self.on_refresh = Some(Arc::new(f));
        self
    }
}

impl<T> Default for QueryOptions<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for QueryOptions<T> {
    fn clone(&self) -> Self {
        Self {
            ttl: self.ttl,
            grace: self.grace,
            on_refresh: self.on_refresh.clone(),
        }
    }
}

impl<T> fmt::Debug for QueryOptions<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QueryOptions")
            .field("ttl", &self.ttl)
            .field("grace", &self.grace)
            .field("on_refresh", &self.on_refresh.is_some())
            .finish()
    }
}

/// Options of a raw [`Primitives::set`](crate::engine::Primitives::set).
///
/// ```
/// use std::time::Duration;
/// let tag = t87s::engine::TagPath::new(["users", "1"])?;
/// let options = t87s::engine::SetOptions::new([tag]).ttl(Duration::from_secs(60));
/// # Ok::<(), t87s::engine::TagError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SetOptions {
    pub(crate) tags: Arc<[TagPath]>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) grace: Option<Duration>,
}

impl SetOptions {
    /// Store under `tags`, with the cache's default ttl and grace.
    ///
    /// ```
    /// let options = t87s::engine::SetOptions::new([t87s::engine::TagPath::new(["users", "1"])?]);
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn new(tags: impl IntoIterator<Item = TagPath>) -> Self {
        Self {
            tags: tags.into_iter().collect(),
            ttl: None,
            grace: None,
        }
    }

    /// How long the value is fresh.
    ///
    /// ```
    /// let options = t87s::engine::SetOptions::new([t87s::engine::TagPath::new(["t"])?]).ttl(std::time::Duration::from_secs(60));
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How long a stale value may still be served (`Duration::ZERO`: none).
    ///
    /// ```
    /// let options = t87s::engine::SetOptions::new([t87s::engine::TagPath::new(["t"])?]).grace(std::time::Duration::from_secs(60));
    /// # Ok::<(), t87s::engine::TagError>(())
    /// ```
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }
}
