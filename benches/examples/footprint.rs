//! Memory per entry: inserts N small entries (a `u64` value under a key of
//! the form `post:<id>`) into one cache and prints the resident set's growth
//! divided by N (read from `/proc/self/statm`; Linux only).
//!
//! It also prints the bytes allocated and still live per entry (counted by
//! a global allocator wrapper), which tells the allocator's overhead and
//! fragmentation apart from what the cache keeps.
//!
//! `footprint WHAT [N]`, WHAT one of `t87s` (a `#[cached]` method tagged
//! `posts(id)`), `quick` (`quick_cache`), `moka` (`moka::future::Cache`);
//! N defaults to 1,000,000. Run each in a process of its own (`bench/report`
//! does).
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use t87s::{cached, MemoryAdapter, QueryCache};
use t87s_benches::AppTags;

#[derive(Clone)]
struct Blog {
    cache: QueryCache<AppTags>,
}

impl Blog {
    #[cached(tags = [t.posts(id)], ttl = "1h")]
    async fn post(&self, id: u64) -> Result<u64, std::io::Error> {
        Ok(id)
    }
}

/// The system allocator, counting the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as u64, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size() as u64, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Resident bytes, from `/proc/self/statm`.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm (Linux)");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "t87s".to_owned());
    let n: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (before, live_before) = (rss(), LIVE.load(Ordering::Relaxed));
    let after = match what.as_str() {
        "t87s" => {
            let adapter = MemoryAdapter::builder()
                .max_entries(n as usize)
                .build()
                .expect("adapter");
            let cache = QueryCache::builder(adapter)
                .verify_percent(0.0)
                .build()
                .expect("cache");
            let blog = Blog { cache };
            rt.block_on(async {
                for id in 0..n {
                    blog.post(id).await.expect("stored");
                }
            });
            let after = (rss(), LIVE.load(Ordering::Relaxed));
            std::hint::black_box(&blog);
            after
        }
        "quick" => {
            let quick: quick_cache::sync::Cache<String, u64> =
                quick_cache::sync::Cache::new(n as usize);
            for id in 0..n {
                quick.insert(format!("post:{id}"), id);
            }
            let after = (rss(), LIVE.load(Ordering::Relaxed));
            std::hint::black_box(&quick);
            after
        }
        "moka" => {
            let moka: moka::future::Cache<String, u64> = moka::future::Cache::new(n);
            rt.block_on(async {
                for id in 0..n {
                    moka.insert(format!("post:{id}"), id).await;
                }
                moka.run_pending_tasks().await;
            });
            let after = (rss(), LIVE.load(Ordering::Relaxed));
            std::hint::black_box(&moka);
            after
        }
        other => panic!("unknown WHAT {other:?}: t87s, quick or moka"),
    };
    let per_entry = after.0.saturating_sub(before) as f64 / n as f64;
    let live = after.1.saturating_sub(live_before) as f64 / n as f64;
    // Resident growth per entry, then the bytes allocated and still live
    // per entry (the difference is the allocator's own overhead and
    // fragmentation).
    println!("{what} {n} {per_entry:.1} {live:.1}");
}
