//! `#[invalidates]` with a method whose error type cannot carry a failed invalidation (and no `on_error = "log"`).
use t87s::{invalidates, MemoryAdapter, QueryCache, Static, TagSchema, Wild};

#[derive(TagSchema)]
struct PostTags {
    comments: Wild,
    settings: Static,
}

#[derive(TagSchema)]
struct AppTags {
    posts: Wild<PostTags>,
    global: Static,
}

#[derive(Clone)]
struct Blog {
    cache: QueryCache<AppTags>,
}


#[derive(Debug)]
struct DbError;

impl Blog {
    #[invalidates(tags = [t.posts(id)])]
    async fn rename(&self, id: u64) -> Result<(), DbError> {
        let _ = id;
        Ok(())
    }
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
