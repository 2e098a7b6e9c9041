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

#[derive(Clone)]
struct Scoped {
    cache: QueryCache<AppTags>,
    tenant: u64,
}

impl Scoped {
    #[cached(tags = [t.posts(self.tenant)])]
    async fn post(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("post {id}"))
    }
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
