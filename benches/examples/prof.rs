//! A hot loop of memory hits, for `perf record` or callgrind (not a benchmark).
//!
//! `prof [WHAT] N` runs N hits (default 5,000,000) of one of:
//! `cached` (t87s `#[cached]`, the default), `query` (`Primitives::query`),
//! `marked` (`Primitives::query` at tag depth 3, each hit after an unrelated
//! invalidation: N/1000 invalidations, each followed by hits on 1,000 keys),
//! `quick` (`quick_cache` `get`, a `String` key), `moka` (`moka::future::Cache::get`),
//! `cached_crate` (the `cached` crate's `#[cached]`).
//!
//! Instructions per hit, stable on a noisy machine: run callgrind at two N
//! and divide the difference, e.g.
//! `valgrind --tool=callgrind target/release/examples/prof cached 200000` and `400000`.
use t87s::engine::{Primitives, QueryOptions, TagPath};
use t87s::{cached, MemoryAdapter, QueryCache};
use t87s_benches::{AppTags, Payload};

#[derive(Clone)]
struct Blog {
    cache: QueryCache<AppTags>,
}

impl Blog {
    #[cached(tags = [t.posts(id)], ttl = "1h")]
    async fn post(&self, id: u64) -> Result<Payload, std::io::Error> {
        let _ = id;
        Ok(Payload::new())
    }
}

#[cached::proc_macro::cached(max_size = 1_000_000)]
async fn cached_crate_post(id: u64) -> Payload {
    let _ = id;
    Payload::new()
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let what = match args.peek() {
        Some(a) if a.parse::<u64>().is_err() => args.next().unwrap_or_default(),
        _ => "cached".to_owned(),
    };
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5_000_000);
    let rt = if std::env::var_os("T87S_PROF_MT").is_some() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    // Each mode in a function of its own, out of line: what one mode's loop
    // inlines does not depend on the code of the others.
    match what.as_str() {
        "cached" => cached(&rt, n),
        "query" => query(&rt, n),
        "marked" => marked(&rt, n),
        "quick" => quick(n),
        "moka" => moka(&rt, n),
        "cached_crate" => cached_crate(&rt, n),
        other => {
            panic!("unknown WHAT {other:?}: cached, query, marked, quick, moka or cached_crate")
        }
    }
}

fn engine() -> Primitives {
    Primitives::builder(MemoryAdapter::new())
        .verify_percent(0.0)
        .build()
        .expect("engine")
}

async fn fetch() -> Result<Payload, std::io::Error> {
    Ok(Payload::new())
}

#[inline(never)]
fn cached(rt: &tokio::runtime::Runtime, n: u64) {
    let cache = QueryCache::builder(MemoryAdapter::new())
        .verify_percent(0.0)
        .build()
        .expect("cache");
    let blog = Blog { cache };
    rt.block_on(async {
        for _ in 0..n {
            std::hint::black_box(blog.post(1).await.expect("hit"));
        }
    });
}

#[inline(never)]
fn query(rt: &tokio::runtime::Runtime, n: u64) {
    let engine = engine();
    let tags = [TagPath::new(["posts", "1"]).expect("tag")];
    rt.block_on(async {
        for _ in 0..n {
            let hit = engine.query("post:1", &tags, QueryOptions::new(), fetch);
            std::hint::black_box(hit.await.expect("hit"));
        }
    });
}

#[inline(never)]
fn marked(rt: &tokio::runtime::Runtime, n: u64) {
    let engine = engine();
    let keys: Vec<(String, [TagPath; 1])> = (0..1_000)
        .map(|i| {
            let tag = TagPath::new(["s0".to_owned(), "s1".into(), format!("{i}")]);
            (format!("depth3:{i}"), [tag.expect("tag")])
        })
        .collect();
    let unrelated = [TagPath::new(["unrelated"]).expect("tag")];
    rt.block_on(async {
        for _ in 0..n / 1_000 {
            engine.invalidate(&unrelated).await.expect("invalidate");
            for (key, tags) in &keys {
                let hit = engine.query(key, tags, QueryOptions::new(), fetch);
                std::hint::black_box(hit.await.expect("hit"));
            }
        }
    });
}

#[inline(never)]
fn quick(n: u64) {
    let quick: quick_cache::sync::Cache<String, Payload> = quick_cache::sync::Cache::new(10_000);
    quick.insert("post:1".into(), Payload::new());
    for _ in 0..n {
        std::hint::black_box(quick.get("post:1"));
    }
}

#[inline(never)]
fn moka(rt: &tokio::runtime::Runtime, n: u64) {
    let moka: moka::future::Cache<String, Payload> = moka::future::Cache::new(10_000);
    rt.block_on(async {
        moka.insert("post:1".into(), Payload::new()).await;
        for _ in 0..n {
            std::hint::black_box(moka.get("post:1").await);
        }
    });
}

#[inline(never)]
fn cached_crate(rt: &tokio::runtime::Runtime, n: u64) {
    rt.block_on(async {
        for _ in 0..n {
            std::hint::black_box(cached_crate_post(1).await);
        }
    });
}
