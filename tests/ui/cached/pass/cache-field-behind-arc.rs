//! The `QueryCache` behind an `Arc` (or any `Deref`), named with `cache = field`.
use std::sync::Arc;

use t87s::{cached, invalidates, MemoryAdapter, QueryCache, TagSchema, Wild};

#[derive(TagSchema)]
struct AppTags {
    posts: Wild,
}

#[derive(Clone)]
struct Shop {
    shared: Arc<QueryCache<AppTags>>,
}

impl Shop {
    #[cached(tags = [t.posts(id)], cache = shared)]
    async fn post(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("post {id}"))
    }

    #[invalidates(tags = [t.posts(id)], cache = shared)]
    async fn rename(&self, id: u64) -> Result<(), t87s::Error> {
        let _ = id;
        Ok(())
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let shop = Shop { shared: Arc::new(QueryCache::new(MemoryAdapter::new())) };
    assert_eq!(shop.post(1).await.ok().as_deref(), Some("post 1"));
    assert!(shop.rename(1).await.is_ok());
}
