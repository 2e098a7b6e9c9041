//! A hot loop of Redis hits, for callgrind (not a benchmark): the client-side
//! instructions of a t87s hit against the same commands sent bare.
//!
//! `redis_prof t87s N`, `redis_prof bare N` (the `MGET` below) or
//! `redis_prof get N` (a bare `GET`) (needs Redis at `REDIS_URL`);
//! `redis_prof pair N` times a bare `GET`, the `MGET` of a hit with nothing
//! kept, sent bare (the entry, the floor and 4 markers; with the floor and
//! the markers kept, a t87s hit sends a `GET` of the entry alone), a `GET`
//! and its decode, and a t87s hit, interleaved N times, and prints the
//! medians: on a noisy machine, interleaving keeps them under the same
//! noise, and each round starts with the next one, so that none is always
//! timed first. `T87S_PROF_MT=1` runs on the criterion benches' runtime (a
//! worker thread for the connections, the loop on the main thread).
//! `redis_prof misses N` times a t87s miss (a new key each time, the fetch
//! answers at once) against a bare `GET` + `SET` of the same bytes, the
//! same way; `redis_prof miss N` and `redis_prof getset N` run one side
//! alone (for callgrind).
//! Instructions per hit: run callgrind at two N and divide the difference,
//! e.g. `valgrind --tool=callgrind target/release/examples/redis_prof t87s 20000`
//! and `40000`; the server's work is not counted.
use std::time::Duration;

use redis::aio::ConnectionManager;
use t87s::engine::{Primitives, QueryOptions, TagPath};
use t87s::{Codec, Postcard, RedisAdapter};
use t87s_benches::{redis_url, Payload};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "t87s".to_owned());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    // `T87S_PROF_MT=1`: the runtime of the criterion benches (one worker,
    // the loop on the main thread, the connections' tasks on the worker).
    let mut builder = match std::env::var_os("T87S_PROF_MT") {
        Some(_) => tokio::runtime::Builder::new_multi_thread(),
        None => tokio::runtime::Builder::new_current_thread(),
    };
    let rt = builder
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = format!("t87s-prof-{}", std::process::id());
    rt.block_on(async {
        let tags = [TagPath::new(["posts", "1", "comments"]).expect("tag")];
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
        let mut bare = client.get_connection_manager().await.expect("connection");
        cache
            .query("hit", &tags, QueryOptions::new(), || async {
                Ok::<_, std::io::Error>(Payload::new())
            })
            .await
            .expect("warm");
        let key = format!("{prefix}:bare");
        let rest: Vec<String> = (0..5).map(|i| format!("{prefix}:rest:{i}")).collect();
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(Postcard.encode(&Payload::new()).expect("encode"))
            .query_async(&mut bare)
            .await
            .expect("set");
        // The first of the rest stands for the floor, which holds a version;
        // the markers of a key never invalidated hold nothing.
        let _: () = redis::cmd("SET")
            .arg(&rest[0])
            .arg(1_764_892_800_000_123_u64)
            .query_async(&mut bare)
            .await
            .expect("set");
        // A t87s miss of a new key (the fetch answers at once).
        let miss = |round: u64| {
            let (cache, tags) = (&cache, &tags);
            async move {
                let fetch = || async { Ok::<_, std::io::Error>(Payload::new()) };
                let key = format!("miss:{round}");
                cache.query(&key, tags, QueryOptions::new(), fetch).await.expect("miss")
            }
        };
        if mode == "misses" {
            // A miss of a new key each time, t87s and a bare GET + SET of
            // the same bytes, alternating which goes first.
            let bytes = Postcard.encode(&Payload::new()).expect("encode");
            let mut times: [Vec<Duration>; 2] = Default::default();
            for round in 0..n {
                for turn in 0..2 {
                    let way = (round as usize + turn) % 2;
                    let start = std::time::Instant::now();
                    if way == 0 {
                        get_set(&mut bare, &format!("{key}:{round}"), &bytes).await;
                    } else {
                        std::hint::black_box(miss(round).await);
                    }
                    times[way].push(start.elapsed());
                }
            }
            let [bare, miss] = times.map(|mut t| {
                t.sort();
                t[t.len() / 2]
            });
            println!(
                "medians: GET + SET {bare:?}, t87s miss {miss:?}; miss/(GET + SET) {:.3}",
                miss.as_secs_f64() / bare.as_secs_f64()
            );
            let _ = cache.clear().await;
            return;
        }
        // The t87s hit, one way for every mode that times or counts it.
        let hit = || async {
            let never = || async { Err::<Payload, _>(std::io::Error::other("a hit never fetches")) };
            cache.query("hit", &tags, QueryOptions::new(), never).await.expect("hit")
        };
        if mode == "pair" {
            // Four ways, each round starting at the next one: a way's
            // place in the round (which is timed right after which) is
            // spread evenly over the run.
            let mut times: [Vec<Duration>; 4] = Default::default();
            for round in 0..n {
                for turn in 0..4 {
                    let way = (round as usize + turn) % 4;
                    let start = std::time::Instant::now();
                    match way {
                        0 => drop(std::hint::black_box(get(&mut bare, &key).await)),
                        1 => drop(std::hint::black_box(mget(&mut bare, &key, &rest).await)),
                        2 => {
                            let v = get(&mut bare, &key).await;
                            let v: Option<Payload> =
                                v.map(|v| Postcard.decode(&v).expect("decode"));
                            std::hint::black_box(v);
                        }
                        _ => drop(std::hint::black_box(hit().await)),
                    }
                    times[way].push(start.elapsed());
                }
            }
            let [get, mget, get_decode, hit] = times.map(|mut t| {
                t.sort();
                t[t.len() / 2]
            });
            println!(
                "medians: GET {get:?}, the hit's MGET (bare) {mget:?}, GET + decode {get_decode:?}, \
                 t87s hit {hit:?}; hit/GET {:.3} (+{:?}), hit/(GET + decode) {:.3} (+{:?})",
                hit.as_secs_f64() / get.as_secs_f64(),
                hit.saturating_sub(get),
                hit.as_secs_f64() / get_decode.as_secs_f64(),
                hit.saturating_sub(get_decode),
            );
            let _ = cache.clear().await;
            return;
        }
        if mode == "miss" || mode == "getset" {
            // One side of `misses` alone, for callgrind: a t87s miss of a
            // new key each time, or a bare `GET` + `SET` of the same bytes.
            let bytes = Postcard.encode(&Payload::new()).expect("encode");
            for round in 0..n {
                if mode == "getset" {
                    get_set(&mut bare, &format!("{key}:{round}"), &bytes).await;
                } else {
                    std::hint::black_box(miss(round).await);
                }
            }
            let _ = cache.clear().await;
            return;
        }
        for _ in 0..n {
            if mode == "bare" {
                std::hint::black_box(mget(&mut bare, &key, &rest).await);
            } else if mode == "get" {
                std::hint::black_box(get(&mut bare, &key).await);
            } else {
                drop(std::hint::black_box(hit().await));
            }
        }
        let _ = cache.clear().await;
    });
}

/// A miss sent bare: a `GET` of `key`, then a `SET` of `bytes` under it.
async fn get_set(bare: &mut ConnectionManager, key: &str, bytes: &[u8]) {
    std::hint::black_box(get(bare, key).await);
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(bytes)
        .arg("PX")
        .arg(3_600_000)
        .query_async(bare)
        .await
        .expect("set");
}

/// A bare `GET`.
async fn get(bare: &mut ConnectionManager, key: &str) -> Option<Vec<u8>> {
    redis::cmd("GET")
        .arg(key)
        .query_async(bare)
        .await
        .expect("get")
}

/// The command of a t87s hit, sent bare: one `MGET` of the entry and 5 more.
async fn mget(bare: &mut ConnectionManager, key: &str, rest: &[String]) -> Vec<Option<Vec<u8>>> {
    redis::cmd("MGET")
        .arg(key)
        .arg(rest)
        .query_async(bare)
        .await
        .expect("mget")
}
