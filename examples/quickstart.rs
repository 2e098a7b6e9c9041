//! The README's quickstart: a cached query on the in-memory adapter.
//!
//! Run it with `cargo run --example quickstart`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use t87s::{Event, MemoryAdapter, Observer, Primitives, QueryOptions, TagPath};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    id: u64,
    title: String,
}

/// Prints what the cache did for each query.
struct Print;

impl Observer for Print {
    fn on_event(&self, event: &Event<'_>) {
        println!("  cache: {event}");
    }
}

/// A pretend database that counts its reads.
#[derive(Clone, Default)]
struct Db {
    reads: Arc<AtomicU32>,
}

impl Db {
    async fn post(&self, id: u64) -> Result<Post, std::io::Error> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Post {
            id,
            title: format!("Hello (read #{n} from the database)"),
        })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = Primitives::builder(MemoryAdapter::new())
        .default_ttl("10m")
        .observer(Print)
        .build()?;
    let db = Db::default();
    let tags = [TagPath::new(["posts", "1"])?];

    for step in ["first read", "second read"] {
        println!("{step}:");
        let db = db.clone();
        let post: Post = cache
            .query("post:1", &tags, QueryOptions::new(), move || async move {
                db.post(1).await
            })
            .await?;
        println!("  got {post:?}");
    }

    println!("invalidate posts/1 (a write happened)");
    cache.invalidate(&tags).await?;

    println!("third read:");
    let db2 = db.clone();
    let post: Post = cache
        .query("post:1", &tags, QueryOptions::new(), move || async move {
            db2.post(1).await
        })
        .await?;
    println!("  got {post:?}");
    println!("database reads: {}", db.reads.load(Ordering::SeqCst));
    Ok(())
}
