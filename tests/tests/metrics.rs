//! The `metrics` feature: a scripted run through the debugging recorder of
//! `metrics-util`, with the counters and histograms it must produce, and
//! labels that are query names and tag roots, never keys or arguments.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use t87s::engine::{QueryOptions, TagPath};
use t87s::{cached, ManualClock, MemoryAdapter, QueryCache, TagSchema, Wild};

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
