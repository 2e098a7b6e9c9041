//! The README's quickstart: typed, tag-invalidated queries on the in-memory
//! adapter. Run it with `cargo run --example quickstart`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use t87s::{cached, Event, MemoryAdapter, Observer, QueryCache, Static, TagSchema, Wild};

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
struct DbError;

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("database error")
    }
}

impl std::error::Error for DbError {}

/// A pretend database that counts its reads.
#[derive(Clone, Default)]
struct Db {
    reads: Arc<AtomicU32>,
}

impl Db {
    async fn post(&self, id: u64) -> Result<Post, DbError> {
        let n = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Post {
            id,
            title: format!("Hello (database read #{n})"),
        })
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

/// Prints what the cache did.
struct Print;

impl Observer for Print {
    fn on_event(&self, event: &Event<'_>) {
        println!("    cache: {}", event.kind.name());
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

    println!("database reads: {}", blog.db.reads.load(Ordering::SeqCst));
    Ok(())
}
