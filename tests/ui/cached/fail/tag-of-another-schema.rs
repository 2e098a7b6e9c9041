//! A tag of another schema does not compile where this cache's tags go.
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

#[derive(TagSchema)]
struct OtherTags {
    posts: Wild,
}

async fn write(blog: &Blog) -> Result<(), t87s::Error> {
    // A tag of another schema, spelled alike, is not a tag of this cache.
    blog.cache.invalidate(OtherTags::root().posts(1)).await
}

fn main() {
    let blog = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
    let _ = write(&blog);
}
