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

impl Blog {
    #[cached(tags = [t.posts(score)])]
    async fn post(&self, score: f64) -> Result<String, std::io::Error> {
        Ok(format!("post {score}"))
    }
}

fn main() {
    let _ = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
}
