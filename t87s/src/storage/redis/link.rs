//! The link to Redis: connected on first use (an app starts while Redis is
//! down and connects by itself once it is up), every command under the
//! timeout, and a circuit breaker so an outage costs the caller nothing once
//! it is known.
//!
//! The breaker opens after `failures` consecutive outage errors (a timeout,
//! a refused or dropped connection; never a command error such as a wrong
//! type). While open, commands fail at once. After `cooldown`, one command
//! goes through as a probe (the others still fail at once): success closes
//! the breaker, failure opens it for another `cooldown`.

use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
#[cfg(feature = "redis-cluster")]
use redis::cluster::ClusterClient;
#[cfg(feature = "redis-cluster")]
use redis::cluster_async::ClusterConnection;
use redis::RedisError;
use tokio::sync::OnceCell;

use crate::error::AdapterError;

/// A live connection: one node (reconnecting by itself) or a Cluster.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "redis-cluster")]
    Cluster(ClusterConnection),
}

/// Commands go to whichever connection this is (the `match` lives here).
impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            #[cfg(feature = "redis-cluster")]
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}

/// What the first connection learned.
pub(super) struct Connected {
    pub(super) conn: Conn,
    /// Where `clear` scans: every master (one entry on a single node).
    pub(super) masters: Vec<redis::ConnectionInfo>,
}

/// How to connect, fixed at build.
pub(super) struct Target {
    pub(super) urls: Vec<String>,
    pub(super) cluster: bool,
    pub(super) timeout: Duration,
    pub(super) redacted: String,
}

pub(super) struct Link {
    target: Target,
    connected: OnceCell<Connected>,
    breaker: Breaker,
    /// Set by the first connection (see `RedisAdapter::eviction_warning`).
    pub(super) eviction_warning: OnceLock<Option<String>>,
}

impl Link {
    pub(super) fn new(target: Target, failures: u32, cooldown: Duration) -> Self {
        Self {
            target,
            connected: OnceCell::new(),
            breaker: Breaker::new(failures, cooldown),
            eviction_warning: OnceLock::new(),
        }
    }

    pub(super) fn timeout(&self) -> Duration {
        self.target.timeout
    }

    pub(super) fn redacted(&self) -> &str {
        &self.target.redacted
    }

    pub(super) fn is_cluster(&self) -> bool {
        self.target.cluster
    }

    /// The connection, made on first use (then the eviction policy is
    /// checked, once).
    pub(super) async fn connected(&self) -> Result<&Connected, AdapterError> {
        if let Some(connected) = self.connected.get() {
            return Ok(connected);
        }
        // Boxed: every command's future holds this one, and only the first
        // needs room for connecting.
        Box::pin(self.connected.get_or_try_init(|| async {
            let connected = self.target.connect().await?;
            let check = eviction_warning(connected.conn.clone());
            let warning = tokio::time::timeout(self.target.timeout, check)
                .await
                .ok()
                .flatten();
            if let Some(text) = &warning {
                tracing::warn!(target: "t87s", "{text}");
            }
            let _ = self.eviction_warning.set(warning);
            Ok(connected)
        }))
        .await
    }

    /// Runs `command` on the connection, under the timeout and the breaker.
    pub(super) async fn call<T, F, Fut>(&self, what: &str, command: F) -> Result<T, AdapterError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = Result<T, RedisError>>,
    {
        self.admit(what)?;
        let outcome = match self.connected().await {
            Ok(connected) => {
                let command = command(connected.conn.clone());
                self.sorted(
                    what,
                    tokio::time::timeout(self.target.timeout, command).await,
                )
            }
            Err(error) => Err(Failure::Outage(error)),
        };
        self.settle(outcome)
    }

    /// Runs `command` (on a connection of the caller's) under the timeout
    /// and the breaker.
    ///
    /// (Each step is a plain function: the future stays the command's and
    /// the timer's size, where nested `async fn`s each held a copy of the
    /// one inside.)
    pub(super) async fn call_on<T>(
        &self,
        what: &str,
        command: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, AdapterError> {
        self.admit(what)?;
        let outcome = self.sorted(
            what,
            tokio::time::timeout(self.target.timeout, command).await,
        );
        self.settle(outcome)
    }

    /// Whether the breaker lets a command be tried.
    fn admit(&self, what: &str) -> Result<(), AdapterError> {
        self.breaker.admit().map_err(|left| {
            AdapterError::new(format!(
                "redis {what} not tried: redis at {} is failing; next try in {left:?}",
                self.target.redacted
            ))
        })
    }

    /// A command's outcome under the timeout, its error sorted.
    fn sorted<T>(
        &self,
        what: &str,
        timed: Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    ) -> Result<T, Failure> {
        match timed {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(self.failure(what, error)),
            Err(_) => Err(Failure::Outage(AdapterError::new(format!(
                "redis {what} timed out after {:?} ({})",
                self.target.timeout, self.target.redacted
            )))),
        }
    }

    /// `outcome`, counted by the breaker.
    fn settle<T>(&self, outcome: Result<T, Failure>) -> Result<T, AdapterError> {
        match outcome {
            Ok(value) => {
                self.breaker.success();
                Ok(value)
            }
            Err(Failure::Outage(error)) => {
                self.breaker.failure();
                Err(error)
            }
            Err(Failure::Command(error)) => {
                // Redis answered: it is up.
                self.breaker.success();
                Err(error)
            }
        }
    }

    fn failure(&self, what: &str, error: RedisError) -> Failure {
        let outage = is_outage(&error);
        let error = AdapterError::with_source(
            format!("redis {what} failed ({})", self.target.redacted),
            error,
        );
        if outage {
            Failure::Outage(error)
        } else {
            Failure::Command(error)
        }
    }
}

/// Whether `error` says Redis is unreachable or too slow (a timeout, a
/// refused or dropped connection), as opposed to an answer (a command
/// error such as a wrong type).
pub(super) fn is_outage(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

enum Failure {
    /// Redis is unreachable or too slow: counts toward the breaker.
    Outage(AdapterError),
    /// Redis answered with an error.
    Command(AdapterError),
}

impl Target {
    async fn connect(&self) -> Result<Connected, AdapterError> {
        let redacted = &self.redacted;
        let fail = |what: &str, e: RedisError| {
            AdapterError::with_source(format!("could not {what} redis at {redacted}"), e)
        };
        let timed_out = || {
            AdapterError::new(format!(
                "connecting to redis at {redacted} timed out after {:?}",
                self.timeout
            ))
        };
        let seed = self.urls.first().cloned().unwrap_or_default();
        #[cfg(feature = "redis-cluster")]
        if self.cluster {
            let client = ClusterClient::builder(self.urls.clone())
                .connection_timeout(self.timeout)
                .response_timeout(self.timeout)
                .build()
                .map_err(|e| fail("configure", e))?;
            let mut conn = tokio::time::timeout(self.timeout * 8, client.get_async_connection())
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| fail("connect to", e))?;
            let masters = cluster_masters(&mut conn, &seed)
                .await
                .map_err(|e| fail("list the masters of", e))?;
            return Ok(Connected {
                conn: Conn::Cluster(conn),
                masters,
            });
        }
        let client = redis::Client::open(seed.as_str()).map_err(|e| fail("parse the url of", e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            // Every command runs under `Link::call`'s timeout already: a
            // second timer per command would cost each hit its setting and
            // clearing.
            .set_response_timeout(None)
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(
            self.timeout * 2,
            client.get_connection_manager_with_config(config),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| fail("connect to", e))?;
        Ok(Connected {
            conn: Conn::Single(conn),
            masters: vec![client.get_connection_info().clone()],
        })
    }
}

/// A warning when the server may evict our keys (`maxmemory` with a policy
/// other than `noeviction`).
async fn eviction_warning(conn: Conn) -> Option<String> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("GET").arg("maxmemory*");
    // Managed services may refuse CONFIG: then we cannot tell, and say nothing.
    let mut conn = conn;
    let pairs: Vec<String> = cmd.query_async(&mut conn).await.ok()?;
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
#[cfg(feature = "redis-cluster")]
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
        let info = seed_info
            .clone()
            .set_addr(redis::ConnectionAddr::Tcp(host.to_owned(), port));
        masters.push(info);
    }
    Ok(masters)
}

/// Consecutive outage errors, and until when commands are not tried. Lock
/// free: a closed breaker costs one atomic load per command.
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds after `epoch` until which the breaker is open; 0: closed.
    open_until: AtomicU64,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn cooldown_ms(&self) -> u64 {
        u64::try_from(self.cooldown.as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a command may go: `Err` with the time left while open.
    fn admit(&self) -> Result<(), Duration> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        // Half-open: the command that moves the deadline on is the one probe;
        // a probe that never reports (its caller went away) is followed by
        // another after one more cooldown.
        let next = now.saturating_add(self.cooldown_ms()).max(1);
        match self
            .open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(self.cooldown),
        }
    }

    fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0
            || self.open_until.load(Ordering::Relaxed) != 0
        {
            self.failures.store(0, Ordering::Release);
            self.open_until.store(0, Ordering::Release);
            tracing::info!(target: "t87s", "redis answers again");
        }
    }

    fn failure(&self) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if failures >= self.threshold {
            let until = self.now_ms().saturating_add(self.cooldown_ms()).max(1);
            let was = self.open_until.swap(until, Ordering::AcqRel);
            if was == 0 {
                tracing::warn!(
                    target: "t87s",
                    failures,
                    "redis is failing: commands are not tried for {:?} at a time",
                    self.cooldown
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Breaker;
    use std::time::Duration;

    #[test]
    fn opens_after_the_threshold_probes_once_and_closes_on_success() {
        let breaker = Breaker::new(3, Duration::from_millis(40));
        breaker.failure();
        breaker.failure();
        assert!(breaker.admit().is_ok(), "two failures: still closed");
        breaker.failure();
        assert!(breaker.admit().is_err(), "three: open");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.admit().is_ok(), "cooled down: one probe");
        assert!(breaker.admit().is_err(), "only one probe at a time");
        breaker.failure();
        assert!(breaker.admit().is_err(), "the probe failed: open again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breaker.admit().is_ok());
        breaker.success();
        assert!(breaker.admit().is_ok() && breaker.admit().is_ok(), "closed");
    }
}
