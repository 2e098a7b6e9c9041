//! Storing: a fetched value becomes an entry, in the form the adapter keeps.

use std::any::type_name;
use std::sync::Arc;
use std::time::Duration;

use super::{Cacheable, Primitives, QueryOptions};
use crate::clock::millis;
use crate::codec::{Codec, CodecError};
use crate::entry::{value_type_of, CheckedAt, StoredEntry, StoredValue};
use crate::error::Error;
use crate::observer::EventKind;
use crate::storage::{Lease, ValueForm};
use crate::tag::TagPath;

/// Lifetimes of one write, resolved from the options and the defaults.
#[derive(Clone, Copy)]
pub(crate) struct Lifetimes {
    ttl_ms: u64,
    grace_ms: Option<u64>,
}

impl<C: Codec> Primitives<C> {
    /// Writes a fetched value (in the adapter's form) and returns it as an
    /// in-process entry. `version` is the store's version read before the
    /// fetch began (invalidation counts from there); when it is unknown (the
    /// store could not be read) nothing is written and the entry serves only
    /// the caller's [`Entries`](crate::Entries). `produced` is when the fetch
    /// returned (TTL and grace count from there). The `lease` the fetch ran
    /// under is released with the write, in one call to the store (or on its
    /// own when nothing is written). A failed write is reported, never
    /// returned: the caller still gets its value.
    pub(crate) async fn store<T: Cacheable>(
        &self,
        key: &str,
        (tags, options): (&[TagPath], &QueryOptions<T>),
        value: T,
        version: Option<u64>,
        produced: u64,
        lease: Lease,
    ) -> Arc<StoredEntry> {
        let lifetimes = self.lifetimes(options.ttl, options.grace);
        let value = Arc::new(value);
        let object = self.object_entry(
            Arc::clone(&value),
            tags.into(),
            lifetimes,
            version.unwrap_or(0),
            produced,
        );
        if version.is_none() {
            self.release(key, lease).await;
            return object;
        }
        match self.stored_form(&object, &*value) {
            Ok(stored) => {
                let token = (lease == Lease::Acquired).then_some(self.inner.lease_token);
                let adapter = &self.inner.settings.adapter;
                let started = std::time::Instant::now();
                match adapter.write_releasing(self.key(key), stored, token).await {
                    Ok(()) => {
                        self.emit_timed(EventKind::Stored, key, started.elapsed());
                        if adapter.keeps_objects() {
                            adapter.keep_object(self.key(key), &object);
                        }
                    }
                    Err(error) => self.emit(EventKind::AdapterError, key, Some(&error)),
                }
                return object;
            }
            Err(error @ Error::ValueTooLarge { .. }) => {
                self.emit(EventKind::NotStored, key, Some(&error));
            }
            Err(error) => self.emit(EventKind::AdapterError, key, Some(&error)),
        }
        self.release(key, lease).await;
        object
    }

    pub(crate) fn lifetimes(&self, ttl: Option<Duration>, grace: Option<Duration>) -> Lifetimes {
        Lifetimes {
            ttl_ms: ttl.map_or(self.inner.settings.default_ttl_ms, millis),
            grace_ms: grace
                .map(millis)
                .or(self.inner.settings.default_grace_ms)
                .filter(|g| *g > 0),
        }
    }

    pub(crate) fn object_entry<T: Cacheable>(
        &self,
        value: Arc<T>,
        tags: Arc<[TagPath]>,
        lifetimes: Lifetimes,
        version: u64,
        created_at: u64,
    ) -> Arc<StoredEntry> {
        let expires_at = created_at.saturating_add(lifetimes.ttl_ms);
        Arc::new(StoredEntry {
            value: StoredValue::Object(value),
            tags,
            created_at,
            expires_at,
            grace_until: lifetimes.grace_ms.map(|g| expires_at.saturating_add(g)),
            version,
            value_type: value_type_of::<T>(),
            checked_at: CheckedAt::default(),
        })
    }

    /// The entry as the adapter keeps it: the same `Arc` for object stores,
    /// a copy holding the codec's bytes of `value` for byte stores. Refuses
    /// values whose encoding is over `max_value_bytes`.
    pub(crate) fn stored_form<T: Cacheable>(
        &self,
        object: &Arc<StoredEntry>,
        value: &T,
    ) -> Result<Arc<StoredEntry>, Error> {
        let settings = &self.inner.settings;
        let check = |size: usize| match settings.max_value_bytes {
            Some(limit) if size > limit => Err(Error::ValueTooLarge { size, limit }),
            _ => Ok(()),
        };
        match settings.adapter.value_form() {
            ValueForm::Object => {
                if settings.max_value_bytes.is_some() {
                    check(settings.codec.encode(value)?.len())?;
                }
                Ok(Arc::clone(object))
            }
            ValueForm::Bytes => {
                let bytes = settings.codec.encode(value)?;
                check(bytes.len())?;
                Ok(Arc::new(StoredEntry {
                    value: StoredValue::Bytes(bytes.into()),
                    checked_at: CheckedAt::default(),
                    ..StoredEntry::clone(object)
                }))
            }
        }
    }

    /// Hands a store with a near copy the entry it just served from bytes,
    /// as an object holding `value` (see [`StorageAdapter::keep_object`]).
    ///
    /// [`StorageAdapter::keep_object`]: crate::adapter::StorageAdapter::keep_object
    #[inline]
    pub(crate) fn keep_decoded<T: Cacheable>(&self, key: &str, stored: &StoredEntry, value: &T) {
        let adapter = &self.inner.settings.adapter;
        if !matches!(stored.value, StoredValue::Bytes(_)) || !adapter.keeps_objects() {
            return;
        }
        let object = Arc::new(StoredEntry {
            value: StoredValue::Object(Arc::new(value.clone())),
            checked_at: CheckedAt::default(),
            ..StoredEntry::clone(stored)
        });
        adapter.keep_object(self.key(key), &object);
    }

    /// The value of an entry, as `T`: a clone of an object, or decoded bytes
    /// (see [`decode`](Self::decode)).
    #[inline(always)]
    pub(crate) fn value_of<T: Cacheable>(&self, stored: &StoredEntry) -> Result<T, CodecError> {
        let other_type = || {
            CodecError::Decode(format!(
                "the entry holds a value of another type than `{}`",
                type_name::<T>()
            ))
        };
        match &stored.value {
            StoredValue::Object(any) => any.downcast_ref::<T>().cloned().ok_or_else(other_type),
            StoredValue::Bytes(_) if stored.value_type != value_type_of::<T>() => Err(other_type()),
            StoredValue::Bytes(bytes) => self.decode(bytes),
        }
    }

    /// The value of an entry a byte store read, as `T`: a clone of the value
    /// this thread decoded from the same bytes, when it keeps one (see
    /// [`decoded`](crate::decoded)), or the bytes decoded. Out of line, so
    /// that the hit path of a store keeping objects stays as small as it was
    /// (inlined, it cost the memory `#[cached]` and `query` hits 18 and 31
    /// instructions by moving what LLVM inlined around it).
    #[inline(never)]
    fn decode<T: Cacheable>(&self, bytes: &Arc<[u8]>) -> Result<T, CodecError> {
        let keep = || Arc::clone(bytes);
        crate::decoded::value(self.inner.decoder, bytes, keep, |bytes| {
            self.inner.settings.codec.decode(bytes)
        })
    }
}
