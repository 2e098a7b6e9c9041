//! [`RedisAdapterBuilder`]: connection options, checked at connect.

use std::fmt;
use std::time::Duration;

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

    /// Checks the options (a `timeout` between 1 ms and 10 minutes, a
    /// `marker_ttl` between 1 s and 10 years: [`ConfigError`]s otherwise),
    /// connects, checks the eviction policy, and returns the adapter.
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
        Ok(self.connect_checked().await?)
    }

    async fn connect_checked(self) -> Result<RedisAdapter, AdapterError> {
        let redacted = self.urls.first().map(|u| redact(u)).unwrap_or_default();
        let fail = |what: &str, e: RedisError| {
            AdapterError::with_source(format!("could not {what} redis at {redacted}"), e)
        };
        let timed_out = || {
            AdapterError::new(format!(
                "connecting to redis at {redacted} timed out after {:?}",
                self.timeout
            ))
        };
        let (conn, masters) = if self.cluster {
            let client = ClusterClient::builder(self.urls.clone())
                .connection_timeout(self.timeout)
                .response_timeout(self.timeout)
                .build()
                .map_err(|e| fail("configure", e))?;
            let mut conn = tokio::time::timeout(self.timeout * 8, client.get_async_connection())
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| fail("connect to", e))?;
            let seed = self.urls.first().cloned().unwrap_or_default();
            let masters = cluster_masters(&mut conn, &seed)
                .await
                .map_err(|e| fail("list the masters of", e))?;
            (Conn::Cluster(conn), masters)
        } else {
            let url = self.urls.first().cloned().unwrap_or_default();
            let client =
                redis::Client::open(url.as_str()).map_err(|e| fail("parse the url of", e))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(self.timeout))
                .set_response_timeout(Some(self.timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(1));
            let conn = tokio::time::timeout(
                self.timeout * 8,
                client.get_connection_manager_with_config(config),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| fail("connect to", e))?;
            (
                Conn::Single(conn),
                vec![client.get_connection_info().clone()],
            )
        };
        let mut adapter = RedisAdapter {
            inner: Arc::new(Inner {
                conn,
                prefix: self.prefix,
                timeout: self.timeout,
                marker_ttl_ms: u64::try_from(self.marker_ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1),
                redacted,
                eviction_warning: None,
                masters,
            }),
        };
        let warning = eviction_warning(&adapter).await;
        if let Some(text) = &warning {
            tracing::warn!(target: "t87s", "{text}");
        }
        if let Some(inner) = Arc::get_mut(&mut adapter.inner) {
            inner.eviction_warning = warning;
        }
        Ok(adapter)
    }
}

/// `maxmemory` set with an evicting policy: markers can be evicted.
async fn eviction_warning(adapter: &RedisAdapter) -> Option<String> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg("maxmemory*");
    // Managed services may refuse CONFIG: then we cannot tell, and say nothing.
    let pairs: Vec<String> = adapter.run("config check", &cmd).await.ok()?;
    let get = |name: &str| {
        pairs
            .chunks(2)
            .find(|kv| kv.first().map(String::as_str) == Some(name))
            .and_then(|kv| kv.get(1).cloned())
    };
    let maxmemory = get("maxmemory").unwrap_or_default();
    let policy = get("maxmemory-policy").unwrap_or_default();
    if maxmemory != "0" && !maxmemory.is_empty() && policy != "noeviction" {
        Some(format!(
            "redis maxmemory-policy is `{policy}` with maxmemory {maxmemory}: evicting an invalidation marker can serve a stale entry; use `noeviction`"
        ))
    } else {
        None
    }
}

/// Every master of a Cluster, as connection infos carrying the seed's credentials.
async fn cluster_masters(
    conn: &mut ClusterConnection,
    seed: &str,
) -> Result<Vec<redis::ConnectionInfo>, RedisError> {
    let nodes: String = redis::cmd("CLUSTER").arg("NODES").query_async(conn).await?;
    let seed_info = redis::IntoConnectionInfo::into_connection_info(seed)?;
    let mut masters = Vec::new();
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            continue;
        }
        let host_port = addr.split('@').next().unwrap_or(addr);
        let Some((host, port)) = host_port.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let mut info = seed_info.clone();
        info = info.set_addr(redis::ConnectionAddr::Tcp(host.to_owned(), port));
        masters.push(info);
    }
    Ok(masters)
}
