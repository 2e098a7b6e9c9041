//! # t87s
//!
//! A declarative, tag-invalidated query cache for async Rust.
//!
//! A cached query declares what it depends on as hierarchical tags
//! (`posts/123/comments`). A write invalidates a tag, and every entry tagged
//! with it or below it is stale from that moment, in every process sharing the
//! store. No key bookkeeping, no delete lists.
//!
//! This crate is the runtime: the [`Primitives`] engine (stampede-protected
//! queries with TTL, grace / stale-while-revalidate, fail-safe and sampled
//! verification), the [`StorageAdapter`] seam and the in-process
//! [`MemoryAdapter`].
//!
//! ```
//! use t87s::{MemoryAdapter, Primitives, QueryOptions, TagPath};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = Primitives::new(MemoryAdapter::new());
//! let post_1 = TagPath::new(["posts", "1"])?;
//! let load = || async { Ok::<_, std::io::Error>(vec!["first comment".to_string()]) };
//!
//! let comments: Vec<String> = cache
//!     .query("comments:1", &[post_1.child("comments")], QueryOptions::new(), load)
//!     .await?;
//! cache.invalidate(&[post_1]).await?; // comments of post 1 are stale now
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod cache;
mod clock;
mod codec;
mod duration;
mod engine;
mod entry;
mod error;
mod observer;
mod schema;
mod storage;
mod tag;

pub use cache::{entries, Invalidation, QueryCache, QueryCacheBuilder};
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Codec, CodecError, Postcard};
pub use duration::{parse_duration, DurationError, IntoDuration};
pub use engine::{Cacheable, OnRefresh, Primitives, PrimitivesBuilder, QueryOptions, SetOptions};
pub use entry::{value_type_of, CacheEntry, Entries, StoredEntry, StoredValue};
pub use error::{AdapterError, ConfigError, Error};
pub use observer::{Event, EventKind, Observer};
pub use schema::{IntoTag, Leaf, Static, Tag, TagId, TagSchema, Wild, WildArg};
pub use storage::{
    AdapterFuture, EntryKey, MarkerKey, MarkerScope, MarkerSet, MemoryAdapter,
    MemoryAdapterBuilder, Read, StorageAdapter, ValueForm, VerificationReport,
};
pub use tag::{TagError, TagPath};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use t87s_macros::{cached, TagSchema};
