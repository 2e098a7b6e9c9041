//! # t87s
//!
//! A declarative, tag-invalidated query cache for async Rust.
//!
//! A cached query declares what it depends on as hierarchical tags
//! (`posts/123/comments`). A write invalidates a tag, and every entry tagged
//! with it or below it is stale from that moment, in every process sharing the
//! store. No key bookkeeping, no delete lists.
//!
//! - **Typed layer**: [`#[derive(TagSchema)]`](derive@TagSchema) on plain
//!   structs, [`#[cached(tags = [...])]`](cached) on the methods of a trait
//!   (or inherent) impl, [`QueryCache<Schema>`](QueryCache) to invalidate.
//!   Tags, keys and the call site are checked at compile time.
//! - **Engine**: [`Primitives`](engine::Primitives): stampede-protected queries with TTL, grace
//!   (stale-while-revalidate), fail-safe and sampled verification; raw
//!   `get`/`set`/`delete`; prefix and exact invalidation in O(1).
//! - **Stores**: the bounded in-process [`MemoryAdapter`], `RedisAdapter`
//!   (feature `redis`), and the [`adapter::StorageAdapter`] seam for others.
//!
//! ```
//! use t87s::{cached, MemoryAdapter, QueryCache, Static, TagSchema, Wild};
//!
//! #[derive(TagSchema)]
//! struct PostTags { comments: Wild, settings: Static }
//!
//! #[derive(TagSchema)]
//! struct AppTags { posts: Wild<PostTags>, global: Static }
//!
//! #[derive(Clone)]
//! struct Blog { cache: QueryCache<AppTags> }
//!
//! impl Blog {
//!     #[cached(tags = [t.posts(post_id).comments(..)], ttl = "5m")]
//!     async fn comments(&self, post_id: u64) -> Result<Vec<String>, std::io::Error> {
//!         Ok(vec![format!("first comment on {post_id}")])
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let blog = Blog { cache: QueryCache::new(MemoryAdapter::new()) };
//! let comments: Vec<String> = blog.comments(1).await?;
//! blog.cache.invalidate(blog.cache.tags().posts(1)).await?; // comments of post 1 are stale
//! # Ok(()) }
//! ```
//!
//! # Modules
//!
//! - the crate root: what an application writes (the typed layer, the
//!   adapters and their builders, entries, errors, events, clocks, codecs);
//! - [`engine`]: the raw engine, [`Primitives`](engine::Primitives), with
//!   string keys and [`TagPath`](engine::TagPath)s;
//! - [`adapter`]: the seam for writing a storage adapter.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod cache;
mod clock;
mod codec;
mod duration;
pub mod engine;
mod entry;
mod error;
mod key;
mod observer;
mod schema;
mod storage;
mod tag;

pub mod adapter {
    //! The storage seam, for adapter authors: what an adapter stores and
    //! reads, and the [`StorageAdapter`] trait the engine calls.
    //!
    //! An application only picks an adapter ([`MemoryAdapter`](crate::MemoryAdapter),
    //! `RedisAdapter`); nothing here is needed to use one.
    pub use crate::entry::{StoredEntry, StoredValue};
    pub use crate::error::AdapterError;
    pub use crate::storage::{
        AdapterFuture, EntryKey, Lease, LeaseAsk, MarkerKey, MarkerScope, MarkerSet, Read,
        StorageAdapter, ValueForm, VerificationReport,
    };
}

pub use cache::{entries, Invalidation, QueryCache, QueryCacheBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Codec, CodecError, Postcard};
pub use duration::{parse_duration, DurationError, IntoDuration};
pub use engine::Cacheable;
pub use entry::{CacheEntry, Entries};
pub use error::{AdapterError, ConfigError, Error};
pub use observer::{Event, EventKind, Observer};
pub use schema::{IntoTag, Leaf, Static, Tag, TagId, TagSchema, Wild, WildArg};
pub use storage::{MemoryAdapter, MemoryAdapterBuilder};
#[cfg(feature = "redis")]
pub use storage::{NearCache, NearMode, NearStatus, RedisAdapter, RedisAdapterBuilder};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use t87s_macros::{cached, invalidates, TagSchema};
