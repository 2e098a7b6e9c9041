use t87s::{cached, MemoryAdapter, QueryCache, Static, TagSchema, Wild};

#[derive(TagSchema)]
struct PostTags {
    comments: Wild,
    settings: Static,
}

#[derive(TagSchema)]
struct AppTags {
    posts: Wild<PostTags>,
    users: Wild,
    global: Static,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Post {
    id: u64,
}

trait Blog {
    async fn post(&self, id: u64) -> Result<Post, std::io::Error>;
    async fn comments(&self, post_id: u64) -> Result<Vec<String>, std::io::Error>;
}

#[derive(Clone)]
struct BlogCache {
    cache: QueryCache<AppTags>,
}

impl Blog for BlogCache {
    #[cached(tags = [t.posts(id)], ttl = "10m", grace = "1h")]
    async fn post(&self, id: u64) -> Result<Post, std::io::Error> {
        Ok(Post { id })
    }

    #[cached(tags = [t.posts(post_id).comments(..)])]
    async fn comments(&self, post_id: u64) -> Result<Vec<String>, std::io::Error> {
        Ok(vec![format!("first comment on {post_id}")])
    }
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let blog = BlogCache { cache: QueryCache::new(MemoryAdapter::new()) };
    let future = blog.post(1);
    assert_send(&future);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let post: Post = rt.block_on(future).unwrap();
    assert_eq!(post, Post { id: 1 });
}
