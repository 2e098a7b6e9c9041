//! A hot loop of memory hits, for `perf record` (not a benchmark).
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let cache = QueryCache::builder(MemoryAdapter::new())
        .verify_percent(0.0)
        .build()
        .expect("cache");
    let blog = Blog { cache };
    rt.block_on(async {
        for _ in 0..5_000_000 {
            std::hint::black_box(blog.post(1).await.expect("hit"));
        }
    });
}
