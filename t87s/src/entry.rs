//! Cache entries: what the engine stores and what it hands back.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde_reflection::{Tracer, TracerConfig};

use crate::tag::TagPath;

/// A cached value with its metadata, as returned by
/// [`Primitives::query_with_entries`](crate::engine::Primitives::query_with_entries).
///
/// Times are milliseconds since the Unix epoch, read from the engine's
/// [`Clock`](crate::Clock).
///
/// ```
/// # use std::sync::Arc;
/// let entry = t87s::CacheEntry {
///     value: "hello".to_string(),
///     tags: Arc::from(vec![t87s::engine::TagPath::new(["greetings"])?]),
///     created_at: 1_000,
///     expires_at: 31_000,
///     grace_until: None,
///     version: 1,
/// };
/// assert!(entry.is_fresh_at(30_999));
/// assert!(!entry.is_fresh_at(31_000));
/// # Ok::<(), t87s::engine::TagError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry<T> {
    /// The value the fetch produced.
    pub value: T,
    /// The tags the entry was stored under.
    pub tags: Arc<[TagPath]>,
    /// When the value was produced (its fetch returned). TTL and grace count
    /// from here; invalidation counts from the fetch's start (`version`).
    pub created_at: u64,
    /// When the entry stops being fresh (`created_at + ttl`).
    pub expires_at: u64,
    /// Until when a stale entry may still be served (`expires_at + grace`),
    /// or `None` without grace.
    pub grace_until: Option<u64>,
    /// The store's invalidation version taken when the fetch started: any
    /// invalidation of one of the entry's tags at or after this version makes
    /// the entry stale.
    pub version: u64,
}

impl<T> CacheEntry<T> {
    /// Whether the entry is within its TTL at `now_ms` (tags not considered).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let e = t87s::CacheEntry { value: (), tags: Arc::from(vec![]), created_at: 0, expires_at: 10, grace_until: None, version: 1 };
    /// assert!(e.is_fresh_at(9) && !e.is_fresh_at(10));
    /// ```
    pub fn is_fresh_at(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at
    }

    /// Whether the entry may still be served at `now_ms`: fresh, or within grace.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let entry = t87s::CacheEntry {
    ///     value: 1, tags: Arc::from(vec![]), created_at: 0, expires_at: 10,
    ///     grace_until: Some(20), version: 1,
    /// };
    /// assert!(entry.is_servable_at(15));
    /// assert!(!entry.is_servable_at(20));
    /// ```
    pub fn is_servable_at(&self, now_ms: u64) -> bool {
        now_ms < self.grace_until.unwrap_or(self.expires_at)
    }
}

/// The entry before and after a query, as the reference's `.entries` gives.
///
/// - miss: `before` is `None`, `after` is the new entry;
/// - hit: `before` and `after` are the same entry;
/// - refetch (expired or invalidated): `before` is the old entry, `after` the new one;
/// - stale served within grace (or fail-safe): `after` is the stale entry served.
///
/// ```
/// # use std::sync::Arc;
/// let e = t87s::CacheEntry { value: 1, tags: Arc::from(vec![]), created_at: 0, expires_at: 10, grace_until: None, version: 1 };
/// let entries = t87s::Entries { before: None, after: e };
/// assert!(entries.before.is_none());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Entries<T> {
    /// What the cache held when the query began, if it held anything usable.
    pub before: Option<CacheEntry<T>>,
    /// What the query returned.
    pub after: CacheEntry<T>,
}

/// A value as a storage adapter keeps it.
///
/// In-process adapters keep the value itself ([`StoredValue::Object`]) so a
/// hit costs a clone, not a decode; adapters that cross a process boundary
/// keep bytes from the [`Codec`](crate::Codec).
///
/// ```
/// use std::sync::Arc;
/// let v = t87s::adapter::StoredValue::Bytes(Arc::from(&b"\x01"[..]));
/// assert!(matches!(v, t87s::adapter::StoredValue::Bytes(_)));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum StoredValue {
    /// The value itself (an `Arc<T>` erased to `Any`).
    Object(Arc<dyn Any + Send + Sync>),
    /// The value encoded by the engine's codec.
    Bytes(Arc<[u8]>),
}

impl fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoredValue::Object(_) => f.write_str("Object(..)"),
            StoredValue::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
        }
    }
}

/// An entry as a storage adapter keeps it: the value in stored form plus the
/// metadata of [`CacheEntry`].
///
/// Adapters that keep bytes rebuild one with [`StoredEntry::new`] when they
/// decode what they stored; the fields are read-only to them.
///
/// ```
/// use std::sync::Arc;
/// use t87s::adapter::{StoredEntry, StoredValue};
/// let stored = StoredEntry::new(StoredValue::Bytes(Arc::from(&b"\x01"[..])), Arc::from(vec![]), 1)
///     .lifetime(0, 10, Some(25))
///     .value_type(7);
/// assert_eq!(stored.live_until(), 25);
/// assert_eq!(stored.value_type, 7);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoredEntry {
    /// The value.
    pub value: StoredValue,
    /// See [`CacheEntry::tags`].
    pub tags: Arc<[TagPath]>,
    /// See [`CacheEntry::created_at`].
    pub created_at: u64,
    /// See [`CacheEntry::expires_at`].
    pub expires_at: u64,
    /// See [`CacheEntry::grace_until`].
    pub grace_until: Option<u64>,
    /// See [`CacheEntry::version`].
    pub version: u64,
    /// A fingerprint of the value's type, so bytes written for one type are
    /// never decoded as another. Adapters store it and give it back as it was.
    pub value_type: u64,
    /// The newest store version at which the engine found the entry fresh
    /// against its markers (an engine memo, not stored).
    pub(crate) checked_at: CheckedAt,
}

/// The newest store version at which an entry was checked against its
/// invalidation markers and found fresh (`0`: never).
///
/// While the store's version has not moved past it, no invalidation has
/// happened since, and in-process stores skip the marker lookups. Clones
/// copy the current value.
#[derive(Debug, Default)]
pub(crate) struct CheckedAt(AtomicU64);

impl CheckedAt {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Raises it to `version` (never lowers it).
    pub(crate) fn raise(&self, version: u64) {
        self.0.fetch_max(version, Ordering::AcqRel);
    }
}

impl Clone for CheckedAt {
    fn clone(&self) -> Self {
        Self(AtomicU64::new(self.get()))
    }
}

/// The fingerprint stored in [`StoredEntry::value_type`]: a hash of the
/// value type's serde shape, so that a value written by one build and read
/// by another whose type changed shape (fields reordered, renamed, added,
/// removed or retyped; enum variants reordered) is a miss, never a wrong
/// value. Two builds whose types have the same shape share entries, wherever
/// the type lives.
///
/// The shape is traced once per type from its `Deserialize` impl
/// ([`serde_reflection`], the tracer serde-generate is built on: it walks a
/// type's serde data model without needing a value). A type it cannot trace
/// (a `Deserialize` that validates its input, or one built on
/// `deserialize_any`) falls back to a hash of its type name; bump the
/// method's `version` when such a type changes shape.
pub(crate) fn value_type_of<T: DeserializeOwned + 'static>() -> u64 {
    static SHAPES: OnceLock<RwLock<HashMap<TypeId, u64>>> = OnceLock::new();
    let shapes = SHAPES.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(fingerprint) = shapes.read().get(&id) {
        return *fingerprint;
    }
    let fingerprint = shape_of::<T>();
    shapes.write().insert(id, fingerprint);
    fingerprint
}

/// Traces `T`'s serde shape and hashes it (or, untraceable, its name).
fn shape_of<T: DeserializeOwned>() -> u64 {
    let traced = catch_unwind(AssertUnwindSafe(|| {
        let mut tracer = Tracer::new(TracerConfig::default());
        let (format, _) = tracer.trace_simple_type::<T>().ok()?;
        let registry = tracer.registry().ok()?;
        let (bytes, _) = crate::key::canonical(&(format, registry)).ok()?;
        Some(bytes)
    }));
    match traced {
        Ok(Some(shape)) => {
            let mut bytes = b"shape:".to_vec();
            bytes.extend_from_slice(&shape);
            xxhash_rust::xxh3::xxh3_64(&bytes)
        }
        _ => {
            tracing::debug!(
                target: "t87s",
                value_type = std::any::type_name::<T>(),
                "the value type's serde shape cannot be traced; its fingerprint is its type name"
            );
            let name = format!("name:{}", std::any::type_name::<T>());
            xxhash_rust::xxh3::xxh3_64(name.as_bytes())
        }
    }
}

impl StoredEntry {
    /// An entry holding `value` under `tags`, stamped with the store `version`
    /// its fetch started at; no lifetime yet (set it with
    /// [`lifetime`](Self::lifetime)) and type fingerprint `0`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use t87s::adapter::{StoredEntry, StoredValue};
    /// let entry = StoredEntry::new(StoredValue::Bytes(Arc::from(&b""[..])), Arc::from(vec![]), 3);
    /// assert_eq!(entry.version, 3);
    /// ```
    pub fn new(value: StoredValue, tags: Arc<[TagPath]>, version: u64) -> Self {
        Self {
            value,
            tags,
            created_at: 0,
            expires_at: 0,
            grace_until: None,
            version,
            value_type: 0,
            checked_at: CheckedAt::default(),
        }
    }

    /// Sets when the value was produced, when it stops being fresh, and
    /// until when it may be served stale (all ms since the Unix epoch).
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use t87s::adapter::{StoredEntry, StoredValue};
    /// let entry = StoredEntry::new(StoredValue::Bytes(Arc::from(&b""[..])), Arc::from(vec![]), 1)
    ///     .lifetime(1_000, 31_000, None);
    /// assert_eq!(entry.live_until(), 31_000);
    /// ```
    pub fn lifetime(mut self, created_at: u64, expires_at: u64, grace_until: Option<u64>) -> Self {
        self.created_at = created_at;
        self.expires_at = expires_at;
        self.grace_until = grace_until;
        self
    }

    /// Sets the value's type fingerprint, as the adapter stored it.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use t87s::adapter::{StoredEntry, StoredValue};
    /// let entry = StoredEntry::new(StoredValue::Bytes(Arc::from(&b""[..])), Arc::from(vec![]), 1).value_type(42);
    /// assert_eq!(entry.value_type, 42);
    /// ```
    pub fn value_type(mut self, fingerprint: u64) -> Self {
        self.value_type = fingerprint;
        self
    }

    /// The last millisecond (exclusive) at which the entry can be served at
    /// all: `grace_until`, or `expires_at` without grace. Past it the entry is
    /// dead, and adapters need not read its invalidation markers.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use t87s::adapter::{StoredEntry, StoredValue};
    /// let e = StoredEntry::new(StoredValue::Bytes(Arc::from(&b""[..])), Arc::from(vec![]), 1).lifetime(0, 10, None);
    /// assert_eq!(e.live_until(), 10);
    /// ```
    pub fn live_until(&self) -> u64 {
        self.grace_until.unwrap_or(self.expires_at)
    }

    /// How long the entry can live, from `created_at` to [`Self::live_until`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use t87s::adapter::{StoredEntry, StoredValue};
    /// let e = StoredEntry::new(StoredValue::Bytes(Arc::from(&b""[..])), Arc::from(vec![]), 1).lifetime(5, 10, Some(30));
    /// assert_eq!(e.lifetime_ms(), 25);
    /// ```
    pub fn lifetime_ms(&self) -> u64 {
        self.live_until().saturating_sub(self.created_at)
    }

    /// Whether markers must be read to decide this entry, read at the
    /// store's `version`: something was invalidated since its fetch began
    /// and since it was last checked clean. Otherwise no marker can be as
    /// new as it.
    #[inline(always)]
    pub(crate) fn must_check(&self, version: u64) -> bool {
        self.version < version && self.checked_at.get() < version
    }

    /// After its markers were read at the store's `version`, `newest` the
    /// newest of them: if none is as new as it, it is clean up to `version`,
    /// and is not checked again until something is invalidated after that.
    #[inline(always)]
    pub(crate) fn checked(&self, newest: u64, version: u64) {
        if newest < self.version {
            self.checked_at.raise(version);
        }
    }
}
