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

/// A store whose entries this process holds, as the hit path reads them in
/// place.
#[derive(Clone, Copy)]
enum Local<'a> {
    Memory(&'a MemoryAdapter),
    #[cfg(feature = "redis")]
    Near(&'a crate::storage::NearCopy),
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
        if let Some(local) = self.local() {
            let in_place = |read: InPlace<'_>| self.fresh_in_place(read, now);
            let look = match local {
                Local::Memory(memory) => memory.text_in_place(self.key(key), in_place),
                #[cfg(feature = "redis")]
                Local::Near(near) => near.read_in_place(self.key(key), now, in_place),
            };
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

    /// [`hit_now`](Self::hit_now) in the entries this process holds, by a
    /// typed call's probe: the value and the kind of hit; the caller emits
    /// it (it has no key text yet).
    #[inline(always)]
    fn hit_probe<T: Cacheable>(
        &self,
        local: Local<'_>,
        probe: &KeyProbe<'_>,
    ) -> Option<(T, EventKind)> {
        let now = self.inner.settings.clock.now_ms();
        let prefix = &*self.inner.settings.prefix;
        let in_place = |read: InPlace<'_>| self.fresh_in_place(read, now);
        let look = match local {
            Local::Memory(memory) => memory.probe_in_place(prefix, probe, in_place),
            #[cfg(feature = "redis")]
            Local::Near(near) => near.probe_in_place(prefix, probe, now, in_place),
        };
        look?
    }

    /// The entries this process holds for its store, if it holds them: the
    /// store itself (memory), or a Redis adapter's near copy.
    #[inline(always)]
    fn local(&self) -> Option<Local<'_>> {
        let settings = &self.inner.settings;
        if let Some(memory) = &settings.memory {
            return Some(Local::Memory(memory));
        }
        #[cfg(feature = "redis")]
        if let Some(near) = &settings.near_copy {
            return Some(Local::Near(near));
        }
        None
    }

    /// The first look of a typed call whose key is `head`, the arguments
    /// `args` appends (saying whether it could), and `tail` (see
    /// [`KeyParts::finish`]), built in a reused thread-local buffer; tries a
    /// hit first if `try_hit`.
    ///
    /// On a store whose entries this process holds (the memory store, a
    /// near copy) the hit is looked up by the canonical bytes of the
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
            match self.local().filter(|_| try_hit && !self.inner.verify) {
                Some(local) => {
                    parts.begin_silent();
                    if !args(parts) {
                        return First::NoKey;
                    }
                    let hit = parts
                        .probe(head, tail)
                        .and_then(|probe| self.hit_probe::<T>(local, &probe));
                    if let Some((value, kind)) = hit {
                        if !self.listening() {
                            self.count_hit(kind, head);
                        } else if text(parts, (head, tail), &mut args) {
                            self.emit(kind, &parts.text, None);
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
