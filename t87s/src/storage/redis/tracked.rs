//! The floor and the markers, kept in this process while Redis reports
//! every change to them: a hit then reads its entry alone (one `GET`), not
//! the entry, the floor and every marker (one `MGET` of them all).
//!
//! Redis's client-side caching does the reporting. A connection of its own
//! (RESP3) turns on `CLIENT TRACKING ON BCAST` for the prefixes of the
//! markers and of the floor. From then on Redis pushes the name of every
//! key under them that changes (written, deleted, expired, evicted, a
//! `FLUSHALL`) to that connection, whoever changed it. A push removes the
//! key from [`Tracked`]'s values as the connection reads it, before the
//! reply that follows it is handed to anyone.
//!
//! Why a hit that reads only its entry is never stale:
//!
//! - An invalidation's markers are written before it returns. Redis queues
//!   the push to this connection before it answers the invalidation (the
//!   broadcast is queued before any reply is written).
//! - So a `GET` sent on this connection after the invalidation returned is
//!   answered after that push, and the push was applied first.
//! - A hit reads the values after its `GET` is answered. It finds the
//!   marker gone, reads it from Redis, and sees the invalidation.
//!
//! What keeps values right:
//!
//! - A value read from Redis is kept only if no change was reported (and
//!   no connection lost) between the read being sent and being kept. A
//!   generation counts both; it is checked and the value kept under the
//!   same lock under which a change is applied.
//! - A lost connection drops every value: changes made while no connection
//!   was tracking went unreported. The next connection starts empty.
//! - Only the floor and the markers are kept (small numbers); entries never.
//! - A hit's newest value (of its floor and markers) is remembered with
//!   the generation it was worked out at, and used again only while the
//!   generation stays: no change reported, so the values it came from are
//!   the ones kept. The marker set it belongs to is compared whole.
//! - A server that refuses RESP3 or tracking (older than Redis 6, a proxy,
//!   an ACL without `CLIENT`) is asked once: reads then read every marker
//!   each time, as they did before.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use redis::aio::{AsyncPushSender, MultiplexedConnection, SendError};
use redis::{AsyncConnectionConfig, PushInfo, PushKind, RedisError, Value};

use super::link::is_outage;
use super::{parse_u64, Joined};
use crate::storage::MarkerSet;
use crate::tag::TagPath;

/// How many floor and marker values are kept: when full, all are dropped
/// (and read again as hits need them).
const CAPACITY: usize = 100_000;
/// How long after a failed connection the next one is tried.
const RETRY: Duration = Duration::from_secs(1);
/// How many marker sets' newest values are remembered ([`Memo`]): one
/// place per hash of an entry key.
const MEMOS: usize = 1024;

/// The floor and the markers this process read, while Redis reports their
/// changes (see the module docs).
pub(super) struct Tracked {
    shared: Arc<Shared>,
    memos: Box<[RwLock<Option<Memo>>]>,
}

/// The newest of one marker set's values (the floor's and its markers'),
/// worked out from the kept values at `generation`: the same for as long
/// as the generation stays (a hit looks up one memo, not every key).
struct Memo {
    generation: u64,
    newest: u64,
    /// The marker set, whole: a memo of another set in the same place is
    /// never taken for this one.
    prefix: Box<str>,
    tags: Box<[TagPath]>,
}

impl Memo {
    fn of(&self, markers: MarkerSet<'_>) -> bool {
        *self.prefix == *markers.prefix && *self.tags == *markers.tags
    }
}

struct Shared {
    /// The same server as the adapter's, in RESP3.
    client: redis::Client,
    /// The markers' and the floor's prefixes.
    prefixes: [String; 2],
    timeout: Duration,
    /// A key's bytes to its version: a marker never written reads 0; a
    /// missing floor is never kept (it stands for a lost counter). One read
    /// lock for all of a hit's keys.
    values: RwLock<hashbrown::HashMap<Box<[u8]>, u64>>,
    /// Counts every reported change and every lost connection; bumped
    /// under `values`' write lock, before the values change.
    generation: AtomicU64,
    state: Mutex<State>,
    /// A connection is being made (one attempt at a time).
    connecting: AtomicBool,
    epoch: Instant,
    /// Milliseconds after `epoch` before which no connection is tried.
    next_try_ms: AtomicU64,
    /// The server refused tracking: never asked again.
    refused: AtomicBool,
}

struct State {
    conn: Option<(u64, MultiplexedConnection)>,
    /// The id of the last connection made, and of the last one lost.
    made: u64,
    lost: u64,
}

/// A tracked connection, as a read takes it.
pub(super) struct On {
    pub(super) conn: MultiplexedConnection,
    /// The generation when it was taken: what a fill read after this may
    /// keep.
    pub(super) generation: u64,
}

impl Tracked {
    /// Tracking for keys under `prefixes` on the server at `url` (connected
    /// on first use).
    pub(super) fn new(
        url: &str,
        prefixes: [String; 2],
        timeout: Duration,
    ) -> Result<Self, RedisError> {
        let info = redis::IntoConnectionInfo::into_connection_info(url)?;
        let resp3 = info.redis_settings().clone();
        let info = info.set_redis_settings(resp3.set_protocol(redis::ProtocolVersion::RESP3));
        Ok(Self {
            shared: Arc::new(Shared {
                client: redis::Client::open(info)?,
                prefixes,
                timeout,
                values: RwLock::new(hashbrown::HashMap::new()),
                generation: AtomicU64::new(0),
                state: Mutex::new(State {
                    conn: None,
                    made: 0,
                    lost: 0,
                }),
                connecting: AtomicBool::new(false),
                epoch: Instant::now(),
                next_try_ms: AtomicU64::new(0),
                refused: AtomicBool::new(false),
            }),
            memos: (0..MEMOS).map(|_| RwLock::new(None)).collect(),
        })
    }

    /// The tracked connection. With none, one is made in the background
    /// (one attempt at a time, the next `RETRY` after a failure) and `None`
    /// says to read without it: a read never waits for a connection.
    pub(super) fn connection(&self) -> Option<On> {
        let shared = &self.shared;
        if let Some(on) = shared.current() {
            return Some(on);
        }
        if shared.refused.load(Ordering::Relaxed)
            || shared.now_ms() < shared.next_try_ms.load(Ordering::Relaxed)
            || shared.connecting.swap(true, Ordering::AcqRel)
        {
            return None;
        }
        let shared = Arc::clone(shared);
        tokio::spawn(async move {
            if !Shared::connect(&shared).await {
                let retry_ms = u64::try_from(RETRY.as_millis()).unwrap_or(u64::MAX);
                let next = shared.now_ms().saturating_add(retry_ms);
                shared.next_try_ms.store(next, Ordering::Relaxed);
            }
            shared.connecting.store(false, Ordering::Release);
        });
        None
    }

    /// The generation now: unchanged between two loads, no change was
    /// reported in between.
    #[inline]
    pub(super) fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// The newest of the values of `markers`' keys, `keys` (the floor,
    /// then the markers), if every one is kept: remembered in the place of
    /// `hash` (the entry key's) until the generation moves.
    #[inline]
    pub(super) fn newest<'k>(
        &self,
        hash: u64,
        markers: MarkerSet<'_>,
        mut keys: impl Iterator<Item = Joined<'k>>,
    ) -> Option<u64> {
        let place = usize::try_from(hash % MEMOS as u64)
            .ok()
            .and_then(|at| self.memos.get(at))?;
        if let Some(memo) = &*place.read() {
            if memo.generation == self.generation() && memo.of(markers) {
                return Some(memo.newest);
            }
        }
        let (generation, newest) = {
            let values = self.shared.values.read();
            // Stays while the read lock is held (bumped under the write
            // lock): the values below are this generation's.
            let generation = self.generation();
            // One buffer for every key.
            let mut buffer = [0u8; 192];
            let newest = keys.try_fold(0, |newest: u64, key| {
                let kept = match key.join_into(&mut buffer) {
                    Some(bytes) => values.get(bytes),
                    None => values.get(key.joined().as_bytes()),
                };
                kept.map(|v| newest.max(*v))
            })?;
            (generation, newest)
        };
        let mut place = place.write();
        match &mut *place {
            Some(memo) if memo.of(markers) => {
                memo.generation = generation;
                memo.newest = newest;
            }
            // Another set's, still good: kept (two hot keys in one place
            // do not take turns replacing it, with an allocation each).
            Some(memo) if memo.generation == generation => {}
            other => {
                *other = Some(Memo {
                    generation,
                    newest,
                    prefix: markers.prefix.into(),
                    tags: markers.tags.into(),
                })
            }
        }
        Some(newest)
    }

    /// Keeps what a read of `keys` (the floor, then markers) found, unless
    /// a change was reported or the connection lost since `generation`.
    pub(super) fn fill(&self, generation: u64, keys: &[Joined<'_>], found: &[Option<Vec<u8>>]) {
        let values: Vec<(Box<[u8]>, u64)> = keys
            .iter()
            .zip(found)
            .enumerate()
            .filter_map(|(at, (key, value))| {
                let version = match value {
                    Some(bytes) => parse_u64(bytes)?,
                    // A missing floor is a lost counter: read it each time.
                    None if at == 0 => return None,
                    None => 0,
                };
                Some((key.with_bytes(|bytes| Box::from(bytes)), version))
            })
            .collect();
        let mut kept = self.shared.values.write();
        if self.shared.generation.load(Ordering::Acquire) == generation {
            if kept.len().saturating_add(values.len()) > CAPACITY {
                kept.clear();
            }
            kept.extend(values);
        }
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn current(&self) -> Option<On> {
        let state = self.state.lock();
        let (_, conn) = state.conn.as_ref()?;
        Some(On {
            conn: conn.clone(),
            generation: self.generation.load(Ordering::Acquire),
        })
    }

    /// Connects and turns tracking on; the connection is kept only if it
    /// was not lost meanwhile. Whether it was kept.
    async fn connect(this: &Arc<Self>) -> bool {
        let id = {
            let mut state = this.state.lock();
            state.made = state.made.saturating_add(1);
            state.made
        };
        let pushes = Pushes {
            shared: Arc::downgrade(this),
            id,
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(this.timeout))
            // Every command runs under the adapter's timeout already.
            .set_response_timeout(None)
            .set_push_sender(pushes);
        let attempt = async {
            let mut conn = this
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let mut tracking = redis::cmd("CLIENT");
            tracking.arg("TRACKING").arg("ON").arg("BCAST");
            for prefix in &this.prefixes {
                tracking.arg("PREFIX").arg(prefix);
            }
            let () = tracking.query_async(&mut conn).await?;
            Ok::<_, RedisError>(conn)
        };
        match tokio::time::timeout(this.timeout.saturating_mul(2), attempt).await {
            Ok(Ok(conn)) => {
                let mut state = this.state.lock();
                if state.lost == id {
                    return false;
                }
                state.conn = Some((id, conn));
                true
            }
            Ok(Err(error)) if !is_outage(&error) => {
                // Redis answered no (no RESP3, no tracking, an ACL): the
                // reads go on reading every marker.
                this.refused.store(true, Ordering::Relaxed);
                tracing::warn!(
                    target: "t87s",
                    error = %error,
                    "redis refused client tracking; hits read every marker of their tags"
                );
                false
            }
            // Down or slow: tried again after `RETRY`.
            Ok(Err(_)) | Err(_) => false,
        }
    }

    /// Redis reported a change to `keys` (none: every key).
    fn changed(&self, keys: Option<&Value>) {
        let mut values = self.values.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        match keys {
            Some(Value::Array(keys)) => {
                for key in keys {
                    match key {
                        Value::BulkString(bytes) => {
                            values.remove(bytes.as_slice());
                        }
                        _ => values.clear(),
                    }
                }
            }
            _ => values.clear(),
        }
    }

    /// The connection `id` is gone: changes since went unreported.
    fn lost(&self, id: u64) {
        let mut state = self.state.lock();
        state.lost = id;
        if state.conn.as_ref().is_some_and(|(held, _)| *held == id) {
            state.conn = None;
        }
        let mut values = self.values.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        values.clear();
    }
}

/// Where the tracked connection hands its pushes, as it reads them.
struct Pushes {
    shared: Weak<Shared>,
    id: u64,
}

impl AsyncPushSender for Pushes {
    fn send(&self, info: PushInfo) -> Result<(), SendError> {
        let shared = self.shared.upgrade().ok_or(SendError)?;
        match info.kind {
            PushKind::Invalidate => shared.changed(info.data.first()),
            PushKind::Disconnection => shared.lost(self.id),
            _ => {}
        }
        Ok(())
    }
}
