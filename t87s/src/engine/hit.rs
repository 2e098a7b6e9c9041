//! The synchronous hit path: a fresh entry in a store that answers at once
//! is served with no future, no allocation and no tag built.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::look::Look;
use super::{Cacheable, Primitives};
use crate::codec::Codec;
use crate::key::{KeyError, KeyName, KeyParts, KeyProbe};
use crate::observer::EventKind;
use crate::storage::{EntryKey, InPlace, MemoryAdapter};

thread_local! {
    /// Where hit-path keys are built: no allocation per call.
    static SCRATCH: RefCell<KeyParts> = RefCell::new(KeyParts::default());
}

/// Entries this process holds, read in place by the hit path: the memory
/// store, or a Redis adapter's near copy (each by its own rules).
trait Local {
    fn text_in_place<R>(
        &self,
        key: EntryKey<'_>,
        now: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R>;

    fn probe_in_place<R>(
        &self,
        prefix: &str,
        probe: &KeyProbe<'_>,
        now: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R>;
}

impl Local for MemoryAdapter {
    #[inline(always)]
    fn text_in_place<R>(
        &self,
        key: EntryKey<'_>,
        _: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        MemoryAdapter::text_in_place(self, key, f)
    }

    #[inline(always)]
    fn probe_in_place<R>(
        &self,
        prefix: &str,
        probe: &KeyProbe<'_>,
        _: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        MemoryAdapter::probe_in_place(self, prefix, probe, f)
    }
}

#[cfg(feature = "redis")]
impl Local for crate::storage::NearCopy {
    #[inline(always)]
    fn text_in_place<R>(
        &self,
        key: EntryKey<'_>,
        now: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        self.read_in_place(key, now, f)
    }

    #[inline(always)]
    fn probe_in_place<R>(
        &self,
        prefix: &str,
        probe: &KeyProbe<'_>,
        now: u64,
        f: impl FnOnce(InPlace<'_>) -> R,
    ) -> Option<R> {
        crate::storage::NearCopy::probe_in_place(self, prefix, probe, now, f)
    }
}

/// A query's future that looks for a hit when first polled (never before:
/// an invalidation that returns between creating the future and polling it
/// is seen), answering it with no state machine of its own; the rest of the
/// query (`miss`) is boxed only when there is no hit.
pub(crate) struct FirstPoll<H, M, R> {
    hit: Option<H>,
    miss: Option<M>,
    rest: Option<Pin<Box<R>>>,
}

impl<H, M, R> FirstPoll<H, M, R> {
    /// `hit` answers at once or not at all; `miss` makes the rest.
    pub(crate) fn new(hit: H, miss: M) -> Self {
        Self {
            hit: Some(hit),
            miss: Some(miss),
            rest: None,
        }
    }
}

// Nothing in it is pinned in place: the closures are moved out when called,
// and the rest is boxed.
impl<H, M, R> Unpin for FirstPoll<H, M, R> {}

impl<T, E, H, M, R> Future for FirstPoll<H, M, R>
where
    H: FnOnce() -> Option<T>,
    M: FnOnce() -> R,
    R: Future<Output = Result<T, E>>,
{
    type Output = Result<T, E>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(hit) = this.hit.take() {
            if let Some(value) = hit() {
                return Poll::Ready(Ok(value));
            }
            this.rest = this.miss.take().map(|miss| Box::pin(miss()));
        }
        match &mut this.rest {
            Some(rest) => rest.as_mut().poll(cx),
            // Polled again after it answered: it never answers twice.
            None => Poll::Pending,
        }
    }
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
        if let Some(memory) = &settings.memory {
            return self.hit_text(memory, key, now);
        }
        #[cfg(feature = "redis")]
        if let Some(near) = &settings.near_copy {
            return self.hit_text(near, key, now);
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

    /// [`hit_now`](Self::hit_now) in entries this process holds, read in
    /// place.
    #[inline(always)]
    fn hit_text<T: Cacheable>(&self, local: &impl Local, key: &str, now: u64) -> Option<T> {
        let look = local.text_in_place(self.key(key), now, |read| self.fresh_in_place(read, now));
        let (value, kind) = look??;
        if self.listening() {
            self.emit(kind, key, None);
        } else {
            self.count_hit(kind, key);
        }
        Some(value)
    }

    /// The first look of a typed call whose key is `name`'s head, the
    /// arguments `args` appends (saying whether it could), and `name`'s tail
    /// (see [`KeyParts::finish`]), built in a reused thread-local buffer; tries a
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
        name: &'static KeyName,
        mut args: impl FnMut(&mut KeyParts) -> bool,
    ) -> First<T> {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut parts) => self.look_in(&mut parts, try_hit, name, &mut args),
            // Re-entered (a key built while building a key): fresh parts.
            Err(_) => self.look_in_fresh(try_hit, name, &mut args),
        })
    }

    /// [`first_look`](Self::first_look) in parts of its own, out of line:
    /// only a key built while building another takes it.
    #[cold]
    #[inline(never)]
    fn look_in_fresh<T: Cacheable>(
        &self,
        try_hit: bool,
        name: &'static KeyName,
        args: &mut impl FnMut(&mut KeyParts) -> bool,
    ) -> First<T> {
        self.look_in(&mut KeyParts::default(), try_hit, name, args)
    }

    /// [`first_look`](Self::first_look) with the key built in `parts`.
    #[inline(always)]
    fn look_in<T: Cacheable>(
        &self,
        parts: &mut KeyParts,
        try_hit: bool,
        name: &'static KeyName,
        args: &mut impl FnMut(&mut KeyParts) -> bool,
    ) -> First<T> {
        let settings = &self.inner.settings;
        let probed = if try_hit && !self.inner.verify {
            match &settings.memory {
                Some(memory) => Some(self.probe_hit::<T>(memory, parts, name, args)),
                #[cfg(feature = "redis")]
                None => (settings.near_copy.as_ref())
                    .map(|near| self.probe_hit::<T>(near, parts, name, args)),
                #[cfg(not(feature = "redis"))]
                None => None,
            }
        } else {
            None
        };
        match probed {
            Some(Some(first)) => return first,
            Some(None) => {
                if !text(parts, name, args) {
                    return First::NoKey;
                }
            }
            None => {
                if !text(parts, name, args) {
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
    }

    /// [`first_look`](Self::first_look) in entries this process holds: the
    /// hit looked up by the arguments' canonical bytes (its key's text built
    /// only if someone listens to it). `None`: not a hit, the text is to be
    /// built.
    #[inline(always)]
    fn probe_hit<T: Cacheable>(
        &self,
        local: &impl Local,
        parts: &mut KeyParts,
        name: &'static KeyName,
        args: &mut impl FnMut(&mut KeyParts) -> bool,
    ) -> Option<First<T>> {
        parts.begin_silent();
        if !args(parts) {
            return Some(First::NoKey);
        }
        let probe = parts.probe(name);
        let now = self.inner.settings.clock.now_ms();
        let prefix = &*self.inner.settings.prefix;
        let look = local.probe_in_place(prefix, &probe, now, |read| {
            self.fresh_in_place::<T>(read, now)
        });
        let (value, kind) = look??;
        if !self.listening() {
            self.count_hit(kind, name.head());
        } else if text(parts, name, args) {
            self.emit(kind, &parts.text, None);
        }
        Some(First::Hit(value))
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
    name: &KeyName,
    args: &mut impl FnMut(&mut KeyParts) -> bool,
) -> bool {
    parts.begin(name.head());
    let built = args(parts);
    if built {
        parts.finish(name.tail());
    }
    built
}
