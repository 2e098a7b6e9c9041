#![doc = include_str!("../README.md")]
//!
//! ## Modules
//!
//! - the crate root: what an application writes (the typed layer, the
//!   adapters and their builders, entries, errors, events, clocks, codecs);
//! - [`engine`]: the raw engine, [`Primitives`](engine::Primitives), with
//!   string keys and [`TagPath`](engine::TagPath)s;
//! - [`adapter`]: the seam for writing a storage adapter.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;
mod cache;
mod clock;
mod codec;
mod decoded;
mod duration;
pub mod engine;
mod entry;
mod error;
mod key;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
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
pub use schema::{IntoTag, Leaf, Mark, Static, Tag, TagId, TagSchema, Wild, WildArg};
pub use storage::{MemoryAdapter, MemoryAdapterBuilder};
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use storage::{NearCache, NearMode, NearStatus, RedisAdapter, RedisAdapterBuilder};

#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use t87s_macros::{cached, invalidates, TagSchema};
