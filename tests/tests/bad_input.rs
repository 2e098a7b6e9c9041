//! Bad input gets a clear typed error or a miss, never a panic or a wrong
//! value: oversized values, awkward tag segments, random encodings and bytes.

use std::sync::Arc;

use proptest::prelude::*;
use t87s::adapter::{EntryKey, StoredEntry, StoredValue};
use t87s::engine::{QueryOptions, SetOptions, TagError, TagPath};
use t87s::{Error, EventKind};
use t87s_tests::{tag, Harness, Source, Store, T0};

macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory_objects() { super::$name(t87s_tests::Store::MemoryObjects).await }
            #[tokio::test]
            async fn memory_bytes_async() { super::$name(t87s_tests::Store::MemoryBytesAsync).await }
            #[tokio::test]
            async fn redis() {
                if t87s_tests::redis_available().await {
                    super::$name(t87s_tests::Store::Redis).await
                }
            }
        }
    )*};
}

on_every_store!(
    oversized_values_are_returned_but_never_stored,
    awkward_segments_stay_distinct
);

async fn oversized_values_are_returned_but_never_stored(store: Store) {
    let h = Harness::with(store, |b| b.max_value_bytes(1_000)).await;
    let tags = [tag(&["t"])];
    let big = Source::new(vec![7u8; 5_000]);
    for _ in 0..2 {
        let v = h
            .cache
            .query("big", &tags, QueryOptions::new(), big.fetch())
            .await
            .unwrap();
        assert_eq!(v.len(), 5_000, "the caller still gets its value");
    }
    assert_eq!(big.calls(), 2, "never cached");
    assert_eq!(h.events.count(EventKind::NotStored), 2);
    let err = h
        .cache
        .set("big", &vec![7u8; 5_000], SetOptions::new(tags.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { limit: 1_000, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("max_value_bytes"));
    // Small values are unaffected.
    let small = Source::new(vec![1u8; 10]);
    h.cache
        .query("small", &tags, QueryOptions::new(), small.fetch())
        .await
        .unwrap();
    h.cache
        .query("small", &tags, QueryOptions::new(), small.fetch())
        .await
        .unwrap();
    assert_eq!(small.calls(), 1);
}

async fn awkward_segments_stay_distinct(store: Store) {
    let h = Harness::new(store).await;
    let shapes: [&[&str]; 8] = [
        &["a/b"],
        &["a", "b"],
        &["a%2Fb"],
        &["a", ""],
        &[""],
        &["é", "日本"],
        &["a b", "*?[]"],
        &["%00"],
    ];
    let src = Source::new(1u32);
    for (i, segments) in shapes.iter().enumerate() {
        h.cache
            .query(
                &format!("k{i}"),
                &[tag(segments)],
                QueryOptions::new(),
                src.fetch(),
            )
            .await
            .unwrap();
    }
    assert_eq!(src.calls(), shapes.len());
    // Invalidating one shape exactly leaves every other shape cached.
    for (i, segments) in shapes.iter().enumerate() {
        h.cache.invalidate_exact(&[tag(segments)]).await.unwrap();
        for (j, other) in shapes.iter().enumerate() {
            let before = src.calls();
            h.cache
                .query(
                    &format!("k{j}"),
                    &[tag(other)],
                    QueryOptions::new(),
                    src.fetch(),
                )
                .await
                .unwrap();
            assert_eq!(
                src.calls() - before,
                usize::from(i == j),
                "invalidating {segments:?} vs {other:?}"
            );
        }
    }
}

#[test]
fn empty_tags_are_a_typed_error() {
    assert_eq!(TagPath::new(Vec::<String>::new()), Err(TagError::Empty));
    assert_eq!(TagPath::from_encoded(""), Err(TagError::Empty));
    assert!(matches!(
        TagPath::from_encoded("a//b"),
        Err(TagError::BadEscape(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any segments round-trip, and distinct segment lists never encode alike.
    #[test]
    fn tag_paths_round_trip(a in prop::collection::vec(".{0,6}", 1..4), b in prop::collection::vec(".{0,6}", 1..4)) {
        let pa = TagPath::new(&a).unwrap();
        let pb = TagPath::new(&b).unwrap();
        prop_assert_eq!(pa.segments().collect::<Vec<_>>(), a.clone());
        prop_assert_eq!(TagPath::from_encoded(pa.as_str()).unwrap(), pa.clone());
        prop_assert_eq!(a == b, pa == pb);
    }

    /// Arbitrary text either parses to a path that re-encodes to itself, or
    /// is refused with a typed error.
    #[test]
    fn arbitrary_encodings_never_panic(text in ".{0,24}") {
        if let Ok(path) = TagPath::from_encoded(&text) {
            let again = TagPath::new(path.segments().collect::<Vec<_>>()).unwrap();
            prop_assert_eq!(again.as_str(), text.as_str());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Random bytes stored as a value of the right type are a miss, then a
    /// fresh fetch: never a panic, never a wrong value.
    #[test]
    fn random_value_bytes_are_a_miss(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let h = Harness::new(Store::MemoryBytesAsync).await;
            let memory = h.memory.clone().unwrap();
            let tags = [tag(&["t"])];
            let version = t87s::adapter::StorageAdapter::version(&memory).await.unwrap();
            let fingerprint = t87s_tests::fingerprint_of::<(String, u64)>().await;
            let entry = StoredEntry::new(StoredValue::Bytes(bytes.clone().into()), Arc::from(&tags[..]), version)
                .lifetime(T0, T0 + 60_000, None)
                .value_type(fingerprint);
            t87s::adapter::StorageAdapter::write(&memory, EntryKey { prefix: "t87s", key: "k" }, Arc::new(entry)).await.unwrap();
            let decoded: Result<(String, u64), _> = t87s::Codec::decode(&t87s::Postcard, &bytes);
            let src = Source::new(("fetched".to_string(), 1u64));
            let v = h.cache.query("k", &tags, QueryOptions::new(), src.fetch()).await.unwrap();
            match decoded {
                Ok(value) => assert_eq!(v, value, "bytes that decode are the value"),
                Err(_) => assert_eq!((v, src.calls()), (("fetched".to_string(), 1), 1)),
            }
        });
    }
}

#[tokio::test]
async fn random_bytes_under_a_redis_key_are_a_miss() {
    if !t87s_tests::redis_available().await {
        return;
    }
    let prefix = t87s_tests::unique_prefix();
    let cache = t87s::engine::Primitives::new(t87s_tests::redis_adapter(&prefix).await);
    let client = redis::Client::open(t87s_tests::redis_url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let tags = [tag(&["t"])];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..200 {
        let len = (round % 80) as usize;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect();
        let _: () = redis::cmd("SET")
            .arg(format!("{prefix}:e:t87s:k"))
            .arg(&bytes)
            .query_async(&mut raw)
            .await
            .unwrap();
        let src = Source::new(round as u64);
        let v = cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!((v, src.calls()), (round as u64, 1), "round {round}");
    }
}
