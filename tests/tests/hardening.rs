//! Engine hardening: flights that survive failure, panics and store faults.
//! Each test is named after a fault it once had, and asserts fetch counts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use t87s::adapter::{
    AdapterFuture, EntryKey, MarkerKey, MarkerSet, Read, StorageAdapter, StoredEntry, StoredValue,
    ValueForm,
};
use t87s::engine::{Primitives, QueryOptions, Share};
use t87s::{
    cached, AdapterError, Clock, EventKind, ManualClock, MemoryAdapter, QueryCache, Static,
    TagSchema,
};
use t87s_tests::{settle, tag, DownAdapter, Harness, Recorder, Source, Store, T0};
use tokio::sync::{oneshot, Semaphore};

const CALLERS: usize = 100;

/// Every test here has a deadline: a hung caller fails the test, not CI.
async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out: a caller is stuck")
}

/// A fetch that counts its calls, the most that ran at once, and holds
/// each call open until the gate lets it through.
#[derive(Clone)]
struct Gated {
    calls: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl Default for Gated {
    fn default() -> Self {
        Self {
            calls: Arc::default(),
            running: Arc::default(),
            most: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Gated {
    async fn pass<T>(&self, result: T) -> T {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        let permit = self.gate.acquire().await;
        // Still running across a yield, so fetches that overlap are seen.
        tokio::task::yield_now().await;
        self.running.fetch_sub(1, Ordering::SeqCst);
        drop(permit);
        result
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn most_at_once(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    /// Lets every call through, now and later.
    fn open(&self) {
        self.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    }
}

#[derive(Debug, Clone, PartialEq)]
struct DbError(String);

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An error type that is not `Clone` but takes t87s's errors.
#[derive(Debug)]
enum AppError {
    Db(String),
    Cache(t87s::Error),
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Db(m) => write!(f, "db: {m}"),
            AppError::Cache(e) => write!(f, "cache: {e}"),
        }
    }
}

impl From<t87s::Error> for AppError {
    fn from(e: t87s::Error) -> Self {
        AppError::Cache(e)
    }
}

/// Starts `CALLERS` queries of one cold key whose fetch fails, holds the
/// first fetch until every caller has arrived, and returns their results.
async fn failing_stampede<E, Mk>(
    cache: &Primitives,
    share: Share<E>,
    gated: &Gated,
    error: Mk,
) -> Vec<Result<u32, E>>
where
    E: std::fmt::Display + Send + 'static,
    Mk: Fn() -> E + Clone + Send + Sync + 'static,
{
    let arrived = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (cache, gated, error, arrived) =
            (cache.clone(), gated.clone(), error.clone(), arrived.clone());
        tasks.push(tokio::spawn(async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            cache
                .query_sharing(
                    "cold",
                    &[tag(&["k"])],
                    QueryOptions::new(),
                    share,
                    move || async move { gated.pass(Err::<u32, E>(error())).await },
                )
                .await
        }));
    }
    within(async {
        while arrived.load(Ordering::SeqCst) < CALLERS || gated.calls() == 0 {
            tokio::task::yield_now().await;
        }
        settle().await;
        gated.open();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("no caller panics"));
        }
        results
    })
    .await
}

// One thread: every caller reaches its wait before the gate opens.
#[tokio::test]
async fn failing_fetch_is_shared_by_clone_not_run_by_every_waiter() {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let gated = Gated::default();
        let results = failing_stampede(&h.cache, Share::Cloned(DbError::clone), &gated, || {
            DbError("database is down".into())
        })
        .await;
        assert_eq!(
            gated.calls(),
            1,
            "{store:?}: one fetch for {CALLERS} callers"
        );
        for result in results {
            assert_eq!(result, Err(DbError("database is down".into())));
        }
        assert_eq!(h.cache.in_flight(), 0);
    }
}

// One thread: every caller reaches its wait before the gate opens.
#[tokio::test]
async fn failing_fetch_is_shared_by_conversion_not_run_by_every_waiter() {
    let h = Harness::new(Store::MemoryObjects).await;
    let gated = Gated::default();
    let results = failing_stampede(&h.cache, Share::Converted(AppError::from), &gated, || {
        AppError::Db("database is down".into())
    })
    .await;
    assert_eq!(gated.calls(), 1, "one fetch for {CALLERS} callers");
    let shared = results
        .iter()
        .filter(|r| matches!(r, Err(AppError::Cache(t87s::Error::SharedFetch { message })) if message == "db: database is down"))
        .count();
    assert_eq!(
        shared,
        CALLERS - 1,
        "every waiter gets the leader's error, converted"
    );
    assert!(results
        .iter()
        .any(|r| matches!(r, Err(AppError::Db(m)) if m == "database is down")));
}

// One thread: every caller reaches its wait before the gate opens.
#[tokio::test]
async fn failing_fetch_that_cannot_be_shared_runs_one_at_a_time() {
    let h = Harness::new(Store::MemoryObjects).await;
    let gated = Gated::default();
    let results = failing_stampede(&h.cache, Share::Not, &gated, || {
        std::io::Error::other("database is down")
    })
    .await;
    // Each caller gets an error of its own, so each fetches, but in turn.
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(gated.calls(), CALLERS);
    assert_eq!(
        gated.most_at_once(),
        1,
        "at most one fetch of a key in flight"
    );
    assert_eq!(h.cache.in_flight(), 0);
}

/// Starts `CALLERS` queries of one key on `cache`, the first fetch held
/// until all have arrived; returns how many fetches ran.
async fn stampede_on(cache: &Primitives) -> usize {
    let gated = Gated::default();
    let arrived = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (cache, gated, arrived) = (cache.clone(), gated.clone(), arrived.clone());
        tasks.push(tokio::spawn(async move {
            arrived.fetch_add(1, Ordering::SeqCst);
            cache
                .query(
                    "k",
                    &[tag(&["t"])],
                    QueryOptions::new(),
                    move || async move { gated.pass(Ok::<_, std::io::Error>(7u32)).await },
                )
                .await
        }));
    }
    within(async {
        while arrived.load(Ordering::SeqCst) < CALLERS || gated.calls() == 0 {
            tokio::task::yield_now().await;
        }
        settle().await;
        gated.open();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), 7);
        }
    })
    .await;
    gated.calls()
}

// One thread: every caller reaches its wait before the gate opens.
#[tokio::test]
async fn store_outage_still_coalesces_callers() {
    let events = Recorder::default();
    let cache = Primitives::builder(DownAdapter)
        .observer(events.clone())
        .verify_percent(0.0)
        .build()
        .unwrap();
    assert_eq!(
        stampede_on(&cache).await,
        1,
        "one fetch while the store is down"
    );
    assert!(
        events.count(EventKind::AdapterError) > 0,
        "the fault is reported"
    );
    assert_eq!(cache.in_flight(), 0);
}

/// A store where one key holds something the adapter cannot read (a Redis
/// key of another type): reads of it fail until it is written over.
#[derive(Debug)]
struct ForeignKey {
    inner: MemoryAdapter,
    foreign: AtomicUsize,
}

impl ForeignKey {
    fn new() -> Self {
        Self {
            inner: MemoryAdapter::builder()
                .value_form(ValueForm::Bytes)
                .build()
                .unwrap(),
            foreign: AtomicUsize::new(1),
        }
    }
}

impl StorageAdapter for ForeignKey {
    fn value_form(&self) -> ValueForm {
        ValueForm::Bytes
    }
    fn read<'a>(
        &'a self,
        key: EntryKey<'a>,
        m: MarkerSet<'a>,
        now: u64,
    ) -> AdapterFuture<'a, Read> {
        if self.foreign.load(Ordering::SeqCst) == 1 {
            return Box::pin(std::future::ready(Err(AdapterError::new(
                "WRONGTYPE Operation against a key holding the wrong kind of value",
            ))));
        }
        self.inner.read(key, m, now)
    }
    fn newest_marker<'a>(&'a self, m: MarkerSet<'a>) -> AdapterFuture<'a, u64> {
        self.inner.newest_marker(m)
    }
    fn version(&self) -> AdapterFuture<'_, u64> {
        self.inner.version()
    }
    fn write<'a>(&'a self, key: EntryKey<'a>, entry: Arc<StoredEntry>) -> AdapterFuture<'a, ()> {
        self.foreign.store(0, Ordering::SeqCst);
        self.inner.write(key, entry)
    }
    fn delete<'a>(&'a self, key: EntryKey<'a>) -> AdapterFuture<'a, ()> {
        self.inner.delete(key)
    }
    fn invalidate<'a>(&'a self, markers: &'a [MarkerKey<'a>]) -> AdapterFuture<'a, ()> {
        self.inner.invalidate(markers)
    }
    fn clear(&self) -> AdapterFuture<'_, ()> {
        self.inner.clear()
    }
    fn disconnect(&self) -> AdapterFuture<'_, ()> {
        self.inner.disconnect()
    }
}

// One thread: every caller reaches its wait before the gate opens.
#[tokio::test]
async fn unreadable_key_still_coalesces_callers_and_heals() {
    let cache = Primitives::builder(ForeignKey::new())
        .verify_percent(0.0)
        .build()
        .unwrap();
    assert_eq!(
        stampede_on(&cache).await,
        1,
        "one fetch for an unreadable key"
    );
    // The fetched value was written over what could not be read.
    let src = Source::new(8u32);
    let v = cache
        .query("k", &[tag(&["t"])], QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!((v, src.calls()), (7, 0), "healed: a hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_flight_leaves_the_map_at_once() {
    let h = Harness::new(Store::MemoryObjects).await;
    let tags = [tag(&["t"])];
    // A slow `on_refresh` (it blocks its worker until the test lets it go).
    let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
    let hold_rx = Arc::new(parking_lot::Mutex::new(hold_rx));
    let q = move || {
        let hold_rx = hold_rx.clone();
        QueryOptions::new()
            .ttl(Duration::from_secs(10))
            .grace(Duration::from_secs(60))
            .on_refresh(move |_: &u32, _: &u32, _| {
                let _ = hold_rx.lock().recv_timeout(Duration::from_secs(10));
            })
    };
    let first = Source::new(1u32);
    h.cache.query("k", &tags, q(), first.fetch()).await.unwrap();
    h.advance(Duration::from_secs(11));
    // A graced read starts the background refresh; its fetch is held open.
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel::<()>();
    let stale = h
        .cache
        .query("k", &tags, q(), move || async move {
            started_tx.send(()).ok();
            release_rx.await.ok();
            Ok::<_, std::io::Error>(1u32) // read before the write below
        })
        .await
        .unwrap();
    assert_eq!(stale, 1);
    started_rx.await.unwrap();
    // The write and its invalidation land while the refresh is in flight.
    h.cache.invalidate(&tags).await.unwrap();
    // Callers after the invalidation join the refresh's flight. They run
    // on a runtime of their own, so a slow `on_refresh` on this one cannot
    // hold them back, whichever thread it blocks. Their own fetch is slow
    // too (held until the test opens the gate).
    let callers_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let gated = Gated::default();
    let callers: Vec<_> = (0..50)
        .map(|_| {
            let (cache, gated, q) = (h.cache.clone(), gated.clone(), q.clone());
            callers_runtime.spawn(async move {
                let fetch = move || async move { gated.pass(Ok::<_, std::io::Error>(2u32)).await };
                cache.query("k", &[tag(&["t"])], q(), fetch).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The refresh publishes a value they must not take, then sits in
    // `on_refresh` until they are all done.
    release_tx.send(()).unwrap();
    within(async {
        while gated.calls() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Time for any caller that would fetch on its own to do so.
        tokio::time::sleep(Duration::from_millis(100)).await;
        gated.open();
        for caller in callers {
            assert_eq!(caller.await.unwrap().unwrap(), 2);
        }
    })
    .await;
    hold_tx.send(()).unwrap();
    assert_eq!(
        gated.calls(),
        1,
        "1 refresh + 1 new flight, however many callers"
    );
    h.settle().await;
    callers_runtime.shutdown_background();
}

#[tokio::test]
async fn panicking_refresh_backs_off() {
    let h = Harness::with(Store::MemoryObjects, |b| b.refresh_backoff("1s")).await;
    let tags = [tag(&["t"])];
    let q = || {
        QueryOptions::new()
            .ttl(Duration::from_secs(10))
            .grace(Duration::from_secs(600))
    };
    let src = Source::new(1u32);
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    h.advance(Duration::from_secs(11));
    let attempts = Arc::new(AtomicUsize::new(0));
    for _ in 0..10 {
        let attempts = attempts.clone();
        let v = h
            .cache
            .query("k", &tags, q(), move || async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                if attempts.load(Ordering::SeqCst) > 0 {
                    panic!("refresh bug");
                }
                Ok::<_, std::io::Error>(2u32)
            })
            .await
            .unwrap();
        assert_eq!(v, 1, "the graced value is served meanwhile");
        h.settle().await;
        h.advance(Duration::from_millis(10));
    }
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "one attempt per back-off"
    );
    assert_eq!(h.events.count(EventKind::RefreshFailed), 1);
    // Once the back-off is over, the next graced hit tries again.
    h.advance(Duration::from_secs(1));
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    h.settle().await;
    assert_eq!(src.calls(), 2);
}

#[tokio::test]
async fn fetch_slower_than_its_ttl_is_still_cached() {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let tags = [tag(&["t"])];
        let calls = Arc::new(AtomicUsize::new(0));
        for _ in 0..3 {
            let (clock, calls) = (h.clock.clone(), calls.clone());
            let v = h
                .cache
                .query(
                    "k",
                    &tags,
                    QueryOptions::new().ttl(Duration::from_millis(100)),
                    move || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        clock.advance(Duration::from_millis(200)); // a slow query
                        Ok::<_, std::io::Error>(5u32)
                    },
                )
                .await
                .unwrap();
            assert_eq!(v, 5);
        }
        // TTL counts from when the value was produced: the 2nd and 3rd
        // calls (no time passes between them here) hit.
        assert_eq!(calls.load(Ordering::SeqCst), 1, "{store:?}");
        assert_eq!(
            h.events.kinds(),
            [
                EventKind::Miss,
                EventKind::Fetched,
                EventKind::Stored,
                EventKind::Hit,
                EventKind::Hit
            ],
            "{store:?}"
        );
        // Invalidation still counts from the fetch's start.
        let entry = t87s::engine::Primitives::get::<u32>(&h.cache, "k")
            .await
            .unwrap();
        assert_eq!(entry, Some(5));
    }
}

#[test]
fn memory_adapter_never_removes_a_fresh_write_it_did_not_read() {
    // Two readers find the key's entry dead and free the slot; a writer
    // keeps replacing it with a fresh one and reads it straight back.
    let clock = ManualClock::new(T0);
    let adapter = MemoryAdapter::builder()
        .clock(clock.clone())
        .build()
        .unwrap();
    let key = EntryKey {
        prefix: "p",
        key: "k",
    };
    let entry =
        |live: bool| {
            let until = if live { T0 + 60_000 } else { T0 };
            Arc::new(
                StoredEntry::new(StoredValue::Object(Arc::new(1u32)), Arc::from(vec![]), 1)
                    .lifetime(T0 - 1, until, None),
            )
        };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (adapter, stop) = (adapter.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    adapter.try_read_now(key, MarkerSet::empty(), T0);
                }
            })
        })
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut vanished = 0;
    for _ in 0..100_000 {
        rt.block_on(adapter.write(key, entry(false))).unwrap();
        rt.block_on(adapter.write(key, entry(true))).unwrap();
        let read = adapter
            .try_read_now(key, MarkerSet::empty(), T0)
            .unwrap()
            .unwrap();
        if read.entry.is_none() {
            vanished += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for reader in readers {
        reader.join().unwrap();
    }
    assert_eq!(
        vanished, 0,
        "fresh values removed by a reader of a dead one"
    );
    assert!(clock.now_ms() == T0);
}

#[derive(TagSchema)]
struct Tags {
    global: Static,
}

#[derive(Clone)]
struct Settings {
    cache: QueryCache<Tags>,
    gated: Gated,
}

impl Settings {
    #[cached(tags = [t.global()])]
    async fn theme(&self) -> Result<String, DbError> {
        self.gated
            .pass(Err(DbError("settings table is locked".into())))
            .await
    }
}

// One thread: every caller reaches its wait before the gate opens.
#[tokio::test]
async fn cached_method_shares_a_clone_error_with_its_waiters() {
    let settings = Settings {
        cache: QueryCache::new(MemoryAdapter::new()),
        gated: Gated::default(),
    };
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let s = settings.clone();
            tokio::spawn(async move { s.theme().await })
        })
        .collect();
    within(async {
        while settings.gated.calls() == 0 {
            tokio::task::yield_now().await;
        }
        settle().await;
        settings.gated.open();
        for task in tasks {
            let error = task.await.unwrap().unwrap_err();
            assert_eq!(error, DbError("settings table is locked".into()));
        }
    })
    .await;
    assert_eq!(settings.gated.calls(), 1, "the macro picked Share::Cloned");
}
