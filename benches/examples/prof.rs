//! A hot loop of memory hits, for `perf record` or callgrind (not a benchmark).
//!
//! `prof N` runs N hits (default 5,000,000). Instructions per hit, stable on
//! a noisy machine: run callgrind at two N and divide the difference, e.g.
//! `valgrind --tool=callgrind target/release/examples/prof 200000` and `400000`.
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

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
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
