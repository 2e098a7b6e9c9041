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

impl Blog {
    #[invalidates(tags = [exact(t.posts())])]
    async fn rename(&self, id: u64) -> Result<(), t87s::Error> {
        let _ = id;
        Ok(())
    }
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
