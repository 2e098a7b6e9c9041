//! The near cache: see [`NearCache`] for the protocol and the argument.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures_util::future::Either;
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::entry::StoredEntry;
use crate::error::{AdapterError, ConfigError};
use crate::key::KeyProbe;
use crate::storage::memory::MemoryAdapter;
use crate::storage::{EntryKey, InPlace, MarkerKey, MarkerScope, MarkerSet, Read};

const DEFAULT_LEASE: Duration = Duration::from_secs(3);
const DEFAULT_MAX_ENTRIES: usize = 10_000;
const MIN_LEASE: Duration = Duration::from_millis(100);
const MAX_LEASE: Duration = Duration::from_secs(600);

/// Options of a near cache: an in-process copy of the entries a
/// [`RedisAdapter`](super::RedisAdapter) reads and writes, served with no
/// I/O while this process holds its lease.
///
/// Entries are served from process memory, kept coherent across
/// processes through Redis, with the promise t87s makes without it: **no
/// stale read after `invalidate` returns**, from any process.
///
/// # The protocol (strict mode)
///
/// Leases for cache coherence (Gray & Cheriton, SOSP 1989), held in Redis.
///
/// - **Versions.** A near copy (L1) is a [`MemoryAdapter`] whose entries and
///   markers carry the shared store's versions. An entry is stale when a
///   marker of its tags (or the L1 floor) is at least its version, the rule
///   of the shared store.
/// - **Subscription.** Each process subscribes to the prefix's invalidation
///   channel. Every invalidation, from any process, bumps the counter, stamps
///   the markers and publishes `version markers` in one script: a message
///   can never be seen before the markers it carries are in Redis.
/// - **Applying.** A process applies each message to its L1, then publishes
///   an acknowledgement (`id version`) on the invalidator's own channel. Messages arrive in order on one
///   connection and versions are consecutive, so a gap (a lost message, a
///   restarted counter) is seen: the L1 floor rises to the new version.
/// - **Lease.** A process serves from L1 only while it holds a lease:
///   it sends a renewal every third of the lease; Redis grants it, stamping
///   an expiry by its own clock in a sorted set, only if the process has
///   applied every invalidation up to the current counter (a renewal that
///   finds it behind is refused). The process counts its lease from *before*
///   it sent the renewal, on its own monotonic clock, and serves for three
///   quarters of it: the granted expiry is later, by Redis's clock, than the
///   process stops serving, with a quarter of the lease for clock drift.
///   Only drift is assumed bounded; no two clocks are compared.
/// - **Joining.** After (re)subscribing, a process reads the counter and
///   raises its L1 floor to it before it serves: anything it put in L1 while
///   it could miss messages (entries read from Redis while disconnected) is
///   stale unless no invalidation happened since it was read.
/// - **Invalidating.** The script that publishes also returns every live
///   lease and Redis's time. `invalidate` applies the markers to its own L1,
///   then waits, for each other live process, until it acknowledged this
///   version or its lease has run out (the expiry minus Redis's time, counted
///   on the invalidator's monotonic clock from after the script answered, so
///   never shorter than the real remainder). Then it returns.
///
/// Why no stale read is possible after `invalidate` returns: take a process
/// P that could serve an entry the invalidation covers. If P held a lease when
/// the script ran, the invalidator waited for P's acknowledgement (P applied
/// the markers first) or for P's lease to run out (P stopped serving before,
/// by its own clock, and cannot renew without having applied this version).
/// If P held no lease then, P serves nothing until it renews, which requires
/// having applied this version, or rejoins, which floors its L1 at a counter
/// that includes it. An entry P puts in L1 after that carries a version read
/// from Redis; if it was read before the invalidation, the marker is as new
/// as it; if after, Redis already answered with the new markers.
///
/// Faults this covers: a process killed or frozen (its lease runs out; a
/// frozen process's clock keeps running, so when thawed it renews before it
/// serves), a subscription delayed or cut (renewals are refused while
/// behind; a cut stops serving at once and rejoins with a floor), a lost
/// message or restarted counter (a version gap floors L1), Redis restarted
/// (the subscription drops: rejoin). Not covered: a host whose monotonic
/// clock stops while real time goes on (a suspended VM) for longer than a
/// quarter lease.
///
/// # On a Cluster
///
/// The subscription is on the first node given; Redis broadcasts every
/// `PUBLISH` to all nodes over the cluster bus, in order per sender. The
/// counter, the floor and the leases share one slot (`{P}`), so the script
/// that bumps the counter also publishes and reads the leases. The markers
/// live in other slots and are stamped after the script, so its message
/// carries none: each process floors its whole L1 at the new version, and
/// entries read from Redis before the markers land are below that floor.
/// The argument above holds with "the markers it carries" read as "every
/// marker". If the first node is down, the near cache cannot subscribe and
/// the process serves from Redis only until it can.
///
/// # What it reports
///
/// A hit from L1 is [`EventKind::NearHit`](crate::EventKind::NearHit), a hit
/// of Redis [`EventKind::Hit`](crate::EventKind::Hit). Joining, losing the
/// subscription, falling behind and a gap are `info` lines (and, with the
/// `metrics` feature, `t87s_near_state_changes_total{state}`); an
/// invalidation that waits on a silent process logs which one and for how
/// long (`t87s_near_wait_seconds`, `t87s_near_silent_peers_total`).
///
/// # Eventual mode
///
/// `invalidate` returns after the script, without waiting: other processes
/// drop the entry when the message reaches them (about one round trip later
/// while they are connected; at most a lease later when their subscription
/// is cut, since they stop serving when the lease runs out).
///
/// ```no_run
/// use std::time::Duration;
/// use t87s::{NearCache, RedisAdapter};
/// # async fn run() -> Result<(), t87s::Error> {
/// let adapter = RedisAdapter::builder("redis://127.0.0.1:6379")
///     .near_cache(NearCache::new().max_entries(50_000).lease(Duration::from_secs(2)))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NearCache {
    pub(super) max_entries: usize,
    pub(super) lease: Duration,
    pub(super) mode: NearMode,
}

/// What `invalidate` waits for when processes keep near copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NearMode {
    /// `invalidate` returns once every process that could serve an affected
    /// entry from memory dropped it or lost its lease (the default).
    Strict,
    /// `invalidate` returns once the invalidation is in Redis and published;
    /// other processes drop their copies when the message arrives.
    Eventual,
}

impl Default for NearCache {
    fn default() -> Self {
        Self::new()
    }
}

impl NearCache {
    /// Strict mode, 10,000 entries, a 3 s lease.
    ///
    /// ```
    /// let near = t87s::NearCache::new();
    /// assert_eq!(near.mode(), t87s::NearMode::Strict);
    /// ```
    pub fn new() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            lease: DEFAULT_LEASE,
            mode: NearMode::Strict,
        }
    }

    /// At most `n` entries in memory (the least useful are evicted).
    ///
    /// ```
    /// let near = t87s::NearCache::new().max_entries(100_000);
    /// ```
    pub fn max_entries(mut self, n: usize) -> Self {
        self.max_entries = n;
        self
    }

    /// How long a renewal lets this process serve from memory (it serves
    /// three quarters of it, renewing every third). It bounds how long a
    /// strict `invalidate` waits for a process that died or froze, and how
    /// long a process may serve without hearing from Redis. Between 100 ms
    /// and 10 minutes; default 3 s.
    ///
    /// ```
    /// let near = t87s::NearCache::new().lease(std::time::Duration::from_secs(1));
    /// ```
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// `invalidate` returns without waiting for other processes (see
    /// [`NearMode::Eventual`]).
    ///
    /// ```
    /// let near = t87s::NearCache::new().eventual();
    /// assert_eq!(near.mode(), t87s::NearMode::Eventual);
    /// ```
    pub fn eventual(mut self) -> Self {
        self.mode = NearMode::Eventual;
        self
    }

    /// The mode `invalidate` runs in.
    ///
    /// ```
    /// assert_eq!(t87s::NearCache::new().mode(), t87s::NearMode::Strict);
    /// ```
    pub fn mode(&self) -> NearMode {
        self.mode
    }

    pub(super) fn build(&self) -> Result<Near, ConfigError> {
        ConfigError::within("near cache lease", self.lease, MIN_LEASE, MAX_LEASE)?;
        let l1 = MemoryAdapter::builder()
            .max_entries(self.max_entries)
            .build()?;
        Ok(Near {
            l1,
            id: fastrand::u64(1..),
            lease_ms: u64::try_from(self.lease.as_millis()).unwrap_or(u64::MAX),
            strict: self.mode == NearMode::Strict,
            serving_until: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            acks: Mutex::new(HashMap::new()),
            acked: Notify::new(),
            task: Mutex::new(None),
        })
    }
}

/// A near cache at work: the L1 copy, this process's lease, and what other
/// processes acknowledged.
pub(super) struct Near {
    pub(super) l1: MemoryAdapter,
    /// This process's name among the peers.
    pub(super) id: u64,
    pub(super) lease_ms: u64,
    pub(super) strict: bool,
    /// Until when (coarse clock ticks) L1 may serve; 0: not serving.
    serving_until: AtomicU64,
    /// The newest invalidation applied with none missed before it.
    applied: AtomicU64,
    /// The newest version each peer acknowledged.
    acks: Mutex<HashMap<u64, u64>>,
    acked: Notify,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

/// A near cache's state, for health checks and tests
/// ([`RedisAdapter::near_status`](super::RedisAdapter::near_status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NearStatus {
    /// Whether this process holds its lease and serves from memory now.
    pub serving: bool,
    /// The newest invalidation (a Redis version) applied with none missed.
    pub applied: u64,
    /// Entries held in memory (fresh or not).
    pub entries: usize,
}

/// What travels on the invalidation channel after the version: who
/// invalidated (the near cache to acknowledge to; 0 for a process without
/// one) and the markers (none: everything).
#[derive(Serialize, Deserialize)]
struct Message<'a> {
    from: u64,
    #[serde(borrow)]
    markers: Vec<(bool, &'a str, &'a str)>,
}

/// A live peer, as the invalidation script saw it: its id and lease expiry
/// (Redis ms).
pub(super) type Peer = (u64, u64);

impl Near {
    /// The coarse monotonic clock (`CLOCK_MONOTONIC_COARSE`, a few ns to
    /// read, a tick of 1 to 4 ms behind the precise clock): a lease counted
    /// from an earlier tick ends earlier, and serving up to a tick late is
    /// inside the quarter lease kept for drift.
    fn now_ns(&self) -> u64 {
        coarsetime::Instant::now_without_cache_update().as_ticks()
    }

    /// Whether this process may serve from L1 now.
    #[inline]
    pub(super) fn serving(&self) -> bool {
        let until = self.serving_until.load(Ordering::Acquire);
        until != 0 && self.now_ns() < until
    }

    fn stop_serving(&self) {
        self.serving_until.store(0, Ordering::Release);
    }

    /// A granted renewal sent at `sent_ns`: serve for three quarters of the
    /// lease from then.
    fn serve_from(&self, sent_ns: u64) {
        let serve_ns =
            coarsetime::Duration::from_millis(self.lease_ms.saturating_mul(3) / 4).as_ticks();
        self.serving_until
            .store(sent_ns.saturating_add(serve_ns).max(1), Ordering::Release);
    }

    pub(super) fn status(&self) -> NearStatus {
        NearStatus {
            serving: self.serving(),
            applied: self.applied(),
            entries: self.l1.entry_count(),
        }
    }

    pub(super) fn applied(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// An L1 answer, only for an entry that is fresh by time and by markers.
    /// Its versions are 0: an L1 answer is never the base of a write (the
    /// engine stores a fetch under the version its read returned, and a
    /// version of 0 is stale at once).
    pub(super) fn read_now(&self, key: EntryKey<'_>, now_ms: u64) -> Option<Read> {
        if !self.serving() {
            return None;
        }
        let first = self.l1.read_text(key, MarkerSet::empty(), now_ms);
        let entry = first.entry?;
        if now_ms >= entry.expires_at || first.newest_marker >= entry.version {
            return None;
        }
        // No invalidation applied since its version, or since it was last
        // checked: no marker can be as new as it.
        if entry.must_check(first.version) {
            let markers = MarkerSet::new(key.prefix, &entry.tags);
            let second = self.l1.read_text(key, markers, now_ms);
            if second.newest_marker >= entry.version {
                return None;
            }
            entry.checked(second.newest_marker, first.version);
        }
        Some(Read::new(Some(entry), 0, 0))
    }

    /// [`read_now`](Self::read_now) in place: `f` gets the entry where it
    /// lies in L1, only if it may be served (see [`servable`](Self::servable)).
    #[inline]
    pub(super) fn read_in_place<R>(
        &self,
        key: EntryKey<'_>,
        now_ms: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        if !self.serving() {
            return None;
        }
        self.l1
            .text_in_place(key, |read| self.servable(key.prefix, now_ms, read).map(f))
            .flatten()
    }

    /// [`read_in_place`](Self::read_in_place) by a typed call's probe.
    #[inline]
    pub(super) fn probe_in_place<R>(
        &self,
        prefix: &str,
        probe: &KeyProbe<'_>,
        now_ms: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        if !self.serving() {
            return None;
        }
        self.l1
            .probe_in_place(prefix, probe, |read| {
                self.servable(prefix, now_ms, read).map(f)
            })
            .flatten()
    }

    /// The rules of [`read_now`](Self::read_now) for an entry read in place:
    /// fresh by time and by markers, then settled (no version, no floor: an
    /// L1 answer is never the base of a write).
    #[inline(always)]
    fn servable<'a>(&self, prefix: &str, now_ms: u64, read: InPlace<'a>) -> Option<InPlace<'a>> {
        let entry = read.entry;
        if now_ms >= entry.expires_at || read.floor >= entry.version {
            return None;
        }
        // Markers are read only if an invalidation was applied since its
        // version or its last check.
        if entry.must_check(read.version) {
            let newest = read.newest(MarkerSet::new(prefix, &entry.tags));
            if newest >= entry.version {
                return None;
            }
            entry.checked(newest, read.version);
        }
        Some(read.settled())
    }

    pub(super) fn keep(&self, key: EntryKey<'_>, entry: &Arc<StoredEntry>) {
        self.l1.insert(key, Arc::clone(entry));
    }

    /// Applies an invalidation made by this process (its message comes back
    /// too; applying twice is harmless).
    pub(super) fn apply_local(&self, markers: &[MarkerKey<'_>], version: u64) {
        self.l1.invalidate_at(markers, version);
    }

    /// The payload a process publishes with an invalidation: `from` is its
    /// near cache's id (0 without one), `markers` what it invalidated (none:
    /// everything).
    pub(super) fn payload(from: u64, markers: &[MarkerKey<'_>]) -> Result<Vec<u8>, AdapterError> {
        let message = Message {
            from,
            markers: markers
                .iter()
                .map(|m| (m.scope == MarkerScope::Prefix, m.prefix, m.path))
                .collect(),
        };
        postcard::to_allocvec(&message)
            .map_err(|e| AdapterError::with_source("could not encode an invalidation message", e))
    }

    /// A message from the invalidation channel: `version payload`. Returns
    /// the version to acknowledge, and to whom (0: no one).
    fn on_invalidation(&self, bytes: &[u8]) -> Option<(u64, u64)> {
        let space = bytes.iter().position(|b| *b == b' ')?;
        let version = super::parse_u64(bytes.get(..space)?)?;
        let message = bytes
            .get(space + 1..)
            .and_then(|payload| postcard::from_bytes::<Message<'_>>(payload).ok());
        let from = message.as_ref().map_or(0, |m| m.from);
        let markers: Vec<MarkerKey<'_>> = match &message {
            Some(message) => message
                .markers
                .iter()
                .map(|(prefix, cache, path)| MarkerKey {
                    prefix: cache,
                    path,
                    scope: if *prefix {
                        MarkerScope::Prefix
                    } else {
                        MarkerScope::Exact
                    },
                })
                .collect(),
            // Not ours to read: as if everything was invalidated.
            None => Vec::new(),
        };
        let applied = self.applied();
        if version > applied.saturating_add(1) {
            // A gap: a message was lost or the counter started again. Every
            // entry L1 holds may be stale.
            tracing::info!(target: "t87s", applied, version, "near cache: invalidation messages missed; L1 floored");
            #[cfg(feature = "metrics")]
            crate::metrics::near_state("gap");
            self.l1.invalidate_at(&[], version);
        } else {
            self.l1.invalidate_at(&markers, version);
        }
        if version > applied {
            self.applied.store(version, Ordering::Release);
        }
        Some((self.applied(), from))
    }

    fn on_ack(&self, bytes: &[u8]) {
        let Some(space) = bytes.iter().position(|b| *b == b' ') else {
            return;
        };
        let (Some(peer), Some(version)) = (
            bytes.get(..space).and_then(super::parse_u64),
            bytes.get(space + 1..).and_then(super::parse_u64),
        ) else {
            return;
        };
        let mut acks = self.acks.lock();
        let held = acks.entry(peer).or_insert(0);
        *held = (*held).max(version);
        drop(acks);
        self.acked.notify_waiters();
    }

    /// Waits until every peer in `peers` but this process acknowledged
    /// `version` or its lease ran out. `redis_now` is Redis's time when the
    /// script read the leases; `answered` is when its answer arrived here.
    pub(super) async fn wait_for_peers(
        near: Option<&Near>,
        version: u64,
        redis_now: u64,
        peers: &[Peer],
        answered: Instant,
    ) {
        let own = near.map_or(0, |n| n.id);
        let mut pending: Vec<(u64, Instant)> = peers
            .iter()
            .filter(|(id, _)| *id != own)
            .map(|(id, expiry)| {
                // Capped at the longest lease: a damaged score never makes
                // an invalidation wait longer.
                let left = Duration::from_millis(expiry.saturating_sub(redis_now)).min(MAX_LEASE);
                (*id, answered.checked_add(left).unwrap_or(answered))
            })
            .collect();
        // Only waits for other processes are timed (an invalidation with no
        // other live near cache waits for nothing).
        #[cfg(feature = "metrics")]
        let others = !pending.is_empty();
        let mut logged = false;
        let mut silent = Vec::new();
        loop {
            let notified = near.map(|n| n.acked.notified());
            tokio::pin!(notified);
            if let Some(n) = notified.as_mut().as_pin_mut() {
                n.enable();
            }
            let now = Instant::now();
            pending.retain(|(id, deadline)| {
                if near.is_some_and(|n| n.acks.lock().get(id).is_some_and(|v| *v >= version)) {
                    return false;
                }
                if now >= *deadline {
                    silent.push(*id);
                    return false;
                }
                true
            });
            let Some(next) = pending.iter().map(|(_, d)| *d).min() else {
                let waited = now.saturating_duration_since(answered);
                if !silent.is_empty() {
                    tracing::info!(target: "t87s", version, ?silent, ?waited, "invalidation waited out near-cache peers that neither acknowledged nor renewed");
                }
                #[cfg(feature = "metrics")]
                if others {
                    crate::metrics::near_waited(waited, silent.len());
                }
                return;
            };
            if !logged && next.saturating_duration_since(now) > Duration::from_millis(50) {
                logged = true;
                let silent: Vec<u64> = pending.iter().map(|(id, _)| *id).collect();
                tracing::info!(target: "t87s", version, ?silent, wait = ?next.saturating_duration_since(now), "invalidation waits for near-cache peers to acknowledge or lose their lease");
            }
            let sleep = std::pin::pin!(tokio::time::sleep_until(next.into()));
            match notified.as_pin_mut() {
                Some(n) => {
                    futures_util::future::select(n, sleep).await;
                }
                None => sleep.await,
            }
        }
    }

    pub(super) fn set_task(&self, handle: tokio::task::AbortHandle) {
        *self.task.lock() = Some(handle);
    }

    pub(super) fn stop(&self) {
        self.stop_serving();
        if let Some(task) = self.task.lock().take() {
            task.abort();
        }
    }
}

/// The names the near cache uses under a prefix: the peers' leases (in the
/// counter's slot), the invalidation channel and each near cache's
/// acknowledgement channel.
pub(super) struct Names {
    pub(super) peers: String,
    pub(super) channel: String,
    acks: String,
}

impl Names {
    pub(super) fn new(prefix: &str) -> Self {
        Self {
            peers: format!("{{{prefix}}}:n"),
            channel: format!("{{{prefix}}}:n:i"),
            acks: format!("{{{prefix}}}:n:a:"),
        }
    }

    /// The channel where the near cache `id` hears acknowledgements of its
    /// invalidations: each goes to its invalidator alone, so an
    /// invalidation with N live peers is N messages, not N × N.
    pub(super) fn acks_of(&self, id: u64) -> String {
        format!("{}{id}", self.acks)
    }
}

/// The background task of one near cache: subscribe, join, then apply
/// messages and renew the lease until the subscription drops; again and
/// again, until the adapter is gone.
pub(super) async fn run(
    adapter: Weak<super::Inner>,
    near: Arc<Near>,
    client: redis::Client,
    timeout: Duration,
) {
    let every = Duration::from_millis(near.lease_ms / 3).max(Duration::from_millis(10));
    let mut backoff = Duration::from_millis(50);
    loop {
        near.stop_serving();
        let Some(names) = adapter
            .upgrade()
            .map(|inner| (inner.names.channel.clone(), inner.names.acks_of(near.id)))
        else {
            return;
        };
        let (channel, acks) = names;
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            pubsub.subscribe(&acks).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(timeout * 4, subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(error)) => {
                tracing::warn!(target: "t87s", %error, "near cache: could not subscribe; serving from Redis only");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
            Err(_) => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let mut stream = pubsub.into_on_message();
        let Some(renewer) = adapter.upgrade().map(super::RedisAdapter::from_inner) else {
            return;
        };
        let sent = near.now_ns();
        match renewer.near_renew(true).await {
            Ok((_, counter)) => {
                // Whatever L1 took in while messages could be missed is
                // stale unless no invalidation happened since it was read.
                near.l1.invalidate_at(&[], counter);
                near.applied.store(counter, Ordering::Release);
                near.serve_from(sent);
                backoff = Duration::from_millis(50);
                tracing::info!(target: "t87s", id = near.id, counter, "near cache: joined; serving from memory");
                #[cfg(feature = "metrics")]
                crate::metrics::near_state("joined");
            }
            Err(error) => {
                tracing::warn!(target: "t87s", %error, "near cache: could not join; serving from Redis only");
                drop(renewer);
                tokio::time::sleep(backoff).await;
                continue;
            }
        }
        drop(renewer);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut behind_since: Option<Instant> = None;
        loop {
            let event = {
                let next = std::pin::pin!(stream.next());
                let tick = std::pin::pin!(tick.tick());
                match futures_util::future::select(next, tick).await {
                    Either::Left((message, _)) => Some(message),
                    Either::Right(_) => None,
                }
            };
            match event {
                Some(message) => {
                    let Some(message) = message else {
                        tracing::info!(target: "t87s", "near cache: subscription lost; serving from Redis until it is back");
                        #[cfg(feature = "metrics")]
                        crate::metrics::near_state("lost");
                        break;
                    };
                    let bytes = message.get_payload_bytes();
                    if message.get_channel_name() == acks {
                        near.on_ack(bytes);
                    } else if let Some((version, from)) = near.on_invalidation(bytes) {
                        // Acknowledged to the invalidator, if it hears
                        // acknowledgements (it has a near cache) and is not
                        // this process.
                        if from == 0 || from == near.id {
                            continue;
                        }
                        let Some(acker) = adapter.upgrade().map(super::RedisAdapter::from_inner)
                        else {
                            return;
                        };
                        tokio::spawn(async move { acker.near_ack(version, from).await });
                    }
                }
                None => {
                    let Some(renewer) = adapter.upgrade().map(super::RedisAdapter::from_inner)
                    else {
                        return;
                    };
                    let sent = near.now_ns();
                    match renewer.near_renew(false).await {
                        Ok((true, _)) => {
                            near.serve_from(sent);
                            behind_since = None;
                        }
                        Ok((false, counter)) => {
                            // Messages in flight, or lost: give them a third
                            // of a lease, then start again.
                            let since = *behind_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > every {
                                tracing::info!(target: "t87s", applied = near.applied(), counter, "near cache: behind the counter; subscribing again");
                                #[cfg(feature = "metrics")]
                                crate::metrics::near_state("behind");
                                break;
                            }
                        }
                        Err(error) => {
                            tracing::debug!(target: "t87s", %error, "near cache: renewal failed; the lease runs out by itself");
                        }
                    }
                }
            }
        }
    }
}
