//! Stampede protection: one fetch per key, however many callers; and the
//! leader's cancellation, panic or failure never strands the others.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use t87s::engine::QueryOptions;
use t87s::EventKind;
use t87s_tests::{settle, tag, Harness, Source, Store};
use tokio::sync::{oneshot, Semaphore};

/// Every test here has a deadline: a hung waiter fails the test, not CI.
async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("test timed out: a caller is stuck")
}

async fn concurrent_callers_fetch_once(callers: usize) {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let calls = Arc::new(AtomicUsize::new(0));
        let arrived = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let (cache, calls, gate) = (h.cache.clone(), calls.clone(), gate.clone());
            let arrived = arrived.clone();
            tasks.push(tokio::spawn(async move {
                arrived.fetch_add(1, Ordering::SeqCst);
                cache
                    .query(
                        "cold",
                        &[tag(&["k"])],
                        QueryOptions::new(),
                        move || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            // Hold the fetch open until every caller has arrived.
                            let _permit = gate.acquire().await;
                            Ok::<_, std::io::Error>(42u64)
                        },
                    )
                    .await
            }));
        }
        within(async {
            // Hold the leader's fetch until every caller has called `query`
            // (the count is exact however they interleave; the gate only makes
            // the overlap real).
            while arrived.load(Ordering::SeqCst) < callers || h.events.count(EventKind::Miss) == 0 {
                tokio::task::yield_now().await;
            }
            settle().await;
            gate.add_permits(callers);
            for task in tasks {
                assert_eq!(task.await.unwrap().unwrap(), 42);
            }
        })
        .await;
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "{store:?}: exactly one fetch"
        );
        assert_eq!(h.cache.in_flight(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_callers_run_fetch_once() {
    concurrent_callers_fetch_once(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_callers_run_fetch_once() {
    concurrent_callers_fetch_once(1_000).await;
}

/// Spawns a leader whose fetch blocks until `release` fires (or forever),
/// and returns once the fetch is running.
async fn blocked_leader(
    h: &Harness,
    fetch_body: impl FnOnce(
            oneshot::Receiver<()>,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<u32, std::io::Error>> + Send>,
        > + Send
        + 'static,
) -> (
    tokio::task::JoinHandle<Result<u32, std::io::Error>>,
    oneshot::Sender<()>,
) {
    let (started_tx, started_rx) = oneshot::channel();
    let (release_tx, release_rx) = oneshot::channel();
    let cache = h.cache.clone();
    let leader = tokio::spawn(async move {
        cache
            .query("k", &[tag(&["t"])], QueryOptions::new(), move || {
                started_tx.send(()).ok();
                fetch_body(release_rx)
            })
            .await
    });
    started_rx.await.unwrap();
    (leader, release_tx)
}

fn followers(
    h: &Harness,
    src: &Source<u32>,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<u32, std::io::Error>>> {
    (0..n)
        .map(|_| {
            let (cache, fetch) = (h.cache.clone(), src.fetch());
            tokio::spawn(async move {
                cache
                    .query("k", &[tag(&["t"])], QueryOptions::new(), fetch)
                    .await
            })
        })
        .collect()
}

/// A miss runs its fetch in the caller's own future: no task is spawned
/// for it (a task per miss cost a spawn and, with tokio's aligned task
/// cells, grew glibc's heap to several times the entries it held). A fetch
/// that is ready at once is answered in the query's first poll.
#[tokio::test]
async fn a_miss_fetches_in_the_callers_future() {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let (src, tags) = (Source::new(7u32), [tag(&["t"])]);
        let query = h.cache.query("k", &tags, QueryOptions::new(), src.fetch());
        let mut query = std::pin::pin!(query);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match query.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => assert_eq!(v.unwrap(), 7, "{store:?}"),
            std::task::Poll::Pending => {
                panic!("{store:?}: a miss with a ready fetch waited on something (a task?)")
            }
        }
        assert_eq!(src.calls(), 1);
        assert_eq!(h.cache.in_flight(), 0, "{store:?}: nothing left running");
    }
}

#[tokio::test]
async fn cancelled_leader_does_not_cancel_the_shared_fetch() {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let (leader, release) = blocked_leader(&h, |rx| {
            Box::pin(async move {
                rx.await.ok();
                Ok(1)
            })
        })
        .await;
        let src = Source::new(2u32);
        let waiting = followers(&h, &src, 10);
        settle().await;
        assert_eq!(src.calls(), 0, "followers wait for the leader");
        // The leader's caller goes away (a timeout, a client gone)...
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        assert!(h.cache.in_flight() > 0, "...but its fetch goes on");
        release.send(()).unwrap();
        within(async {
            for f in waiting {
                assert_eq!(f.await.unwrap().unwrap(), 1, "the shared fetch's value");
            }
        })
        .await;
        assert_eq!(src.calls(), 0, "{store:?}: no second fetch");
        h.settle().await;
        // And it was stored.
        let v = h
            .cache
            .query("k", &[tag(&["t"])], QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!((v, src.calls()), (1, 0));
    }
}

#[tokio::test]
async fn panicking_leader_does_not_poison_the_key() {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let (leader, release) = blocked_leader(&h, |rx| {
            Box::pin(async move {
                rx.await.ok();
                panic!("fetch bug");
            })
        })
        .await;
        let src = Source::new(2u32);
        let waiting = followers(&h, &src, 10);
        settle().await;
        release.send(()).unwrap();
        within(async {
            assert!(
                leader.await.unwrap_err().is_panic(),
                "the panic reaches the leader's caller"
            );
            for f in waiting {
                assert_eq!(f.await.unwrap().unwrap(), 2);
            }
        })
        .await;
        assert_eq!(src.calls(), 1);
        assert_eq!(h.cache.in_flight(), 0);
        // The key keeps working.
        let v = h
            .cache
            .query("k", &[tag(&["t"])], QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!(v, 2);
    }
}

#[tokio::test]
async fn failed_leader_lets_each_follower_fetch_for_itself() {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let (leader, release) = blocked_leader(&h, |rx| {
            Box::pin(async move {
                rx.await.ok();
                Err(std::io::Error::other("leader failed"))
            })
        })
        .await;
        let src = Source::new(3u32);
        let waiting = followers(&h, &src, 3);
        settle().await;
        release.send(()).unwrap();
        within(async {
            assert_eq!(
                leader.await.unwrap().unwrap_err().to_string(),
                "leader failed"
            );
            for f in waiting {
                assert_eq!(f.await.unwrap().unwrap(), 3);
            }
        })
        .await;
        // The error is not shared and not cached: the followers fetched.
        assert!(src.calls() >= 1);
        assert_eq!(h.cache.in_flight(), 0);
    }
}

#[tokio::test]
async fn follower_never_takes_a_refresh_that_started_before_an_invalidation() {
    for store in Store::MEMORY {
        let h = Harness::new(store).await;
        let tags = [tag(&["t"])];
        let q = || {
            QueryOptions::new()
                .ttl(Duration::from_secs(10))
                .grace(Duration::from_secs(60))
        };
        let src = Source::new(1u32);
        h.cache.query("k", &tags, q(), src.fetch()).await.unwrap();
        h.advance(Duration::from_secs(11));
        // A graced read starts a background refresh, held open.
        let (started_tx, started_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel::<()>();
        let v = h
            .cache
            .query("k", &tags, q(), move || async move {
                started_tx.send(()).ok();
                release_rx.await.ok();
                Ok::<_, std::io::Error>(1u32) // read before the write below
            })
            .await
            .unwrap();
        assert_eq!(v, 1);
        started_rx.await.unwrap();
        // The write, then its invalidation, while that refresh is in flight.
        src.set(2);
        h.cache.invalidate(&tags).await.unwrap();
        // A caller after the invalidation joins the refresh's flight...
        let (cache, fetch) = (h.cache.clone(), src.fetch());
        let after = tokio::spawn(async move { cache.query("k", &[tag(&["t"])], q(), fetch).await });
        settle().await;
        release_tx.send(()).unwrap();
        // ...but must not accept its pre-invalidation value.
        assert_eq!(within(after).await.unwrap().unwrap(), 2);
        assert_eq!(h.cache.in_flight(), 0);
    }
}

#[tokio::test]
async fn at_most_one_verification_per_key() {
    let h = Harness::with(Store::MemoryObjects, |b| b.verify_percent(1.0)).await;
    let tags = [tag(&["t"])];
    let src = Source::new(1u32);
    h.cache
        .query("k", &tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    for _ in 0..10 {
        let (running, gate) = (running.clone(), gate.clone());
        let v = h
            .cache
            .query("k", &tags, QueryOptions::new(), move || async move {
                running.fetch_add(1, Ordering::SeqCst);
                let _p = gate.acquire().await;
                Ok::<_, std::io::Error>(1u32)
            })
            .await
            .unwrap();
        assert_eq!(v, 1);
        settle().await;
    }
    assert_eq!(running.load(Ordering::SeqCst), 1);
    gate.add_permits(10);
    settle().await;
    assert_eq!(h.events.count(EventKind::Verified { stale: false }), 1);
}

#[tokio::test]
async fn queries_are_send() {
    // `tokio::spawn` requires `Send + 'static` futures: this compiles only if
    // the query future is `Send`.
    let h = Harness::new(Store::MemoryObjects).await;
    let cache = h.cache.clone();
    let task = tokio::spawn(async move {
        cache
            .query("k", &[tag(&["t"])], QueryOptions::new(), || async {
                Ok::<_, std::io::Error>(1u8)
            })
            .await
    });
    assert_eq!(task.await.unwrap().unwrap(), 1);
}
