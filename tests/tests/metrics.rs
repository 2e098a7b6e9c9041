//! The `metrics` feature: a scripted run through the debugging recorder of
//! `metrics-util`, with the counters and histograms it must produce, and
//! labels that are query names and tag roots, never keys or arguments.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use t87s::engine::{QueryOptions, TagPath};
use t87s::{cached, EventKind, ManualClock, MemoryAdapter, QueryCache, TagSchema, Wild};

#[derive(TagSchema)]
struct Tags {
    posts: Wild,
}

#[derive(Clone)]
struct Blog {
    cache: QueryCache<Tags>,
    title: Arc<AtomicU64>,
}

impl Blog {
    #[cached(name = "Blog::post", tags = [t.posts(id)], ttl = "1h")]
    async fn post(&self, id: u64) -> Result<u64, String> {
        if id == 0 {
            return Err("no post 0".into());
        }
        Ok(self.title.load(Ordering::SeqCst) + id)
    }
}

/// Every series of the snapshot: `name{label=value,...}` and its value
/// (a counter's count, a histogram's number of samples).
fn figures(snapshot: metrics_util::debugging::Snapshot) -> BTreeMap<String, u64> {
    snapshot
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n,
                DebugValue::Histogram(samples) => samples.len() as u64,
                DebugValue::Gauge(g) => g.into_inner() as u64,
            };
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

#[tokio::test]
async fn a_scripted_run_produces_these_counters_and_histograms() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let cache = QueryCache::<Tags>::builder(MemoryAdapter::new())
        .clock(ManualClock::new(1_000_000))
        .build()
        .unwrap();
    let blog = Blog {
        cache: cache.clone(),
        title: Arc::default(),
    };
    assert_eq!(blog.post(1).await, Ok(1)); // miss: fetched, stored
    assert_eq!(blog.post(1).await, Ok(1)); // hit
    assert_eq!(blog.post(1).await, Ok(1)); // hit
    blog.title.store(10, Ordering::SeqCst);
    cache.invalidate(cache.tags().posts(1)).await.unwrap();
    assert_eq!(blog.post(1).await, Ok(11)); // miss after the invalidation
    assert!(blog.post(0).await.is_err()); // miss, fetch error, nothing stored

    // A raw query: its label is its key up to the first `:`.
    let engine = cache.primitives();
    let tags = [TagPath::new(["users", "7"]).unwrap()];
    for _ in 0..2 {
        let name: String = engine
            .query("user:7", &tags, QueryOptions::new(), || async {
                Ok::<_, std::io::Error>("ada".to_string())
            })
            .await
            .unwrap();
        assert_eq!(name, "ada");
    }
    engine
        .invalidate(&[
            TagPath::new(["users", "7"]).unwrap(),
            TagPath::new(["users", "8"]).unwrap(),
        ])
        .await
        .unwrap();

    let figures = figures(snapshotter.snapshot());
    let expected: BTreeMap<String, u64> = [
        ("t87s_events_total{query=Blog::post,event=miss}", 3),
        ("t87s_events_total{query=Blog::post,event=hit}", 2),
        ("t87s_events_total{query=Blog::post,event=fetch_error}", 1),
        ("t87s_fetch_seconds{query=Blog::post}", 3),
        ("t87s_store_seconds{query=Blog::post}", 2),
        ("t87s_events_total{query=user,event=miss}", 1),
        ("t87s_events_total{query=user,event=hit}", 1),
        ("t87s_fetch_seconds{query=user}", 1),
        ("t87s_store_seconds{query=user}", 1),
        ("t87s_invalidations_total{root=posts}", 1),
        ("t87s_invalidate_seconds{root=posts}", 1),
        ("t87s_invalidations_total{root=users}", 2),
        ("t87s_invalidate_seconds{root=users}", 2),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(figures, expected);
}

/// A Redis adapter on the shared server under `prefix`, with a near cache
/// (lease `lease_ms`) or without.
async fn redis(prefix: &str, near: Option<u64>) -> t87s::RedisAdapter {
    let mut builder = t87s::RedisAdapter::builder(t87s_tests::redis_url())
        .prefix(prefix)
        .timeout(std::time::Duration::from_secs(2));
    if let Some(lease_ms) = near {
        builder = builder
            .near_cache(t87s::NearCache::new().lease(std::time::Duration::from_millis(lease_ms)));
    }
    builder.connect().await.expect("connect to REDIS_URL")
}

/// A process with a near cache and one without share a Redis: hits from the
/// near copy are `near_hit`, hits of Redis itself `hit`, in events and in
/// metrics; an invalidation's wait for the near caches, a near cache that
/// went silent, and joining are counted too.
#[test]
fn near_hits_and_shared_hits_are_told_apart_and_near_waits_are_counted() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if !runtime.block_on(t87s_tests::redis_available()) {
        return;
    }
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // A current-thread runtime inside the local recorder: the near caches'
    // background tasks report to it too.
    let (near_events, plain_events) = metrics::with_local_recorder(&recorder, || {
        runtime.block_on(async {
            let prefix = t87s_tests::unique_prefix();
            let near = redis(&prefix, Some(1_000)).await;
            let silent = redis(&prefix, Some(300)).await;
            let plain = redis(&prefix, None).await;
            t87s_tests::wait_until("the near caches to join", || {
                [&near, &silent]
                    .iter()
                    .all(|a| a.near_status().is_some_and(|s| s.serving))
            })
            .await;
            let near_events = t87s_tests::Recorder::default();
            let plain_events = t87s_tests::Recorder::default();
            let tags = [TagPath::new(["users", "7"]).unwrap()];
            let caches = [(near, &near_events), (plain, &plain_events)].map(|(adapter, events)| {
                t87s::engine::Primitives::builder(adapter)
                    .observer(events.clone())
                    .build()
                    .unwrap()
            });
            for cache in &caches {
                for _ in 0..3 {
                    let name: String = cache
                        .query("user:7", &tags, QueryOptions::new(), || async {
                            Ok::<_, std::io::Error>("ada".to_string())
                        })
                        .await
                        .unwrap();
                    assert_eq!(name, "ada");
                }
            }
            // The silent one stops answering but keeps its lease in Redis:
            // the invalidation (from the process with a near cache, which
            // hears acknowledgements) waits it out, at most its 300 ms lease.
            t87s::adapter::StorageAdapter::disconnect(&silent)
                .await
                .unwrap();
            caches[0].invalidate(&tags).await.unwrap();
            (near_events, plain_events)
        })
    });
    // The near cache: a miss (fetched, stored, kept), then two hits from
    // memory. The plain one: three hits of Redis.
    assert_eq!(
        near_events.count(EventKind::Miss),
        1,
        "{:?}",
        near_events.kinds()
    );
    assert_eq!(
        near_events.count(EventKind::NearHit),
        2,
        "{:?}",
        near_events.kinds()
    );
    assert_eq!(
        near_events.count(EventKind::Hit),
        0,
        "{:?}",
        near_events.kinds()
    );
    assert_eq!(
        plain_events.count(EventKind::Hit),
        3,
        "{:?}",
        plain_events.kinds()
    );
    assert_eq!(plain_events.count(EventKind::NearHit), 0);

    let figures = figures(snapshotter.snapshot());
    let figure = |name: &str| figures.get(name).copied();
    assert_eq!(
        figure("t87s_events_total{query=user,event=near_hit}"),
        Some(2)
    );
    assert_eq!(figure("t87s_events_total{query=user,event=hit}"), Some(3));
    assert_eq!(figure("t87s_events_total{query=user,event=miss}"), Some(1));
    assert_eq!(
        figure("t87s_near_state_changes_total{state=joined}"),
        Some(2)
    );
    assert_eq!(figure("t87s_near_wait_seconds{}"), Some(1), "{figures:?}");
    assert_eq!(
        figure("t87s_near_silent_peers_total{}"),
        Some(1),
        "{figures:?}"
    );
}

/// A `#[cached]` method's hit from a near copy (looked up by its probe, with
/// no key text built) is a near hit, as a raw query's is; and an
/// invalidation reaches it.
#[test]
fn a_cached_methods_hit_from_a_near_copy_is_a_near_hit() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if !runtime.block_on(t87s_tests::redis_available()) {
        return;
    }
    runtime.block_on(async {
        let adapter = redis(&t87s_tests::unique_prefix(), Some(1_000)).await;
        t87s_tests::wait_until("the near cache to join", || {
            adapter.near_status().is_some_and(|s| s.serving)
        })
        .await;
        let events = t87s_tests::Recorder::default();
        // No sampled verification: every hit takes the hit path.
        let cache = QueryCache::<Tags>::builder(adapter)
            .observer(events.clone())
            .verify_percent(0.0)
            .build()
            .unwrap();
        let blog = Blog {
            cache: cache.clone(),
            title: Arc::default(),
        };
        for _ in 0..3 {
            assert_eq!(blog.post(1).await, Ok(1));
        }
        assert_eq!(events.count(EventKind::Miss), 1, "{:?}", events.kinds());
        assert_eq!(events.count(EventKind::NearHit), 2, "{:?}", events.kinds());
        assert_eq!(events.count(EventKind::Hit), 0, "{:?}", events.kinds());
        blog.title.store(10, Ordering::SeqCst);
        cache.invalidate(cache.tags().posts(1)).await.unwrap();
        assert_eq!(blog.post(1).await, Ok(11));
        assert_eq!(events.count(EventKind::NearHit), 2, "{:?}", events.kinds());
    });
}
