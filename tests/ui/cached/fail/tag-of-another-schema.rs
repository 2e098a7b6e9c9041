use t87s::{cached, MemoryAdapter, QueryCache, Static, TagSchema, Wild};

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

fn other_post(id: u64) -> t87s::Tag<OtherTags> {
    OtherTags::root().posts(id)
}

impl Blog {
    #[cached(tags = [other_post(*id)])]
    async fn post(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("post {id}"))
    }
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
