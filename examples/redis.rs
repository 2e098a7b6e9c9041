//! The quickstart's cache on Redis, shared by two "processes".
//!
//! Run it with `cargo run --example redis` (Redis at `REDIS_URL`, default
//! `redis://127.0.0.1:6379`).

use std::time::Duration;

use t87s::{cached, QueryCache, RedisAdapter, Static, TagSchema, Wild};

#[derive(TagSchema)]
struct PostTags {
    comments: Wild,
    settings: Static,
}

#[derive(TagSchema)]
struct AppTags {
    posts: Wild<PostTags>,
}

#[derive(Clone)]
struct Blog {
    name: &'static str,
    cache: QueryCache<AppTags>,
}

impl Blog {
    #[cached(tags = [t.posts(id)], ttl = "10m", grace = "1h")]
    async fn title(&self, id: u64) -> Result<String, std::io::Error> {
        println!("    {} reads post {id} from the database", self.name);
        Ok(format!("Post {id}"))
    }
}

async fn server(name: &'static str, url: &str) -> Result<Blog, Box<dyn std::error::Error>> {
    let adapter = RedisAdapter::builder(url)
        .prefix("t87s-example")
        .timeout(Duration::from_millis(250))
        .connect()
        .await?;
    if let Some(warning) = adapter.eviction_warning() {
        println!("warning: {warning}");
    }
    Ok(Blog {
        name,
        cache: QueryCache::new(adapter),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let a = server("server A", &url).await?;
    let b = server("server B", &url).await?;
    a.cache.clear().await?;

    println!("A asks for post 1:");
    println!("    -> {}", a.title(1).await?);
    println!("B asks for post 1 (A's entry is in Redis):");
    println!("    -> {}", b.title(1).await?);
    println!("B invalidates posts/1 after a write:");
    b.cache.invalidate(b.cache.tags().posts(1)).await?;
    println!("A asks again:");
    println!("    -> {}", a.title(1).await?);
    a.cache.clear().await?;
    Ok(())
}
