//! The synchronous hit path: a fresh entry in a store that answers at once
//! is served with no future, no allocation and no tag built.

use std::cell::RefCell;

use super::look::Look;
use super::{Cacheable, Primitives};
use crate::codec::Codec;
use crate::key::{KeyError, KeyParts, KeyProbe};
use crate::observer::EventKind;
use crate::storage::{InPlace, MemoryAdapter};

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
    #[inline(always)]
    pub(crate) fn hit_now<T: Cacheable>(&self, key: &str) -> Option<T> {
        if self.inner.verify {
            return None;
        }
        let now = self.inner.settings.clock.now_ms();
        // Entries this process holds are read in place; only another store
        // is read through its adapter.
        let settings = &self.inner.settings;
        let in_place = |read: InPlace<'_>| self.fresh_in_place(read, now);
        let look = match &settings.memory {
            Some(memory) => Some(memory.text_in_place(self.key(key), in_place)),
            #[cfg(feature = "redis")]
            None => (settings.near_copy.as_ref())
                .map(|near| near.read_in_place(self.key(key), now, in_place)),
            #[cfg(not(feature = "redis"))]
            None => None,
        };
        if let Some(look) = look {
            let (value, kind) = look??;
            if self.listening() {
                self.emit(kind, key, None);
            } else {
                self.count_hit(kind, key);
            }
            return Some(value);
        }
        let (read, newest) = self.look_now(key, now)?.ok()?;
        match self.classify::<T>(read.entry, newest, now) {
            Look::Fresh(stored, value) => {
                let kind = self.hit_kind(&stored);
                if self.listening() {
                    self.emit(kind, key, None);
                } else {
                    self.count_hit(kind, key);
                }
                Some(value)
            }
            _ => None,
        }
    }

    /// [`hit_now`](Self::hit_now) in the memory store, by a typed call's
    /// probe; the caller emits the hit (it has no key text yet).
    #[inline(always)]
    fn hit_probe<T: Cacheable>(&self, memory: &MemoryAdapter, probe: &KeyProbe<'_>) -> Option<T> {
        let now = self.inner.settings.clock.now_ms();
        let prefix = &*self.inner.settings.prefix;
        let look = memory.probe_in_place(prefix, probe, |read| self.fresh_in_place(read, now));
        look?.map(|(value, _)| value)
    }

    /// The first look of a typed call whose key is `head`, the arguments
    /// `args` appends (saying whether it could), and `tail` (see
    /// [`KeyParts::finish`]), built in a reused thread-local buffer; tries a
    /// hit first if `try_hit`.
    ///
    /// On a memory store the hit is looked up by the canonical bytes of the
    /// arguments alone ([`KeyParts::probe`]): the readable key is built only
    /// for a miss, or for a hit that someone listens to. Only a miss
    /// allocates its key.
    pub(crate) fn first_look<T: Cacheable>(
        &self,
        try_hit: bool,
        (head, tail): (&'static str, &'static str),
        mut args: impl FnMut(&mut KeyParts) -> bool,
    ) -> First<T> {
        SCRATCH.with(|scratch| {
            let mut fresh = KeyParts::default();
            // Re-entered (a key built while building a key): use a fresh one.
            let mut borrowed = scratch.try_borrow_mut();
            let parts: &mut KeyParts = match &mut borrowed {
                Ok(scratch) => scratch,
                Err(_) => &mut fresh,
            };
            let memory = self.inner.settings.memory.as_ref();
            match memory.filter(|_| try_hit && !self.inner.verify) {
                Some(memory) => {
                    parts.begin_silent();
                    if !args(parts) {
                        return First::NoKey;
                    }
                    let hit = parts
                        .probe(head, tail)
                        .and_then(|probe| self.hit_probe::<T>(memory, &probe));
                    if let Some(value) = hit {
                        if !self.listening() {
                            self.count_hit(EventKind::Hit, head);
                        } else if text(parts, (head, tail), &mut args) {
                            self.emit(EventKind::Hit, &parts.text, None);
                        }
                        return First::Hit(value);
                    }
                    if !text(parts, (head, tail), &mut args) {
                        return First::NoKey;
                    }
                }
                None => {
                    if !text(parts, (head, tail), &mut args) {
                        return First::NoKey;
                    }
                    if try_hit {
                        if let Some(value) = self.hit_now(&parts.text) {
                            return First::Hit(value);
                        }
                    }
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

/// Builds the whole key (its readable text) into `parts`: whether `args`
/// could append the arguments.
fn text(
    parts: &mut KeyParts,
    (head, tail): (&str, &str),
    args: &mut impl FnMut(&mut KeyParts) -> bool,
) -> bool {
    parts.begin(head);
    let built = args(parts);
    if built {
        parts.finish(tail);
    }
    built
}
