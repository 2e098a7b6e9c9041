//! The synchronous hit path: a fresh entry in a store that answers at once
//! is served with no future, no allocation and no tag built.

use std::cell::RefCell;

use super::look::Look;
use super::{Cacheable, Primitives};
use crate::codec::Codec;
use crate::key::{KeyError, KeyParts};
use crate::observer::EventKind;

thread_local! {
    /// Where hit-path keys are built: no allocation per call.
    static SCRATCH: RefCell<KeyParts> = RefCell::new(KeyParts::default());
}

/// What the synchronous first look of a typed query found.
pub(crate) enum First<T> {
    /// A fresh hit.
    Hit(T),
    /// Not a hit: the key, to take the full path with.
    Miss(String),
    /// The key could not be built.
    NoKey,
}

impl<C: Codec> Primitives<C> {
    /// A fresh value for `key`, if the store answers at once and holds one
    /// that no marker invalidates. `None` sends the caller down the full
    /// path (which also covers sampled verification, grace and every slower
    /// case).
    #[inline]
    pub(crate) fn hit_now<T: Cacheable>(&self, key: &str) -> Option<T> {
        if self.inner.verify {
            return None;
        }
        let now = self.inner.settings.clock.now_ms();
        let (read, newest) = self.look_now(key, now)?.ok()?;
        match self.classify::<T>(read.entry, newest, now) {
            Look::Fresh(_, value) => {
                self.emit(EventKind::Hit, key, None);
                Some(value)
            }
            _ => None,
        }
    }

    /// Builds a key into a reused thread-local buffer with `build` (which
    /// says whether it could), then tries [`hit_now`](Self::hit_now) with it
    /// if `try_hit`. Only a miss allocates its key.
    pub(crate) fn first_look<T: Cacheable>(
        &self,
        try_hit: bool,
        build: impl FnOnce(&mut KeyParts) -> bool,
    ) -> First<T> {
        SCRATCH.with(|scratch| {
            let mut fresh = KeyParts::default();
            // Re-entered (a key built while building a key): use a fresh one.
            let mut borrowed = scratch.try_borrow_mut();
            let parts: &mut KeyParts = match &mut borrowed {
                Ok(scratch) => scratch,
                Err(_) => &mut fresh,
            };
            if !build(parts) {
                return First::NoKey;
            }
            if try_hit {
                if let Some(value) = self.hit_now(&parts.text) {
                    return First::Hit(value);
                }
            }
            First::Miss(parts.text.clone())
        })
    }

    /// A call whose key could not be built runs uncached: said every time.
    pub(crate) fn uncached(&self, label: &str, error: &KeyError) {
        tracing::warn!(
            target: "t87s",
            query = label,
            error = %error,
            "a #[cached] call ran uncached: its key could not be built"
        );
        self.emit(EventKind::Uncached, label, Some(error));
    }
}
