//! `cache = field` naming a field that is not a `QueryCache`.
use t87s::{cached, invalidates, MemoryAdapter, QueryCache, TagSchema, Wild};

#[derive(TagSchema)]
struct AppTags {
    posts: Wild,
}

#[derive(Clone)]
struct Shop {
    name: String,
    store: QueryCache<AppTags>,
}

impl Shop {
    #[cached(tags = [t.posts(id)], cache = name)]
    async fn post(&self, id: u64) -> Result<String, std::io::Error> {
        Ok(format!("post {id}"))
    }

    #[invalidates(tags = [t.posts(id)], cache = name)]
    async fn rename(&self, id: u64) -> Result<(), t87s::Error> {
        let _ = id;
        Ok(())
    }
}

fn main() {
    let _ = Shop { name: String::new(), store: QueryCache::new(MemoryAdapter::new()) };
}
