//! The shared store: Redis (one node or a Cluster) through redis-rs on tokio.
//!
//! Key layout under the adapter's prefix `P` (the engine's own prefix `E` is
//! part of every entry, marker and lease key):
//!
//! | key | holds |
//! |---|---|
//! | `{P}:v` | the version counter (`INCR` by invalidations) |
//! | `{P}:f` | the floor: every entry at or below it is stale (`clear`, a lost counter); kept for good, a missing floor reads as a lost counter |
//! | `P:e:E:key` | an entry (postcard envelope), `PX` its lifetime |
//! | `P:m:p:E:path`, `P:m:x:E:path` | prefix / exact markers, `PX` the marker ttl |
//! | `P:l:E:key` | the fetch lease of a key, `PX` the lease ttl |
//! | `{P}:n` | near caches' leases: a sorted set of process ids by expiry (Redis ms) |
//! | channels `{P}:n:i`, `{P}:n:a:ID` | invalidations (`version payload`: who, markers), the acknowledgements to near cache `ID` |
//!
//! Ordering uses the version counter, never a host's clock, so hosts whose
//! clocks disagree still never serve a value fetched before an invalidation.
//! The counter and the floor share a hash slot (`{P}`), so on a Cluster they
//! live, and are lost, together.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

#[cfg(feature = "redis-cluster")]
use futures_util::future::join_all;
use redis::{Cmd, RedisError, Script, ScriptInvocation};
use serde::{Deserialize, Serialize};

use super::{
    AdapterFuture, EntryKey, Lease, LeaseAsk, MarkerKey, MarkerScope, MarkerSet, Read,
    StorageAdapter, ValueForm,
};
use crate::entry::{StoredEntry, StoredValue};
use crate::error::AdapterError;
use crate::tag::TagPath;

mod builder;
mod link;
mod near;
mod seen;
mod tracked;
pub use self::builder::RedisAdapterBuilder;
use self::link::{Conn, Link};
pub use self::near::{NearCache, NearMode, NearStatus};
use self::seen::{LeaseKeys, Seen, Spot};
use self::tracked::Tracked;

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(250);
const DEFAULT_MARKER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// The Lua functions every script shares.
///
/// - `set_max` sets a marker to version `v` unless it already holds a newer
///   one, kept `ttl` ms (`0`: for good, the floor). It never raises: a
///   marker holding garbage (or a value of another Redis type) is written
///   over, so a damaged marker can always be invalidated again. Numbers are
///   written with `%d`, never in Lua's floating-point notation.
/// - `counter` reads the version counter. A counter that is missing (lost:
///   deleted, evicted, or on a Cluster master that restarted empty) or
///   damaged starts again at the server's time in microseconds, and the
///   floor rises to it: every entry stamped under the lost counter is stale,
///   and later versions are larger than any it handed out (unless the
///   server's clock went back further than the counter ever counted).
/// - `floored_counter` is `counter`, and makes sure the floor exists: a
///   floor that is missing, damaged (not a number, which reads as
///   "invalidated now") or of another Redis type is set to the counter. A
///   hit reads the floor, not the counter (see [`RedisAdapter`]), so a
///   missing floor stands for a lost counter; it is set where the counter
///   is read (a read whose entry wants a fetch reads it).
/// - `take_lease` takes the lease `k` for `token`: free, or already held by
///   the same token (then extended), is acquired (`a`); else held (`h`).
macro_rules! lua_prelude {
    () => {
        "local function set_max(key, v, ttl) \
           local held = redis.pcall('GET', key) \
           local cur = nil \
           if type(held) == 'string' then cur = tonumber(held) end \
           local keep = tonumber(ttl) == 0 \
           if cur == nil or v > cur then \
             if type(held) == 'table' then redis.call('DEL', key) end \
             if keep then redis.call('SET', key, string.format('%d', v)) \
             else redis.call('SET', key, string.format('%d', v), 'PX', ttl) end \
           elseif keep then redis.call('PERSIST', key) \
           else redis.call('PEXPIRE', key, ttl) end \
         end \
         local function counter(vk, fk) \
           local held = redis.pcall('GET', vk) \
           if type(held) == 'string' and tonumber(held) then return held end \
           if type(held) == 'table' then redis.call('DEL', vk) end \
           local t = redis.call('TIME') \
           local v = t[1] .. string.format('%06d', tonumber(t[2])) \
           redis.call('SET', vk, v) \
           set_max(fk, tonumber(v), 0) \
           return v \
         end \
         local function floored_counter(vk, fk) \
           local c = counter(vk, fk) \
           local f = redis.pcall('GET', fk) \
           if not (type(f) == 'string' and tonumber(f)) then \
             if type(f) == 'table' then redis.call('DEL', fk) end \
             redis.call('SET', fk, c) \
           end \
           return c \
         end \
         local function take_lease(k, token, ttl) \
           if redis.call('SET', k, token, 'NX', 'PX', ttl) then return 'a' end \
           local held = redis.pcall('GET', k) \
           if held == token then redis.call('PEXPIRE', k, ttl) return 'a' end \
           if type(held) == 'table' then \
             redis.call('DEL', k) redis.call('SET', k, token, 'PX', ttl) return 'a' \
           end \
           return 'h' \
         end "
    };
}
/// One marker: `KEYS[1]` to version `ARGV[1]`, kept `ARGV[2]` ms.
const SET_MAX: &str = concat!(
    lua_prelude!(),
    "set_max(KEYS[1], tonumber(ARGV[1]), ARGV[2]) return 1"
);
/// A whole invalidation in one round trip (one node): the counter `KEYS[1]`
/// (its floor `KEYS[2]`) is incremented, then every marker `KEYS[4..]` is
/// stamped with the new version, kept `ARGV[1]` ms. With no markers: the
/// counter only (a Cluster, where the markers live on other nodes).
///
/// Then, for near caches ([`near`]): `version payload` is published on the
/// channel `ARGV[2]` (the payload `ARGV[3]` names the invalidator and the
/// markers; none means "everything"), expired leases are dropped from the sorted set `KEYS[3]`,
/// and the live ones are returned with Redis's time in ms:
/// `{version, now, id, expiry, id, expiry, ...}`.
const INVALIDATE: &str = concat!(
    lua_prelude!(),
    "counter(KEYS[1], KEYS[2]) \
     local v = redis.call('INCR', KEYS[1]) \
     for i = 4, #KEYS do set_max(KEYS[i], v, ARGV[1]) end \
     redis.call('PUBLISH', ARGV[2], string.format('%d', v) .. ' ' .. ARGV[3]) \
     local t = redis.call('TIME') \
     local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
     local out = {v, now} \
     if redis.call('TYPE', KEYS[3]).ok == 'zset' then \
       redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) \
       local peers = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES') \
       for i = 1, #peers do out[#out + 1] = peers[i] end \
     end \
     return out"
);
/// A near cache's lease: the counter `KEYS[1]` (floor `KEYS[2]`) is read;
/// unless joining (`ARGV[4]` = `1`), a process that applied fewer
/// invalidations (`ARGV[2]`) than the counter is refused.
/// Granted: the process `ARGV[1]` holds a lease until Redis's time plus
/// `ARGV[3]` ms in the sorted set `KEYS[3]`. Returns `{granted, counter}`.
const NEAR_RENEW: &str = concat!(
    lua_prelude!(),
    "local c = counter(KEYS[1], KEYS[2]) \
     if ARGV[4] ~= '1' and tonumber(ARGV[2]) < tonumber(c) then return {0, c} end \
     local t = redis.call('TIME') \
     local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) \
     if redis.call('TYPE', KEYS[3]).ok ~= 'zset' then redis.call('DEL', KEYS[3]) end \
     redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[1]) \
     return {1, c}"
);
/// The counter `KEYS[1]`, started again if lost, with its floor `KEYS[2]`
/// made sure of (see `floored_counter`).
const VERSION: &str = concat!(lua_prelude!(), "return floored_counter(KEYS[1], KEYS[2])");
/// A read in one round trip (one node). `KEYS`: the entry, the counter, the
/// floor, the lease, then the markers. `ARGV`: now (ms), the lease token,
/// the lease ttl, `1` to take the lease.
///
/// Returns the entry, the counter, the lease answer (`a`, `h`, or nil when
/// not taken), then the floor and the markers: read only when the entry is
/// live (the entry's header tells, see [`HEADER`]). Two `MGET`s, never one
/// `GET` per key: each command a script runs costs about a microsecond of
/// server time, so the keys are read in as few as can be. (A key of another
/// Redis type reads as nil in `MGET`: an entry so is a miss; a marker so
/// reads as unset until the next invalidation writes over it.) The lease is taken when
/// the entry wants a fetch, the rule of [`Read::wants_fetch`]: none, past
/// its TTL, or a marker as new as its version (a damaged marker is newest).
const READ: &str = concat!(
    lua_prelude!(),
    "local evf = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3]) \
     local e, v = evf[1], evf[2] \
     if not (v and tonumber(v) and evf[3]) then v = floored_counter(KEYS[2], KEYS[3]) end \
     local out = {e, v, false} \
     local fresh = false \
     if e then \
       local ver, exp, live = string.match(e, '^t87s2 (%d+) (%d+) (%d+)\\n') \
       local now = tonumber(ARGV[1]) \
       ver = tonumber(ver) \
       if ver and tonumber(live) > now then \
         local keys = {KEYS[3]} \
         for i = 5, #KEYS do keys[#keys + 1] = KEYS[i] end \
         local ms = redis.call('MGET', unpack(keys)) \
         local newest = 0 \
         for i = 1, #keys do \
           local m = ms[i] \
           out[#out + 1] = m \
           local n = 0 \
           if m then n = tonumber(m) or math.huge end \
           if n > newest then newest = n end \
         end \
         fresh = now < tonumber(exp) and newest < ver \
       end \
     end \
     if not fresh and ARGV[4] == '1' then out[3] = take_lease(KEYS[4], ARGV[2], ARGV[3]) end \
     return out"
);
/// The lease key `KEYS[2]` of an entry `KEYS[1]` that exists but wants a
/// fetch, for token `ARGV[1]`, `ARGV[2]` ms, unless the entry is no longer
/// the one of version `ARGV[3]` that was read: then `{'n', entry}`. Either
/// way the counter `KEYS[3]` (floor `KEYS[4]`) follows: the version a fetch
/// that starts now is stamped with.
const LEASE_STALE: &str = concat!(
    lua_prelude!(),
    "local c = floored_counter(KEYS[3], KEYS[4]) \
     local e = redis.pcall('GET', KEYS[1]) \
     if type(e) ~= 'string' then e = false end \
     local v = e and string.match(e, '^t87s2 (%d+) ') or '' \
     if e and v ~= ARGV[3] then return {'n', e, c} end \
     return {take_lease(KEYS[2], ARGV[1], ARGV[2]), e, c}"
);
/// The lease `KEYS[1]` for token `ARGV[1]`, `ARGV[2]` ms.
const LEASE: &str = concat!(
    lua_prelude!(),
    "return take_lease(KEYS[1], ARGV[1], ARGV[2])"
);
/// Extends the lease `KEYS[1]` to `ARGV[2]` ms if it holds `ARGV[1]`.
const EXTEND: &str = "if redis.pcall('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0";
/// Deletes a lease `KEYS[1]` only if it still holds `ARGV[1]` (the token, or
/// the lease standing in an entry's place).
const RELEASE: &str = "if redis.pcall('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";
/// The scripts, hashed once (`EVALSHA`, loaded on `NOSCRIPT`).
struct Scripts {
    set_max: Script,
    invalidate: Script,
    version: Script,
    read: Script,
    lease_stale: Script,
    lease: Script,
    near_renew: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    set_max: Script::new(SET_MAX),
    invalidate: Script::new(INVALIDATE),
    version: Script::new(VERSION),
    read: Script::new(READ),
    lease_stale: Script::new(LEASE_STALE),
    lease: Script::new(LEASE),
    near_renew: Script::new(NEAR_RENEW),
});

/// The start of every stored entry, before its envelope, for the scripts:
/// `t87s2 {version} {expires_at} {live_until}\n`.
const HEADER: &[u8] = b"t87s2 ";
/// First bytes of every envelope: anything else under our key is foreign.
const MAGIC: u32 = 0x7438_7301;

/// A Redis adapter's near copy, as the engine's hit path reads it: entries
/// in place, by the near cache's rules (see [`NearCache`]).
#[derive(Clone)]
pub(crate) struct NearCopy(Arc<near::Near>);

impl NearCopy {
    /// `f` of the entry under `key` in the near copy, read in place, if it
    /// may be served now (see [`InPlace`](crate::storage::InPlace)).
    #[inline]
    pub(crate) fn read_in_place<R>(
        &self,
        key: EntryKey<'_>,
        now_ms: u64,
        f: impl FnOnce(crate::storage::InPlace<'_>) -> R,
    ) -> Option<R> {
        self.0.read_in_place(key, now_ms, f)
    }

    /// [`read_in_place`](Self::read_in_place) by a typed call's probe.
    #[inline]
    pub(crate) fn probe_in_place<R>(
        &self,
        prefix: &str,
        probe: &crate::key::KeyProbe<'_>,
        now_ms: u64,
        f: impl FnOnce(crate::storage::InPlace<'_>) -> R,
    ) -> Option<R> {
        self.0.probe_in_place(prefix, probe, now_ms, f)
    }
}

/// A [`StorageAdapter`] on Redis, shared by every process that uses the same
/// server (or Cluster) and prefix.
///
/// - A hit costs one round trip of one command. On one server, a `GET` of
///   the entry alone: the adapter keeps the floor and the markers while
///   Redis reports their changes to it (see
///   [`client_tracking`](RedisAdapterBuilder::client_tracking)). Otherwise
///   (the first hit after a change, a Cluster), an `MGET` of the entry,
///   the floor and every marker of the query's tags. A read that may have
///   to take the fetch lease (an entry this process has not seen lately)
///   also reads the refresh lease key and the version counter, and sends
///   `SET key <lease> NX PX ttl GET` for the entry instead, beside the
///   `MGET`: when there is no entry, this process's lease takes its place.
///   On a Cluster, where the keys live in different slots, the reads are
///   concurrent.
/// - A miss costs two: that read (which took the lease), then the store, a
///   `SET` that replaces the lease. An entry that exists but wants a fetch
///   takes the refresh lease key in a script of its own (one more round
///   trip), and its store releases that key in the same pipeline (a store
///   touches the refresh lease key only when this process took it). The
///   lease holder extends its lease while it fetches; a lease whose holder
///   died expires.
/// - Invalidation stamps markers with versions from one counter in Redis, so
///   app servers whose clocks disagree agree on what is stale: one script on
///   one node. A lost counter starts again at the server's time, with the
///   floor raised to it. The floor shares the counter's slot and is kept for
///   good, so a hit, which reads the floor and not the counter, reads a
///   missing floor as a lost counter.
/// - Every command has a timeout and goes through a circuit breaker; a query
///   whose store fails or is slow runs its fetch (the engine fails open), an
///   invalidation returns the error (and the engine retries it). The adapter
///   connects on first use and reconnects by itself.
/// - Bytes under our keys that are not our envelope, or that do not decode,
///   and keys of another Redis type, read as a miss.
/// - `clear` deletes with `SCAN MATCH P:*` (never `KEYS`), on every master.
///
/// **Eviction policy.** Markers must outlive the entries they cover: use
/// `maxmemory-policy noeviction` (or no `maxmemory`). Any evicting policy may
/// drop a marker and let a stale entry be served. [`connect`](RedisAdapterBuilder::connect)
/// checks and warns (see [`eviction_warning`](Self::eviction_warning)).
///
/// The connection URL's password never appears in `Debug` output or errors.
///
/// ```no_run
/// # async fn run() -> Result<(), t87s::Error> {
/// let adapter = t87s::RedisAdapter::builder("redis://127.0.0.1:6379")
///     .prefix("myapp")
///     .timeout(std::time::Duration::from_millis(100))
///     .connect()
///     .await?;
/// let cache = t87s::engine::Primitives::new(adapter);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisAdapter {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    prefix: String,
    /// The parts of every key that depend on the prefix alone, joined once.
    heads: Heads,
    marker_ttl_ms: u64,
    names: near::Names,
    near: Option<Arc<near::Near>>,
    /// Entries this process found or stored, for reads that leave the
    /// lease out.
    seen: Seen,
    /// Refresh lease keys this process may hold, for stores and releases
    /// that leave the others alone.
    leases: LeaseKeys,
    /// The floor and the markers as this process last read them, while
    /// Redis reports their changes (one node; see [`tracked`]).
    tracked: Option<Tracked>,
    /// This adapter among the owners of decoded values: the entries a
    /// thread decoded lately are kept (see [`decoded`](crate::decoded)).
    decoder: u64,
}

/// The key layout's prefix-only parts (the table at the top of this
/// module), joined at build: a read writes the counter and the floor whole,
/// and every other key from four parts.
struct Heads {
    entry: String,
    lease: String,
    prefix_marker: String,
    exact_marker: String,
    version: String,
    floor: String,
}

impl Heads {
    fn new(prefix: &str) -> Self {
        Self {
            entry: concat(&[prefix, ":e:"]),
            lease: concat(&[prefix, ":l:"]),
            prefix_marker: concat(&[prefix, ":m:p:"]),
            exact_marker: concat(&[prefix, ":m:x:"]),
            version: concat(&["{", prefix, "}:v"]),
            floor: concat(&["{", prefix, "}:f"]),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(near) = &self.near {
            near.stop();
        }
    }
}

/// How an entry travels: postcard, behind a magic number.
#[derive(Serialize, Deserialize)]
struct Envelope<'a> {
    magic: u32,
    created_at: u64,
    expires_at: u64,
    grace_until: Option<u64>,
    version: u64,
    value_type: u64,
    #[serde(borrow)]
    tags: Vec<Cow<'a, str>>,
    /// Written as bytes (postcard: the length, then the bytes, as a
    /// sequence of `u8` is written, in one copy rather than one call per
    /// byte).
    #[serde(borrow, serialize_with = "as_bytes")]
    value: Cow<'a, [u8]>,
}

fn as_bytes<S: serde::Serializer>(
    bytes: &impl AsRef<[u8]>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_bytes(bytes.as_ref())
}

impl RedisAdapter {
    /// Options for one Redis server at `url` (`redis://[:password@]host:port[/db]`).
    ///
    /// ```
    /// let builder = t87s::RedisAdapter::builder("redis://127.0.0.1:6379").prefix("app");
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisAdapterBuilder {
        RedisAdapterBuilder::new(vec![url.into()], false)
    }

    /// Options for a Redis Cluster reached through any of `urls`. (feature `redis-cluster`).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), t87s::Error> {
    /// let adapter = t87s::RedisAdapter::cluster_builder(["redis://127.0.0.1:7000"])
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "redis-cluster")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-cluster")))]
    pub fn cluster_builder<I, S>(urls: I) -> RedisAdapterBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RedisAdapterBuilder::new(urls.into_iter().map(Into::into).collect(), true)
    }

    /// Connects to one server with the defaults (prefix `t87s`, 250ms timeout).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), t87s::Error> {
    /// let adapter = t87s::RedisAdapter::connect("redis://127.0.0.1:6379").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(url: impl Into<String>) -> Result<Self, crate::Error> {
        Self::builder(url).connect().await
    }

    /// Set when the server may evict our keys (`maxmemory` with a policy other
    /// than `noeviction`): markers could vanish and stale entries come back.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), t87s::Error> {
    /// let adapter = t87s::RedisAdapter::connect("redis://127.0.0.1:6379").await?;
    /// if let Some(warning) = adapter.eviction_warning() {
    ///     eprintln!("{warning}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn eviction_warning(&self) -> Option<&str> {
        self.inner.link.eviction_warning.get()?.as_deref()
    }

    // Keys are built by `concat` (one allocation of the exact size) rather
    // than `format!`: a read builds seven of them, and `format!` cost a
    // Redis hit about 4,000 instructions of reallocations (callgrind).
    fn entry_key(&self, key: EntryKey<'_>) -> String {
        self.entry_parts(key).joined()
    }

    fn lease_key(&self, key: EntryKey<'_>) -> String {
        self.lease_parts(key).joined()
    }

    fn marker_key(&self, marker: MarkerKey<'_>) -> String {
        self.marker_parts(marker).joined()
    }

    fn version_key(&self) -> String {
        self.version_parts().joined()
    }

    fn floor_key(&self) -> String {
        self.floor_parts().joined()
    }

    // The key layout (the table at the top of this module), as parts.

    fn entry_parts<'a>(&'a self, key: EntryKey<'a>) -> Joined<'a> {
        Joined([&self.inner.heads.entry, key.prefix, ":", key.key])
    }

    fn lease_parts<'a>(&'a self, key: EntryKey<'a>) -> Joined<'a> {
        Joined([&self.inner.heads.lease, key.prefix, ":", key.key])
    }

    fn marker_parts<'a>(&'a self, marker: MarkerKey<'a>) -> Joined<'a> {
        let head = match marker.scope {
            MarkerScope::Prefix => &self.inner.heads.prefix_marker,
            MarkerScope::Exact => &self.inner.heads.exact_marker,
        };
        Joined([head, marker.prefix, ":", marker.path])
    }

    fn version_parts(&self) -> Joined<'_> {
        Joined([&self.inner.heads.version, "", "", ""])
    }

    fn floor_parts(&self) -> Joined<'_> {
        Joined([&self.inner.heads.floor, "", "", ""])
    }

    /// Runs `f` under the command timeout, on a connection of its own
    /// (`clear` on each master): outside the breaker.
    /// The keys of a read: `first`, then the floor, then the markers.
    #[inline]
    fn then_floor_and_markers<'a>(
        &'a self,
        first: Joined<'a>,
        markers: MarkerSet<'a>,
    ) -> Vec<Joined<'a>> {
        let mut keys = Vec::with_capacity(2 + markers.len());
        keys.extend([first, self.floor_parts()]);
        keys.extend(markers.iter().map(|m| self.marker_parts(m)));
        keys
    }

    async fn timed<T>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, AdapterError> {
        let link = &self.inner.link;
        match tokio::time::timeout(link.timeout(), f).await {
            Ok(result) => result.map_err(|e| {
                AdapterError::with_source(format!("redis {what} failed ({})", link.redacted()), e)
            }),
            Err(_) => Err(AdapterError::new(format!(
                "redis {what} timed out after {:?} ({})",
                link.timeout(),
                link.redacted()
            ))),
        }
    }

    /// `GET` of every key in one round trip (see [`get_each`]).
    async fn get_all(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, AdapterError> {
        self.inner
            .link
            .call("read", |conn| get_each(conn, keys))
            .await
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        what: &str,
        cmd: &Cmd,
    ) -> Result<T, AdapterError> {
        self.inner
            .link
            .call(
                what,
                |mut conn| async move { cmd.query_async(&mut conn).await },
            )
            .await
    }

    /// Runs one of [`SCRIPTS`].
    async fn eval<T: redis::FromRedisValue>(
        &self,
        what: &str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T, AdapterError> {
        self.inner
            .link
            .call(what, |mut conn| async move {
                invocation.invoke_async(&mut conn).await
            })
            .await
    }

    /// The newest of the floor and the markers, from `GET` answers. A marker
    /// that holds something other than a version reads as "invalidated
    /// now" (`u64::MAX`), never as 0: a damaged marker costs a refetch, never
    /// a stale read.
    fn newest(values: &[Option<Vec<u8>>]) -> u64 {
        values
            .iter()
            .filter_map(|v| {
                v.as_deref()
                    .map(|bytes| parse_u64(bytes).unwrap_or(u64::MAX))
            })
            .max()
            .unwrap_or(0)
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<StoredEntry> {
        let rest = bytes.strip_prefix(HEADER)?;
        let end = rest.iter().position(|b| *b == b'\n')?;
        let envelope: Envelope<'_> = postcard::from_bytes(rest.get(end + 1..)?).ok()?;
        if envelope.magic != MAGIC {
            return None;
        }
        let tags = envelope
            .tags
            .iter()
            .map(|t| TagPath::from_encoded(t))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let value = StoredValue::Bytes(Arc::from(&*envelope.value));
        let entry = StoredEntry::new(value, tags.into(), envelope.version)
            .lifetime(
                envelope.created_at,
                envelope.expires_at,
                envelope.grace_until,
            )
            .value_type(envelope.value_type);
        Some(entry)
    }

    fn encode(entry: &StoredEntry) -> Result<Vec<u8>, AdapterError> {
        let StoredValue::Bytes(value) = &entry.value else {
            return Err(AdapterError::new(
                "the redis adapter stores bytes; the engine handed it an object (a bug in t87s)",
            ));
        };
        let envelope = Envelope {
            magic: MAGIC,
            created_at: entry.created_at,
            expires_at: entry.expires_at,
            grace_until: entry.grace_until,
            version: entry.version,
            value_type: entry.value_type,
            tags: entry
                .tags
                .iter()
                .map(|t| Cow::Borrowed(t.as_str()))
                .collect(),
            value: Cow::Borrowed(value),
        };
        // Sized once: the header, its three numbers, the envelope's fixed
        // fields and tags, and the value.
        let tags = (entry.tags.iter()).fold(0usize, |n, t| n.saturating_add(t.as_str().len() + 2));
        let mut out = Vec::with_capacity(
            (HEADER.len() + 192).saturating_add(tags.saturating_add(value.len())),
        );
        out.extend_from_slice(HEADER);
        for number in [entry.version, entry.expires_at, entry.live_until()] {
            out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
            out.push(b' ');
        }
        if let Some(last) = out.last_mut() {
            *last = b'\n';
        }
        postcard::to_extend(&envelope, out)
            .map_err(|e| AdapterError::with_source("could not encode an entry for redis", e))
    }

    /// A read: one round trip of plain commands (concurrent commands on a
    /// Cluster).
    ///
    /// - An entry this process saw a moment ago (see [`seen`]) is read with
    ///   what decides a hit and nothing more: one `MGET` of the entry, the
    ///   floor and the markers ([`read_seen`](Self::read_seen)).
    /// - Otherwise, or if that entry turns out to be gone, the entry, the
    ///   refresh lease key (for entries that exist but want a fetch), the
    ///   counter, the floor and every marker. When a lease is asked, the
    ///   entry is read by `SET key <lease> NX PX ttl GET`, which reads it
    ///   and, only when there is none, puts this instance's lease in its
    ///   place (a miss takes its lease in the read, with no script), in a
    ///   pipeline with the `MGET` of the rest.
    ///
    /// An entry that exists but wants a fetch (past its TTL, invalidated)
    /// takes the lease key in a second round trip, a script that also reads
    /// the entry again (another process may just have stored it) and the
    /// counter. An entry key of another Redis type reads as none in an
    /// `MGET`; `SET ... GET` refuses it, and the [`READ`] script reads
    /// instead.
    async fn read_inner(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
        ask: Option<LeaseAsk>,
    ) -> Result<Read, AdapterError> {
        let spot = Seen::spot(key);
        if self.inner.seen.likely(spot, now_ms) {
            if let Some(read) = self.read_seen(key, markers, now_ms, ask, spot).await? {
                return Ok(read);
            }
            self.inner.seen.forget(spot);
        }
        // Boxed: this future stays the size of the hit's (it is boxed and
        // moved on every read), whatever the rarer reads below hold.
        Box::pin(self.read_full(key, markers, now_ms, ask, spot)).await
    }

    /// The read of an entry this process has not seen lately, or whose
    /// [`read_seen`](Self::read_seen) found it gone (see
    /// [`read_inner`](Self::read_inner)).
    async fn read_full(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
        ask: Option<LeaseAsk>,
        spot: Spot,
    ) -> Result<Read, AdapterError> {
        let (entry, lease) = (self.entry_parts(key), self.lease_parts(key));
        let rest = self.then_floor_and_markers(self.version_parts(), markers);
        let parts = self
            .inner
            .link
            .call("read", |conn| read_parts(conn, entry, lease, &rest, ask))
            .await?;
        let Some((entry, held, mut values)) = parts else {
            return self.read_script(key, markers, now_ms, ask).await;
        };
        // A lost counter starts again, and the floor rises to it; a missing
        // floor is set to the counter: what this read found is older.
        let counter = values
            .first()
            .and_then(|v| v.as_deref())
            .and_then(parse_u64);
        let (counter, floor) = match (counter, values.get(1)) {
            (Some(counter), Some(Some(_))) => (counter, 0),
            _ => {
                let counter = self.counter().await?;
                (counter, counter)
            }
        };
        let (bytes, lease) = match (entry, ask) {
            // There was none: the lease is in its place now.
            (None, Some(_)) => (None, Some(Lease::Acquired)),
            (None, None) => (None, None),
            (Some(bytes), ask) => match lease_token(&bytes) {
                Some(token) => (
                    None,
                    ask.map(|ask| {
                        if token == ask.token {
                            Lease::Acquired
                        } else {
                            Lease::Held
                        }
                    }),
                ),
                None => (Some(bytes), None),
            },
        };
        // The entry, then the floor and the markers (the counter's place).
        if let Some(slot) = values.first_mut() {
            *slot = bytes;
        }
        let mut read = self.answer(key, &values, counter, 1);
        match &read.entry {
            Some(stored) => {
                read.newest_marker = read.newest_marker.max(floor);
                self.inner.seen.saw(spot, self.kept_until(stored));
            }
            None => self.inner.seen.forget(spot),
        }
        if let Some(lease) = lease {
            return Ok(read.with_lease(lease));
        }
        let Some(ask) = ask else {
            return Ok(read);
        };
        if !read.wants_fetch(now_ms) {
            return Ok(read);
        }
        match held.as_deref().and_then(parse_u64) {
            Some(token) if token != ask.token => Ok(read.with_lease(Lease::Held)),
            _ => self.lease_stale(key, read, ask).await,
        }
    }

    /// The read of an entry this process saw a moment ago: one `MGET` of the
    /// entry, the floor and the markers, which is all a fresh hit needs (or
    /// a `GET` of the entry alone, when the floor and the markers are kept:
    /// [`read_tracked`](Self::read_tracked)).
    ///
    /// - Not the counter: a fresh hit's [`Read::version`] is the entry's own,
    ///   never newer than the store's (the engine serves a fresh entry with
    ///   no fetch; see the field's docs). A lost counter is seen by its
    ///   floor, which shares its slot, is kept for good and is set wherever
    ///   the counter is read: a missing floor is read as a lost counter.
    /// - Not the refresh lease key: an entry that wants a fetch takes it in
    ///   the script that also reads the counter (see
    ///   [`lease_stale`](Self::lease_stale)), or reads the counter alone
    ///   when no lease is asked.
    ///
    /// `None` when there is no entry (or a lease in its place, or bytes that
    /// are not one): the full read follows, and takes the lease.
    async fn read_seen(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
        ask: Option<LeaseAsk>,
        spot: Spot,
    ) -> Result<Option<Read>, AdapterError> {
        // Boxed: each of the two futures stays small enough for the
        // allocator's per-thread cache (about 1 KiB), where the read whole
        // was not.
        let found = match Box::pin(self.read_tracked(key, markers, spot)).await? {
            Some(found) => found,
            None => {
                let keys = self.then_floor_and_markers(self.entry_parts(key), markers);
                // Boxed: the read future stays the size of the tracked hit's.
                let call = self.inner.link.call("read", |conn| get_joined(conn, &keys));
                Found::of(Box::pin(call).await?)
            }
        };
        let Some(bytes) = found.entry.filter(|bytes| lease_token(bytes).is_none()) else {
            return Ok(None);
        };
        let lost = match found.floored {
            true => 0,
            false => Box::pin(self.counter()).await?,
        };
        let mut read = self.answer_from(key, Some(&bytes), found.newest, 0);
        let Some(stored) = &read.entry else {
            return Ok(None);
        };
        read.newest_marker = read.newest_marker.max(lost);
        read.version = stored.version;
        self.inner.seen.saw(spot, self.kept_until(stored));
        if !read.wants_fetch(now_ms) {
            return Ok(Some(read));
        }
        // Wants a fetch (boxed, as above).
        match ask {
            Some(ask) => Box::pin(self.lease_stale(key, read, ask)).await.map(Some),
            None => {
                read.version = Box::pin(self.counter()).await?.saturating_add(1);
                Ok(Some(read))
            }
        }
    }

    /// [`read_seen`](Self::read_seen)'s round trip on the tracked
    /// connection (see [`tracked`]) for the entry at `key` (at `spot`) and
    /// the floor and `markers`. When this process keeps the floor and every
    /// marker, it sends a `GET` of the entry alone, then reads them (after
    /// the answer: a change Redis reported before it is applied by then).
    /// Otherwise one `MGET` of them all, whose floor and markers are kept.
    ///
    /// `None` with no tracked connection (or an entry key of another Redis
    /// type): the plain read follows.
    async fn read_tracked(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        spot: Spot,
    ) -> Result<Option<Found>, AdapterError> {
        let Some(tracked) = &self.inner.tracked else {
            return Ok(None);
        };
        let Some(mut on) = tracked.connection() else {
            return Ok(None);
        };
        let link = &self.inner.link;
        let floor_and_markers = || {
            std::iter::once(self.floor_parts()).chain(markers.iter().map(|m| self.marker_parts(m)))
        };
        // Read before the entry is sent for; read again after its answer
        // only if Redis reported a change meanwhile (the generation moved):
        // a change reported before the answer is applied by then.
        if let Some(kept) = tracked.newest(spot.hash(), markers, floor_and_markers()) {
            let entry = self.entry_parts(key);
            let get = async {
                match Cmd::get(entry).query_async(&mut on.conn).await {
                    Ok(bytes) => Ok(Some(bytes)),
                    // Another Redis type: the plain read knows what to do.
                    Err(error) if error.code() == Some("WRONGTYPE") => Ok(None),
                    Err(error) => Err(error),
                }
            };
            // (A connection that fails is dropped when its reader sees it
            // closed, with what it kept; one that is slow stays in order.)
            let Some(bytes) = link.call_on("read", get).await? else {
                return Ok(None);
            };
            let kept = match tracked.generation() == on.generation {
                true => Some(kept),
                false => tracked.newest(spot.hash(), markers, floor_and_markers()),
            };
            if let Some(newest) = kept {
                return Ok(Some(Found {
                    entry: bytes,
                    floored: true,
                    newest,
                }));
            }
            // Changed while the entry was read: read them all.
        }
        let keys = self.then_floor_and_markers(self.entry_parts(key), markers);
        // Boxed, as above.
        let values: Vec<Option<Vec<u8>>> =
            Box::pin(link.call_on("read", mget(&keys, &[]).query_async(&mut on.conn))).await?;
        let rest = keys.get(1..).unwrap_or_default();
        tracked.fill(on.generation, rest, values.get(1..).unwrap_or_default());
        Ok(Some(Found::of(values)))
    }

    /// The second round trip of a read whose entry exists but wants a fetch:
    /// takes the lease key, unless the entry was replaced since the read
    /// (then the new one is the answer, without a lease), and reads the
    /// counter: the read's version is the one a fetch that starts now is
    /// stamped with.
    async fn lease_stale(
        &self,
        key: EntryKey<'_>,
        mut read: Read,
        ask: LeaseAsk,
    ) -> Result<Read, AdapterError> {
        if self.inner.link.is_cluster() {
            // Different slots: the lease and the counter, side by side.
            let (lease, counter) =
                futures_util::future::join(self.lease_inner(key, ask), self.counter()).await;
            read.version = counter?.saturating_add(1);
            return Ok(read.with_lease(lease?));
        }
        let read_version = read
            .entry
            .as_ref()
            .map(|e| e.version.to_string())
            .unwrap_or_default();
        let mut invocation = SCRIPTS.lease_stale.key(self.entry_key(key));
        invocation
            .key(self.lease_key(key))
            .key(self.version_key())
            .key(self.floor_key())
            .arg(ask.token)
            .arg(ask.ttl_ms)
            .arg(read_version);
        let spot = Seen::spot(key);
        self.inner.leases.asking(spot, ask.token);
        let (answer, now, counter): (String, Option<Vec<u8>>, String) =
            self.eval("lease", &invocation).await?;
        if answer != "a" {
            self.inner.leases.let_go(spot, ask.token);
        }
        read.version = self.parse_counter(&counter)?.saturating_add(1);
        match answer.as_str() {
            "a" => Ok(read.with_lease(Lease::Acquired)),
            "h" => Ok(read.with_lease(Lease::Held)),
            _ => {
                let entry = now.filter(|b| lease_token(b).is_none());
                let entry = entry.and_then(|bytes| Self::decode(&bytes)).map(Arc::new);
                Ok(Read::new(entry, read.newest_marker, read.version))
            }
        }
    }

    /// A read by the [`READ`] script: for an entry key holding another Redis
    /// type, which the plain read's commands refuse.
    async fn read_script(
        &self,
        key: EntryKey<'_>,
        markers: MarkerSet<'_>,
        now_ms: u64,
        ask: Option<LeaseAsk>,
    ) -> Result<Read, AdapterError> {
        let mut invocation = SCRIPTS.read.key(self.entry_key(key));
        invocation
            .key(self.version_key())
            .key(self.floor_key())
            .key(self.lease_key(key));
        for marker in markers.iter() {
            invocation.key(self.marker_key(marker));
        }
        let (token, ttl) = ask.map_or((0, 1), |ask| (ask.token, ask.ttl_ms));
        invocation
            .arg(now_ms)
            .arg(token)
            .arg(ttl)
            .arg(u8::from(ask.is_some()));
        let spot = Seen::spot(key);
        if ask.is_some() {
            self.inner.leases.asking(spot, token);
        }
        let mut values: Vec<Option<Vec<u8>>> = self.eval("read", &invocation).await?;
        let counter = values.get(1).and_then(|v| v.as_deref()).and_then(parse_u64);
        let lease = match values.get(2).and_then(|v| v.as_deref()) {
            Some(b"a") => Some(Lease::Acquired),
            Some(_) => Some(Lease::Held),
            None => None,
        };
        if lease != Some(Lease::Acquired) {
            self.inner.leases.let_go(spot, token);
        }
        // The entry, then the floor and the markers from the fourth on.
        values.drain(1..3);
        let read = self.answer(key, &values, counter.unwrap_or(0), 1);
        Ok(match lease {
            Some(lease) => read.with_lease(lease),
            None => read,
        })
    }

    /// A [`Read`] from the values of a read: the entry first, the floor and
    /// markers from `markers_at` on.
    fn answer(
        &self,
        key: EntryKey<'_>,
        values: &[Option<Vec<u8>>],
        counter: u64,
        markers_at: usize,
    ) -> Read {
        let entry = values.first().and_then(|v| v.as_deref());
        let newest = match entry {
            Some(_) => Self::newest(values.get(markers_at..).unwrap_or_default()),
            None => 0,
        };
        self.answer_from(key, entry, newest, counter)
    }

    /// A [`Read`] of the entry's bytes (`None`: no entry), with the newest
    /// of its floor and markers.
    fn answer_from(
        &self,
        key: EntryKey<'_>,
        entry: Option<&[u8]>,
        newest: u64,
        counter: u64,
    ) -> Read {
        let entry = entry.and_then(|bytes| {
            // The entry this thread decoded from the same bytes, if kept.
            let kept_bytes = || Arc::from(bytes);
            let decode = |bytes: &[u8]| Self::decode(bytes).map(Arc::new).ok_or(());
            let decoded = crate::decoded::value(self.inner.decoder, bytes, kept_bytes, decode);
            if decoded.is_err() {
                tracing::warn!(target: "t87s", key = key.key, "bytes under a t87s key are not a t87s entry; treated as a miss");
            }
            decoded.ok()
        });
        let newest_marker = if entry.is_some() { newest } else { 0 };
        Read::new(entry, newest_marker, counter.saturating_add(1))
    }

    /// How long an entry is kept in Redis (`PX`): its lifetime, never
    /// longer than the markers that could make it stale.
    fn entry_ttl_ms(&self, entry: &StoredEntry) -> u64 {
        entry.lifetime_ms().clamp(1, self.inner.marker_ttl_ms)
    }

    /// Until when an entry should be in Redis, counted from its creation
    /// (never after its store, so never later than its `PX` runs out).
    fn kept_until(&self, entry: &StoredEntry) -> u64 {
        entry.created_at.saturating_add(self.entry_ttl_ms(entry))
    }

    /// The version counter, started again (with the floor raised) if lost;
    /// a missing floor is set to it (see `floored_counter` in
    /// [`lua_prelude`]).
    async fn counter(&self) -> Result<u64, AdapterError> {
        let mut invocation = SCRIPTS.version.key(self.version_key());
        invocation.key(self.floor_key());
        let counter: String = self.eval("read", &invocation).await?;
        self.parse_counter(&counter)
    }

    /// The counter as a script returned it.
    fn parse_counter(&self, counter: &str) -> Result<u64, AdapterError> {
        parse_u64(counter.as_bytes()).ok_or_else(|| {
            AdapterError::new(format!(
                "the version counter of {} holds {counter:?}, not a number",
                self.inner.link.redacted()
            ))
        })
    }

    /// Bumps the counter; on one node, stamps `markers` in the same script,
    /// and publishes them (`payload`) to near caches. Returns the new
    /// version, Redis's time (ms) and the near caches' live leases.
    async fn bump(
        &self,
        markers: &[String],
        payload: &[u8],
    ) -> Result<(u64, u64, Vec<near::Peer>), AdapterError> {
        let names = &self.inner.names;
        let mut invocation = SCRIPTS.invalidate.key(self.version_key());
        invocation.key(self.floor_key()).key(&names.peers);
        for marker in markers {
            invocation.key(marker);
        }
        invocation
            .arg(self.inner.marker_ttl_ms)
            .arg(&names.channel)
            .arg(payload);
        let answer: Vec<String> = self.eval("invalidate", &invocation).await?;
        let number = |i: usize| answer.get(i).and_then(|v| parse_u64(v.as_bytes()));
        let (Some(version), Some(now)) = (number(0), number(1)) else {
            return Err(AdapterError::new(format!(
                "redis answered an invalidation with {answer:?} ({})",
                self.inner.link.redacted()
            )));
        };
        let peers = answer
            .get(2..)
            .unwrap_or_default()
            .chunks_exact(2)
            .filter_map(|pair| {
                let id = parse_u64(pair.first()?.as_bytes())?;
                // A score is a double: "1732550000123", or with a fraction.
                let expiry = pair.get(1)?.parse::<f64>().ok()?;
                Some((id, expiry.max(0.0) as u64))
            })
            .collect();
        Ok((version, now, peers))
    }

    /// After an invalidation at `version`: near caches drop what it covers.
    /// This process's at once; the others' (strict mode, and always from a
    /// process without a near cache) once each acknowledged or its lease ran
    /// out.
    async fn after_bump(
        &self,
        markers: &[MarkerKey<'_>],
        (version, now, peers): (u64, u64, Vec<near::Peer>),
        answered: Instant,
    ) {
        let near = self.inner.near.as_deref();
        if let Some(near) = near {
            near.apply_local(markers, version);
            if !near.strict {
                return;
            }
        }
        near::Near::wait_for_peers(near, version, now, &peers, answered).await;
    }

    /// Renews (or, `join`ing, starts) this process's near-cache lease:
    /// `(granted, counter)`.
    async fn near_renew(&self, join: bool) -> Result<(bool, u64), AdapterError> {
        let Some(near) = self.inner.near.as_deref() else {
            return Ok((false, 0));
        };
        let mut invocation = SCRIPTS.near_renew.key(self.version_key());
        invocation
            .key(self.floor_key())
            .key(&self.inner.names.peers)
            .arg(near.id)
            .arg(near.applied())
            .arg(near.lease_ms)
            .arg(if join { "1" } else { "0" });
        let (granted, counter): (u64, String) = self.eval("near lease", &invocation).await?;
        Ok((granted == 1, self.parse_counter(&counter)?))
    }

    /// This adapter's near cache id, the invalidator in its messages (0:
    /// none, no acknowledgement asked).
    fn near_id(&self) -> u64 {
        self.inner.near.as_ref().map_or(0, |near| near.id)
    }

    /// Publishes this process's acknowledgement of `version` to the near
    /// cache `to` that invalidated.
    async fn near_ack(&self, version: u64, to: u64) {
        let Some(near) = self.inner.near.as_deref() else {
            return;
        };
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(self.inner.names.acks_of(to))
            .arg(format!("{} {version}", near.id));
        if let Err(error) = self.run::<i64>("near ack", &cmd).await {
            tracing::debug!(target: "t87s", %error, "near cache: acknowledgement not sent; the invalidator waits for the lease");
        }
    }

    /// This adapter's near copy, for the engine's hit path to read in place.
    pub(crate) fn near_copy(&self) -> Option<NearCopy> {
        self.inner.near.clone().map(NearCopy)
    }

    /// The near cache's state, if this adapter has one (see
    /// [`RedisAdapterBuilder::near_cache`]).
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), t87s::Error> {
    /// let adapter = t87s::RedisAdapter::builder("redis://127.0.0.1:6379")
    ///     .near_cache(t87s::NearCache::new())
    ///     .connect()
    ///     .await?;
    /// if let Some(status) = adapter.near_status() {
    ///     println!("serving from memory: {}", status.serving);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn near_status(&self) -> Option<NearStatus> {
        self.inner.near.as_ref().map(|near| near.status())
    }

    fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// Extends (`ttl_ms`) or releases (`None`) both leases a fetch of `key`
    /// may hold under `token`: the one standing in the entry's place and the
    /// lease key. One round trip on one node.
    async fn on_both_leases(
        &self,
        what: &str,
        key: EntryKey<'_>,
        token: u64,
        ttl_ms: Option<u64>,
    ) -> Result<(), AdapterError> {
        let command = |target: String, value: String| match ttl_ms {
            Some(ttl) => {
                let mut cmd = eval_cmd(EXTEND, &target, value);
                cmd.arg(ttl);
                cmd
            }
            None => eval_cmd(RELEASE, &target, value),
        };
        let in_place = command(self.entry_key(key), lease_value(token));
        // The refresh lease key only if this process may hold it.
        let spot = Seen::spot(key);
        let lease_key = self
            .inner
            .leases
            .may_hold(spot, token)
            .then(|| command(self.lease_key(key), token.to_string()));
        let touched = lease_key.is_some();
        self.inner
            .link
            .call(what, |conn| async move {
                match conn {
                    Conn::Single(mut conn) => {
                        let mut pipe = redis::pipe();
                        pipe.add_command(in_place).ignore();
                        if let Some(lease_key) = lease_key {
                            pipe.add_command(lease_key).ignore();
                        }
                        pipe.query_async::<()>(&mut conn).await
                    }
                    #[cfg(feature = "redis-cluster")]
                    Conn::Cluster(conn) => {
                        let mut a = conn.clone();
                        let both = futures_util::future::join(
                            in_place.query_async::<i64>(&mut a),
                            async move {
                                let mut b = conn;
                                match lease_key {
                                    Some(lease_key) => lease_key.query_async::<i64>(&mut b).await,
                                    None => Ok(0),
                                }
                            },
                        );
                        let (x, y) = both.await;
                        x.and(y).map(drop)
                    }
                }
            })
            .await?;
        if touched && ttl_ms.is_none() {
            self.inner.leases.let_go(spot, token);
        }
        Ok(())
    }

    async fn lease_inner(&self, key: EntryKey<'_>, ask: LeaseAsk) -> Result<Lease, AdapterError> {
        let mut invocation = SCRIPTS.lease.key(self.lease_key(key));
        invocation.arg(ask.token).arg(ask.ttl_ms);
        let spot = Seen::spot(key);
        self.inner.leases.asking(spot, ask.token);
        let answer: String = self.eval("lease", &invocation).await?;
        Ok(if answer == "a" {
            Lease::Acquired
        } else {
            self.inner.leases.let_go(spot, ask.token);
            Lease::Held
        })
    }

    async fn clear_inner(&self) -> Result<(), AdapterError> {
        self.inner.seen.clear();
        // First the floor, so a fetch in flight cannot write back what we delete.
        let bumped = self
            .bump(&[], &near::Near::payload(self.near_id(), &[])?)
            .await?;
        let floor = bumped.0;
        self.after_bump(&[], bumped, Instant::now()).await;
        // The floor is kept for good: a missing one reads as a lost counter.
        self.set_max(self.floor_key(), floor, 0).await?;
        let pattern = format!("{}:*", glob_escape(&self.inner.prefix));
        let keep = [self.version_key(), self.floor_key()];
        let masters = &self.inner.link.connected().await?.masters;
        for master in masters {
            let client = redis::Client::open(master.clone()).map_err(|e| {
                AdapterError::with_source(
                    format!("redis clear failed ({})", self.inner.link.redacted()),
                    e,
                )
            })?;
            let mut conn = self
                .timed("clear", client.get_multiplexed_async_connection())
                .await?;
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = self
                    .timed(
                        "clear",
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(500)
                            .query_async(&mut conn),
                    )
                    .await?;
                for key in keys.iter().filter(|k| !keep.contains(k)) {
                    // One key per command: on a Cluster, keys of one batch
                    // may live in different slots.
                    let _: i64 = self
                        .timed("clear", Cmd::del(key).query_async(&mut conn))
                        .await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Sets `key` to `version` unless it holds a newer one, kept
    /// `ttl_ms` (`0`: for good).
    async fn set_max(&self, key: String, version: u64, ttl_ms: u64) -> Result<(), AdapterError> {
        let mut invocation = SCRIPTS.set_max.key(key);
        invocation.arg(version).arg(ttl_ms);
        let _: i64 = self.eval("invalidate", &invocation).await?;
        Ok(())
    }
}

/// `GET` of every key in one round trip: a pipeline on one node, concurrent
/// commands on a Cluster (the keys are in different slots).
async fn get_each<K>(conn: Conn, keys: &[K]) -> Result<Vec<Option<Vec<u8>>>, RedisError>
where
    K: redis::ToSingleRedisArg + Sync,
{
    match conn {
        Conn::Single(mut conn) => {
            let mut pipe = redis::pipe();
            for key in keys {
                pipe.get(key);
            }
            pipe.query_async(&mut conn).await
        }
        #[cfg(feature = "redis-cluster")]
        Conn::Cluster(conn) => {
            let gets = keys.iter().map(|key| {
                let mut conn = conn.clone();
                async move {
                    Cmd::get(key)
                        .query_async::<Option<Vec<u8>>>(&mut conn)
                        .await
                }
            });
            join_all(gets).await.into_iter().collect()
        }
    }
}

/// The values of `keys` in one round trip: one `MGET` on one node
/// ([`mget`]), concurrent `GET`s on a Cluster (the keys are in different
/// slots).
async fn get_joined(conn: Conn, keys: &[Joined<'_>]) -> Result<Vec<Option<Vec<u8>>>, RedisError> {
    match conn {
        Conn::Single(mut conn) => mget(keys, &[]).query_async(&mut conn).await,
        #[cfg(feature = "redis-cluster")]
        Conn::Cluster(_) => get_each(conn, keys).await,
    }
}

/// One `MGET` of `first` then `rest`, built in one allocation of its size
/// with the keys written straight into it.
#[inline]
fn mget(first: &[Joined<'_>], rest: &[Joined<'_>]) -> Cmd {
    let size = "MGET".len() + first.iter().chain(rest).map(Joined::len).sum::<usize>();
    let mut mget = Cmd::with_capacity(1 + first.len() + rest.len(), size);
    mget.arg("MGET").arg(first).arg(rest);
    mget
}

/// What the read of an entry this process saw found (see
/// `RedisAdapter::read_seen`).
struct Found {
    /// The entry's bytes (or a lease in its place).
    entry: Option<Vec<u8>>,
    /// Whether there is a floor (a missing one is a lost counter).
    floored: bool,
    /// The newest of the floor and the markers.
    newest: u64,
}

impl Found {
    /// From the values of the entry, the floor and the markers, in order.
    fn of(values: Vec<Option<Vec<u8>>>) -> Self {
        let rest = values.get(1..).unwrap_or_default();
        let (floored, newest) = (
            matches!(rest.first(), Some(Some(_))),
            RedisAdapter::newest(rest),
        );
        Self {
            entry: values.into_iter().next().flatten(),
            floored,
            newest,
        }
    }
}

/// What a plain read returns: the entry (or a lease in its place), the
/// refresh lease's holder, then the counter, the floor and the markers; or
/// `None` when the entry key holds another Redis type.
type Parts = Option<(Option<Vec<u8>>, Option<Vec<u8>>, Vec<Option<Vec<u8>>>)>;

/// The commands of a plain read (see `RedisAdapter::read_inner`), each
/// built in one allocation of its size, its keys written straight into it.
async fn read_parts(
    conn: Conn,
    entry: Joined<'_>,
    lease: Joined<'_>,
    rest: &[Joined<'_>],
    ask: Option<LeaseAsk>,
) -> Result<Parts, RedisError> {
    let entry_cmd = || match ask {
        Some(ask) => {
            let (mut token, mut ttl) = (itoa::Buffer::new(), itoa::Buffer::new());
            let (token, ttl) = (token.format(ask.token), ttl.format(ask.ttl_ms));
            let in_place = Joined([LEASE_HEAD, token, "", ""]);
            let size = "SETNXPXGET".len() + entry.len() + in_place.len() + ttl.len();
            let mut cmd = Cmd::with_capacity(7, size);
            cmd.arg("SET")
                .arg(entry)
                .arg(in_place)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .arg("GET");
            cmd
        }
        None => Cmd::get(entry),
    };
    let answer = match conn {
        Conn::Single(mut conn) => {
            // One MGET of the lease key, the counter, the floor and the
            // markers; the entry first in it, or, to take the lease in its
            // place, in a command of its own before it.
            let answer = match ask {
                None => mget(&[entry, lease], rest)
                    .query_async::<Vec<Option<Vec<u8>>>>(&mut conn)
                    .await
                    .map(|mut values| (take_first(&mut values), values)),
                Some(_) => {
                    let mut pipe = redis::Pipeline::with_capacity(2);
                    pipe.add_command(entry_cmd())
                        .add_command(mget(&[lease], rest));
                    pipe.query_async::<(Option<Vec<u8>>, Vec<Option<Vec<u8>>>)>(&mut conn)
                        .await
                }
            };
            answer.map(|(entry, mut values)| (entry, take_first(&mut values), values))
        }
        #[cfg(feature = "redis-cluster")]
        Conn::Cluster(conn) => {
            let (mut entry_conn, mut lease_conn) = (conn.clone(), conn.clone());
            let (entry, held, values) = futures_util::future::join3(
                async move { entry_cmd().query_async(&mut entry_conn).await },
                async move { Cmd::get(lease).query_async(&mut lease_conn).await },
                get_each(Conn::Cluster(conn), rest),
            )
            .await;
            entry.and_then(|e| Ok((e, held?, values?)))
        }
    };
    match answer {
        Ok(parts) => Ok(Some(parts)),
        // A pipeline's error carries the failing command's: matched by text.
        Err(error) if error.to_string().contains("WRONGTYPE") => Ok(None),
        Err(error) => Err(error),
    }
}

/// The first of `values`, taken out (`None` when there are none).
fn take_first(values: &mut Vec<Option<Vec<u8>>>) -> Option<Vec<u8>> {
    if values.is_empty() {
        None
    } else {
        values.remove(0)
    }
}

/// `EVAL` of a small script on one key with one argument: for pipelines,
/// where an `EVALSHA` of a script the server lost could not be retried.
fn eval_cmd(script: &str, key: &str, value: impl redis::ToRedisArgs) -> Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(1).arg(key).arg(value);
    cmd
}

/// What stands in an entry's place while a process fetches it: `t87s2L
/// {token}`.
fn lease_value(token: u64) -> String {
    concat(&[LEASE_HEAD, itoa::Buffer::new().format(token)])
}

/// The start of a lease standing in an entry's place.
const LEASE_HEAD: &str = "t87s2L ";

/// A Redis key as the parts it is made of. The hit path writes it into its
/// command as one argument, with no `String` built for it
/// ([`ToRedisArgs`](redis::ToRedisArgs)); [`joined`](Self::joined) builds
/// one where a key is kept or sent elsewhere.
#[derive(Clone, Copy)]
struct Joined<'a>([&'a str; 4]);

impl Joined<'_> {
    fn joined(&self) -> String {
        concat(&self.0)
    }

    fn len(&self) -> usize {
        self.0.iter().map(|part| part.len()).sum()
    }
}

impl Joined<'_> {
    /// `f` of the key's bytes, joined on the stack (longer keys, rare, on
    /// the heap).
    #[inline]
    fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        let mut stack = [0u8; 192];
        match self.join_into(&mut stack) {
            Some(bytes) => f(bytes),
            None => f(self.joined().as_bytes()),
        }
    }

    /// The key's bytes, joined in `buffer`; `None` if they do not fit.
    #[inline]
    fn join_into<'b>(&self, buffer: &'b mut [u8]) -> Option<&'b [u8]> {
        let mut at = 0;
        for part in self.0 {
            let end = at + part.len();
            buffer.get_mut(at..end)?.copy_from_slice(part.as_bytes());
            at = end;
        }
        buffer.get(..at)
    }
}

impl redis::ToRedisArgs for Joined<'_> {
    fn write_redis_args<W>(&self, out: &mut W)
    where
        W: ?Sized + redis::RedisWrite,
    {
        // Joined first and written as one argument: one copy into the
        // command, where a write per part pays the command's writer its
        // bookkeeping for each part.
        self.with_bytes(|bytes| out.write_arg(bytes));
    }
}

/// Always exactly one argument.
impl redis::ToSingleRedisArg for Joined<'_> {}

/// `parts` joined, in one allocation of the exact size.
fn concat(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        out.push_str(part);
    }
    out
}

/// The token of a lease standing in an entry's place.
fn lease_token(bytes: &[u8]) -> Option<u64> {
    parse_u64(bytes.strip_prefix(LEASE_HEAD.as_bytes())?)
}

/// A number as t87s and its scripts write them: decimal digits only (no
/// sign, no space), at most `u64::MAX`. Anything else is `None`: a marker
/// holding it reads as "invalidated now".
fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, b| {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A URL with every password hidden: `redis://user:secret@host` ->
/// `redis://user:***@host`, and `?pass=` / `?password=` in the query (as in
/// `redis+unix:///run/redis.sock?pass=secret`) -> `?pass=***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<redis url>".to_owned();
    };
    let (address, query) = match rest.split_once('?') {
        Some((address, query)) => (address, Some(query)),
        None => (rest, None),
    };
    let mut out = match address.rsplit_once('@') {
        Some((auth, host)) => match auth.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => format!("{scheme}://***@{host}"),
        },
        None => format!("{scheme}://{address}"),
    };
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((key, _))
                    if key.eq_ignore_ascii_case("pass") || key.eq_ignore_ascii_case("password") =>
                {
                    format!("{key}=***")
                }
                _ => pair.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

impl fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("url", &self.inner.link.redacted())
            .field("cluster", &self.inner.link.is_cluster())
            .field("prefix", &self.inner.prefix)
            .field("timeout", &self.inner.link.timeout())
            .finish_non_exhaustive()
    }
}

impl StorageAdapter for RedisAdapter {
    fn value_form(&self) -> ValueForm {
        ValueForm::Bytes
    }

    /// With a near cache: its fresh entries, with no I/O, while this
    /// process holds its lease.
    fn try_read_now(
        &self,
        key: EntryKey<'_>,
        _markers: MarkerSet<'_>,
        now_ms: u64,
    ) -> Option<Result<Read, AdapterError>> {
        self.inner.near.as_ref()?.read_now(key, now_ms).map(Ok)
    }

    fn keeps_objects(&self) -> bool {
        self.inner.near.is_some()
    }

    fn keep_object(&self, key: EntryKey<'_>, entry: &Arc<StoredEntry>) {
        if let Some(near) = &self.inner.near {
            near.keep(key, entry);
        }
    }

    fn read<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
    ) -> AdapterFuture<'a, Read> {
        Box::pin(self.read_inner(key, markers, now_ms, None))
    }

    fn read_leasing<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
        ask: LeaseAsk,
    ) -> AdapterFuture<'a, Read> {
        Box::pin(self.read_inner(key, markers, now_ms, Some(ask)))
    }

    fn newest_marker<'a>(&'a self, markers: MarkerSet<'a>) -> AdapterFuture<'a, u64> {
        Box::pin(async move {
            let mut keys = vec![self.floor_key()];
            keys.extend(markers.iter().map(|m| self.marker_key(m)));
            let values = self.get_all(&keys).await?;
            // A missing floor stands for a lost counter (see `read_seen`).
            let lost = match values.first() {
                Some(Some(_)) => 0,
                _ => self.counter().await?,
            };
            Ok(Self::newest(&values).max(lost))
        })
    }

    fn version(&self) -> AdapterFuture<'_, u64> {
        Box::pin(async move { Ok(self.counter().await?.saturating_add(1)) })
    }

    fn write<'a>(&'a self, key: EntryKey<'a>, entry: Arc<StoredEntry>) -> AdapterFuture<'a, ()> {
        self.write_releasing(key, entry, None)
    }

    fn write_releasing<'a>(
        &'a self,
        key: EntryKey<'a>,
        entry: Arc<StoredEntry>,
        token: Option<u64>,
    ) -> AdapterFuture<'a, ()> {
        Box::pin(async move {
            let bytes = Self::encode(&entry)?;
            // Never outlive the markers that could make the entry stale.
            let ttl = self.entry_ttl_ms(&entry);
            let entry_key = self.entry_key(key);
            let mut set = Cmd::set(&entry_key, bytes);
            set.arg("PX").arg(ttl);
            // The entry replaces a lease standing in its place; the refresh
            // lease key, if this process may hold it, goes after it, in the
            // same round trip on one node.
            let spot = Seen::spot(key);
            let released = token.filter(|token| self.inner.leases.may_hold(spot, *token));
            let release = released.map(|token| eval_cmd(RELEASE, &self.lease_key(key), token));
            self.inner
                .link
                .call("write", |conn| async move {
                    match conn {
                        Conn::Single(mut conn) => {
                            let mut pipe = redis::pipe();
                            pipe.add_command(set).ignore();
                            if let Some(release) = release {
                                pipe.add_command(release).ignore();
                            }
                            pipe.query_async::<()>(&mut conn).await
                        }
                        #[cfg(feature = "redis-cluster")]
                        Conn::Cluster(mut conn) => {
                            set.query_async::<()>(&mut conn).await?;
                            match release {
                                Some(release) => release.query_async::<()>(&mut conn).await,
                                None => Ok(()),
                            }
                        }
                    }
                })
                .await?;
            if let Some(token) = released {
                self.inner.leases.let_go(spot, token);
            }
            self.inner.seen.saw(spot, self.kept_until(&entry));
            Ok(())
        })
    }

    fn delete<'a>(&'a self, key: EntryKey<'a>) -> AdapterFuture<'a, ()> {
        Box::pin(async move {
            if let Some(near) = &self.inner.near {
                near.l1.remove(key);
            }
            self.inner.seen.forget(Seen::spot(key));
            let _: i64 = self.run("delete", &Cmd::del(self.entry_key(key))).await?;
            Ok(())
        })
    }

    fn invalidate<'a>(&'a self, markers: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()> {
        Box::pin(async move {
            // Reads before the counter's INCR returned at most its version;
            // reads after it return more. Markers only ever grow (set_max).
            let keys: Vec<String> = markers.iter().map(|m| self.marker_key(*m)).collect();
            let from = self.near_id();
            if !self.inner.link.is_cluster() {
                // One node: the counter and every marker in one script.
                let bumped = self
                    .bump(&keys, &near::Near::payload(from, markers)?)
                    .await?;
                self.after_bump(markers, bumped, Instant::now()).await;
                return Ok(());
            }
            // A Cluster: the keys live in different slots, so no one script
            // can touch them all. The counter first, then the markers at
            // once. Near caches are told "everything" with the counter (the
            // markers are not in place yet when the message goes out).
            let bumped = self.bump(&[], &near::Near::payload(from, &[])?).await?;
            let answered = Instant::now();
            #[cfg(feature = "redis-cluster")]
            {
                let version = bumped.0;
                let stamps = keys
                    .into_iter()
                    .map(|key| self.set_max(key, version, self.inner.marker_ttl_ms));
                for stamped in join_all(stamps).await {
                    stamped?;
                }
            }
            self.after_bump(markers, bumped, answered).await;
            Ok(())
        })
    }

    fn clear(&self) -> AdapterFuture<'_, ()> {
        Box::pin(self.clear_inner())
    }

    fn disconnect(&self) -> AdapterFuture<'_, ()> {
        // Connections close when the last clone of the adapter is dropped;
        // a near cache stops serving and listening now.
        if let Some(near) = &self.inner.near {
            near.stop();
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn lease<'a>(&'a self, key: EntryKey<'a>, ask: LeaseAsk) -> AdapterFuture<'a, Lease> {
        Box::pin(self.lease_inner(key, ask))
    }

    fn extend_lease<'a>(&'a self, key: EntryKey<'a>, ask: LeaseAsk) -> AdapterFuture<'a, ()> {
        Box::pin(self.on_both_leases("lease", key, ask.token, Some(ask.ttl_ms)))
    }

    fn release<'a>(&'a self, key: EntryKey<'a>, token: u64) -> AdapterFuture<'a, ()> {
        Box::pin(self.on_both_leases("release", key, token, None))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{parse_u64, redact, Envelope, Joined, RedisAdapter, MAGIC};

    #[test]
    fn an_entry_value_is_written_as_it_was_as_a_sequence_of_bytes() {
        // What an earlier version wrote (the value a sequence of `u8`) and
        // what this one writes (bytes) are the same bytes: entries stored
        // by either read in both.
        #[derive(serde::Serialize)]
        struct AsSequence<'a> {
            magic: u32,
            created_at: u64,
            expires_at: u64,
            grace_until: Option<u64>,
            version: u64,
            value_type: u64,
            tags: Vec<Cow<'a, str>>,
            value: Cow<'a, [u8]>,
        }
        for len in [0usize, 1, 127, 128, 300, 20_000] {
            let value: Vec<u8> = (0..len).map(|i| (i * 7 % 256) as u8).collect();
            let tags = vec![Cow::Borrowed("posts/1"), Cow::Borrowed("users")];
            let old = AsSequence {
                magic: MAGIC,
                created_at: 1,
                expires_at: u64::MAX,
                grace_until: Some(300),
                version: 1 << 40,
                value_type: 42,
                tags: tags.clone(),
                value: Cow::Borrowed(&value),
            };
            let new = Envelope {
                magic: MAGIC,
                created_at: 1,
                expires_at: u64::MAX,
                grace_until: Some(300),
                version: 1 << 40,
                value_type: 42,
                tags,
                value: Cow::Borrowed(&value),
            };
            assert_eq!(
                postcard::to_allocvec(&old).unwrap(),
                postcard::to_allocvec(&new).unwrap(),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn numbers_are_digits_only_and_fit_a_u64() {
        for (text, n) in [
            ("0", 0),
            ("42", 42),
            ("007", 7),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_u64(text.as_bytes()), Some(n), "{text}");
        }
        for text in [
            "",
            "+5",
            "-1",
            " 5",
            "5 ",
            "1e3",
            "4.0",
            "18446744073709551616",
            "ab",
            "١",
        ] {
            assert_eq!(parse_u64(text.as_bytes()), None, "{text:?}");
        }
    }

    #[test]
    fn a_key_in_parts_is_sent_as_the_one_joined_argument() {
        let parts = Joined(["app:e:", "", ":", "Blog::post(1)@00:0a"]);
        let mut sent = redis::cmd("GET");
        sent.arg(parts);
        let mut joined = redis::cmd("GET");
        joined.arg("app:e::Blog::post(1)@00:0a");
        assert_eq!(sent.get_packed_command(), joined.get_packed_command());
        assert_eq!(parts.len(), parts.joined().len());
        // Longer than the stack buffer: joined on the heap, sent the same.
        let long = "x".repeat(300);
        let parts = Joined(["app:e:", "", ":", &long]);
        let mut sent = redis::cmd("GET");
        sent.arg(parts);
        let mut joined = redis::cmd("GET");
        joined.arg(format!("app:e::{long}"));
        assert_eq!(sent.get_packed_command(), joined.get_packed_command());
    }

    #[test]
    fn passwords_never_survive_redaction() {
        for (url, shown) in [
            (
                "redis://app:hunter2@host:6379/0",
                "redis://app:***@host:6379/0",
            ),
            ("redis://:hunter2@host", "redis://:***@host"),
            ("rediss://hunter2@host", "rediss://***@host"),
            (
                "redis+unix:///run/redis.sock?pass=hunter2",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            (
                "redis+unix:///s?db=1&password=hunter2",
                "redis+unix:///s?db=1&password=***",
            ),
            ("unix:///s?PASS=hunter2&db=2", "unix:///s?PASS=***&db=2"),
            ("redis://host:6379", "redis://host:6379"),
        ] {
            assert_eq!(redact(url), shown);
        }
    }

    #[test]
    fn a_damaged_marker_reads_as_invalidated_now() {
        let values = [Some(b"12".to_vec()), Some(b"garbage".to_vec()), None];
        assert_eq!(RedisAdapter::newest(&values), u64::MAX);
        assert_eq!(RedisAdapter::newest(&[Some(b"12".to_vec()), None]), 12);
        assert_eq!(RedisAdapter::newest(&[None]), 0);
    }
}
