//! `cargo run -p t87s-example-axum`: the blog service on 127.0.0.1:3000.
//!
//! Try `curl localhost:3000/posts/1` twice (a miss, then a hit),
//! `curl -X PUT -H 'content-type: application/json' -d '{"title":"New"}' localhost:3000/posts/1`,
//! then `curl localhost:3000/metrics`. `RUST_LOG=t87s=debug` shows every
//! cache event; the default (`info`) shows invalidations and the store's state.
//!
//! `T87S_REDIS=redis://127.0.0.1:6379` puts the cache on Redis, shared by
//! every process started so (try two, on two `PORT`s); `T87S_NEAR=1` adds a
//! near cache in front of it.

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let filter: Targets = std::env::var("RUST_LOG")
        .unwrap_or_else(|_| "info".into())
        .parse()?;
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer())
        .with(filter)
        .init();

    let db = t87s_example_axum::seeded("blog", 20).await?;
    // The store: memory, or Redis (`T87S_REDIS=redis://...`), with a near
    // cache in front of it when `T87S_NEAR=1`.
    let (_, router) = match std::env::var("T87S_REDIS") {
        Ok(url) => {
            let mut redis = t87s::RedisAdapter::builder(url);
            if std::env::var("T87S_NEAR").is_ok_and(|v| v == "1") {
                redis = redis.near_cache(t87s::NearCache::new());
            }
            let cache = t87s::QueryCache::new(redis.connect().await?);
            t87s_example_axum::app_with(db, cache)
        }
        Err(_) => t87s_example_axum::app(db),
    };
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router).await?;
    Ok(())
}
