//! Counters and histograms through the [`metrics`](https://docs.rs/metrics)
//! facade (feature `metrics`): install any recorder (the Prometheus
//! exporter, OpenTelemetry, StatsD) and every cache reports to it.
//!
//! Every [`Event`] is counted; one function of this module (`series`)
//! says what each [`EventKind`] counts as. Labels are bounded:
//! `query` is [`Event::query`] (`Blog::post`, never the
//! key or the arguments), `root` a tag's first segment.
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `t87s_events_total` | `query`, `event` | hits (`hit`: from the store; `near_hit`: from a Redis adapter's near cache, no I/O), misses, stale serves, coalesced callers, fail-safes, fetch and adapter errors, values not stored, refreshes, verifications (`event` is [`EventKind::name`]) |
//! | `t87s_fetch_seconds` | `query` | how long each fetch took (foreground, refresh, verification) |
//! | `t87s_store_seconds` | `query` | how long each write of a fetched value took |
//! | `t87s_invalidations_total` | `root` | tags invalidated |
//! | `t87s_invalidate_seconds` | `root` | how long the invalidation of each tag took (the call's time) |
//! | `t87s_invalidations_given_up_total` | `root` | failed invalidations the cache stopped retrying |
//! | `t87s_near_wait_seconds` | | how long each invalidation waited for the near caches of other processes (strict mode) |
//! | `t87s_near_silent_peers_total` | | near caches an invalidation waited out: no acknowledgement before their lease ran out |
//! | `t87s_near_state_changes_total` | `state` | this process's near cache `joined` (serving from memory again, L1 floored), `lost` its subscription, fell `behind` the counter, or saw a `gap` in the messages (L1 floored) |
//!
//! A hit ratio in PromQL:
//! `sum by (query) (rate(t87s_events_total{event=~"hit|near_hit"}[5m])) / sum by (query) (rate(t87s_events_total{event=~"hit|near_hit|miss|stale_served|coalesced"}[5m]))`;
//! the share of hits a near cache answers:
//! `sum(rate(t87s_events_total{event="near_hit"}[5m])) / sum(rate(t87s_events_total{event=~"hit|near_hit"}[5m]))`.
//!
//! Handles are registered once per cache, series and label, at the first
//! event: install the recorder before the cache's first query.
//!
//! ```
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use t87s::engine::{Primitives, QueryOptions};
//!
//! // Any recorder: here the debugging one of `metrics-util`; in a service,
//! // `PrometheusBuilder::new().install_recorder()?` and `handle.render()`.
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! metrics::with_local_recorder(&recorder, || {
//!     let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
//!     runtime.block_on(async {
//!         let cache = Primitives::new(t87s::MemoryAdapter::new());
//!         for _ in 0..3 {
//!             let fetch = || async { Ok::<_, std::io::Error>("ada".to_string()) };
//!             cache.query("user:1", &[], QueryOptions::new(), fetch).await.unwrap();
//!         }
//!     })
//! });
//! let hits = snapshotter.snapshot().into_vec().into_iter().find_map(|(key, _, _, value)| {
//!     let key = key.key();
//!     let label = |name: &str| key.labels().find(|l| l.key() == name).map(|l| l.value().to_owned());
//!     let wanted = key.name() == t87s::metrics::EVENTS
//!         && label("query").as_deref() == Some("user")
//!         && label("event").as_deref() == Some("hit");
//!     wanted.then_some(value)
//! });
//! assert_eq!(hits, Some(DebugValue::Counter(2)));
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use metrics::{Counter, Histogram};
use parking_lot::RwLock;

use crate::observer::{Event, EventKind};

/// Counter of events per query and kind (labels `query`, `event`).
pub const EVENTS: &str = "t87s_events_total";
/// Histogram of fetch durations in seconds (label `query`).
pub const FETCH_SECONDS: &str = "t87s_fetch_seconds";
/// Histogram of store durations in seconds (label `query`).
pub const STORE_SECONDS: &str = "t87s_store_seconds";
/// Counter of invalidated tags (label `root`).
pub const INVALIDATIONS: &str = "t87s_invalidations_total";
/// Histogram of invalidation durations in seconds (label `root`).
pub const INVALIDATE_SECONDS: &str = "t87s_invalidate_seconds";
/// Counter of invalidations given up on (label `root`).
pub const INVALIDATIONS_GIVEN_UP: &str = "t87s_invalidations_given_up_total";
/// Histogram of how long invalidations waited for near caches in other
/// processes (strict mode), in seconds.
pub const NEAR_WAIT_SECONDS: &str = "t87s_near_wait_seconds";
/// Counter of near caches an invalidation waited out: they neither
/// acknowledged nor dropped out before their lease ran out.
pub const NEAR_SILENT_PEERS: &str = "t87s_near_silent_peers_total";
/// Counter of this process's near-cache state changes (label `state`:
/// `joined`, `lost`, `behind`, `gap`).
pub const NEAR_STATE_CHANGES: &str = "t87s_near_state_changes_total";

/// What an event counts as.
#[derive(Clone, Copy)]
enum Series {
    /// `t87s_events_total{query, event}`.
    Event,
    /// `t87s_fetch_seconds{query}`.
    Fetch,
    /// `t87s_store_seconds{query}`.
    Store,
    /// `t87s_invalidations_total{root}` and `t87s_invalidate_seconds{root}`.
    Invalidation,
    /// `t87s_invalidations_given_up_total{root}`.
    GivenUp,
}

/// The one place that maps every kind of event to its series: a new kind
/// is one line here.
fn series(kind: EventKind) -> Series {
    match kind {
        EventKind::Hit
        | EventKind::NearHit
        | EventKind::Miss
        | EventKind::Coalesced
        | EventKind::StaleServed
        | EventKind::Refreshed { .. }
        | EventKind::RefreshFailed
        | EventKind::CallbackPanicked
        | EventKind::FailSafe
        | EventKind::FetchError
        | EventKind::Verified { .. }
        | EventKind::VerificationFailed
        | EventKind::AdapterError
        | EventKind::Undecodable
        | EventKind::NotStored
        | EventKind::Uncached => Series::Event,
        EventKind::Fetched => Series::Fetch,
        EventKind::Stored => Series::Store,
        EventKind::Invalidated => Series::Invalidation,
        EventKind::InvalidationFailed => Series::GivenUp,
    }
}

/// How many distinct `event` labels there are (slots per query).
const EVENT_SLOTS: usize = 17;

/// A slot per `event` label of [`Series::Event`].
fn slot(kind: EventKind) -> usize {
    match kind {
        EventKind::Hit => 0,
        EventKind::Miss => 1,
        EventKind::Coalesced => 2,
        EventKind::StaleServed => 3,
        EventKind::Refreshed { .. } => 4,
        EventKind::RefreshFailed => 5,
        EventKind::CallbackPanicked => 6,
        EventKind::FailSafe => 7,
        EventKind::FetchError => 8,
        EventKind::Verified { .. } => 9,
        EventKind::VerificationFailed => 10,
        EventKind::AdapterError => 11,
        EventKind::Undecodable => 12,
        EventKind::NotStored => 13,
        EventKind::Uncached => 14,
        EventKind::NearHit => 15,
        _ => 16,
    }
}

/// The handles of one query name, registered at first use.
#[derive(Default)]
struct Query {
    events: [OnceLock<Counter>; EVENT_SLOTS],
    fetch: OnceLock<Histogram>,
    store: OnceLock<Histogram>,
}

/// The handles of one tag root, registered at first use.
#[derive(Default)]
struct Root {
    invalidations: OnceLock<Counter>,
    seconds: OnceLock<Histogram>,
    given_up: OnceLock<Counter>,
}

/// One cache's registered handles, by label value: an event looks its
/// handle up (a read lock and a hash) instead of building a metric key,
/// so a hit allocates nothing once its query has been seen.
#[derive(Default)]
pub(crate) struct Metrics {
    queries: RwLock<HashMap<Box<str>, Query>>,
    roots: RwLock<HashMap<Box<str>, Root>>,
}

/// Runs `use_it` on the handles of `label`, adding them at first use.
fn with<H: Default>(map: &RwLock<HashMap<Box<str>, H>>, label: &str, use_it: impl FnOnce(&H)) {
    if let Some(handles) = map.read().get(label) {
        return use_it(handles);
    }
    let mut map = map.write();
    use_it(map.entry(label.into()).or_default());
}

/// The help text of every series, given to the recorder when a handle is
/// first registered (exporters show it as `# HELP`).
fn describe() {
    use metrics::Unit;
    metrics::describe_counter!(EVENTS, "t87s cache events by query name and kind (hit, near_hit, miss, stale_served, coalesced, fail_safe, fetch_error, adapter_error, not_stored, ...)");
    metrics::describe_histogram!(
        FETCH_SECONDS,
        Unit::Seconds,
        "t87s fetch durations by query name"
    );
    metrics::describe_histogram!(
        STORE_SECONDS,
        Unit::Seconds,
        "t87s store write durations by query name"
    );
    metrics::describe_counter!(INVALIDATIONS, "t87s tags invalidated, by tag root");
    metrics::describe_histogram!(
        INVALIDATE_SECONDS,
        Unit::Seconds,
        "t87s invalidation durations, per tag, by tag root"
    );
    metrics::describe_counter!(
        INVALIDATIONS_GIVEN_UP,
        "t87s failed invalidations given up on, by tag root"
    );
}

impl Metrics {
    /// Counts `event` (and records its duration, if it has one).
    pub(crate) fn record(&self, event: &Event<'_>) {
        let label = event.query();
        let name = || {
            describe();
            label.to_owned()
        };
        match series(event.kind) {
            Series::Event => with(&self.queries, label, |q| {
                q.events[slot(event.kind)]
                    .get_or_init(|| {
                        metrics::counter!(EVENTS, "query" => name(), "event" => event.kind.name())
                    })
                    .increment(1);
            }),
            Series::Fetch => with(&self.queries, label, |q| {
                if let Some(elapsed) = event.elapsed {
                    q.fetch
                        .get_or_init(|| metrics::histogram!(FETCH_SECONDS, "query" => name()))
                        .record(elapsed);
                }
            }),
            Series::Store => with(&self.queries, label, |q| {
                if let Some(elapsed) = event.elapsed {
                    q.store
                        .get_or_init(|| metrics::histogram!(STORE_SECONDS, "query" => name()))
                        .record(elapsed);
                }
            }),
            Series::Invalidation => with(&self.roots, label, |r| {
                r.invalidations
                    .get_or_init(|| metrics::counter!(INVALIDATIONS, "root" => name()))
                    .increment(1);
                if let Some(elapsed) = event.elapsed {
                    r.seconds
                        .get_or_init(|| metrics::histogram!(INVALIDATE_SECONDS, "root" => name()))
                        .record(elapsed);
                }
            }),
            Series::GivenUp => with(&self.roots, label, |r| {
                r.given_up
                    .get_or_init(|| metrics::counter!(INVALIDATIONS_GIVEN_UP, "root" => name()))
                    .increment(1);
            }),
        }
    }
}

/// A strict invalidation waited `elapsed` for near caches in other
/// processes; `silent` of them were waited out (no acknowledgement).
#[cfg(feature = "redis")]
pub(crate) fn near_waited(elapsed: std::time::Duration, silent: usize) {
    describe_near();
    metrics::histogram!(NEAR_WAIT_SECONDS).record(elapsed);
    if silent > 0 {
        metrics::counter!(NEAR_SILENT_PEERS).increment(silent as u64);
    }
}

/// This process's near cache changed state (`joined`, `lost`, `behind`,
/// `gap`): rare, so the handle is looked up each time.
#[cfg(feature = "redis")]
pub(crate) fn near_state(state: &'static str) {
    describe_near();
    metrics::counter!(NEAR_STATE_CHANGES, "state" => state).increment(1);
}

/// The help texts of the near cache's series (rare events: given each time).
#[cfg(feature = "redis")]
fn describe_near() {
    metrics::describe_histogram!(
        NEAR_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "t87s invalidation waits for other processes' near caches"
    );
    metrics::describe_counter!(
        NEAR_SILENT_PEERS,
        "t87s near caches an invalidation waited out (no acknowledgement before their lease ran out)"
    );
    metrics::describe_counter!(
        NEAR_STATE_CHANGES,
        "t87s near-cache state changes of this process (joined, lost, behind, gap)"
    );
}
