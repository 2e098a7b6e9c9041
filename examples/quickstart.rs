//! The README's quickstart: typed, tag-invalidated queries on the in-memory
//! adapter. Run it with `cargo run --example quickstart`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use t87s::{
    cached, invalidates, Event, MemoryAdapter, Observer, QueryCache, Static, TagSchema, Wild,
};

// The tag schema: every node is a tag; invalidating one covers everything below it.
#[derive(TagSchema)]
struct CommentTags {
    reactions: Static,
}

#[derive(TagSchema)]
struct PostTags {
    comments: Wild<CommentTags>,
    settings: Static,
}

#[derive(TagSchema)]
struct AppTags {
    posts: Wild<PostTags>,
    users: Wild,
    global: Static,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Post {
    id: u64,
    title: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Comment {
    text: String,
}

#[derive(Debug)]
enum DbError {
    Cache(t87s::Error),
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbError::Cache(e) => write!(f, "database error: {e}"),
        }
    }
}

impl std::error::Error for DbError {}

/// `#[invalidates]` returns a failed invalidation as the method's error.
impl From<t87s::Error> for DbError {
    fn from(e: t87s::Error) -> Self {
        DbError::Cache(e)
    }
}

/// A pretend database that counts its reads.
#[derive(Clone, Default)]
struct Db {
    reads: Arc<AtomicU32>,
    title: Arc<std::sync::Mutex<String>>,
}

impl Db {
    async fn post(&self, id: u64) -> Result<Post, DbError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let title = self.title.lock().map(|t| t.clone()).unwrap_or_default();
        Ok(Post {
            id,
            title: format!("{title} (database read #{n})"),
        })
    }

    async fn rename(&self, _id: u64, title: String) -> Result<(), DbError> {
        if let Ok(mut current) = self.title.lock() {
            *current = title;
        }
        Ok(())
    }

    async fn comments(&self, post_id: u64) -> Result<Vec<Comment>, DbError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(vec![Comment {
            text: format!("first comment on post {post_id}"),
        }])
    }
}

// The named queries: a plain trait with real methods and real types.
trait Blog {
    async fn post(&self, id: u64) -> Result<Post, DbError>;
    async fn comments(&self, post_id: u64) -> Result<Vec<Comment>, DbError>;
}

#[derive(Clone)]
struct BlogCache {
    db: Db,
    cache: QueryCache<AppTags>,
}

impl Blog for BlogCache {
    #[cached(tags = [t.posts(id)], ttl = "10m", grace = "1h")]
    async fn post(&self, id: u64) -> Result<Post, DbError> {
        self.db.post(id).await
    }

    #[cached(tags = [t.posts(post_id).comments(..)])]
    async fn comments(&self, post_id: u64) -> Result<Vec<Comment>, DbError> {
        self.db.comments(post_id).await
    }
}

// Writes name what they make stale; after `Ok`, those tags are invalidated
// (in one call, in every process sharing the store) before the method returns.
impl BlogCache {
    #[invalidates(tags = [t.posts(id)])]
    async fn rename(&self, id: u64, title: String) -> Result<(), DbError> {
        self.db.rename(id, title).await
    }
}

/// Prints what the cache did, with the call's readable key.
struct Print;

impl Observer for Print {
    fn on_event(&self, event: &Event<'_>) {
        println!("    cache: {} {}", event.kind.name(), event.key);
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cache = QueryCache::builder(MemoryAdapter::new())
        .observer(Print)
        .build()?;
    let blog = BlogCache {
        db: Db::default(),
        cache,
    };
    blog.db.rename(1, "Hello".into()).await?;

    println!("post(1), first time:");
    let post: Post = blog.post(1).await?; // miss: runs the body once
    println!("    {post:?}");

    println!("post(1) again:");
    let post: Post = blog.post(1).await?; // hit
    println!("    {post:?}");

    println!("comments(1):");
    let comments: Vec<Comment> = blog.comments(1).await?;
    println!("    {comments:?}");

    println!("invalidate posts/1 (a write happened): post(1) and comments(1) are stale");
    blog.cache.invalidate(blog.cache.tags().posts(1)).await?;

    println!("post(1) after the invalidation:");
    let post: Post = blog.post(1).await?; // miss again
    println!("    {post:?}");

    println!("rename post 1 (#[invalidates]): post(1) is stale when it returns");
    blog.rename(1, "Renamed".into()).await?;
    let post: Post = blog.post(1).await?; // miss: the new title
    println!("    {post:?}");
    assert!(post.title.starts_with("Renamed"));

    println!("database reads: {}", blog.db.reads.load(Ordering::SeqCst));
    Ok(())
}
