//! Shared helpers for the t87s integration suites: a recording observer, a
//! deterministic clock, counting fetches, and adapters to run each suite on.

pub mod proxy;
pub mod servers;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use t87s::adapter::{
    AdapterFuture, EntryKey, MarkerKey, MarkerSet, Read, StorageAdapter, StoredEntry, ValueForm,
};
use t87s::engine::{Primitives, TagPath};
use t87s::{AdapterError, Event, EventKind, ManualClock, MemoryAdapter, Observer, RedisAdapter};

/// The epoch the manual clock starts at (any fixed, realistic time).
pub const T0: u64 = 1_700_000_000_000;

/// An observer that records every event, and asks for verifications.
#[derive(Clone, Default)]
pub struct Recorder {
    events: Arc<Mutex<Vec<(EventKind, String)>>>,
}

impl Recorder {
    /// How many events of `kind` were seen.
    pub fn count(&self, kind: EventKind) -> usize {
        self.events
            .lock()
            .iter()
            .filter(|(k, _)| *k == kind)
            .count()
    }

    /// Every event kind seen, in order.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.events.lock().iter().map(|(k, _)| *k).collect()
    }

    /// Forgets what was recorded.
    pub fn reset(&self) {
        self.events.lock().clear();
    }
}

impl Observer for Recorder {
    fn on_event(&self, event: &Event<'_>) {
        self.events.lock().push((event.kind, event.key.to_owned()));
    }

    fn wants_verification(&self) -> bool {
        true
    }
}

/// The stores every engine suite runs against.
#[derive(Debug, Clone, Copy)]
pub enum Store {
    /// MemoryAdapter keeping values as objects (the synchronous hit path).
    MemoryObjects,
    /// MemoryAdapter keeping codec bytes, reached only through the async
    /// methods: the path a networked store takes.
    MemoryBytesAsync,
    /// RedisAdapter on the server at `REDIS_URL`, under a prefix of its own.
    Redis,
}

impl Store {
    /// The in-process stores (deterministic scheduling on one runtime).
    pub const MEMORY: [Store; 2] = [Store::MemoryObjects, Store::MemoryBytesAsync];

    /// A fresh store of this kind, aging markers on `clock`: the memory adapter
    /// (to inspect), if it is one, and the adapter to give the engine.
    pub async fn build(
        self,
        clock: &ManualClock,
    ) -> (Option<MemoryAdapter>, Arc<dyn StorageAdapter>) {
        let form = match self {
            Store::MemoryObjects => ValueForm::Object,
            Store::MemoryBytesAsync => ValueForm::Bytes,
            Store::Redis => return (None, Arc::new(redis_adapter(&unique_prefix()).await)),
        };
        let memory = MemoryAdapter::builder()
            .clock(clock.clone())
            .value_form(form)
            .build()
            .expect("valid adapter options");
        let engine_side: Arc<dyn StorageAdapter> = match self {
            Store::MemoryObjects => Arc::new(memory.clone()),
            _ => Arc::new(AsyncOnly(memory.clone())),
        };
        (Some(memory), engine_side)
    }
}

/// The Redis the suites use.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// Whether Redis answers at `REDIS_URL`. Where it does not, says so loudly and
/// the Redis tests skip; under `CI` they fail instead.
pub async fn redis_available() -> bool {
    static CHECKED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if let Some(up) = CHECKED.get() {
        return *up;
    }
    let url = redis_url();
    let up = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(2),
            client.get_multiplexed_async_connection(),
        )
        .await
        .ok()?
        .ok()?;
        let pong: String = redis::cmd("PING").query_async(&mut conn).await.ok()?;
        Some(pong == "PONG")
    }
    .await
    .unwrap_or(false);
    if !up {
        if std::env::var_os("CI").is_some() {
            panic!("CI is set but no Redis answers at {url}: the Redis tests must run");
        }
        eprintln!("\n*** SKIPPED: no Redis at {url}; set REDIS_URL to run the Redis tests ***\n");
    }
    *CHECKED.get_or_init(|| up)
}

/// A key prefix no other test uses, so tests share one server in parallel.
pub fn unique_prefix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "t87s-test-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst),
        fastrand_like()
    )
}

fn fastrand_like() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// A RedisAdapter on `REDIS_URL` under `prefix`.
pub async fn redis_adapter(prefix: &str) -> RedisAdapter {
    RedisAdapter::builder(redis_url())
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to REDIS_URL")
}

/// Delegates every async method to the inner adapter but offers no
/// synchronous read, so the engine takes its networked-store path.
#[derive(Debug)]
pub struct AsyncOnly<A>(pub A);

impl<A: StorageAdapter> StorageAdapter for AsyncOnly<A> {
    fn value_form(&self) -> ValueForm {
        self.0.value_form()
    }
    fn read<'a>(
        &'a self,
        key: EntryKey<'a>,
        markers: MarkerSet<'a>,
        now_ms: u64,
    ) -> AdapterFuture<'a, Read> {
        self.0.read(key, markers, now_ms)
    }
    fn newest_marker<'a>(&'a self, markers: MarkerSet<'a>) -> AdapterFuture<'a, u64> {
        self.0.newest_marker(markers)
    }
    fn version(&self) -> AdapterFuture<'_, u64> {
        self.0.version()
    }
    fn write<'a>(&'a self, key: EntryKey<'a>, entry: Arc<StoredEntry>) -> AdapterFuture<'a, ()> {
        self.0.write(key, entry)
    }
    fn delete<'a>(&'a self, key: EntryKey<'a>) -> AdapterFuture<'a, ()> {
        self.0.delete(key)
    }
    fn invalidate<'a>(&'a self, markers: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()> {
        self.0.invalidate(markers)
    }
    fn clear(&self) -> AdapterFuture<'_, ()> {
        self.0.clear()
    }
    fn disconnect(&self) -> AdapterFuture<'_, ()> {
        self.0.disconnect()
    }
}

/// A store that is down: every operation fails.
#[derive(Debug, Default)]
pub struct DownAdapter;

fn down<'a, T: Send + 'a>() -> AdapterFuture<'a, T> {
    Box::pin(std::future::ready(Err(AdapterError::new(
        "store unreachable (test double)",
    ))))
}

impl StorageAdapter for DownAdapter {
    fn value_form(&self) -> ValueForm {
        ValueForm::Bytes
    }
    fn read<'a>(&'a self, _: EntryKey<'a>, _: MarkerSet<'a>, _: u64) -> AdapterFuture<'a, Read> {
        down()
    }
    fn newest_marker<'a>(&'a self, _: MarkerSet<'a>) -> AdapterFuture<'a, u64> {
        down()
    }
    fn version(&self) -> AdapterFuture<'_, u64> {
        down()
    }
    fn write<'a>(&'a self, _: EntryKey<'a>, _: Arc<StoredEntry>) -> AdapterFuture<'a, ()> {
        down()
    }
    fn delete<'a>(&'a self, _: EntryKey<'a>) -> AdapterFuture<'a, ()> {
        down()
    }
    fn invalidate<'a>(&'a self, _: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()> {
        down()
    }
    fn clear(&self) -> AdapterFuture<'_, ()> {
        down()
    }
    fn disconnect(&self) -> AdapterFuture<'_, ()> {
        down()
    }
}

/// A cache on a manual clock with a recording observer.
pub struct Harness {
    /// The engine under test.
    pub cache: Primitives,
    /// Its clock; move it with `advance`.
    pub clock: ManualClock,
    /// What the engine reported.
    pub events: Recorder,
    /// The memory adapter behind `cache`, when the store is one.
    pub memory: Option<MemoryAdapter>,
    /// The adapter `cache` uses.
    pub shared: Arc<dyn StorageAdapter>,
}

impl Harness {
    /// ttl 30s, no grace, no verification.
    pub async fn new(store: Store) -> Self {
        Self::with(store, |b| b).await
    }

    /// Like `new`, with builder changes.
    pub async fn with(
        store: Store,
        configure: impl FnOnce(t87s::engine::PrimitivesBuilder) -> t87s::engine::PrimitivesBuilder,
    ) -> Self {
        let clock = ManualClock::new(T0);
        let (memory, shared) = store.build(&clock).await;
        let events = Recorder::default();
        let builder = Primitives::builder(shared.clone())
            .clock(clock.clone())
            .observer(events.clone())
            .verify_percent(0.0);
        let cache = configure(builder).build().expect("valid options");
        Self {
            cache,
            clock,
            events,
            memory,
            shared,
        }
    }

    /// Waits until every fetch, refresh and verification has finished.
    pub async fn settle(&self) {
        settle().await;
        wait_until("background work to finish", || self.cache.in_flight() == 0).await;
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// A fetch source that counts its calls and returns a settable value.
#[derive(Clone)]
pub struct Source<T> {
    calls: Arc<AtomicUsize>,
    value: Arc<Mutex<T>>,
}

impl<T: Clone + Send + Sync + 'static> Source<T> {
    /// A source returning `value`.
    pub fn new(value: T) -> Self {
        Self {
            calls: Arc::new(AtomicUsize::new(0)),
            value: Arc::new(Mutex::new(value)),
        }
    }

    /// Changes what the next fetch returns (the "database write").
    pub fn set(&self, value: T) {
        *self.value.lock() = value;
    }

    /// How many fetches ran.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A fetch closure for `Primitives::query`.
    pub fn fetch(
        &self,
    ) -> impl FnOnce() -> std::future::Ready<Result<T, std::io::Error>> + Send + 'static {
        let this = self.clone();
        move || {
            this.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(this.value.lock().clone()))
        }
    }

    /// A fetch that fails (and counts).
    pub fn failing(
        &self,
    ) -> impl FnOnce() -> std::future::Ready<Result<T, std::io::Error>> + Send + 'static {
        let this = self.clone();
        move || {
            this.calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(std::io::Error::other("database is down")))
        }
    }
}

/// The type fingerprint the engine stores with a value of type `T` (what an
/// adapter keeps in `StoredEntry::value_type`), read back from a store.
pub async fn fingerprint_of<T: t87s::Cacheable + Default>() -> u64 {
    let adapter = MemoryAdapter::builder()
        .value_form(ValueForm::Bytes)
        .build()
        .expect("valid adapter options");
    let engine = Primitives::new(adapter.clone());
    let key = EntryKey {
        prefix: engine.prefix(),
        key: "fingerprint",
    };
    engine
        .set(
            "fingerprint",
            &T::default(),
            t87s::engine::SetOptions::new([tag(&["f"])]),
        )
        .await
        .expect("set on a memory adapter");
    let read = adapter
        .read(key, MarkerSet::empty(), 0)
        .await
        .expect("read from a memory adapter");
    read.entry.expect("the entry just set").value_type
}

/// Shorthand for a tag path.
pub fn tag(segments: &[&str]) -> TagPath {
    TagPath::new(segments).expect("non-empty tag")
}

/// Lets spawned background tasks run on a current-thread runtime.
pub async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

/// Polls `done` until it holds (for I/O-bound background work), failing the
/// test after 10 seconds.
pub async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
