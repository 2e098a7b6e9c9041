//! The Redis adapter across processes: shared invalidations, clock skew,
//! the cross-process lease, a Redis that dies, a Cluster, bad bytes, `clear`.
//!
//! Each test skips loudly when no Redis answers at `REDIS_URL` (and fails
//! under `CI`). Tests that kill or configure a server start their own.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use t87s::adapter::{EntryKey, StorageAdapter};
use t87s::engine::{Primitives, QueryOptions};
use t87s::{Clock, EventKind, ManualClock, RedisAdapter, SystemClock};
use t87s_tests::servers::{RedisCluster, RedisServer};
use t87s_tests::{redis_adapter, redis_available, redis_url, tag, unique_prefix, Recorder, Source};

/// One "process": its own connection, clock and in-process state.
async fn process(prefix: &str, clock: ManualClock) -> Primitives {
    Primitives::builder(redis_adapter(prefix).await)
        .clock(clock)
        .verify_percent(0.0)
        .build()
        .unwrap()
}

/// Two "processes" on one prefix, their clocks at the same time.
async fn two_processes() -> (Primitives, Primitives) {
    let prefix = unique_prefix();
    let now = SystemClock.now_ms();
    let a = process(&prefix, ManualClock::new(now)).await;
    let b = process(&prefix, ManualClock::new(now)).await;
    (a, b)
}

async fn raw_connection() -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(redis_url()).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn two_processes_see_each_others_invalidations_at_once() {
    if !redis_available().await {
        return;
    }
    let (a, b) = two_processes().await;
    let tags = [tag(&["users", "1"])];
    let src = Source::new("v1".to_string());
    assert_eq!(
        a.query("u1", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        "v1"
    );
    // B finds A's entry: no fetch.
    assert_eq!(
        b.query("u1", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        "v1"
    );
    assert_eq!(src.calls(), 1);
    // A write, invalidated through B: A refetches at once.
    src.set("v2".into());
    b.invalidate(&[tag(&["users"])]).await.unwrap();
    assert_eq!(
        a.query("u1", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        "v2"
    );
    assert_eq!(
        b.query("u1", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        "v2"
    );
    assert_eq!(src.calls(), 2);
}

#[tokio::test]
async fn clocks_five_seconds_apart_never_serve_stale_after_invalidate() {
    if !redis_available().await {
        return;
    }
    let prefix = unique_prefix();
    let now = SystemClock.now_ms();
    let ahead = process(&prefix, ManualClock::new(now + 5_000)).await;
    let behind = process(&prefix, ManualClock::new(now - 5_000)).await;
    let tags = [tag(&["posts", "9"])];
    let long = || QueryOptions::new().ttl(Duration::from_secs(600));
    for (round, (writer, reader)) in [(&ahead, &behind), (&behind, &ahead)]
        .into_iter()
        .enumerate()
    {
        let src = Source::new(format!("round {round} before"));
        let key = format!("post-{round}");
        assert_eq!(
            reader
                .query(&key, &tags, long(), src.fetch())
                .await
                .unwrap(),
            format!("round {round} before")
        );
        assert_eq!(
            writer
                .query(&key, &tags, long(), src.fetch())
                .await
                .unwrap(),
            format!("round {round} before")
        );
        src.set(format!("round {round} after"));
        writer.invalidate(&tags).await.unwrap();
        for cache in [reader, writer] {
            let v = cache.query(&key, &tags, long(), src.fetch()).await.unwrap();
            assert_eq!(
                v,
                format!("round {round} after"),
                "round {round}: stale after invalidate"
            );
        }
    }

    // A fetch in flight on the host that is behind, an invalidation from the
    // host that is ahead: the late write must read as stale.
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    let slow = behind.clone();
    let tags2 = tags.clone();
    let in_flight = tokio::spawn(async move {
        slow.query(
            "slow",
            &tags2,
            QueryOptions::new().ttl(Duration::from_secs(600)),
            move || async move {
                started_tx.send(()).ok();
                release_rx.await.ok();
                Ok::<_, std::io::Error>("read before the write".to_string())
            },
        )
        .await
    });
    started_rx.await.unwrap();
    ahead.invalidate(&tags).await.unwrap();
    release_tx.send(()).unwrap();
    in_flight.await.unwrap().unwrap();
    let src = Source::new("read after the write".to_string());
    assert_eq!(
        ahead
            .query("slow", &tags, long(), src.fetch())
            .await
            .unwrap(),
        "read after the write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_times_a_hundred_callers_fetch_once() {
    if !redis_available().await {
        return;
    }
    let prefix = unique_prefix();
    let mut processes = Vec::new();
    for _ in 0..8 {
        processes.push(process(&prefix, ManualClock::new(SystemClock.now_ms())).await);
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for cache in &processes {
        for _ in 0..100 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .query(
                        "cold",
                        &[tag(&["k"])],
                        QueryOptions::new(),
                        move || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            // A fetch that takes a while: everyone piles up behind it.
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            Ok::<_, std::io::Error>(7u64)
                        },
                    )
                    .await
            }));
        }
    }
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), 7);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one fetch across 8 processes x 100 callers"
    );
}

#[tokio::test]
async fn a_lease_whose_holder_died_expires() {
    if !redis_available().await {
        return;
    }
    let prefix = unique_prefix();
    let adapter = redis_adapter(&prefix).await;
    // A "process" took the lease and died without releasing it.
    let key = EntryKey {
        prefix: "t87s",
        key: "orphan",
    };
    assert_eq!(
        adapter
            .lease(key, t87s::adapter::LeaseAsk::new(1, 300))
            .await
            .unwrap(),
        t87s::adapter::Lease::Acquired
    );
    let cache = Primitives::builder(adapter)
        .lease_timeout("300ms")
        .build()
        .unwrap();
    let src = Source::new(5u8);
    let started = Instant::now();
    assert_eq!(
        cache
            .query("orphan", &[tag(&["t"])], QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        5
    );
    assert_eq!(src.calls(), 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_run_queries_keep_answering_then_recover() {
    if !redis_available().await {
        return;
    }
    let mut server = RedisServer::start(&[]);
    let adapter = RedisAdapter::builder(server.url())
        .prefix(unique_prefix())
        .timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let events = Recorder::default();
    let cache = Primitives::builder(adapter)
        .observer(events.clone())
        .verify_percent(0.0)
        .build()
        .unwrap();
    let tags = [tag(&["t"])];
    let src = Source::new(1u32);
    assert_eq!(
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        1
    );
    assert_eq!(src.calls(), 1);

    server.kill();
    for _ in 0..5 {
        let started = Instant::now();
        let v = cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!(v, 1, "fail-open: the fetch answers");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
    assert!(events.count(EventKind::AdapterError) >= 5);
    assert!(
        cache.invalidate(&tags).await.is_err(),
        "invalidations report the fault"
    );
    assert_eq!(cache.in_flight(), 0);

    server.restart();
    // The connection comes back by itself: writes land, then hits.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        let before = src.calls();
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        if src.calls() == before {
            break;
        }
        assert!(Instant::now() < deadline, "the adapter did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cache.invalidate(&tags).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_on_a_three_master_cluster() {
    if !redis_available().await {
        return;
    }
    let cluster = RedisCluster::start();
    let prefix = unique_prefix();
    let connect = || async {
        RedisAdapter::cluster_builder(cluster.urls())
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .unwrap()
    };
    let a = Primitives::builder(connect().await)
        .verify_percent(0.0)
        .build()
        .unwrap();
    let b = Primitives::builder(connect().await)
        .verify_percent(0.0)
        .build()
        .unwrap();
    let src = Source::new("v1".to_string());
    // Many keys and tags, so they land in different slots and nodes.
    for i in 0..30 {
        let tags = [
            tag(&["users", &i.to_string(), "posts"]),
            tag(&["teams", &(i % 4).to_string()]),
        ];
        a.query(&format!("q{i}"), &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        b.query(&format!("q{i}"), &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
    }
    assert_eq!(src.calls(), 30, "b hits what a stored");
    src.set("v2".into());
    b.invalidate(&[tag(&["teams", "1"])]).await.unwrap();
    for i in 0..30 {
        let tags = [
            tag(&["users", &i.to_string(), "posts"]),
            tag(&["teams", &(i % 4).to_string()]),
        ];
        let v = a
            .query(&format!("q{i}"), &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!(v, if i % 4 == 1 { "v2" } else { "v1" }, "q{i}");
    }
    b.clear().await.unwrap();
    let v = a
        .query(
            "q0",
            &[tag(&["users", "0", "posts"]), tag(&["teams", "0"])],
            QueryOptions::new(),
            src.fetch(),
        )
        .await
        .unwrap();
    assert_eq!(v, "v2", "cleared everywhere");
}

#[tokio::test]
async fn foreign_or_corrupt_bytes_under_our_key_are_a_miss() {
    if !redis_available().await {
        return;
    }
    let prefix = unique_prefix();
    let cache = Primitives::new(redis_adapter(&prefix).await);
    let mut raw = raw_connection().await;
    let key = format!("{prefix}:e:t87s:k");
    let tags = [tag(&["t"])];
    for bytes in [
        b"not ours".to_vec(),
        vec![0xff; 40],
        vec![],
        vec![1, 0x73, 0x38, 0x74],
    ] {
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&bytes)
            .query_async(&mut raw)
            .await
            .unwrap();
        let src = Source::new(3u64);
        assert_eq!(
            cache
                .query("k", &tags, QueryOptions::new(), src.fetch())
                .await
                .unwrap(),
            3
        );
        assert_eq!(src.calls(), 1);
        // And it was overwritten by a good entry.
        assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(3));
    }
    // An entry of another type under the key is a miss too.
    let src = Source::new("text".to_string());
    assert_eq!(
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        "text"
    );
    assert_eq!(src.calls(), 1);
}

#[tokio::test]
async fn a_damaged_marker_is_invalidated_now_and_can_be_invalidated_again() {
    if !redis_available().await {
        return;
    }
    let prefix = unique_prefix();
    let cache = Primitives::new(redis_adapter(&prefix).await);
    let mut raw = raw_connection().await;
    let tags = [tag(&["t"])];
    let other = [tag(&["u"])];
    let src = Source::new(1u64);
    cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    cache
        .query("o", &other, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(src.calls(), 2);
    // Someone writes garbage into the marker of `t`.
    let marker = format!("{prefix}:m:p:t87s:t");
    let _: () = redis::cmd("SET")
        .arg(&marker)
        .arg("garbage")
        .query_async(&mut raw)
        .await
        .unwrap();
    // Read as "invalidated now": never the old value (0 would serve it).
    src.set(2);
    let v = cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!((v, src.calls()), (2, 3));
    // Invalidating it again works, and so does every other tag of the call.
    cache
        .invalidate(&[tags[0].clone(), other[0].clone()])
        .await
        .unwrap();
    let held: String = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(
        held.parse::<u64>().is_ok(),
        "the garbage was written over: {held}"
    );
    src.set(3);
    assert_eq!(
        cache
            .query("o", &other, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        3
    );
    assert_eq!(src.calls(), 5, "once healed, `k` is cached again");
    // A marker key holding a list: the script neither raises nor gives up.
    let _: () = redis::cmd("DEL")
        .arg(&marker)
        .query_async(&mut raw)
        .await
        .unwrap();
    let _: () = redis::cmd("RPUSH")
        .arg(&marker)
        .arg("x")
        .query_async(&mut raw)
        .await
        .unwrap();
    cache.invalidate(&tags).await.unwrap();
    let held: String = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(held.parse::<u64>().is_ok());
}

/// `calls` of `command` in `INFO commandstats` (commands a script runs
/// count too).
#[tokio::test]
async fn clear_removes_only_its_own_prefix() {
    if !redis_available().await {
        return;
    }
    let mine = unique_prefix();
    let theirs = unique_prefix();
    let a = Primitives::new(redis_adapter(&mine).await);
    let b = Primitives::new(redis_adapter(&theirs).await);
    let tags = [tag(&["t"])];
    let src = Source::new(1u8);
    a.query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    b.query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    let mut raw = raw_connection().await;
    let _: () = redis::cmd("SET")
        .arg(format!("{mine}x:unrelated"))
        .arg(1)
        .query_async(&mut raw)
        .await
        .unwrap();
    a.clear().await.unwrap();
    let entry: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{mine}:e:t87s:k"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(entry.is_none(), "our entry is gone");
    let other: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{theirs}:e:t87s:k"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(other.is_some(), "another prefix is untouched");
    let unrelated: Option<u8> = redis::cmd("GET")
        .arg(format!("{mine}x:unrelated"))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(unrelated, Some(1), "a longer prefix is not ours");
    assert_eq!(
        b.query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        1
    );
    assert_eq!(src.calls(), 2);
}

#[tokio::test]
async fn the_password_never_shows() {
    for url in [
        "redis://app:hunter2@127.0.0.1:1",
        "redis+unix:///tmp/t87s-no-such.sock?pass=hunter2",
        "redis+unix:///tmp/t87s-no-such.sock?db=0&password=hunter2",
        "redis://127.0.0.1:1/0?password=hunter2",
    ] {
        let builder = RedisAdapter::builder(url).timeout(Duration::from_millis(200));
        assert!(!format!("{builder:?}").contains("hunter2"), "{builder:?}");
        // Nothing listens there: the adapter is built (it connects on
        // first use), and the errors of using it name no password.
        let adapter = builder.connect().await.unwrap();
        assert!(!format!("{adapter:?}").contains("hunter2"), "{adapter:?}");
        let err = adapter.version().await.unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
    if redis_available().await {
        let adapter = redis_adapter(&unique_prefix()).await;
        assert!(format!("{adapter:?}").contains("RedisAdapter"));
    }
}

#[tokio::test]
async fn options_that_cannot_work_are_config_errors() {
    use t87s::{ConfigError, Error};
    for (builder, option) in [
        (
            RedisAdapter::builder(redis_url()).timeout(Duration::MAX),
            "timeout",
        ),
        (
            RedisAdapter::builder(redis_url()).timeout(Duration::ZERO),
            "timeout",
        ),
        (
            RedisAdapter::builder(redis_url()).marker_ttl(Duration::MAX),
            "marker_ttl",
        ),
        (
            RedisAdapter::builder(redis_url()).marker_ttl(Duration::ZERO),
            "marker_ttl",
        ),
    ] {
        match builder.connect().await {
            Err(Error::Config(ConfigError::OutOfRange { option: got, .. })) => {
                assert_eq!(got, option)
            }
            other => panic!("expected a ConfigError for `{option}`, got {other:?}"),
        }
    }
    let lease = Primitives::builder(t87s::MemoryAdapter::new())
        .lease_timeout(Duration::MAX)
        .build();
    assert!(matches!(
        lease,
        Err(ConfigError::OutOfRange {
            option: "lease_timeout",
            ..
        })
    ));
}

#[tokio::test]
async fn an_evicting_policy_is_detected_at_connect() {
    if !redis_available().await {
        return;
    }
    let server = RedisServer::start(&["--maxmemory", "64mb", "--maxmemory-policy", "allkeys-lru"]);
    let adapter = RedisAdapter::connect(server.url()).await.unwrap();
    let warning = adapter.eviction_warning().expect("a warning");
    assert!(
        warning.contains("allkeys-lru") && warning.contains("noeviction"),
        "{warning}"
    );
    let safe = RedisServer::start(&["--maxmemory", "64mb", "--maxmemory-policy", "noeviction"]);
    assert!(RedisAdapter::connect(safe.url())
        .await
        .unwrap()
        .eviction_warning()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_queries_answer_within_the_timeout_and_no_task_leaks() {
    if !redis_available().await {
        return;
    }
    let server = RedisServer::start(&[]);
    let adapter = RedisAdapter::builder(server.url())
        .prefix(unique_prefix())
        .timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let events = Recorder::default();
    let cache = Primitives::builder(adapter)
        .observer(events.clone())
        .verify_percent(0.0)
        .build()
        .unwrap();
    let metrics = tokio::runtime::Handle::current().metrics();
    let tags = [tag(&["t"])];
    let src = Source::new(1u32);
    cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(src.calls(), 1);
    let tasks_before = metrics.num_alive_tasks();

    server.pause();
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            cache
                .query("k", &tags, QueryOptions::new(), src.fetch())
                .await
                .unwrap(),
            1
        );
        // A read times out, the fetch answers; the write times out too.
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }
    let err = cache.invalidate(&tags).await.unwrap_err().to_string();
    assert!(
        err.contains("timed out") || err.contains("is failing"),
        "{err}"
    );
    server.resume();

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = src.calls();
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        cache
            .query("k", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        if src.calls() - before <= 1 && cache.invalidate(&tags).await.is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the adapter did not recover from the pause"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(cache.in_flight(), 0);
    // The task retrying the failed invalidation ends once nothing waits.
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.num_alive_tasks() > tasks_before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        metrics.num_alive_tasks() <= tasks_before,
        "tasks leaked: {} > {tasks_before}",
        metrics.num_alive_tasks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_cut_network_fails_open_and_serves_nothing_stale_after() {
    if !redis_available().await {
        return;
    }
    let upstream = redis_url()
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .to_owned();
    let proxy = t87s_tests::proxy::Proxy::start(upstream, Duration::from_millis(400)).await;
    let prefix = unique_prefix();
    let proxied = Primitives::builder(
        RedisAdapter::builder(format!("redis://127.0.0.1:{}", proxy.port))
            .prefix(prefix.clone())
            .timeout(Duration::from_millis(150))
            .connect()
            .await
            .unwrap(),
    )
    .verify_percent(0.0)
    .build()
    .unwrap();
    let direct = process(&prefix, ManualClock::new(SystemClock.now_ms())).await;
    let tags = [tag(&["users", "1"])];
    let src = Source::new("v1".to_string());
    assert_eq!(
        proxied
            .query("u1", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        "v1"
    );
    assert_eq!(
        proxied
            .query("u1", &tags, QueryOptions::new(), src.fetch())
            .await
            .unwrap(),
        "v1"
    );
    assert_eq!(src.calls(), 1);

    for fault in ["delay", "cut"] {
        if fault == "delay" {
            proxy.delay();
        } else {
            proxy.cut();
        }
        // While the proxied process cannot reach Redis, another one writes
        // and invalidates.
        src.set(format!("after {fault}"));
        direct.invalidate(&tags).await.unwrap();
        for _ in 0..3 {
            let started = Instant::now();
            let v = proxied
                .query("u1", &tags, QueryOptions::new(), src.fetch())
                .await
                .unwrap();
            assert_eq!(v, format!("after {fault}"), "fail-open runs the fetch");
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{fault}: took {:?}",
                started.elapsed()
            );
        }
        proxy.pass();
        // After recovery: never the value from before the invalidation.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let v = proxied
                .query("u1", &tags, QueryOptions::new(), src.fetch())
                .await
                .unwrap();
            assert_eq!(v, format!("after {fault}"), "stale after recovery");
            if proxied.invalidate(&[tag(&["unrelated"])]).await.is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "no recovery after {fault}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(proxied.in_flight(), 0);
}

#[tokio::test]
async fn hits_on_bytes_decoded_before_still_serve_what_redis_holds_now() {
    if !redis_available().await {
        return;
    }
    let (a, b) = two_processes().await;
    let tags = [tag(&["posts", "1"])];
    let src = Source::new("first".to_string());
    // Hits enough for this thread to keep the entry and the value decoded.
    for _ in 0..4 {
        let v = a.query("p1", &tags, QueryOptions::new(), src.fetch()).await;
        assert_eq!(v.unwrap(), "first");
    }
    assert_eq!(src.calls(), 1);
    // Another process writes new bytes under the key, with no invalidation:
    // the next hit is the new value, never the one decoded before.
    let options = t87s::engine::SetOptions::new(tags.clone());
    b.set("p1", &"second".to_string(), options).await.unwrap();
    for _ in 0..3 {
        let v = a.query("p1", &tags, QueryOptions::new(), src.fetch()).await;
        assert_eq!(v.unwrap(), "second");
    }
    // A third write, of the first value again: its bytes are new too.
    let options = t87s::engine::SetOptions::new(tags.clone());
    b.set("p1", &"first".to_string(), options).await.unwrap();
    let v = a.query("p1", &tags, QueryOptions::new(), src.fetch()).await;
    assert_eq!(v.unwrap(), "first");
    assert_eq!(src.calls(), 1);
}
