//! Cache entries: what the engine stores and what it hands back.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::tag::TagPath;

/// A cached value with its metadata, as returned by
/// [`Primitives::query_with_entries`](crate::Primitives::query_with_entries).
///
/// Times are milliseconds since the Unix epoch, read from the engine's
/// [`Clock`](crate::Clock).
///
/// ```
/// # use std::sync::Arc;
/// let entry = t87s::CacheEntry {
///     value: "hello".to_string(),
///     tags: Arc::from(vec![t87s::TagPath::new(["greetings"])?]),
///     created_at: 1_000,
///     expires_at: 31_000,
///     grace_until: None,
///     version: 1,
/// };
/// assert!(entry.is_fresh_at(30_999));
/// assert!(!entry.is_fresh_at(31_000));
/// # Ok::<(), t87s::TagError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CacheEntry<T> {
    /// The value the fetch produced.
    pub value: T,
    /// The tags the entry was stored under.
    pub tags: Arc<[TagPath]>,
    /// When the fetch that produced the value started.
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
/// let v = t87s::StoredValue::Bytes(Arc::from(&b"\x01"[..]));
/// assert!(matches!(v, t87s::StoredValue::Bytes(_)));
/// ```
#[derive(Clone)]
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
/// ```
/// # use std::sync::Arc;
/// let stored = t87s::StoredEntry {
///     value: t87s::StoredValue::Bytes(Arc::from(&b""[..])),
///     tags: Arc::from(vec![]),
///     created_at: 0, expires_at: 10, grace_until: Some(25), version: 1,
///     value_type: t87s::value_type_of::<()>(),
///     checked_at: t87s::CheckedAt::default(),
/// };
/// assert_eq!(stored.live_until(), 25);
/// ```
#[derive(Debug, Clone)]
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
    /// A fingerprint of the value's type name ([`value_type_of`]), so bytes
    /// written for one type are never decoded as another.
    pub value_type: u64,
    /// Set by the engine when it finds the entry fresh against its markers;
    /// start with `CheckedAt::default()`.
    pub checked_at: CheckedAt,
}

/// The newest store version at which an entry was checked against its
/// invalidation markers and found fresh (`0`: never).
///
/// While the store's version has not moved past it, no invalidation has
/// happened since, and in-process stores skip the marker lookups. Clones
/// copy the current value.
///
/// ```
/// let checked = t87s::CheckedAt::default();
/// checked.raise(7);
/// checked.raise(3);
/// assert_eq!(checked.get(), 7);
/// ```
#[derive(Debug, Default)]
pub struct CheckedAt(AtomicU64);

impl CheckedAt {
    /// The version.
    ///
    /// ```
    /// assert_eq!(t87s::CheckedAt::default().get(), 0);
    /// ```
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Raises it to `version` (never lowers it).
    ///
    /// ```
    /// let c = t87s::CheckedAt::default();
    /// c.raise(4);
    /// assert_eq!(c.get(), 4);
    /// ```
    pub fn raise(&self, version: u64) {
        self.0.fetch_max(version, Ordering::AcqRel);
    }
}

impl Clone for CheckedAt {
    fn clone(&self) -> Self {
        Self(AtomicU64::new(self.get()))
    }
}

/// The fingerprint stored in [`StoredEntry::value_type`]: a 64-bit FNV-1a hash
/// of `std::any::type_name::<T>()`, stable across processes built from the
/// same source.
///
/// ```
/// assert_eq!(t87s::value_type_of::<String>(), t87s::value_type_of::<String>());
/// assert_ne!(t87s::value_type_of::<String>(), t87s::value_type_of::<Vec<u64>>());
/// ```
pub fn value_type_of<T: ?Sized>() -> u64 {
    std::any::type_name::<T>()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

impl StoredEntry {
    /// The last millisecond (exclusive) at which the entry can be served at
    /// all: `grace_until`, or `expires_at` without grace. Past it the entry is
    /// dead, and adapters need not read its invalidation markers.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let e = t87s::StoredEntry { value: t87s::StoredValue::Bytes(Arc::from(&b""[..])), tags: Arc::from(vec![]), created_at: 0, expires_at: 10, grace_until: None, version: 1, value_type: 0, checked_at: Default::default() };
    /// assert_eq!(e.live_until(), 10);
    /// ```
    pub fn live_until(&self) -> u64 {
        self.grace_until.unwrap_or(self.expires_at)
    }

    /// How long the entry can live, from `created_at` to [`Self::live_until`].
    ///
    /// ```
    /// # use std::sync::Arc;
    /// let e = t87s::StoredEntry { value: t87s::StoredValue::Bytes(Arc::from(&b""[..])), tags: Arc::from(vec![]), created_at: 5, expires_at: 10, grace_until: Some(30), version: 1, value_type: 0, checked_at: Default::default() };
    /// assert_eq!(e.lifetime_ms(), 25);
    /// ```
    pub fn lifetime_ms(&self) -> u64 {
        self.live_until().saturating_sub(self.created_at)
    }
}
