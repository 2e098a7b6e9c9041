//! Shared fixtures for the benches: the value and schema every group uses.

use serde::{Deserialize, Serialize};
use t87s::{cached, QueryCache, Static, TagSchema, Wild};

/// A 256-byte payload, the size the SPEC's reference numbers use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload(pub Vec<u8>);

impl Payload {
    /// 256 bytes once encoded (the length prefix is two bytes).
    pub fn new() -> Self {
        Self(vec![7u8; 254])
    }
}

impl Default for Payload {
    fn default() -> Self {
        Self::new()
    }
}

/// `posts/<id>/comments/<id>/reactions`: a depth-5 tag, 5 prefix markers + 1 exact.
#[derive(TagSchema)]
pub struct CommentTags {
    /// Leaf.
    pub reactions: Static,
}

/// Posts.
#[derive(TagSchema)]
pub struct PostTags {
    /// Comments of a post.
    pub comments: Wild<CommentTags>,
}

/// The root schema.
#[derive(TagSchema)]
pub struct AppTags {
    /// Posts.
    pub posts: Wild<PostTags>,
}

/// `REDIS_URL` or the local default.
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A service with one `#[cached]` query, on any store.
#[derive(Clone)]
pub struct Blog {
    /// Its cache.
    pub cache: QueryCache<AppTags>,
}

impl Blog {
    /// A post: always the same payload (a hit never runs it).
    #[cached(tags = [t.posts(id)], ttl = "1h")]
    pub async fn post(&self, id: u64) -> Result<Payload, std::io::Error> {
        let _ = id;
        Ok(Payload::new())
    }
}
