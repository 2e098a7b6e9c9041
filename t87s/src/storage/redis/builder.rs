//! [`RedisAdapterBuilder`]: connection options, checked at connect.

use std::fmt;
use std::time::Duration;

use super::link::Target;
use super::*;
use crate::error::ConfigError;

/// Options for a [`RedisAdapter`].
///
/// ```no_run
/// # async fn run() -> Result<(), t87s::Error> {
/// let adapter = t87s::RedisAdapter::builder("redis://:secret@127.0.0.1:6379")
///     .prefix("blog")
///     .timeout(std::time::Duration::from_millis(50))
///     .marker_ttl(std::time::Duration::from_secs(86_400))
///     .connect()
///     .await?;
/// assert!(!format!("{adapter:?}").contains("secret"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisAdapterBuilder {
    urls: Vec<String>,
    cluster: bool,
    prefix: String,
    timeout: Duration,
    marker_ttl: Duration,
    breaker_failures: u32,
    breaker_cooldown: Duration,
    near: Option<NearCache>,
    client_tracking: bool,
}

impl fmt::Debug for RedisAdapterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapterBuilder")
            .field(
                "urls",
                &self.urls.iter().map(|u| redact(u)).collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("marker_ttl", &self.marker_ttl)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("near", &self.near)
            .field("client_tracking", &self.client_tracking)
            .finish()
    }
}

impl RedisAdapterBuilder {
    pub(super) fn new(urls: Vec<String>, cluster: bool) -> Self {
        Self {
            urls,
            cluster,
            prefix: "t87s".into(),
            timeout: DEFAULT_TIMEOUT,
            marker_ttl: DEFAULT_MARKER_TTL,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(1),
            near: None,
            client_tracking: true,
        }
    }

    /// The prefix of every key this adapter writes (default `t87s`). `clear`
    /// removes exactly the keys under it.
    ///
    /// ```
    /// let builder = t87s::RedisAdapter::builder("redis://127.0.0.1:6379").prefix("blog");
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The most any command may take (default 250ms). Past it a query runs its
    /// fetch, and an invalidation returns an error.
    ///
    /// ```
    /// let builder = t87s::RedisAdapter::builder("redis://127.0.0.1:6379").timeout(std::time::Duration::from_millis(50));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a marker lives (default 7 days). Entries never live longer
    /// than this in Redis (their `PX` is capped), so a marker always outlives
    /// what it covers.
    ///
    /// ```
    /// let builder = t87s::RedisAdapter::builder("redis://127.0.0.1:6379").marker_ttl(std::time::Duration::from_secs(86_400));
    /// ```
    pub fn marker_ttl(mut self, ttl: Duration) -> Self {
        self.marker_ttl = ttl;
        self
    }

    /// The circuit breaker: after `failures` consecutive outage errors (a
    /// timeout, a refused or dropped connection) commands are not tried for
    /// `cooldown`, so a query costs no wait while Redis is down or frozen
    /// (it answers from the fetch); then one command probes, and the first
    /// success closes the breaker. Default: 3 failures, 1 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// let builder = t87s::RedisAdapter::builder("redis://127.0.0.1:6379")
    ///     .breaker(5, Duration::from_millis(500));
    /// ```
    pub fn breaker(mut self, failures: u32, cooldown: Duration) -> Self {
        self.breaker_failures = failures;
        self.breaker_cooldown = cooldown;
        self
    }

    /// Keeps an in-process copy of entries, served with no I/O and kept
    /// coherent across processes (see [`NearCache`]). Every process that
    /// invalidates the same prefix should have one: an invalidation from a
    /// process without one still reaches the near caches, but in strict
    /// mode it waits for their leases to run out instead of their
    /// acknowledgements.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), t87s::Error> {
    /// let adapter = t87s::RedisAdapter::builder("redis://127.0.0.1:6379")
    ///     .near_cache(t87s::NearCache::new())
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn near_cache(mut self, near: NearCache) -> Self {
        self.near = Some(near);
        self
    }

    /// Whether hits on one server read their entry alone (the default:
    /// `true`). This process keeps the floor and the markers it read, and
    /// Redis reports every change to them on a connection of the adapter's
    /// own (RESP3, `CLIENT TRACKING ON BCAST` for the prefixes of the
    /// markers and of the floor), so a hit's command is one `GET` instead
    /// of an `MGET` of the entry, the floor and every marker, and a hit is
    /// never stale for it. A server that refuses tracking (older than Redis
    /// 6, some proxies, an ACL without `CLIENT`) is asked once, with a
    /// `tracing` warning; `false` never asks. A Cluster reads every marker
    /// each time.
    ///
    /// ```
    /// // Behind a proxy that does not pass RESP3 pushes on.
    /// let builder = t87s::RedisAdapter::builder("redis://127.0.0.1:6379").client_tracking(false);
    /// ```
    pub fn client_tracking(mut self, on: bool) -> Self {
        self.client_tracking = on;
        self
    }

    /// Checks the options (a `timeout` between 1 ms and 10 minutes, a
    /// `marker_ttl` between 1 s and 10 years, a breaker of at least one
    /// failure and a cooldown of 1 ms to 10 minutes: [`ConfigError`]s
    /// otherwise; a URL that does not parse is an error too) and returns the
    /// adapter.
    ///
    /// The connection is made on first use, and tried once here: when Redis
    /// is down the adapter is returned all the same (with a `tracing`
    /// warning), queries answer from their fetch, and the adapter connects
    /// by itself once Redis is up. The eviction policy is checked on the
    /// first connection.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), t87s::Error> {
    /// let adapter = t87s::RedisAdapter::builder("redis://127.0.0.1:6379").connect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(self) -> Result<RedisAdapter, crate::Error> {
        // Values that cannot work fail here, not in a request.
        ConfigError::within(
            "timeout",
            self.timeout,
            Duration::from_millis(1),
            Duration::from_secs(600),
        )?;
        ConfigError::within(
            "marker_ttl",
            self.marker_ttl,
            Duration::from_secs(1),
            Duration::from_secs(10 * 365 * 24 * 3600),
        )?;
        ConfigError::within(
            "breaker cooldown",
            self.breaker_cooldown,
            Duration::from_millis(1),
            Duration::from_secs(600),
        )?;
        if self.breaker_failures == 0 {
            return Err(ConfigError::ZeroCapacity("breaker failures").into());
        }
        let near = self.near.as_ref().map(NearCache::build).transpose()?;
        let redacted = self.urls.first().map(|u| redact(u)).unwrap_or_default();
        for url in &self.urls {
            redis::IntoConnectionInfo::into_connection_info(url.as_str()).map_err(|e| {
                AdapterError::with_source(format!("could not parse the redis url {redacted}"), e)
            })?;
        }
        let subscriber = match (&near, self.urls.first()) {
            (Some(_), Some(url)) => Some(redis::Client::open(url.as_str()).map_err(|e| {
                AdapterError::with_source(format!("could not parse the redis url {redacted}"), e)
            })?),
            _ => None,
        };
        let timeout = self.timeout;
        let names = near::Names::new(&self.prefix);
        let heads = Heads::new(&self.prefix);
        let tracked = match (self.client_tracking && !self.cluster, self.urls.first()) {
            (true, Some(url)) => {
                // Both kinds of marker (`P:m:p:`, `P:m:x:`), and the floor.
                let prefixes = [concat(&[&self.prefix, ":m:"]), heads.floor.clone()];
                Some(Tracked::new(url, prefixes, timeout).map_err(|e| {
                    AdapterError::with_source(
                        format!("could not parse the redis url {redacted}"),
                        e,
                    )
                })?)
            }
            _ => None,
        };
        let target = Target {
            urls: self.urls,
            cluster: self.cluster,
            timeout: self.timeout,
            redacted,
        };
        let adapter = RedisAdapter {
            inner: Arc::new(Inner {
                link: Link::new(target, self.breaker_failures, self.breaker_cooldown),
                heads,
                prefix: self.prefix,
                marker_ttl_ms: u64::try_from(self.marker_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
                names,
                near: near.map(Arc::new),
                seen: Seen::new(),
                leases: LeaseKeys::new(),
                tracked,
                decoder: crate::decoded::owner_id(),
            }),
        };
        if let (Some(near), Some(client)) = (&adapter.inner.near, subscriber) {
            let task = near::run(
                Arc::downgrade(&adapter.inner),
                Arc::clone(near),
                client,
                timeout,
            );
            near.set_task(tokio::spawn(task).abort_handle());
        }
        if let Err(error) = adapter.inner.link.connected().await {
            tracing::warn!(
                target: "t87s",
                error = %error,
                "redis is not reachable yet: queries answer from their fetch until it is"
            );
        }
        Ok(adapter)
    }
}
