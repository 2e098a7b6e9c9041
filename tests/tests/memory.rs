//! The memory adapter's bounds, the store-down path, and bad bytes.

use std::sync::Arc;
use std::time::Duration;

use t87s::adapter::{EntryKey, StorageAdapter, StoredEntry, StoredValue, ValueForm};
use t87s::engine::{Primitives, QueryOptions};
use t87s::{Error, EventKind, ManualClock, MemoryAdapter};
use t87s_tests::{tag, DownAdapter, Recorder, Source, T0};

fn cache_on(adapter: &MemoryAdapter, clock: &ManualClock, events: &Recorder) -> Primitives {
    Primitives::builder(adapter.clone())
        .clock(clock.clone())
        .observer(events.clone())
        .verify_percent(0.0)
        .build()
        .unwrap()
}

#[tokio::test]
async fn entries_stay_within_max_entries() {
    let clock = ManualClock::new(T0);
    let adapter = MemoryAdapter::builder()
        .max_entries(100)
        .clock(clock.clone())
        .build()
        .unwrap();
    let cache = cache_on(&adapter, &clock, &Recorder::default());
    let src = Source::new(0u64);
    for i in 0..10_000 {
        let key = format!("k{i}");
        cache
            .query(
                &key,
                &[tag(&["items", &i.to_string()])],
                QueryOptions::new(),
                src.fetch(),
            )
            .await
            .unwrap();
        assert!(
            adapter.entry_count() <= 100,
            "{} entries after {i} inserts",
            adapter.entry_count()
        );
    }
    assert_eq!(src.calls(), 10_000);
}

#[tokio::test]
async fn markers_older_than_the_longest_lifetime_are_pruned() {
    let clock = ManualClock::new(T0);
    let adapter = MemoryAdapter::builder()
        .clock(clock.clone())
        .build()
        .unwrap();
    let cache = cache_on(&adapter, &clock, &Recorder::default());
    let src = Source::new(1u32);
    // The longest lifetime stored: ttl 10s + grace 20s.
    let opts = QueryOptions::new()
        .ttl(Duration::from_secs(10))
        .grace(Duration::from_secs(20));
    cache
        .query("k", &[tag(&["t"])], opts, src.fetch())
        .await
        .unwrap();
    for i in 0..1_000 {
        cache
            .invalidate(&[tag(&["users", &i.to_string()])])
            .await
            .unwrap();
    }
    assert_eq!(adapter.marker_count(), 1_000);
    clock.advance(Duration::from_secs(29));
    cache.invalidate(&[tag(&["users", "x"])]).await.unwrap();
    assert_eq!(adapter.marker_count(), 1_001, "younger than 30s: kept");
    clock.advance(Duration::from_secs(2));
    cache.invalidate(&[tag(&["users", "y"])]).await.unwrap();
    assert_eq!(adapter.marker_count(), 2, "older than 30s: dropped");
}

#[tokio::test]
async fn marker_bound_never_resurrects_an_invalidated_entry() {
    let clock = ManualClock::new(T0);
    let adapter = MemoryAdapter::builder()
        .max_markers(10)
        .clock(clock.clone())
        .build()
        .unwrap();
    let events = Recorder::default();
    let cache = cache_on(&adapter, &clock, &events);
    let long = || QueryOptions::new().ttl(Duration::from_secs(3600));
    let src = Source::new(1u32);
    cache
        .query("victim", &[tag(&["a"])], long(), src.fetch())
        .await
        .unwrap();
    cache.invalidate(&[tag(&["a"])]).await.unwrap();
    // Push the `a` marker out of the bounded table.
    for i in 0..50 {
        cache
            .invalidate(&[tag(&["other", &i.to_string()])])
            .await
            .unwrap();
        assert!(adapter.marker_count() <= 10);
    }
    src.set(2);
    let v = cache
        .query("victim", &[tag(&["a"])], long(), src.fetch())
        .await
        .unwrap();
    assert_eq!(v, 2, "the dropped marker's invalidation still holds");
    // Entries written after the floor are fresh again.
    let v = cache
        .query("victim", &[tag(&["a"])], long(), src.fetch())
        .await
        .unwrap();
    assert_eq!((v, src.calls()), (2, 2));
}

#[tokio::test]
async fn memory_stays_bounded_under_unbounded_keys_and_tags() {
    let clock = ManualClock::new(T0);
    let adapter = MemoryAdapter::builder()
        .max_entries(500)
        .max_markers(1_000)
        .clock(clock.clone())
        .build()
        .unwrap();
    let cache = cache_on(&adapter, &clock, &Recorder::default());
    let src = Source::new(vec![0u8; 64]);
    for i in 0..20_000u32 {
        let id = i.to_string();
        let tags = [
            tag(&["users", &id, "posts"]),
            tag(&["teams", &(i % 97).to_string()]),
        ];
        cache
            .query(&format!("q{i}"), &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        if i % 3 == 0 {
            cache.invalidate(&[tag(&["users", &id])]).await.unwrap();
        }
        clock.advance(Duration::from_millis(7));
    }
    assert!(
        adapter.entry_count() <= 500,
        "entries {}",
        adapter.entry_count()
    );
    assert!(
        adapter.marker_count() <= 1_000,
        "markers {}",
        adapter.marker_count()
    );
    assert_eq!(cache.in_flight(), 0);
}

#[tokio::test]
async fn a_store_that_is_down_fails_open_for_queries_and_loud_for_writes() {
    let events = Recorder::default();
    let cache = Primitives::builder(DownAdapter)
        .observer(events.clone())
        .build()
        .unwrap();
    let src = Source::new(5u32);
    for _ in 0..2 {
        let v = cache
            .query("k", &[tag(&["t"])], QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!(v, 5);
    }
    assert_eq!(src.calls(), 2, "no store: every query runs its fetch");
    assert!(events.count(EventKind::AdapterError) >= 2);
    let err = cache.invalidate(&[tag(&["t"])]).await.unwrap_err();
    assert!(matches!(err, Error::Adapter(_)));
    assert_eq!(
        err.to_string(),
        "the cache store failed: store unreachable (test double)"
    );
    assert!(cache.get::<u32>("k").await.is_err());
    assert_eq!(cache.in_flight(), 0);
}

/// A memory store that keeps bytes, as a shared store does.
fn bytes_store(clock: &ManualClock) -> MemoryAdapter {
    MemoryAdapter::builder()
        .value_form(ValueForm::Bytes)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn corrupt_or_truncated_bytes_are_a_miss() {
    let clock = ManualClock::new(T0);
    let adapter = bytes_store(&clock);
    let events = Recorder::default();
    let cache = cache_on(&adapter, &clock, &events);
    let tags = [tag(&["t"])];
    let good = t87s::Postcard;
    let full = t87s::Codec::encode(&good, &"a long enough string".to_string()).unwrap();
    let version = adapter.version().await.unwrap();
    let fingerprint = t87s_tests::fingerprint_of::<String>().await;
    for bytes in [
        vec![0xff, 0xff, 0xff, 0xff, 0xff],
        full[..full.len() - 3].to_vec(),
        [&full[..], &[0]].concat(),
    ] {
        let entry = StoredEntry::new(
            StoredValue::Bytes(bytes.into()),
            Arc::from(&tags[..]),
            version,
        )
        .lifetime(T0, T0 + 60_000, None)
        .value_type(fingerprint);
        adapter
            .write(
                EntryKey {
                    prefix: "t87s",
                    key: "k",
                },
                Arc::new(entry),
            )
            .await
            .unwrap();
        assert_eq!(cache.get::<String>("k").await.unwrap(), None);
        let src = Source::new("fetched".to_string());
        let v = cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!((v.as_str(), src.calls()), ("fetched", 1));
    }
    assert!(events.count(EventKind::Undecodable) >= 3);
}

#[test]
fn zero_capacities_are_refused() {
    let err = MemoryAdapter::builder().max_entries(0).build().unwrap_err();
    assert_eq!(err.to_string(), "option `max_entries` must be at least 1");
    assert!(MemoryAdapter::builder().max_markers(0).build().is_err());
}

#[test]
fn verify_percent_outside_zero_to_one_is_refused() {
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = Primitives::builder(MemoryAdapter::new())
            .verify_percent(bad)
            .build()
            .unwrap_err();
        assert!(matches!(err, t87s::ConfigError::VerifyPercent(_)), "{bad}");
    }
    assert!(Primitives::builder(MemoryAdapter::new())
        .verify_percent(1.0)
        .build()
        .is_ok());
}

#[tokio::test]
async fn dead_entries_cost_no_marker_reads() {
    let clock = ManualClock::new(T0);
    let adapter = MemoryAdapter::builder()
        .clock(clock.clone())
        .build()
        .unwrap();
    let cache = cache_on(&adapter, &clock, &Recorder::default());
    let tags = [tag(&["t"])];
    let src = Source::new(1u32);
    cache
        .query(
            "k",
            &tags,
            QueryOptions::new().ttl(Duration::from_secs(10)),
            src.fetch(),
        )
        .await
        .unwrap();
    cache.invalidate(&tags).await.unwrap();
    let key = EntryKey {
        prefix: "t87s",
        key: "k",
    };
    let markers = t87s::adapter::MarkerSet::new("t87s", &tags);
    let live = adapter.read(key, markers, T0 + 9_999).await.unwrap();
    assert!(live.entry.is_some());
    assert!(
        live.newest_marker >= live.entry.unwrap().version,
        "live entry: markers read"
    );
    let dead = adapter.read(key, markers, T0 + 10_000).await.unwrap();
    assert!(dead.entry.is_none());
    assert_eq!(dead.newest_marker, 0, "dead entry: markers not read");
}

/// A value that counts how often it is decoded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct Counted(String);

static DECODES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl<'de> serde::Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        DECODES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        String::deserialize(d).map(Counted)
    }
}

#[tokio::test]
async fn hits_on_unchanged_bytes_decode_once_and_changed_bytes_are_decoded() {
    let clock = ManualClock::new(T0);
    let adapter = bytes_store(&clock);
    let cache = cache_on(&adapter, &clock, &Recorder::default());
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(Counted("first".into()));
    let first = cache.query("k", &tags, QueryOptions::new(), src.fetch());
    assert_eq!(first.await.unwrap(), Counted("first".into()));
    let decodes = || DECODES.load(std::sync::atomic::Ordering::Relaxed);
    let before = decodes();
    for _ in 0..5 {
        let hit = cache.query("k", &tags, QueryOptions::new(), src.fetch());
        assert_eq!(hit.await.unwrap(), Counted("first".into()));
    }
    assert_eq!(src.calls(), 1);
    assert_eq!(
        decodes() - before,
        1,
        "decoded on the first hit, cloned after"
    );

    // New bytes under the key (a write by anyone): served, never the kept value.
    let options = t87s::engine::SetOptions::new(tags.clone());
    cache
        .set("k", &Counted("second".into()), options)
        .await
        .unwrap();
    for _ in 0..3 {
        let hit = cache.query("k", &tags, QueryOptions::new(), src.fetch());
        assert_eq!(hit.await.unwrap(), Counted("second".into()));
    }
    assert_eq!(src.calls(), 1);
    assert!(decodes() - before >= 2, "the new bytes were decoded");
}
