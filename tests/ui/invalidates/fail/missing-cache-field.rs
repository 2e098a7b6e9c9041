//! `#[invalidates]` with a struct whose `QueryCache` field is not called `cache`.
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


#[derive(Clone)]
struct Shop {
    store: QueryCache<AppTags>,
}

impl Shop {
    #[invalidates(tags = [t.posts(id)])]
    async fn rename(&self, id: u64) -> Result<(), t87s::Error> {
        let _ = id;
        Ok(())
    }
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
