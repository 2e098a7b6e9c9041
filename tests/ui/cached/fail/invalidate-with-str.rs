use t87s::{MemoryAdapter, QueryCache, Static, TagSchema, Wild};

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

async fn write(blog: &Blog) -> Result<(), t87s::Error> {
    blog.cache.invalidate("posts/1").await
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
