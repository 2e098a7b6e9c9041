//! Redis under operations: round trips counted with MONITOR on a test-owned
//! server, a lost version counter, leases across processes, keys of another
//! Redis type. Each "process" is a cache instance of its own (its own
//! connection, lease token and flights) on one server and prefix.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use t87s::adapter::{EntryKey, MarkerKey, MarkerSet, StorageAdapter, StoredEntry, StoredValue};
use t87s::engine::{Primitives, QueryOptions, TagPath};
use t87s::{Cacheable, ManualClock, RedisAdapter};
use t87s_tests::proxy::Proxy;
use t87s_tests::servers::{Monitor, RedisServer};
use t87s_tests::{redis_available, tag, unique_prefix, Source, T0};

/// One "process" on `url` and `prefix`.
async fn process(url: &str, prefix: &str, clock: ManualClock, lease: &str) -> Primitives {
    let adapter = RedisAdapter::builder(url)
        .prefix(prefix)
        .timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();
    Primitives::builder(adapter)
        .clock(clock)
        .verify_percent(0.0)
        .lease_timeout(lease)
        .build()
        .unwrap()
}

/// Two "processes" on one test-owned server and prefix, sharing a clock,
/// each with `lease` as its lease timeout (the server lives as long as the
/// first element).
async fn two_processes(lease: &str) -> (RedisServer, ManualClock, Primitives, Primitives) {
    let server = RedisServer::start(&[]);
    let prefix = unique_prefix();
    let clock = ManualClock::new(T0);
    let a = process(&server.url(), &prefix, clock.clone(), lease).await;
    let b = process(&server.url(), &prefix, clock.clone(), lease).await;
    (server, clock, a, b)
}

/// `cache`'s answer for `key` under `tags`, fetched from `src` on a miss.
async fn read<T: Cacheable + Clone + Sync>(
    cache: &Primitives,
    key: &str,
    tags: &[TagPath],
    src: &Source<T>,
) -> T {
    cache
        .query(key, tags, QueryOptions::new(), src.fetch())
        .await
        .unwrap()
}

/// A test-owned server behind a loopback proxy (which counts round trips,
/// and can delay or cut the traffic).
async fn proxied_server() -> (RedisServer, Proxy) {
    let server = RedisServer::start(&[]);
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port), Duration::ZERO).await;
    (server, proxy)
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).unwrap();
    client.get_multiplexed_async_connection().await.unwrap()
}

/// One "process" on a test-owned server that stored `post:1` under the tag
/// `posts/1`, from a source that answers 1.
async fn one_entry() -> (
    RedisServer,
    String,
    Primitives,
    [t87s::engine::TagPath; 1],
    Source<u64>,
) {
    let server = RedisServer::start(&[]);
    let prefix = unique_prefix();
    let cache = process(&server.url(), &prefix, ManualClock::new(T0), "5s").await;
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(1u64);
    read(&cache, "post:1", &tags, &src).await;
    (server, prefix, cache, tags, src)
}

/// Deletes every marker under `prefix`, and the keys `{prefix}:<suffix>`
/// of `shared` (`v` the counter, `f` the floor): what a Redis that lost
/// part of its state no longer holds.
async fn lose(url: &str, prefix: &str, shared: &[&str]) {
    let mut conn = raw(url).await;
    let mut lost: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:m:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    lost.extend(shared.iter().map(|suffix| format!("{{{prefix}}}:{suffix}")));
    let _: i64 = redis::cmd("DEL")
        .arg(&lost)
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// A fetch that takes `pause` (real time) and counts its calls in `calls`.
fn slow<T: Send + 'static>(
    calls: &Arc<AtomicUsize>,
    pause: Duration,
    value: T,
) -> impl FnOnce() -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<T, std::io::Error>> + Send>,
> + Send
       + 'static {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            tokio::time::sleep(pause).await;
            Ok(value)
        })
    }
}

#[tokio::test]
async fn an_entry_gone_from_redis_costs_one_more_read_and_a_dead_one_none() {
    if !redis_available().await {
        return;
    }
    let (server, proxy) = proxied_server().await;
    let prefix = unique_prefix();
    let clock = ManualClock::new(T0);
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let cache = process(&url, &prefix, clock.clone(), "5s").await;
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(7u64);
    let options = || QueryOptions::new().ttl(Duration::from_secs(60));
    for at in 0..3 {
        if at == 2 {
            // The hit before made the tracking connection; this one keeps
            // the floor and the markers.
            wait_for_tracking(&server.url()).await;
        }
        cache
            .query("post:1", &tags, options(), src.fetch())
            .await
            .unwrap();
    }
    assert_eq!(src.calls(), 1);

    // Deleted behind this process's back: the hit's read (a GET of the
    // entry alone: this process keeps the floor and the markers) finds
    // nothing, and a second read takes the lease in the entry's place.
    let mut conn = raw(&server.url()).await;
    let entries: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:e:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&entries)
        .query_async(&mut conn)
        .await
        .unwrap();
    let monitor = Monitor::start(server.port);
    monitor.reset();
    proxy.round_trips().await;
    let v = cache.query("post:1", &tags, options(), src.fetch()).await;
    assert_eq!((v.unwrap(), src.calls()), (7, 2));
    assert_eq!(
        proxy.round_trips().await,
        3,
        "one read more than a miss of a key never seen"
    );
    assert_eq!(monitor.sent(), ["GET", "SET", "MGET", "SET"]);

    // A miss of a key this process never saw takes the lease at once.
    monitor.reset();
    cache
        .query("post:2", &tags, options(), src.fetch())
        .await
        .unwrap();
    assert_eq!(proxy.round_trips().await, 2);
    assert_eq!(monitor.sent(), ["SET", "MGET", "SET"]);

    // Past its lifetime (this process's clock), the entry is read with the
    // lease asked for, whether or not Redis dropped it yet.
    clock.advance(Duration::from_secs(61));
    monitor.reset();
    let v = cache.query("post:2", &tags, options(), src.fetch()).await;
    assert_eq!((v.unwrap(), src.calls()), (7, 4));
    assert_eq!(
        monitor.sent().get(..2),
        Some(&["SET".to_owned(), "MGET".to_owned()][..])
    );
}

#[tokio::test]
async fn a_miss_is_two_round_trips_a_hit_one_and_an_invalidation_one() {
    if !redis_available().await {
        return;
    }
    // Round trips are counted at a proxy (a client's bytes after the
    // server's begin one); MONITOR names the commands.
    let (server, proxy) = proxied_server().await;
    let url = format!("redis://127.0.0.1:{}", proxy.port);
    let cache = process(&url, &unique_prefix(), ManualClock::new(T0), "5s").await;
    let tags = [tag(&["posts", "1", "comments"])];
    let src = Source::new(7u64);
    // Load the scripts (the first call of each is NOSCRIPT, then EVALSHA):
    // the invalidation's, and the refresh lease's over an invalidated entry.
    let warm = Source::new(0u64);
    for _ in 0..2 {
        cache
            .query("warm", &tags, QueryOptions::new(), warm.fetch())
            .await
            .unwrap();
        cache.invalidate(&tags).await.unwrap();
    }
    wait_for_tracking(&server.url()).await;

    let monitor = Monitor::start(server.port);
    monitor.reset();
    proxy.round_trips().await;
    read(&cache, "post:1", &tags, &src).await;
    assert_eq!(
        proxy.round_trips().await,
        2,
        "a miss: read + lease, then store + release"
    );
    assert_eq!(
        monitor.sent(),
        ["SET", "MGET", "SET"],
        "plain commands: the lease is taken in the entry's place by SET NX GET, \
         and the store replaces it (no refresh lease key to release)"
    );

    monitor.reset();
    let hit = read(&cache, "post:1", &tags, &src).await;
    assert_eq!((hit, src.calls()), (7, 1));
    assert_eq!(proxy.round_trips().await, 1, "a hit: one read");
    assert_eq!(
        monitor.sent(),
        ["MGET"],
        "one command: the entry and every marker in one MGET (this process \
         stored the entry, so the read leaves the lease out)"
    );
    // What that MGET reads: the entry, the floor and the 4 markers of
    // `posts/1/comments` (`posts`, `posts/1`, the path as a prefix and
    // exactly), nothing else: no counter, no refresh lease key.
    let words = monitor.sent_words();
    let keys = words.first().map(|w| &w[1..]).unwrap_or_default();
    let kinds: Vec<&str> = keys
        .iter()
        .map(|k| match k {
            k if k.contains(":e:") => "entry",
            k if k.ends_with("}:f") => "floor",
            k if k.contains(":m:") => "marker",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["entry", "floor", "marker", "marker", "marker", "marker"],
        "the hit's keys: {keys:?}"
    );
    // Redis now reports every change to that floor and those markers to
    // this process (client tracking), which keeps them: the next hit reads
    // its entry alone.
    monitor.reset();
    let hit = read(&cache, "post:1", &tags, &src).await;
    assert_eq!((hit, src.calls()), (7, 1));
    assert_eq!(proxy.round_trips().await, 1, "a hit: one read");
    let words = monitor.sent_words();
    assert_eq!(words.len(), 1, "one command: {words:?}");
    assert_eq!(words[0].len(), 2, "a GET of one key: {words:?}");
    assert_eq!(words[0][0], "GET");
    assert!(words[0][1].contains(":e:"), "the entry: {words:?}");

    monitor.reset();
    let three = [tags[0].clone(), tag(&["users", "7"]), tag(&["feed"])];
    cache.invalidate(&three).await.unwrap();
    assert_eq!(proxy.round_trips().await, 1, "an invalidation: one script");
    assert_eq!(monitor.sent(), ["EVALSHA"]);
    let scripted = monitor.scripted();
    let count = |name: &str| scripted.iter().filter(|c| c.starts_with(name)).count();
    assert_eq!(
        (count("\"INCR\""), count("\"SET\"")),
        (1, 3),
        "the counter and every marker in that one script: {scripted:#?}"
    );

    // The invalidated entry: the one MGET finds it stale, one script takes
    // the refresh lease and reads the counter, and the store releases it.
    monitor.reset();
    src.set(8);
    let v = read(&cache, "post:1", &tags, &src).await;
    assert_eq!((v, src.calls()), (8, 2));
    assert_eq!(proxy.round_trips().await, 3, "read, lease, store + release");
    // (An MGET: the invalidation's markers were reported changed, and
    // are read again.)
    assert_eq!(monitor.sent(), ["MGET", "EVALSHA", "SET", "EVAL"]);
    // Stamped with the counter that script read: the next read is a hit,
    // of the entry alone (that MGET's markers are kept).
    monitor.reset();
    let v = read(&cache, "post:1", &tags, &src).await;
    assert_eq!((v, src.calls()), (8, 2));
    assert_eq!(proxy.round_trips().await, 1);
    assert_eq!(monitor.sent(), ["GET"]);
}

/// The client id of every connection of `url`'s server that tracks keys.
async fn tracking_clients(url: &str) -> Vec<String> {
    let mut conn = raw(url).await;
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .filter(|line| {
            line.split(' ').any(|field| {
                field
                    .strip_prefix("flags=")
                    .is_some_and(|f| f.contains('t'))
            })
        })
        .filter_map(|line| line.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

/// Waits (up to 2 s) until a connection of `url`'s server tracks keys: a
/// read that finds none makes one in the background.
async fn wait_for_tracking(url: &str) -> Vec<String> {
    for _ in 0..40 {
        let tracking = tracking_clients(url).await;
        if !tracking.is_empty() {
            return tracking;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no connection tracks keys")
}

#[tokio::test]
async fn a_hit_that_reads_its_entry_alone_sees_every_invalidation_of_another_process() {
    if !redis_available().await {
        return;
    }
    let (server, _clock, a, b) = two_processes("5s").await;
    let tags = [tag(&["posts", "1", "comments"])];
    let src = Source::new(0u64);
    let monitor = Monitor::start(server.port);
    for round in 0..200u64 {
        // Fetched, then hits (the second and third reads of the entry
        // alone), then another process invalidates: the next read, sent
        // after the invalidation returned, fetches.
        src.set(round);
        for _ in 0..3 {
            let v = read(&a, "post:1", &tags, &src).await;
            assert_eq!(v, round, "round {round}: a stale value");
        }
        assert_eq!(src.calls() as u64, round + 1, "round {round}");
        b.invalidate(&tags).await.unwrap();
    }
    // The hits did read their entry alone.
    let gets = monitor.sent().iter().filter(|c| *c == "GET").count();
    assert!(gets >= 200, "{gets} GETs");
}

#[tokio::test]
async fn a_lost_tracking_connection_drops_the_markers_it_kept() {
    if !redis_available().await {
        return;
    }
    let (server, _clock, a, b) = two_processes("5s").await;
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(1u64);
    for at in 0..3 {
        if at == 2 {
            wait_for_tracking(&server.url()).await;
        }
        read(&a, "post:1", &tags, &src).await;
    }
    assert_eq!(src.calls(), 1);
    // The connection that tracked the markers goes; an invalidation then
    // reaches no one (no connection tracks them).
    let tracking = tracking_clients(&server.url()).await;
    assert_eq!(tracking.len(), 1, "{tracking:?}");
    let mut conn = raw(&server.url()).await;
    let _: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&tracking[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    // The connection's reader sees it closed (real sockets).
    tokio::time::sleep(Duration::from_millis(200)).await;
    src.set(2);
    b.invalidate(&tags).await.unwrap();
    // A new tracking connection, which must not trust what the lost one
    // kept: the markers are read again, and the entry is stale.
    let mut v = 0;
    for _ in 0..3 {
        v = read(&a, "post:1", &tags, &src).await;
        assert_eq!(v, 2, "served what was invalidated while untracked");
    }
    assert_eq!((v, src.calls()), (2, 2));
    // The new connection is made in the background (a read never waits
    // for one).
    let mut again = Vec::new();
    for _ in 0..40 {
        again = tracking_clients(&server.url()).await;
        if again.len() == 1 && again != tracking {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        again.len() == 1 && again != tracking,
        "tracking again: {again:?}"
    );
}

#[tokio::test]
async fn a_server_that_refuses_tracking_is_read_in_full() {
    if !redis_available().await {
        return;
    }
    // No CLIENT command: no tracking (as behind some proxies or ACLs).
    let server = RedisServer::start(&["--rename-command", "CLIENT", "\"\""]);
    let prefix = unique_prefix();
    let clock = ManualClock::new(T0);
    let a = process(&server.url(), &prefix, clock.clone(), "5s").await;
    let b = process(&server.url(), &prefix, clock.clone(), "5s").await;
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(1u64);
    let monitor = Monitor::start(server.port);
    for _ in 0..2 {
        read(&a, "post:1", &tags, &src).await;
    }
    // The first read asked for tracking in the background (`HELLO 3`, then
    // the `CLIENT TRACKING` the server refuses); once refused it is never
    // asked again, so what follows is the hit's alone.
    let mut asked = false;
    for _ in 0..40 {
        asked = monitor.sent().iter().any(|command| command == "HELLO");
        if asked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(asked, "tracking was never asked for");
    monitor.reset();
    let v = read(&a, "post:1", &tags, &src).await;
    assert_eq!((v, src.calls()), (1, 1));
    assert_eq!(
        monitor.sent(),
        ["MGET"],
        "the entry, the floor and the markers"
    );
    src.set(2);
    b.invalidate(&tags).await.unwrap();
    let v = read(&a, "post:1", &tags, &src).await;
    assert_eq!((v, src.calls()), (2, 2));
}

#[tokio::test]
async fn a_read_remembers_the_newest_marker_of_its_own_marker_set_only() {
    if !redis_available().await {
        return;
    }
    // A read on the tracked connection remembers the newest of its floor
    // and markers, in a place per entry key, until Redis reports a change.
    // The same key read with other markers must not take that memo for its
    // own (read at the adapter: the engine reads an entry's own tags).
    let server = RedisServer::start(&[]);
    let prefix = unique_prefix();
    let connect = || async {
        RedisAdapter::builder(server.url())
            .prefix(prefix.as_str())
            .connect()
            .await
            .unwrap()
    };
    let (reader, writer) = (connect().await, connect().await);
    let (tags_a, tags_b) = ([tag(&["a"])], [tag(&["b"])]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (k, other) = (
        EntryKey {
            prefix: "t87s",
            key: "k",
        },
        EntryKey {
            prefix: "t87s",
            key: "other",
        },
    );
    for key in [k, other] {
        let version = writer.version().await.unwrap();
        let entry = StoredEntry::new(
            StoredValue::Bytes(vec![1].into()),
            Arc::from(&tags_a[..]),
            version,
        )
        .lifetime(now, now + 60_000, None);
        writer.write(key, Arc::new(entry)).await.unwrap();
    }
    let b: Vec<MarkerKey<'_>> = MarkerSet::new("t87s", &tags_b).iter().collect();
    writer.invalidate(&b).await.unwrap();
    let invalidated = writer.version().await.unwrap() - 1;
    let read = |key, tags| reader.read(key, MarkerSet::new("t87s", tags), now);
    let floor = read(k, &tags_a[..]).await.unwrap().newest_marker;
    assert!(floor < invalidated, "{floor} {invalidated}");
    for at in 0..3 {
        if at == 1 {
            wait_for_tracking(&server.url()).await;
        }
        let seen = read(k, &tags_a[..]).await.unwrap();
        assert_eq!(seen.newest_marker, floor, "a was never invalidated");
    }
    // `b`'s markers kept, read for another key; then `k` under `b`.
    for _ in 0..3 {
        let seen = read(other, &tags_b[..]).await.unwrap();
        assert_eq!(seen.newest_marker, invalidated);
    }
    let seen = read(k, &tags_b[..]).await.unwrap();
    assert_eq!(
        seen.newest_marker, invalidated,
        "read under another marker set's memo"
    );
}

/// Readers on several tasks of one process, invalidations from another,
/// keys sharing tags (hits of different keys keep the same markers and
/// remember their newest): a read that starts after an invalidation
/// returned never answers with a value fetched before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_never_serve_what_a_returned_invalidation_made_stale() {
    if !redis_available().await {
        return;
    }
    const TAGS: usize = 4;
    const KEYS: usize = 12;
    let (server, _clock, a, b) = two_processes("5s").await;
    // The "database": a version per tag, raised before the tag is
    // invalidated; `landed`: the versions whose invalidation returned.
    let db: Arc<[AtomicU64; TAGS]> = Arc::new(Default::default());
    let landed: Arc<[AtomicU64; TAGS]> = Arc::new(Default::default());
    let tags: Vec<TagPath> = (0..TAGS).map(|t| tag(&["t", &t.to_string()])).collect();
    // Two tags per key, never the same one twice.
    let tags_of = |key: usize| [key % TAGS, (key % TAGS + 1 + key / TAGS % 3) % TAGS];
    let fetches = Arc::new(AtomicUsize::new(0));
    let read = |key: usize| {
        let (a, db, landed, fetches) = (a.clone(), db.clone(), landed.clone(), fetches.clone());
        let [t1, t2] = tags_of(key);
        let key_tags = [tags[t1].clone(), tags[t2].clone()];
        async move {
            let want = [t1, t2].map(|t| landed[t].load(Ordering::SeqCst));
            let fetch = move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let found = [t1, t2].map(|t| db[t].load(Ordering::SeqCst));
                std::future::ready(Ok::<_, std::io::Error>(found))
            };
            let got = a
                .query(&format!("k{key}"), &key_tags, QueryOptions::new(), fetch)
                .await
                .unwrap();
            assert!(
                got[0] >= want[0] && got[1] >= want[1],
                "k{key}: served {got:?}, invalidations of {want:?} had returned"
            );
        }
    };
    for key in 0..KEYS {
        read(key).await;
    }
    // Hits on the tracked connection from here on.
    read(0).await;
    wait_for_tracking(&server.url()).await;

    let writer = {
        let (db, landed, tags) = (db.clone(), landed.clone(), tags.clone());
        tokio::spawn(async move {
            for round in 0..150usize {
                let t = round * 7 % TAGS;
                let version = db[t].fetch_add(1, Ordering::SeqCst) + 1;
                b.invalidate(std::slice::from_ref(&tags[t])).await.unwrap();
                landed[t].fetch_max(version, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    let readers: Vec<_> = (0..4usize)
        .map(|reader| {
            let read = &read;
            let reads: Vec<_> = (0..400usize)
                .map(|at| (at * 5 + reader * 3) % KEYS)
                .map(read)
                .collect();
            tokio::spawn(async move {
                for one in reads {
                    one.await;
                }
            })
        })
        .collect();
    for reader in readers {
        reader.await.unwrap();
    }
    writer.await.unwrap();
    // Most reads were hits (the test read the tracked path, not only
    // fetches).
    let fetched = fetches.load(Ordering::SeqCst);
    assert!(fetched < 4 * 400 / 2, "{fetched} fetches in 1,600 reads");
}

#[tokio::test]
async fn an_entry_past_its_grace_reads_its_markers_in_one_command() {
    if !redis_available().await {
        return;
    }
    let server = RedisServer::start(&[]);
    let prefix = unique_prefix();
    let clock = ManualClock::new(T0);
    let cache = process(&server.url(), &prefix, clock.clone(), "5s").await;
    let tags = [tag(&["posts", "1", "comments"]), tag(&["users", "2"])];
    let src = Source::new(1u64);
    let options = || {
        QueryOptions::new()
            .ttl(Duration::from_secs(1))
            .grace(Duration::from_secs(1))
    };
    for key in ["warm", "post:1"] {
        cache
            .query(key, &tags, options(), src.fetch())
            .await
            .unwrap();
    }
    // Past its grace by this host's clock, still in Redis by the server's.
    clock.advance(Duration::from_secs(5));
    // (Loads the script that takes the lease over a dead entry.)
    cache
        .query("warm", &tags, options(), src.fetch())
        .await
        .unwrap();

    let monitor = Monitor::start(server.port);
    monitor.reset();
    cache
        .query("post:1", &tags, options(), src.fetch())
        .await
        .unwrap();
    assert_eq!(src.calls(), 4);
    // The read, the lease taken over the dead entry, the store + release:
    // 5 commands (it was 17, with one GET per marker).
    assert_eq!(monitor.sent(), ["SET", "MGET", "EVALSHA", "SET", "EVAL"]);
    let marker_reads = monitor
        .scripted()
        .into_iter()
        .filter(|c| c.contains(":m:"))
        .count();
    assert_eq!(marker_reads, 0, "no script reads a marker");
    // The store released the refresh lease key the dead entry's lease took.
    let mut conn = raw(&server.url()).await;
    let leases: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:l:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(leases, Vec::<String>::new());
}

#[tokio::test]
async fn a_deleted_counter_never_revives_an_invalidated_entry() {
    if !redis_available().await {
        return;
    }
    let server = RedisServer::start(&[]);
    let prefix = unique_prefix();
    let cache = process(&server.url(), &prefix, ManualClock::new(T0), "5s").await;
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(1u64);
    // Push the counter up so the entry's version is well above 1.
    for _ in 0..4 {
        cache.invalidate(&[tag(&["other"])]).await.unwrap();
    }
    read(&cache, "post:1", &tags, &src).await;

    // The counter is lost (deleted by hand, evicted, a FLUSH of one key).
    let mut conn = raw(&server.url()).await;
    let deleted: i64 = redis::cmd("DEL")
        .arg(format!("{{{prefix}}}:v"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the counter key is `{{prefix}}:v`");

    src.set(2);
    cache.invalidate(&tags).await.unwrap();
    let v = read(&cache, "post:1", &tags, &src).await;
    assert_eq!((v, src.calls()), (2, 2), "the write after the loss is seen");
}

#[tokio::test]
async fn a_lost_counter_with_its_markers_makes_older_entries_misses() {
    if !redis_available().await {
        return;
    }
    // What a Cluster master restarting empty does to the counter and the
    // markers it held, while the entry on another master survives.
    let (server, prefix, cache, tags, src) = one_entry().await;
    src.set(2);
    cache.invalidate(&tags).await.unwrap();

    lose(&server.url(), &prefix, &["v", "f"]).await;

    let v = read(&cache, "post:1", &tags, &src).await;
    assert_eq!(
        (v, src.calls()),
        (2, 2),
        "the invalidated entry stays a miss"
    );
    // And the cache works on: the new entry is a hit.
    let v = read(&cache, "post:1", &tags, &src).await;
    assert_eq!((v, src.calls()), (2, 2));
}

#[tokio::test]
async fn the_floor_is_kept_for_good_a_missing_one_is_a_lost_counter_a_damaged_one_heals() {
    if !redis_available().await {
        return;
    }
    let (server, prefix, cache, tags, src) = one_entry().await;
    let mut conn = raw(&server.url()).await;
    let floor = format!("{{{prefix}}}:f");
    let mut pttl = async || -> i64 {
        redis::cmd("PTTL")
            .arg(&floor)
            .query_async(&mut conn)
            .await
            .unwrap()
    };
    assert_eq!(
        pttl().await,
        -1,
        "the floor exists from the first read on, for good"
    );

    // Invalidated, then the floor and the markers are lost but not the
    // counter (a partial restore, an evicting policy). This process saw
    // the entry, so it reads it without the counter: the missing floor
    // tells it what was lost.
    src.set(2);
    cache.invalidate(&tags).await.unwrap();
    lose(&server.url(), &prefix, &["f"]).await;
    let v = read(&cache, "post:1", &tags, &src).await;
    assert_eq!(
        (v, src.calls()),
        (2, 2),
        "the invalidated entry stays a miss"
    );
    assert_eq!(pttl().await, -1, "and the floor is back, for good");

    // A damaged floor reads as "invalidated now": one miss, whose lease
    // script sets the floor again, then hits.
    let _: () = redis::cmd("SET")
        .arg(format!("{{{prefix}}}:f"))
        .arg("garbage")
        .query_async(&mut raw(&server.url()).await)
        .await
        .unwrap();
    src.set(3);
    for (expected, calls) in [(3, 3), (3, 3)] {
        let v = read(&cache, "post:1", &tags, &src).await;
        assert_eq!((v, src.calls()), (expected, calls));
    }
    assert_eq!(pttl().await, -1);

    // `clear` raises it, for good too.
    cache.clear().await.unwrap();
    assert_eq!(pttl().await, -1);
}

#[tokio::test]
async fn a_store_from_an_earlier_version_gets_its_floor_on_the_first_read() {
    if !redis_available().await {
        return;
    }
    // `post:1` stored, then something unrelated invalidated, then `post:2`
    // stored: an earlier version kept no floor (it wrote one only when it
    // lost its counter, and with the marker TTL).
    let (server, prefix, cache, tags, src) = one_entry().await;
    cache.invalidate(&[tag(&["other"])]).await.unwrap();
    let later = [tag(&["posts", "2"])];
    let src2 = Source::new(20u64);
    cache
        .query("post:2", &later, QueryOptions::new(), src2.fetch())
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(format!("{{{prefix}}}:f"))
        .query_async(&mut raw(&server.url()).await)
        .await
        .unwrap();

    // The first read sets the floor to the counter: an entry fetched after
    // the last invalidation stays a hit; one fetched before it is fetched
    // again, once.
    for _ in 0..2 {
        let v = cache
            .query("post:2", &later, QueryOptions::new(), src2.fetch())
            .await
            .unwrap();
        assert_eq!((v, src2.calls()), (20, 1));
    }
    src.set(2);
    for _ in 0..2 {
        let v = read(&cache, "post:1", &tags, &src).await;
        assert_eq!((v, src.calls()), (2, 2));
    }
    let pttl: i64 = redis::cmd("PTTL")
        .arg(format!("{{{prefix}}}:f"))
        .query_async(&mut raw(&server.url()).await)
        .await
        .unwrap();
    assert_eq!(pttl, -1, "the floor is kept for good from then on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_waits_as_long_as_the_holder_lives() {
    if !redis_available().await {
        return;
    }
    let (_server, _, a, b) = two_processes("300ms").await;
    let tags = [tag(&["slow"])];
    let calls = Arc::new(AtomicUsize::new(0));

    // A fetch four lease timeouts long: the holder extends its lease.
    let holder = {
        let fetch = slow(&calls, Duration::from_millis(1_200), 1u64);
        let tags = tags.clone();
        tokio::spawn(async move { a.query("k", &tags, QueryOptions::new(), fetch).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waited = b
        .query(
            "k",
            &tags,
            QueryOptions::new(),
            slow(&calls, Duration::ZERO, 2u64),
        )
        .await
        .unwrap();
    assert_eq!(holder.await.unwrap().unwrap(), 1);
    assert_eq!(waited, 1, "the waiter took the holder's value");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one fetch across processes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_leader_frees_its_lease_for_other_processes_at_once() {
    if !redis_available().await {
        return;
    }
    let (_server, _, a, b) = two_processes("5s").await;
    let tags = [tag(&["p"])];
    let panicked = tokio::spawn(async move {
        a.query("k", &tags, QueryOptions::new(), || async {
            panic!("the fetch panicked");
            #[allow(unreachable_code)]
            Ok::<u64, std::io::Error>(0)
        })
        .await
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());

    let started = Instant::now();
    let src = Source::new(3u64);
    let v = b
        .query("k", &[tag(&["p"])], QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!((v, src.calls()), (3, 1));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?} on a lease nobody held",
        started.elapsed()
    );
}

/// The leader's caller is aborted mid-fetch (a request timeout): its fetch
/// goes on without it (a miss runs its fetch in the caller's future, and
/// hands it to a task of its own when that future is dropped), is stored,
/// and frees the lease, so another process takes the value, not a wait on a
/// lease nobody fetches under.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_leaders_fetch_goes_on_stores_and_frees_its_lease() {
    if !redis_available().await {
        return;
    }
    let (_server, _, a, b) = two_processes("5s").await;
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let calls = Arc::new(AtomicUsize::new(0));
    let leader = {
        let (a, calls) = (a.clone(), calls.clone());
        tokio::spawn(async move {
            a.query(
                "k",
                &[tag(&["p"])],
                QueryOptions::new(),
                move || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    started_tx.send(()).ok();
                    go_rx.await.ok();
                    Ok::<u64, std::io::Error>(7)
                },
            )
            .await
        })
    };
    started_rx.await.unwrap();
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    assert!(a.in_flight() > 0, "the fetch goes on without its caller");
    go_tx.send(()).unwrap();

    let started = Instant::now();
    let src = Source::new(3u64);
    let v = b
        .query("k", &[tag(&["p"])], QueryOptions::new(), src.fetch())
        .await
        .unwrap();
    assert_eq!(
        (v, src.calls(), calls.load(Ordering::SeqCst)),
        (7, 0, 1),
        "the other process took the aborted leader's value"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.in_flight() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(a.in_flight(), 0, "nothing left running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_per_expiry_across_processes() {
    if !redis_available().await {
        return;
    }
    let (_server, clock, a, b) = two_processes("5s").await;
    let tags = [tag(&["feed"])];
    let options = || {
        QueryOptions::new()
            .ttl(Duration::from_secs(10))
            .grace(Duration::from_secs(3600))
    };
    let calls = Arc::new(AtomicUsize::new(0));
    a.query("feed", &tags, options(), slow(&calls, Duration::ZERO, 1u64))
        .await
        .unwrap();
    clock.advance(Duration::from_secs(11));

    // Both serve the stale value; only one of them refreshes it.
    let from_a = a
        .query(
            "feed",
            &tags,
            options(),
            slow(&calls, Duration::from_millis(300), 2u64),
        )
        .await
        .unwrap();
    let from_b = b
        .query(
            "feed",
            &tags,
            options(),
            slow(&calls, Duration::from_millis(300), 2u64),
        )
        .await
        .unwrap();
    assert_eq!((from_a, from_b), (1, 1));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let v = b
            .query("feed", &tags, options(), slow(&calls, Duration::ZERO, 9u64))
            .await
            .unwrap();
        if v == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the refresh never landed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2, "1 fetch + 1 refresh");
}

#[tokio::test]
async fn a_key_of_another_redis_type_is_a_miss_and_is_overwritten() {
    if !redis_available().await {
        return;
    }
    let server = RedisServer::start(&[]);
    let prefix = unique_prefix();
    let cache = process(&server.url(), &prefix, ManualClock::new(T0), "5s").await;
    let mut conn = raw(&server.url()).await;
    let _: i64 = redis::cmd("LPUSH")
        .arg(format!("{prefix}:e:t87s:k"))
        .arg("not an entry")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        cache.get::<u64>("k").await.unwrap(),
        None,
        "a miss, not Err"
    );
    let src = Source::new(5u64);
    let tags = [tag(&["k"])];
    for _ in 0..2 {
        let v = read(&cache, "k", &tags, &src).await;
        assert_eq!(v, 5);
    }
    assert_eq!(src.calls(), 1, "stored over the list, then a hit");
    assert_eq!(cache.get::<u64>("k").await.unwrap(), Some(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_starts_while_redis_is_down_and_connects_once_it_is_up() {
    if !redis_available().await {
        return;
    }
    let mut server = RedisServer::start(&[]);
    server.kill();
    let adapter = RedisAdapter::builder(server.url())
        .prefix(unique_prefix())
        .timeout(Duration::from_millis(100))
        .breaker(3, Duration::from_millis(200))
        .connect()
        .await
        .expect("the adapter is built while Redis is down");
    let cache = Primitives::builder(adapter)
        .verify_percent(0.0)
        .build()
        .unwrap();
    let tags = [tag(&["down"])];

    // Served from the source, and still one fetch for a hundred callers.
    let calls = Arc::new(AtomicUsize::new(0));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (cache, tags) = (cache.clone(), tags.clone());
        let fetch = slow(&calls, Duration::from_millis(50), 1u64);
        callers.spawn(async move { cache.query("k", &tags, QueryOptions::new(), fetch).await });
    }
    while let Some(answer) = callers.join_next().await {
        assert_eq!(answer.unwrap().unwrap(), 1);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "coalesced while down");

    // Redis comes up: the adapter connects by itself, stores, then hits.
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let src = Source::new(2u64);
    loop {
        let before = src.calls();
        let v = read(&cache, "k", &tags, &src).await;
        assert_eq!(v, 2);
        if src.calls() == before && before > 0 {
            break; // a hit: stored in Redis and read back
        }
        assert!(Instant::now() < deadline, "never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The median time of `n` queries of fresh keys against `cache`.
async fn median_query(cache: &Primitives, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let src = Source::new(i);
        let started = Instant::now();
        cache
            .query(
                &format!("frozen:{i}"),
                &[tag(&["f"])],
                QueryOptions::new(),
                src.fetch(),
            )
            .await
            .unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_adds_under_a_millisecond_once_the_breaker_opens() {
    if !redis_available().await {
        return;
    }
    let server = RedisServer::start(&[]);
    let prefix = unique_prefix();
    let build = |failures: u32| {
        let url = server.url();
        let prefix = prefix.clone();
        async move {
            let adapter = RedisAdapter::builder(url)
                .prefix(prefix)
                .timeout(Duration::from_millis(100))
                .breaker(failures, Duration::from_millis(500))
                .connect()
                .await
                .unwrap();
            Primitives::builder(adapter)
                .verify_percent(0.0)
                .build()
                .unwrap()
        }
    };
    let guarded = build(3).await;
    // Without a breaker (one that never opens): every command waits out the
    // timeout, as before.
    let unguarded = build(u32::MAX).await;
    for cache in [&guarded, &unguarded] {
        median_query(cache, 3).await;
    }

    server.pause();
    // The first queries find out (three timeouts), then the breaker is open.
    median_query(&guarded, 2).await;
    let open = median_query(&guarded, 41).await;
    let without = median_query(&unguarded, 3).await;
    eprintln!("frozen Redis, median query: breaker open {open:?}, no breaker {without:?}");
    assert!(open < Duration::from_millis(1), "breaker open: {open:?}");
    assert!(
        without >= Duration::from_millis(100),
        "no breaker: {without:?}"
    );

    // Thawed: after the cooldown a probe goes through and closes it.
    server.resume();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let src = Source::new(7usize);
    let tags = [tag(&["after"])];
    for _ in 0..3 {
        read(&guarded, "after", &tags, &src).await;
    }
    assert_eq!(src.calls(), 1, "stored and hit again once Redis answers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_invalidation_lands_on_retry_and_the_other_process_stops_serving_the_old_value() {
    if !redis_available().await {
        return;
    }
    let (server, proxy) = proxied_server().await;
    let prefix = unique_prefix();
    let clock = ManualClock::new(T0);
    // The writer reaches Redis through a network the test can cut.
    let writer = {
        let adapter = RedisAdapter::builder(format!("redis://127.0.0.1:{}", proxy.port))
            .prefix(prefix.clone())
            .timeout(Duration::from_millis(100))
            .breaker(3, Duration::from_millis(200))
            .connect()
            .await
            .unwrap();
        Primitives::builder(adapter)
            .clock(clock.clone())
            .verify_percent(0.0)
            .build()
            .unwrap()
    };
    let reader = process(&server.url(), &prefix, clock.clone(), "5s").await;
    let tags = [tag(&["posts", "1"])];
    let src = Source::new(1u64);
    let read = || reader.query("post:1", &tags, QueryOptions::new(), src.fetch());
    assert_eq!(read().await.unwrap(), 1);
    assert_eq!(read().await.unwrap(), 1);

    // The write commits; its invalidation fails: the writer gets the error.
    src.set(2);
    proxy.cut();
    assert!(writer.invalidate(&tags).await.is_err());
    assert_eq!(read().await.unwrap(), 1, "not landed yet: the old value");

    // The network comes back: within a retry interval (plus the breaker's
    // cooldown) the other process serves the new value.
    proxy.pass();
    let back = Instant::now();
    loop {
        if read().await.unwrap() == 2 {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(3),
            "the invalidation never landed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("landed {:?} after the network came back", back.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_restarting_empty_never_revives_an_invalidated_entry() {
    if !redis_available().await {
        return;
    }
    let mut cluster = t87s_tests::servers::RedisCluster::start();
    let urls = cluster.urls();
    let prefix = unique_prefix();
    let connect = || async {
        let adapter = RedisAdapter::cluster_builder(urls.clone())
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(2))
            .connect()
            .await
            .unwrap();
        Primitives::builder(adapter)
            .verify_percent(0.0)
            .build()
            .unwrap()
    };
    let cache = connect().await;
    let tags = |i: usize| {
        [
            tag(&["users", &i.to_string()]),
            tag(&["teams", &(i % 4).to_string()]),
        ]
    };
    let src = Source::new("v1".to_string());
    for i in 0..24 {
        cache
            .query(&format!("q{i}"), &tags(i), QueryOptions::new(), src.fetch())
            .await
            .unwrap();
    }
    src.set("v2".into());
    cache.invalidate(&[tag(&["teams", "1"])]).await.unwrap();

    // The master holding the counter (and the floor, same slot) comes back
    // empty; the entries on the other masters survive.
    cluster.restart_master_holding(&format!("{{{prefix}}}:v"));
    let cache = connect().await;
    for i in (1..24).step_by(4) {
        let v = cache
            .query(&format!("q{i}"), &tags(i), QueryOptions::new(), src.fetch())
            .await
            .unwrap();
        assert_eq!(v, "v2", "q{i} was invalidated before the restart");
    }
}
