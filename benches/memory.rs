//! In-process benches, t87s side by side with its peers in one run:
//! hits, misses, invalidation at scale, tag depth, and a 1,000-caller stampede.
//!
//! `cargo bench -p t87s-benches --bench memory` (see `bench/report`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use parking_lot::RwLock;
use t87s::engine::{Primitives, QueryOptions, SetOptions, TagPath};
use t87s::{MemoryAdapter, QueryCache};
use t87s_benches::{Blog, Payload};

#[cached::proc_macro::cached(max_size = 1_000_000)]
async fn cached_crate_post(id: u64) -> Payload {
    let _ = id;
    Payload::new()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime")
}

fn blog(max_entries: usize) -> Blog {
    let adapter = MemoryAdapter::builder()
        .max_entries(max_entries)
        .build()
        .expect("adapter");
    let cache = QueryCache::builder(adapter)
        .verify_percent(0.0)
        .build()
        .expect("cache");
    Blog { cache }
}

fn memory_hit(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory_hit");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

    let floor: RwLock<HashMap<String, Arc<Payload>>> = RwLock::new(HashMap::new());
    floor
        .write()
        .insert("post:1".into(), Arc::new(Payload::new()));
    group.bench_function("RwLock<HashMap> read, Arc value (floor)", |b| {
        b.iter(|| floor.read().get("post:1").cloned())
    });

    let quick: quick_cache::sync::Cache<String, Payload> = quick_cache::sync::Cache::new(10_000);
    quick.insert("post:1".into(), Payload::new());
    group.bench_function("quick_cache get", |b| b.iter(|| quick.get("post:1")));

    let moka: moka::future::Cache<String, Payload> = moka::future::Cache::new(10_000);
    rt.block_on(moka.insert("post:1".into(), Payload::new()));
    group.bench_function("moka future get", |b| {
        b.to_async(&rt).iter(|| async { moka.get("post:1").await })
    });

    rt.block_on(cached_crate_post(1));
    group.bench_function("cached #[cached] async", |b| {
        b.to_async(&rt).iter(|| cached_crate_post(1))
    });

    let engine = Primitives::builder(MemoryAdapter::new())
        .verify_percent(0.0)
        .build()
        .expect("engine");
    let tags = [TagPath::new(["posts", "1"]).expect("tag")];
    let fetch = || async { Ok::<_, std::io::Error>(Payload::new()) };
    rt.block_on(engine.query("post:1", &tags, QueryOptions::new(), fetch))
        .expect("warm");
    group.bench_function("t87s Primitives::query", |b| {
        b.to_async(&rt)
            .iter(|| engine.query("post:1", &tags, QueryOptions::new(), fetch))
    });

    let blog = blog(10_000);
    rt.block_on(blog.post(1)).expect("warm");
    group.bench_function("t87s #[cached]", |b| b.to_async(&rt).iter(|| blog.post(1)));
    group.finish();
}

fn memory_miss(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("memory_miss_insert");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let next = AtomicU64::new(0);

    let moka: moka::future::Cache<u64, Payload> = moka::future::Cache::new(100_000);
    group.bench_function("moka future get_with", |b| {
        b.to_async(&rt).iter(|| async {
            let id = next.fetch_add(1, Ordering::Relaxed);
            moka.get_with(id, async { Payload::new() }).await
        })
    });
    group.bench_function("cached #[cached] async", |b| {
        b.to_async(&rt)
            .iter(|| cached_crate_post(next.fetch_add(1, Ordering::Relaxed)))
    });
    let blog = blog(100_000);
    group.bench_function("t87s #[cached]", |b| {
        b.to_async(&rt)
            .iter(|| blog.post(next.fetch_add(1, Ordering::Relaxed)))
    });
    group.finish();
}

fn invalidate(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("invalidate");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for entries in [1_000u64, 100_000, 1_000_000] {
        let engine = Primitives::builder(
            MemoryAdapter::builder()
                .max_entries(entries as usize + 1024)
                .build()
                .expect("adapter"),
        )
        .verify_percent(0.0)
        .build()
        .expect("engine");
        rt.block_on(async {
            for i in 0..entries {
                let tag = TagPath::new(["posts", &i.to_string()]).expect("tag");
                engine
                    .set(&format!("post:{i}"), &i, SetOptions::new([tag]))
                    .await
                    .expect("set");
            }
        });
        let next = AtomicU64::new(0);
        group.bench_with_input(
            BenchmarkId::new("t87s invalidate", entries),
            &entries,
            |b, &entries| {
                b.to_async(&rt).iter(|| {
                    // The same 1,000 tags at every size: only the number of
                    // cached entries changes between the runs.
                    let i = next.fetch_add(1, Ordering::Relaxed) % entries.min(1_000);
                    let tag = TagPath::new(["posts", &i.to_string()]).expect("tag");
                    let engine = engine.clone();
                    async move { engine.invalidate(&[tag]).await.expect("invalidate") }
                })
            },
        );
    }
    group.finish();
}

fn tag_depth(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("hit_by_tag_depth");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    let engine = Primitives::builder(MemoryAdapter::new())
        .verify_percent(0.0)
        .build()
        .expect("engine");
    let fetch = || async { Ok::<_, std::io::Error>(Payload::new()) };
    let unrelated = [TagPath::new(["unrelated"]).expect("tag")];
    for depth in [1usize, 3, 6] {
        let segments: Vec<String> = (0..depth).map(|i| format!("s{i}")).collect();
        let tags = [TagPath::new(&segments).expect("tag")];
        let key = format!("depth:{depth}");
        rt.block_on(engine.query(&key, &tags, QueryOptions::new(), fetch))
            .expect("warm");
        // Nothing invalidated since the entry was checked: no marker is read.
        group.bench_with_input(
            BenchmarkId::new("hit, no invalidation since", depth),
            &depth,
            |b, _| {
                b.to_async(&rt)
                    .iter(|| engine.query(&key, &tags, QueryOptions::new(), fetch))
            },
        );
        // 1,000 keys with this tag depth, one unrelated invalidation before
        // each round of hits on all of them: every hit is its key's first
        // since an invalidation, so it checks its markers (the invalidation
        // itself is 1/1,000 of each hit).
        let keys: Vec<(String, [TagPath; 1])> = (0..1_000)
            .map(|i| {
                let mut segments = segments.clone();
                segments.push(format!("{i}"));
                let tag = TagPath::new(&segments).expect("tag");
                (format!("depth:{depth}:{i}"), [tag])
            })
            .collect();
        rt.block_on(async {
            for (key, tags) in &keys {
                engine
                    .query(key, tags, QueryOptions::new(), fetch)
                    .await
                    .expect("warm");
            }
        });
        group.bench_with_input(
            BenchmarkId::new("hit, no invalidation since (1,000 keys)", depth),
            &depth,
            |b, _| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (engine, keys) = (&engine, &keys);
                    async move {
                        let started = Instant::now();
                        for i in 0..iters {
                            let (key, tags) = &keys[(i % 1_000) as usize];
                            let hit = engine.query(key, tags, QueryOptions::new(), fetch);
                            std::hint::black_box(hit.await.expect("hit"));
                        }
                        started.elapsed()
                    }
                })
            },
        );
        group.bench_with_input(
            BenchmarkId::new("hit after an unrelated invalidation (1,000 keys)", depth),
            &depth,
            |b, _| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (engine, keys, unrelated) = (&engine, &keys, &unrelated);
                    async move {
                        let started = Instant::now();
                        for i in 0..iters {
                            if i % 1_000 == 0 {
                                engine.invalidate(unrelated).await.expect("invalidate");
                            }
                            let (key, tags) = &keys[(i % 1_000) as usize];
                            let hit = engine.query(key, tags, QueryOptions::new(), fetch);
                            std::hint::black_box(hit.await.expect("hit"));
                        }
                        started.elapsed()
                    }
                })
            },
        );
        // An (unrelated) invalidation before every hit: each hit reads the
        // marker of every prefix of its tag plus its exact marker. Includes
        // the invalidation itself (see the `invalidate` group).
        group.bench_with_input(
            BenchmarkId::new("invalidate + hit reading depth+1 markers", depth),
            &depth,
            |b, _| {
                b.to_async(&rt).iter(|| async {
                    engine.invalidate(&unrelated).await.expect("invalidate");
                    engine.query(&key, &tags, QueryOptions::new(), fetch).await
                })
            },
        );
    }
    group.finish();
}

/// 1,000 concurrent callers of one cold key: time until all have an answer,
/// and how many times the fetch ran (asserted to be 1).
fn stampede(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("stampede_1000_callers");
    group
        .measurement_time(Duration::from_secs(5))
        .sample_size(20);
    group.bench_function("t87s #[cached]", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let blog = blog(10_000);
                let started = Instant::now();
                let tasks: Vec<_> = (0..1_000)
                    .map(|_| {
                        let blog = blog.clone();
                        tokio::spawn(async move { blog.post(1).await })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("join").expect("value");
                }
                total += started.elapsed();
            }
            total
        })
    });
    group.bench_function("moka future get_with", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let moka: moka::future::Cache<u64, Payload> = moka::future::Cache::new(10_000);
                let calls = Arc::new(AtomicUsize::new(0));
                let started = Instant::now();
                let tasks: Vec<_> = (0..1_000)
                    .map(|_| {
                        let (moka, calls) = (moka.clone(), calls.clone());
                        tokio::spawn(async move {
                            moka.get_with(1, async move {
                                calls.fetch_add(1, Ordering::SeqCst);
                                Payload::new()
                            })
                            .await
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("join");
                }
                total += started.elapsed();
                assert_eq!(calls.load(Ordering::SeqCst), 1);
            }
            total
        })
    });
    group.finish();
}

/// Hits on 1 and on 2 threads, each thread on keys of its own (512 each):
/// the time per hit with all hits split over the threads, so 1-thread time
/// over 2-thread time is the throughput gained (2.00x at best).
fn threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("hits_by_threads");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    const KEYS: u64 = 512;

    let blog = blog(10_000);
    let engine = Primitives::builder(MemoryAdapter::new())
        .verify_percent(0.0)
        .build()
        .expect("engine");
    let tags: Vec<[TagPath; 1]> = (0..2 * KEYS)
        .map(|i| [TagPath::new(["posts".to_owned(), i.to_string()]).expect("tag")])
        .collect();
    let names: Vec<String> = (0..2 * KEYS).map(|i| format!("post:{i}")).collect();
    let fetch = || async { Ok::<_, std::io::Error>(Payload::new()) };
    let quick: quick_cache::sync::Cache<String, Payload> = quick_cache::sync::Cache::new(10_000);
    let moka: moka::future::Cache<String, Payload> = moka::future::Cache::new(10_000);
    let rt = runtime();
    rt.block_on(async {
        for i in 0..2 * KEYS {
            let name = &names[i as usize];
            blog.post(i).await.expect("warm");
            engine
                .query(name, &tags[i as usize], QueryOptions::new(), fetch)
                .await
                .expect("warm");
            quick.insert(name.clone(), Payload::new());
            moka.insert(name.clone(), Payload::new()).await;
        }
    });

    // Runs `hits(thread, n)` on `threads` threads at once, n = iters/threads
    // each, each thread with a current-thread runtime of its own.
    fn split<F, Fut>(threads: u64, iters: u64, hits: F) -> Duration
    where
        F: Fn(u64, u64) -> Fut + Sync,
        Fut: std::future::Future<Output = ()>,
    {
        let start = std::sync::Barrier::new(threads as usize + 1);
        std::thread::scope(|scope| {
            for thread in 0..threads {
                let (start, hits) = (&start, &hits);
                scope.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .expect("runtime");
                    start.wait();
                    rt.block_on(hits(thread, iters / threads));
                });
            }
            start.wait();
            // Taken when every thread is ready; scoped threads are joined
            // before `scope` returns, so the elapsed time covers every hit.
            Instant::now()
        })
        .elapsed()
    }

    for n in [1u64, 2] {
        let (blog, engine, quick, moka) = (&blog, &engine, &quick, &moka);
        let (tags, names) = (&tags, &names);
        group.bench_with_input(BenchmarkId::new("t87s #[cached]", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                split(n, iters, |t, k| async move {
                    for i in 0..k {
                        let id = t * KEYS + i % KEYS;
                        std::hint::black_box(blog.post(id).await.expect("hit"));
                    }
                })
            })
        });
        group.bench_with_input(
            BenchmarkId::new("t87s Primitives::query", n),
            &n,
            |b, &n| {
                b.iter_custom(|iters| {
                    split(n, iters, |t, k| async move {
                        for i in 0..k {
                            let id = (t * KEYS + i % KEYS) as usize;
                            let hit =
                                engine.query(&names[id], &tags[id], QueryOptions::new(), fetch);
                            std::hint::black_box(hit.await.expect("hit"));
                        }
                    })
                })
            },
        );
        group.bench_with_input(BenchmarkId::new("quick_cache get", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                split(n, iters, |t, k| async move {
                    for i in 0..k {
                        let id = (t * KEYS + i % KEYS) as usize;
                        std::hint::black_box(quick.get(names[id].as_str()));
                    }
                })
            })
        });
        group.bench_with_input(BenchmarkId::new("moka future get", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                split(n, iters, |t, k| async move {
                    for i in 0..k {
                        let id = (t * KEYS + i % KEYS) as usize;
                        std::hint::black_box(moka.get(names[id].as_str()).await);
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    memory_hit,
    memory_miss,
    invalidate,
    tag_depth,
    threads,
    stampede
);
criterion_main!(benches);
