//! Concurrency: many tasks on a multi-thread runtime mixing queries,
//! writes + invalidations, cancellations and panicking fetches on
//! overlapping tags.
//!
//! Invariant: once `invalidate(tag)` has returned, no query that starts
//! afterwards, anywhere, returns a value read before the write it covers.
//! Every task finishes before a deadline (no hung waiter) and no flight is
//! left behind.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use t87s::engine::{Primitives, QueryOptions};
use t87s_tests::{tag, Harness, Store};

const KEYS: usize = 4;

/// The "database": per key, how many writes happened, and how many of those
/// writes have been invalidated (the invalidation returned).
struct Db {
    writes: Vec<AtomicU64>,
    invalidated: Vec<AtomicU64>,
    fetches: AtomicUsize,
    panics: AtomicUsize,
}

async fn read(cache: &Primitives, db: &Arc<Db>, k: usize, panic_now: bool) -> Option<u64> {
    let tags = [tag(&["items", &k.to_string()]), tag(&["all"])];
    let db2 = db.clone();
    let fetch = move || async move {
        db2.fetches.fetch_add(1, Ordering::SeqCst);
        // The value is the write count seen when the fetch started.
        let seen = db2.writes[k].load(Ordering::SeqCst);
        tokio::task::yield_now().await;
        if panic_now {
            db2.panics.fetch_add(1, Ordering::SeqCst);
            panic!("injected fetch panic");
        }
        Ok::<_, std::io::Error>(seen)
    };
    cache
        .query(&format!("item:{k}"), &tags, QueryOptions::new(), fetch)
        .await
        .ok()
}

async fn hammer(store: Store, rounds: usize) {
    let h = Harness::with(store, |b| b.default_ttl("1h")).await;
    let db = Arc::new(Db {
        writes: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        invalidated: (0..KEYS).map(|_| AtomicU64::new(0)).collect(),
        fetches: AtomicUsize::new(0),
        panics: AtomicUsize::new(0),
    });
    let mut tasks = Vec::new();
    // Writers: write, then invalidate the item (or everything), then record
    // that this write is now covered.
    for w in 0..2 {
        let (cache, db) = (h.cache.clone(), db.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..rounds {
                let k = (i + w) % KEYS;
                let written = db.writes[k].fetch_add(1, Ordering::SeqCst) + 1;
                let target = if i % 5 == 0 {
                    tag(&["all"])
                } else {
                    tag(&["items", &k.to_string()])
                };
                cache
                    .invalidate(std::slice::from_ref(&target))
                    .await
                    .expect("invalidate");
                db.invalidated[k].fetch_max(written, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }));
    }
    // Readers: each query must return at least the writes invalidated
    // before it started.
    for r in 0..8 {
        let (cache, db) = (h.cache.clone(), db.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..rounds {
                let k = (i * 7 + r) % KEYS;
                let floor = db.invalidated[k].load(Ordering::SeqCst);
                let panic_now = (i + r) % 23 == 0;
                let cancel_now = (i + r) % 17 == 0;
                let query = {
                    let (cache, db) = (cache.clone(), db.clone());
                    tokio::spawn(async move { read(&cache, &db, k, panic_now).await })
                };
                if cancel_now {
                    // The caller goes away mid-query.
                    query.abort();
                    let _ = query.await;
                    continue;
                }
                match query.await {
                    Ok(Some(value)) => assert!(
                        value >= floor,
                        "key {k}: got a value read at write {value}, but write {floor} was invalidated before the query began"
                    ),
                    Ok(None) => {}
                    // The injected panic reached this caller: allowed.
                    Err(e) if e.is_panic() => {}
                    Err(e) => panic!("query task failed: {e}"),
                }
            }
        }));
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for task in tasks {
            task.await.expect("task");
        }
    })
    .await
    .expect("a task hung: no caller may wait forever");
    t87s_tests::wait_until("no flight left", || h.cache.in_flight() == 0).await;
    assert!(db.fetches.load(Ordering::SeqCst) > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_after_invalidate_under_load_memory() {
    hammer(Store::MemoryObjects, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_after_invalidate_under_load_memory_async_path() {
    hammer(Store::MemoryBytesAsync, 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_stale_read_after_invalidate_under_load_redis() {
    if t87s_tests::redis_available().await {
        hammer(Store::Redis, 150).await;
    }
}
