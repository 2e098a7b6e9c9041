//! What a read of the store means: the one place that decides whether an
//! entry is fresh, graced, invalidated, dead, missing or undecodable.
//!
//! Every path that reads an entry (the synchronous hit path, the query
//! path, `get`, the leader's last look before fetching, the wait on another
//! process's lease) reads through [`Primitives::look`] and decides through
//! [`Primitives::classify`].

use std::sync::Arc;

use super::{Cacheable, Primitives};
use crate::codec::{Codec, CodecError};
use crate::entry::StoredEntry;
use crate::error::AdapterError;
use crate::observer::EventKind;
use crate::storage::InPlace;
use crate::storage::{MarkerSet, Read};
use crate::tag::TagPath;

/// What a read found, once freshness is decided.
pub(crate) enum Look<T> {
    /// Within its TTL, not invalidated: serve it.
    Fresh(Arc<StoredEntry>, T),
    /// Past its TTL, within grace, not invalidated: serve it, refresh it.
    Graced(Arc<StoredEntry>, T),
    /// A marker of its tags is as new as its fetch: fetch again (the entry
    /// is the fail-safe candidate if the fetch fails).
    Invalidated(Arc<StoredEntry>),
    /// Past its grace (or its TTL, without grace).
    Dead,
    /// Nothing under the key.
    Missing,
    /// Bytes that are not a value of the requested type.
    Undecodable(CodecError),
}

/// A read, and the newest invalidation marker that applies to its entry.
pub(crate) type Seen = (Read, u64);

/// Where an entry stands in time and against the newest marker of its tags.
enum State {
    /// Past its grace (or its TTL, without grace).
    Dead,
    /// A marker of its tags is as new as its fetch.
    Invalidated,
    /// Within its TTL.
    Fresh,
    /// Past its TTL, within its grace.
    Graced,
}

/// The one rule of freshness. Time first: an entry past its grace is dead
/// whatever its markers say.
#[inline(always)]
fn state(entry: &StoredEntry, newest: u64, now: u64) -> State {
    if entry.live_until() <= now {
        State::Dead
    } else if newest >= entry.version {
        State::Invalidated
    } else if now < entry.expires_at {
        State::Fresh
    } else {
        State::Graced
    }
}

impl<C: Codec> Primitives<C> {
    /// Decides what `entry` is at `now`, given the newest marker of its tags.
    /// Time first: an entry past its grace is dead whatever its markers say.
    #[inline(always)]
    pub(crate) fn classify<T: Cacheable>(
        &self,
        entry: Option<Arc<StoredEntry>>,
        newest: u64,
        now: u64,
    ) -> Look<T> {
        let Some(stored) = entry else {
            return Look::Missing;
        };
        let fresh = match state(&stored, newest, now) {
            State::Dead => return Look::Dead,
            State::Invalidated => return Look::Invalidated(stored),
            State::Fresh => true,
            State::Graced => false,
        };
        match self.value_of::<T>(&stored) {
            Err(error) => Look::Undecodable(error),
            Ok(value) if fresh => Look::Fresh(stored, value),
            Ok(value) => Look::Graced(stored, value),
        }
    }

    /// The value of an entry read in place and the kind of hit it is, if it
    /// is fresh:
    /// [`classify`](Self::classify)'s `Fresh`, decided on the entry where it
    /// lies (its markers read first if something was invalidated since it
    /// was fetched or last checked).
    #[inline(always)]
    pub(crate) fn fresh_in_place<T: Cacheable>(
        &self,
        read: InPlace<'_>,
        now: u64,
    ) -> Option<(T, EventKind)> {
        let entry = read.entry;
        let newest = if entry.must_check(read.version) {
            // Held in place, the entry cannot be replaced while its markers
            // are read.
            let newest = read.newest(self.unchecked_markers(entry));
            entry.checked(newest, read.version);
            newest
        } else {
            read.floor
        };
        match state(entry, newest, now) {
            State::Fresh => Some((self.value_of::<T>(entry).ok()?, self.hit_kind(entry))),
            _ => None,
        }
    }

    /// The markers of `entry`'s tags that could make it stale: every marker
    /// older than its fetch, or than its last clean check, is known not to.
    #[inline]
    fn unchecked_markers<'a>(&'a self, entry: &'a StoredEntry) -> MarkerSet<'a> {
        self.markers(&entry.tags)
            .since(entry.version.max(entry.checked_at.get()))
    }

    /// Reads `key` with no I/O, if the store can (an in-process store).
    #[inline(always)]
    pub(crate) fn look_now(&self, key: &str, now: u64) -> Option<Result<Seen, AdapterError>> {
        let key = self.key(key);
        match &self.inner.settings.memory {
            Some(memory) => {
                self.look_now_by(|markers| Some(Ok(memory.read_text(key, markers, now))))
            }
            None => {
                let adapter = &self.inner.settings.adapter;
                self.look_now_by(|markers| adapter.try_read_now(key, markers, now))
            }
        }
    }

    /// A read with no I/O through `read` (which reads one key with the given
    /// markers, or answers `None` when it cannot without I/O).
    ///
    /// The entry is read first. Unless something was invalidated since its
    /// fetch began (or since it was last checked), no marker can be as new
    /// as it and none is read; otherwise its own tags' markers are, and a
    /// clean check is remembered on the entry.
    #[inline(always)]
    fn look_now_by(
        &self,
        read: impl Fn(MarkerSet<'_>) -> Option<Result<Read, AdapterError>>,
    ) -> Option<Result<Seen, AdapterError>> {
        // One call of `read` in the loop (so it is inlined): first the entry
        // alone, then, if it must be checked, with its markers.
        let mut checking: Option<Arc<StoredEntry>> = None;
        loop {
            let markers = match &checking {
                None => MarkerSet::empty(),
                Some(entry) => self.unchecked_markers(entry),
            };
            let read = match read(markers)? {
                Ok(read) => read,
                Err(error) => return Some(Err(error)),
            };
            let Some(entry) = checking.take() else {
                match &read.entry {
                    Some(e) if e.must_check(read.version) => {
                        checking = Some(Arc::clone(e));
                        continue;
                    }
                    _ => {
                        let newest = read.newest_marker;
                        return Some(Ok((read, newest)));
                    }
                }
            };
            if !read.entry.as_ref().is_some_and(|e| Arc::ptr_eq(e, &entry)) {
                // Replaced between the two reads: the markers read were the
                // old entry's. Read again, the slow way.
                return None;
            }
            entry.checked(read.newest_marker, read.version);
            let newest = read.newest_marker;
            return Some(Ok((read, newest)));
        }
    }

    /// Reads `key` and the markers that decide it. `tags` are the query's
    /// (read in the same round trip as the entry); an entry stored under
    /// other tags (or a read with none) has its own markers read after.
    pub(crate) async fn look(
        &self,
        key: &str,
        tags: Option<&[TagPath]>,
        now: u64,
    ) -> Result<Seen, AdapterError> {
        if let Some(seen) = self.look_now(key, now) {
            return seen;
        }
        self.look_async(key, tags, now, false).await
    }

    /// [`look`](Self::look) without trying the synchronous read first.
    /// `leasing`: in the same read, take this instance's lease on fetching
    /// `key` if the entry wants a fetch (see [`Read::wants_fetch`]); the
    /// answer is in [`Read::lease`].
    pub(crate) async fn look_async(
        &self,
        key: &str,
        tags: Option<&[TagPath]>,
        now: u64,
        leasing: bool,
    ) -> Result<Seen, AdapterError> {
        let adapter = &self.inner.settings.adapter;
        let markers = tags.map_or(MarkerSet::empty(), |tags| self.markers(tags));
        let read = if leasing {
            let ask = self.lease_ask();
            adapter
                .read_leasing(self.key(key), markers, now, ask)
                .await?
        } else {
            adapter.read(self.key(key), markers, now).await?
        };
        let newest = match &read.entry {
            Some(entry)
                if entry.live_until() > now && tags.is_none_or(|tags| *entry.tags != *tags) =>
            {
                adapter.newest_marker(self.markers(&entry.tags)).await?
            }
            _ => read.newest_marker,
        };
        Ok((read, newest))
    }
}
