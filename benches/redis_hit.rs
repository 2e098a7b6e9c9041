//! A Redis hit through t87s against a bare redis-rs `GET` of the same bytes,
//! side by side in one run. The t87s hit reads the entry, the version, the
//! floor and every marker of a depth-3 tag (3 prefix + 1 exact) in one round
//! trip; the reference design needed one round trip per marker.
//!
//! The miss and the invalidation are measured the same way, against a bare
//! `GET` + `SET` and a bare `INCR`.
//!
//! `cargo bench -p t87s-benches --bench redis_hit` (needs Redis at `REDIS_URL`).

use std::time::Duration;

use criterion::{criterion_group, Criterion};
use t87s::engine::{Primitives, QueryOptions, TagPath};
use t87s::{Codec, Postcard, QueryCache, RedisAdapter};
use t87s_benches::{redis_url, Blog, Payload};

/// A bare redis-rs `GET`: the peer of the hit figures.
async fn bare_get(mut conn: redis::aio::ConnectionManager, key: String) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("get")
}

fn redis_hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = format!("t87s-bench-{}", std::process::id());
    let (cache, mut bare) = runtime.block_on(async {
        let adapter = RedisAdapter::builder(redis_url())
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(1))
            .connect()
            .await
            .expect("Redis at REDIS_URL");
        let cache = Primitives::builder(adapter)
            .verify_percent(0.0)
            .default_ttl("1h")
            .build()
            .expect("options");
        let client = redis::Client::open(redis_url()).expect("url");
        let bare = client.get_connection_manager().await.expect("connection");
        (cache, bare)
    });
    let tags = [TagPath::new(["posts", "1", "comments"]).expect("tag")];
    let payload = Payload::new();
    let bytes = Postcard.encode(&payload).expect("encode");
    let bare_key = format!("{prefix}:bare");
    runtime.block_on(async {
        let _: () = redis::cmd("SET")
            .arg(&bare_key)
            .arg(&bytes)
            .query_async(&mut bare)
            .await
            .expect("set");
        let p = payload.clone();
        cache
            .query("hit", &tags, QueryOptions::new(), move || async move {
                Ok::<_, std::io::Error>(p)
            })
            .await
            .expect("warm");
    });

    let mut group = c.benchmark_group("redis_hit");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(60);
    group.bench_function("redis-rs GET (bare)", |b| {
        b.to_async(&runtime)
            .iter(|| bare_get(bare.clone(), bare_key.clone()))
    });
    // What a hand-written Redis cache does on a hit: GET, then decode the
    // value (a t87s hit decodes it too; the value's decode is the same work
    // whoever does it).
    group.bench_function("redis-rs GET + postcard decode (bare)", |b| {
        b.to_async(&runtime).iter(|| {
            let get = bare_get(bare.clone(), bare_key.clone());
            async move {
                let v = get.await.expect("the bare key is set");
                let value: Payload = Postcard.decode(&v).expect("decode");
                value
            }
        })
    });
    // What a t87s hit sends with nothing kept (the first hit after a
    // change, a Cluster, a server without client tracking), bare: one MGET
    // of the entry, the floor (a version) and the 4 markers (none set).
    // With the floor and the markers kept, a hit sends a GET of the entry.
    let rest: Vec<String> = (0..5).map(|i| format!("{prefix}:rest:{i}")).collect();
    let _: () = runtime.block_on(async {
        redis::cmd("SET")
            .arg(&rest[0])
            .arg(1_764_892_800_000_123_u64)
            .query_async(&mut bare.clone())
            .await
            .expect("set")
    });
    group.bench_function("redis-rs MGET of 6 (bare)", |b| {
        b.to_async(&runtime).iter(|| {
            let mut conn = bare.clone();
            let key = bare_key.clone();
            let rest = rest.clone();
            async move {
                let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(key)
                    .arg(rest)
                    .query_async(&mut conn)
                    .await
                    .expect("mget");
                v
            }
        })
    });
    group.bench_function("t87s query hit (depth-3 tag)", |b| {
        b.to_async(&runtime).iter(|| async {
            cache
                .query("hit", &tags, QueryOptions::new(), || async {
                    Err::<Payload, _>(std::io::Error::other("a hit never fetches"))
                })
                .await
                .expect("hit")
        })
    });
    group.finish();

    // A miss: read, lease, fetch (instant here), write, release.
    let mut group = c.benchmark_group("redis_miss");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(40);
    let next = std::sync::atomic::AtomicU64::new(0);
    group.bench_function("redis-rs GET + SET (bare)", |b| {
        b.to_async(&runtime).iter(|| {
            let mut conn = bare.clone();
            let key = format!(
                "{bare_key}:{}",
                next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let bytes = bytes.clone();
            async move {
                let _: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .expect("get");
                let _: () = redis::cmd("SET")
                    .arg(&key)
                    .arg(bytes)
                    .arg("PX")
                    .arg(60_000)
                    .query_async(&mut conn)
                    .await
                    .expect("set");
            }
        })
    });
    group.bench_function("t87s query miss (depth-3 tag)", |b| {
        b.to_async(&runtime).iter(|| {
            let key = format!(
                "miss:{}",
                next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            );
            let cache = &cache;
            let tags = &tags;
            let p = payload.clone();
            async move {
                cache
                    .query(&key, tags, QueryOptions::new(), move || async move {
                        Ok::<_, std::io::Error>(p)
                    })
                    .await
                    .expect("miss")
            }
        })
    });
    group.finish();

    // An invalidation of one depth-3 tag (its 3 prefix markers and the
    // counter) against a bare INCR: both one round trip.
    let mut group = c.benchmark_group("redis_invalidate");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(40);
    let counter = format!("{bare_key}:counter");
    group.bench_function("redis-rs INCR (bare)", |b| {
        b.to_async(&runtime).iter(|| {
            let mut conn = bare.clone();
            let key = counter.clone();
            async move {
                let v: u64 = redis::cmd("INCR")
                    .arg(key)
                    .query_async(&mut conn)
                    .await
                    .expect("incr");
                v
            }
        })
    });
    group.bench_function("t87s invalidate (depth-3 tag)", |b| {
        b.to_async(&runtime)
            .iter(|| async { cache.invalidate(&tags).await.expect("invalidate") })
    });
    group.finish();

    runtime.block_on(async {
        let _ = cache.clear().await;
        let _: Result<(), _> = redis::cmd("DEL").arg(&counter).query_async(&mut bare).await;
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(&bare_key)
            .query_async(&mut bare)
            .await;
    });
}

/// A near-cache hit (served from this process's memory while it holds its
/// lease) beside a `MemoryAdapter` hit, through `Primitives::query` and
/// through `#[cached]`; and a strict invalidation with 1 and with 4 live
/// peers (processes with a near cache on the same prefix, acknowledging)
/// against a bare `GET`.
fn near(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = format!("t87s-bench-near-{}", std::process::id());
    let tags = [TagPath::new(["posts", "1", "comments"]).expect("tag")];
    let (near, memory, mut bare) = runtime.block_on(async {
        let adapter = near_adapter(&prefix).await;
        let near = QueryCache::builder(adapter)
            .verify_percent(0.0)
            .default_ttl("1h")
            .build()
            .expect("options");
        let memory = QueryCache::builder(t87s::MemoryAdapter::new())
            .verify_percent(0.0)
            .default_ttl("1h")
            .build()
            .expect("options");
        let client = redis::Client::open(redis_url()).expect("url");
        let bare = client.get_connection_manager().await.expect("connection");
        (near, memory, bare)
    });
    let payload = Payload::new();
    let caches = [
        ("MemoryAdapter", Blog { cache: memory }),
        ("near cache (Redis)", Blog { cache: near }),
    ];
    runtime.block_on(async {
        for (_, blog) in &caches {
            let p = payload.clone();
            let engine = blog.cache.primitives();
            engine
                .query("hit", &tags, QueryOptions::new(), move || async move {
                    Ok::<_, std::io::Error>(p)
                })
                .await
                .expect("warm");
            blog.post(1).await.expect("warm");
        }
    });
    let mut group = c.benchmark_group("near_hit");
    for (store, blog) in &caches {
        let engine = blog.cache.primitives();
        group.bench_function(format!("t87s query hit, {store}"), |b| {
            b.to_async(&runtime).iter(|| async {
                engine
                    .query("hit", &tags, QueryOptions::new(), || async {
                        Err::<Payload, _>(std::io::Error::other("a hit never fetches"))
                    })
                    .await
                    .expect("hit")
            })
        });
        group.bench_function(format!("t87s #[cached] hit, {store}"), |b| {
            b.to_async(&runtime).iter(|| blog.post(1))
        });
    }
    group.finish();

    let near = caches[1].1.cache.primitives();
    let mut group = c.benchmark_group("near_invalidate");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(40);
    let key = format!("{prefix}:bare");
    group.bench_function("redis-rs GET (bare)", |b| {
        b.to_async(&runtime)
            .iter(|| bare_get(bare.clone(), key.clone()))
    });
    // The protocol's floor, bare: a PUBLISH that `live` other processes
    // answer with a PUBLISH each, awaited on a subscription.
    let replies = runtime.block_on(async {
        let client = redis::Client::open(redis_url()).expect("url");
        let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
        pubsub
            .subscribe(format!("{prefix}:echo:out"))
            .await
            .expect("subscribe");
        tokio::sync::Mutex::new(pubsub.into_on_message())
    });
    let mut echoes = Vec::new();
    let mut peers = Vec::new();
    for live in [1, 4] {
        while echoes.len() < live {
            echoes.push(Peer::start(ECHO, &prefix));
        }
        group.bench_function(
            format!("redis-rs PUBLISH, {live} processes PUBLISH back (bare)"),
            |b| {
                b.to_async(&runtime).iter_custom(|iters| {
                    let (mut conn, replies) = (bare.clone(), &replies);
                    let channel = format!("{prefix}:echo:in");
                    async move {
                        use futures_util::StreamExt;
                        let mut replies = replies.lock().await;
                        let start = std::time::Instant::now();
                        for _ in 0..iters {
                            let _: i64 = redis::cmd("PUBLISH")
                                .arg(&channel)
                                .arg("x")
                                .query_async(&mut conn)
                                .await
                                .expect("publish");
                            for _ in 0..live {
                                replies.next().await.expect("a reply");
                            }
                        }
                        start.elapsed()
                    }
                })
            },
        );
        while peers.len() < live {
            peers.push(Peer::start(PEER, &prefix));
        }
        group.bench_function(
            format!("t87s strict invalidate, {live} live peer processes"),
            |b| {
                b.to_async(&runtime)
                    .iter(|| async { near.invalidate(&tags).await.expect("invalidate") })
            },
        );
    }
    group.finish();
    drop((peers, echoes));
    runtime.block_on(async {
        let _ = near.clear().await;
        let _: Result<(), _> = redis::cmd("DEL").arg(&key).query_async(&mut bare).await;
    });
}

/// A Redis adapter with a near cache on `prefix`, once it serves.
async fn near_adapter(prefix: &str) -> RedisAdapter {
    let adapter = RedisAdapter::builder(redis_url())
        .prefix(prefix)
        .near_cache(t87s::NearCache::new())
        .connect()
        .await
        .expect("Redis at REDIS_URL");
    while !adapter.near_status().is_some_and(|s| s.serving) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    adapter
}

/// The environment variable that makes this bench binary a near-cache peer
/// (the prefix is its value) instead of running the benches.
const PEER: &str = "T87S_BENCH_NEAR_PEER";
/// The same for a bare echo: every message on `{prefix}:echo:in` is
/// published back on `{prefix}:echo:out`.
const ECHO: &str = "T87S_BENCH_ECHO";

/// Another process of this binary (`role` [`PEER`] or [`ECHO`]) on the
/// bench's prefix, until its stdin closes.
struct Peer(std::process::Child);

impl Peer {
    fn start(role: &str, prefix: &str) -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new(std::env::current_exe().expect("bench binary"))
            .env(role, prefix)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn a peer");
        let mut ready = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(stdout)
            .read_line(&mut ready)
            .expect("the peer says it is ready");
        assert_eq!(ready.trim(), "serving", "the peer could not join");
        Self(child)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A peer's life: join (a near cache) or subscribe (an echo), say so, and
/// work until stdin closes.
fn peer(role: &str, prefix: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let _adapter = match role {
            PEER => Some(near_adapter(prefix).await),
            _ => {
                tokio::spawn(echo(prefix.to_owned()).await);
                None
            }
        };
        println!("serving");
        let _ = tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        })
        .await;
    });
}

/// Subscribes, then returns the loop that publishes every message back.
async fn echo(prefix: String) -> impl std::future::Future<Output = ()> {
    use futures_util::StreamExt;
    let client = redis::Client::open(redis_url()).expect("url");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub
        .subscribe(format!("{prefix}:echo:in"))
        .await
        .expect("subscribe");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connection");
    async move {
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let _: Result<i64, _> = redis::cmd("PUBLISH")
                .arg(format!("{prefix}:echo:out"))
                .arg(message.get_payload_bytes())
                .query_async(&mut conn)
                .await;
        }
    }
}

criterion_group!(benches, redis_hit, near);

fn main() {
    for role in [PEER, ECHO] {
        if let Ok(prefix) = std::env::var(role) {
            return peer(role, &prefix);
        }
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
