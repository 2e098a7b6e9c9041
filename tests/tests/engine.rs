//! The engine suite: every rule of the engine, run once per store.
//!
//! Time is a `ManualClock`; nothing sleeps. Background work (refreshes,
//! verifications) runs on the test's runtime and is awaited with `settle()`.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use t87s::engine::{QueryOptions, SetOptions};
use t87s::{parse_duration, EventKind};
use t87s_tests::{tag, Harness, Source, Store};

const SEC: Duration = Duration::from_secs(1);

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod memory_objects {
            $( #[tokio::test] async fn $name() { super::$name(t87s_tests::Store::MemoryObjects).await } )*
        }
        mod memory_bytes_async {
            $( #[tokio::test] async fn $name() { super::$name(t87s_tests::Store::MemoryBytesAsync).await } )*
        }
        mod redis {
            $( #[tokio::test] async fn $name() {
                if t87s_tests::redis_available().await {
                    super::$name(t87s_tests::Store::Redis).await
                }
            } )*
        }
    };
}

suite!(
    set_then_get,
    delete_removes_entry,
    invalidate_makes_get_miss,
    hierarchical_invalidation_covers_descendants,
    exact_invalidation_affects_only_the_exact_tag,
    ttl_expiry,
    grace_extends_availability,
    no_grace_means_refetch_after_ttl,
    clear_removes_everything,
    custom_prefix_isolates_caches,
    multiple_tags_per_entry,
    invalidating_one_tag_leaves_others_alone,
    string_ttls,
    root_tag_invalidates_all_children,
    invalidating_several_tags_at_once,
    fresh_hit_does_not_fetch,
    a_query_looks_when_polled_not_when_made,
    invalidated_entry_is_refetched_in_foreground_even_with_grace,
    swr_serves_stale_and_refreshes_once,
    swr_on_refresh_reports_changed,
    swr_on_refresh_panic_is_contained,
    failed_refresh_backs_off,
    fail_safe_serves_graced_value_when_fetch_fails,
    fail_safe_needs_grace,
    errors_are_never_cached,
    entries_before_and_after,
    invalidation_during_fetch_is_not_lost,
    different_type_under_key_is_a_miss,
    tags_changed_between_writes_are_checked,
    verification_reports_fresh_and_stale,
);

async fn set_then_get(store: Store) {
    let h = Harness::new(store).await;
    let opts = SetOptions::new([tag(&["users", "1"])]).ttl(60 * SEC);
    h.cache
        .set("user:1", &"ada".to_string(), opts)
        .await
        .unwrap();
    assert_eq!(
        h.cache.get::<String>("user:1").await.unwrap().as_deref(),
        Some("ada")
    );
    assert_eq!(h.cache.get::<String>("user:2").await.unwrap(), None);
}

async fn delete_removes_entry(store: Store) {
    let h = Harness::new(store).await;
    h.cache
        .set("k", &1u32, SetOptions::new([tag(&["t"])]))
        .await
        .unwrap();
    h.cache.delete("k").await.unwrap();
    assert_eq!(h.cache.get::<u32>("k").await.unwrap(), None);
}

async fn invalidate_makes_get_miss(store: Store) {
    let h = Harness::new(store).await;
    h.cache
        .set("k", &1u32, SetOptions::new([tag(&["users", "1"])]))
        .await
        .unwrap();
    h.cache.invalidate(&[tag(&["users", "1"])]).await.unwrap();
    assert_eq!(h.cache.get::<u32>("k").await.unwrap(), None);
}

async fn hierarchical_invalidation_covers_descendants(store: Store) {
    let h = Harness::new(store).await;
    let deep = tag(&["posts", "1", "comments"]);
    h.cache
        .set("comments", &vec![1u32], SetOptions::new([deep]))
        .await
        .unwrap();
    h.cache
        .set("other", &2u32, SetOptions::new([tag(&["posts", "12"])]))
        .await
        .unwrap();
    h.cache.invalidate(&[tag(&["posts", "1"])]).await.unwrap();
    assert_eq!(h.cache.get::<Vec<u32>>("comments").await.unwrap(), None);
    // `posts/1` is not a prefix of `posts/12`: segment boundaries count.
    assert_eq!(h.cache.get::<u32>("other").await.unwrap(), Some(2));
}

async fn exact_invalidation_affects_only_the_exact_tag(store: Store) {
    let h = Harness::new(store).await;
    h.cache
        .set("list", &1u32, SetOptions::new([tag(&["posts"])]))
        .await
        .unwrap();
    h.cache
        .set("one", &2u32, SetOptions::new([tag(&["posts", "1"])]))
        .await
        .unwrap();
    h.cache.invalidate_exact(&[tag(&["posts"])]).await.unwrap();
    assert_eq!(h.cache.get::<u32>("list").await.unwrap(), None);
    assert_eq!(h.cache.get::<u32>("one").await.unwrap(), Some(2));
}

async fn ttl_expiry(store: Store) {
    let h = Harness::new(store).await;
    h.cache
        .set("k", &1u32, SetOptions::new([tag(&["t"])]).ttl(10 * SEC))
        .await
        .unwrap();
    h.advance(Duration::from_millis(9_999));
    assert_eq!(h.cache.get::<u32>("k").await.unwrap(), Some(1));
    h.advance(Duration::from_millis(1));
    assert_eq!(h.cache.get::<u32>("k").await.unwrap(), None);
}

async fn grace_extends_availability(store: Store) {
    let h = Harness::new(store).await;
    let opts = SetOptions::new([tag(&["t"])]).ttl(10 * SEC).grace(20 * SEC);
    h.cache.set("k", &1u32, opts).await.unwrap();
    h.advance(25 * SEC);
    assert_eq!(
        h.cache.get::<u32>("k").await.unwrap(),
        Some(1),
        "inside grace"
    );
    h.advance(5 * SEC);
    assert_eq!(h.cache.get::<u32>("k").await.unwrap(), None, "past grace");
}

async fn no_grace_means_refetch_after_ttl(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    let q = || QueryOptions::new().ttl(10 * SEC);
    assert_eq!(
        h.cache.query("k", &tags, q(), src.fetch()).await.unwrap(),
        1
    );
    src.set(2);
    h.advance(10 * SEC);
    assert_eq!(
        h.cache.query("k", &tags, q(), src.fetch()).await.unwrap(),
        2
    );
    assert_eq!(src.calls(), 2);
    assert_eq!(h.events.count(EventKind::StaleServed), 0);
}

async fn clear_removes_everything(store: Store) {
    let h = Harness::new(store).await;
    h.cache
        .set("a", &1u32, SetOptions::new([tag(&["a"])]))
        .await
        .unwrap();
    h.cache
        .set("b", &2u32, SetOptions::new([tag(&["b"])]))
        .await
        .unwrap();
    h.cache.clear().await.unwrap();
    assert_eq!(h.cache.get::<u32>("a").await.unwrap(), None);
    assert_eq!(h.cache.get::<u32>("b").await.unwrap(), None);
    if let Some(memory) = &h.memory {
        assert_eq!(memory.entry_count(), 0);
    }
}

async fn custom_prefix_isolates_caches(store: Store) {
    let h = Harness::new(store).await;
    let other = t87s::engine::Primitives::builder(h.shared.clone())
        .prefix("other")
        .clock(h.clock.clone())
        .build()
        .unwrap();
    assert_eq!(other.prefix(), "other");
    let t = tag(&["users", "1"]);
    h.cache
        .set("k", &1u32, SetOptions::new([t.clone()]))
        .await
        .unwrap();
    other
        .set("k", &2u32, SetOptions::new([t.clone()]))
        .await
        .unwrap();
    assert_eq!(h.cache.get::<u32>("k").await.unwrap(), Some(1));
    assert_eq!(other.get::<u32>("k").await.unwrap(), Some(2));
    other.invalidate(&[t]).await.unwrap();
    assert_eq!(other.get::<u32>("k").await.unwrap(), None);
    assert_eq!(
        h.cache.get::<u32>("k").await.unwrap(),
        Some(1),
        "other prefix untouched"
    );
}

async fn multiple_tags_per_entry(store: Store) {
    let h = Harness::new(store).await;
    let tags = [tag(&["users", "1"]), tag(&["teams", "9"])];
    h.cache
        .set("a", &1u32, SetOptions::new(tags.clone()))
        .await
        .unwrap();
    h.cache
        .set("b", &2u32, SetOptions::new(tags))
        .await
        .unwrap();
    h.cache.invalidate(&[tag(&["teams", "9"])]).await.unwrap();
    assert_eq!(h.cache.get::<u32>("a").await.unwrap(), None);
    assert_eq!(h.cache.get::<u32>("b").await.unwrap(), None);
}

async fn invalidating_one_tag_leaves_others_alone(store: Store) {
    let h = Harness::new(store).await;
    h.cache
        .set("u1", &1u32, SetOptions::new([tag(&["users", "1"])]))
        .await
        .unwrap();
    h.cache
        .set("u2", &2u32, SetOptions::new([tag(&["users", "2"])]))
        .await
        .unwrap();
    h.cache.invalidate(&[tag(&["users", "1"])]).await.unwrap();
    assert_eq!(h.cache.get::<u32>("u1").await.unwrap(), None);
    assert_eq!(h.cache.get::<u32>("u2").await.unwrap(), Some(2));
}

async fn string_ttls(store: Store) {
    let h = Harness::with(store, |b| b.default_ttl("2s").default_grace("1m")).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    h.cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    let entries = h
        .cache
        .query_with_entries("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(entries.after.expires_at - entries.after.created_at, 2_000);
    assert_eq!(
        entries.after.grace_until,
        Some(entries.after.expires_at + 60_000)
    );

    let opts = QueryOptions::new().ttl(parse_duration("500ms").unwrap());
    let e = h
        .cache
        .query_with_entries("k2", &tags, opts, src.fetch())
        .await
        .unwrap();
    assert_eq!(e.after.expires_at - e.after.created_at, 500);

    let err = t87s::engine::Primitives::builder(h.shared.clone())
        .default_grace("1 hour")
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "option `default_grace`: invalid duration \"1 hour\"; expected a whole number followed by `ms`, `s`, `m`, `h` or `d`, like \"30s\""
    );
}

async fn root_tag_invalidates_all_children(store: Store) {
    let h = Harness::new(store).await;
    for (i, t) in [
        &["posts"][..],
        &["posts", "1"],
        &["posts", "2", "comments", "3"],
    ]
    .into_iter()
    .enumerate()
    {
        h.cache
            .set(&format!("k{i}"), &(i as u32), SetOptions::new([tag(t)]))
            .await
            .unwrap();
    }
    h.cache
        .set("users", &9u32, SetOptions::new([tag(&["users"])]))
        .await
        .unwrap();
    h.cache.invalidate(&[tag(&["posts"])]).await.unwrap();
    for i in 0..3 {
        assert_eq!(h.cache.get::<u32>(&format!("k{i}")).await.unwrap(), None);
    }
    assert_eq!(h.cache.get::<u32>("users").await.unwrap(), Some(9));
}

async fn invalidating_several_tags_at_once(store: Store) {
    let h = Harness::new(store).await;
    for name in ["a", "b", "c"] {
        h.cache
            .set(name, &1u32, SetOptions::new([tag(&[name])]))
            .await
            .unwrap();
    }
    h.cache
        .invalidate(&[tag(&["a"]), tag(&["b"])])
        .await
        .unwrap();
    assert_eq!(h.cache.get::<u32>("a").await.unwrap(), None);
    assert_eq!(h.cache.get::<u32>("b").await.unwrap(), None);
    assert_eq!(h.cache.get::<u32>("c").await.unwrap(), Some(1));
}

async fn fresh_hit_does_not_fetch(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new("v".to_string());
    let tags = [tag(&["t"])];
    for _ in 0..3 {
        let v = h
            .cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!(v, "v");
    }
    assert_eq!(src.calls(), 1);
    assert_eq!(h.events.count(EventKind::Miss), 1);
    assert_eq!(h.events.count(EventKind::Hit), 2);
}

/// A query's future reads the store when it is first polled: an
/// invalidation that returns after the future is made and before it is
/// awaited is seen (a hit looked up when the future was made would serve
/// the value it made stale).
async fn a_query_looks_when_polled_not_when_made(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(1u32);
    let tags = [tag(&["posts", "1"])];
    let first = h.cache.query("k", &tags, QueryOptions::new(), src.fetch());
    assert_eq!(first.await.unwrap(), 1);
    src.set(2);
    let made = h.cache.query("k", &tags, QueryOptions::new(), src.fetch());
    let sharing = h.cache.query_sharing(
        "k",
        &tags,
        QueryOptions::new(),
        t87s::engine::Share::Not,
        src.fetch(),
    );
    h.cache.invalidate(&tags).await.unwrap();
    assert_eq!(made.await.unwrap(), 2);
    assert_eq!(sharing.await.unwrap(), 2);
    assert_eq!(src.calls(), 2);
}

async fn invalidated_entry_is_refetched_in_foreground_even_with_grace(store: Store) {
    let h = Harness::with(store, |b| b.default_grace("1h")).await;
    let src = Source::new(1u32);
    let tags = [tag(&["posts", "1"])];
    h.cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    src.set(2);
    h.cache.invalidate(&[tag(&["posts"])]).await.unwrap();
    // The reference would serve 1 here (stale-while-revalidate); we must not.
    let v = h
        .cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(v, 2);
    assert_eq!(h.events.count(EventKind::StaleServed), 0);
    // And the refetched value is fresh afterwards.
    let v = h
        .cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!((v, src.calls()), (2, 2));
}

async fn swr_serves_stale_and_refreshes_once(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    let q = || QueryOptions::new().ttl(10 * SEC).grace(60 * SEC);
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    h.advance(11 * SEC);
    // The first caller inside grace gets the stale value and starts the one
    // refresh (held open here until every other caller has been served).
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    let v = h
        .cache
        .query("k", &tags, q(), move || async move {
            gate.await.ok();
            Ok::<_, std::io::Error>(2u32)
        })
        .await
        .unwrap();
    assert_eq!(v, 1);
    for _ in 0..4 {
        assert_eq!(
            h.cache.query("k", &tags, q(), src.fetch()).await.unwrap(),
            1
        );
    }
    release.send(()).unwrap();
    h.settle().await;
    assert_eq!(src.calls(), 1, "no caller but the first started a refresh");
    assert_eq!(h.events.count(EventKind::StaleServed), 5);
    assert_eq!(h.events.count(EventKind::Refreshed { changed: true }), 1);
    assert_eq!(
        h.cache.query("k", &tags, q(), src.fetch()).await.unwrap(),
        2
    );
    assert_eq!(h.cache.in_flight(), 0);
}

async fn swr_on_refresh_reports_changed(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    let seen: Arc<Mutex<Vec<(u32, u32, bool)>>> = Arc::default();
    let q = || {
        let seen = seen.clone();
        QueryOptions::new()
            .ttl(10 * SEC)
            .grace(60 * SEC)
            .on_refresh(move |old: &u32, new: &u32, changed| {
                seen.lock().push((*old, *new, changed))
            })
    };
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    h.advance(11 * SEC);
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    h.settle().await;
    src.set(5);
    h.advance(11 * SEC);
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    h.settle().await;
    assert_eq!(*seen.lock(), vec![(1, 1, false), (1, 5, true)]);
}

async fn swr_on_refresh_panic_is_contained(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    let q = || {
        QueryOptions::new()
            .ttl(10 * SEC)
            .grace(60 * SEC)
            .on_refresh(|_: &u32, _: &u32, _| panic!("callback bug"))
    };
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    src.set(2);
    h.advance(11 * SEC);
    assert_eq!(
        h.cache.query("k", &tags, q(), src.fetch()).await.unwrap(),
        1
    );
    h.settle().await;
    assert_eq!(h.events.count(EventKind::CallbackPanicked), 1);
    // The refresh still landed and the key still works.
    assert_eq!(
        h.cache.query("k", &tags, q(), src.fetch()).await.unwrap(),
        2
    );
    assert_eq!(h.cache.in_flight(), 0);
}

async fn failed_refresh_backs_off(store: Store) {
    let h = Harness::with(store, |b| b.refresh_backoff("5s")).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    let q = || QueryOptions::new().ttl(10 * SEC).grace(600 * SEC);
    h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
    h.advance(11 * SEC);
    assert_eq!(
        h.cache.query("k", &tags, q(), src.failing()).await.unwrap(),
        1
    );
    h.settle().await;
    assert_eq!(
        (src.calls(), h.events.count(EventKind::RefreshFailed)),
        (2, 1)
    );
    // Within the back-off: the graced value is served, no new refresh.
    for _ in 0..3 {
        assert_eq!(
            h.cache.query("k", &tags, q(), src.failing()).await.unwrap(),
            1
        );
        h.settle().await;
    }
    assert_eq!(src.calls(), 2);
    // After it: one more attempt.
    h.advance(5 * SEC);
    assert_eq!(
        h.cache.query("k", &tags, q(), src.fetch()).await.unwrap(),
        1
    );
    h.settle().await;
    assert_eq!(src.calls(), 3);
    assert_eq!(h.events.count(EventKind::Refreshed { changed: false }), 1);
}

async fn fail_safe_serves_graced_value_when_fetch_fails(store: Store) {
    let h = Harness::with(store, |b| b.default_grace("1h")).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    h.cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    h.cache.invalidate(&tags).await.unwrap();
    // Invalidated: the fetch runs in the foreground; it fails; the graced
    // value is served and the observer is told.
    let v = h
        .cache
        .query("k", &tags, QueryOptions::new(), src.failing())
        .await
        .unwrap();
    assert_eq!(v, 1);
    assert_eq!(h.events.count(EventKind::FetchError), 1);
    assert_eq!(h.events.count(EventKind::FailSafe), 1);
    // Past the TTL and grace, nothing to fall back on: the error comes through.
    h.advance(Duration::from_secs(30 + 3600));
    let err = h
        .cache
        .query("k", &tags, QueryOptions::new(), src.failing())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "database is down");
}

async fn fail_safe_needs_grace(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    h.cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    h.cache.invalidate(&tags).await.unwrap();
    let err = h
        .cache
        .query("k", &tags, QueryOptions::new(), src.failing())
        .await;
    assert!(
        err.is_err(),
        "no grace: the invalidated value is never served"
    );
    assert_eq!(h.events.count(EventKind::FailSafe), 0);
}

async fn errors_are_never_cached(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(7u32);
    let tags = [tag(&["t"])];
    assert!(h
        .cache
        .query("k", &tags, QueryOptions::new(), src.failing())
        .await
        .is_err());
    assert_eq!(
        h.cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        7
    );
    assert_eq!(src.calls(), 2);
    assert_eq!(h.cache.in_flight(), 0);
}

async fn entries_before_and_after(store: Store) {
    let h = Harness::new(store).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    let miss = h
        .cache
        .query_with_entries("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert!(miss.before.is_none());
    assert_eq!(miss.after.value, 1);
    assert_eq!(miss.after.created_at, t87s_tests::T0);
    assert_eq!(&*miss.after.tags, &tags);

    let hit = h
        .cache
        .query_with_entries("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(hit.before.as_ref(), Some(&hit.after));
    assert_eq!(hit.after, miss.after);

    src.set(2);
    h.cache.invalidate(&tags).await.unwrap();
    h.advance(SEC);
    let refetch = h
        .cache
        .query_with_entries("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(refetch.before.as_ref().map(|e| e.value), Some(1));
    assert_eq!(refetch.after.value, 2);
    assert_eq!(refetch.after.created_at, t87s_tests::T0 + 1_000);
}

async fn invalidation_during_fetch_is_not_lost(store: Store) {
    let h = Harness::new(store).await;
    let tags = [tag(&["posts", "1"])];
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let cache = h.cache.clone();
    let tags2 = tags.clone();
    let slow = tokio::spawn(async move {
        cache
            .query("k", &tags2, QueryOptions::new(), move || async move {
                started_tx.send(()).ok();
                release_rx.await.ok();
                Ok::<_, std::io::Error>("before the write".to_string())
            })
            .await
    });
    started_rx.await.unwrap();
    // The write lands while the fetch is in flight.
    h.cache.invalidate(&tags).await.unwrap();
    release_tx.send(()).unwrap();
    assert_eq!(slow.await.unwrap().unwrap(), "before the write");
    // The entry it stored must read as stale.
    assert_eq!(h.cache.get::<String>("k").await.unwrap(), None);
    let src = Source::new("after the write".to_string());
    let v = h
        .cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(v, "after the write");
}

async fn different_type_under_key_is_a_miss(store: Store) {
    let h = Harness::new(store).await;
    let tags = [tag(&["t"])];
    h.cache
        .set("k", &"text".to_string(), SetOptions::new(tags.clone()))
        .await
        .unwrap();
    let src = Source::new(vec![1u64, 2, 3]);
    let v = h
        .cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(v, vec![1, 2, 3]);
    assert_eq!(src.calls(), 1);
    // Reported (once per look at the entry: the read and the leader's re-check).
    assert!(h.events.count(EventKind::Undecodable) >= 1);
}

async fn tags_changed_between_writes_are_checked(store: Store) {
    // An entry stored under other tags than the query names (a deploy changed
    // the tag expression): its own tags decide staleness.
    let h = Harness::new(store).await;
    h.cache
        .set("k", &1u32, SetOptions::new([tag(&["old", "1"])]))
        .await
        .unwrap();
    h.cache.invalidate(&[tag(&["old"])]).await.unwrap();
    let src = Source::new(2u32);
    let v = h
        .cache
        .query("k", &[tag(&["new", "1"])], QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(v, 2);
}

async fn verification_reports_fresh_and_stale(store: Store) {
    let h = Harness::with(store, |b| b.verify_percent(1.0)).await;
    let src = Source::new(1u32);
    let tags = [tag(&["t"])];
    h.cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    h.cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    h.settle().await;
    assert_eq!(h.events.count(EventKind::Verified { stale: false }), 1);
    src.set(2);
    // The hit still returns the cached value; the verification reports it stale.
    assert_eq!(
        h.cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        1
    );
    h.settle().await;
    assert_eq!(h.events.count(EventKind::Verified { stale: true }), 1);
    assert_eq!(src.calls(), 3);
}
