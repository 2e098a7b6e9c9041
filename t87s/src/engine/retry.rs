//! Invalidations that failed: the caller gets the error at once, and the
//! markers are kept and retried in the background until they land.
//!
//! - **Coalesced.** A marker waits once, however many failed calls named it;
//!   all waiting markers go in one call to the store.
//! - **Bounded.** At most [`MAX_WAITING`] markers wait; past that, and for a
//!   marker that kept failing for [`GIVE_UP_AFTER`], the cache gives up
//!   loudly: an [`EventKind::InvalidationFailed`] event and a `tracing`
//!   error (entries of the tag may be served stale until their TTL).
//! - **Paced.** The first retry goes after [`FIRST_PAUSE`], then the pause
//!   doubles to [`MAX_PAUSE`]; a marker that lands late is still correct (it
//!   is stamped with a version newer than every entry before it).
//!
//! One task retries, while anything waits; without a tokio runtime nothing
//! is retried and the failure is only logged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use super::Primitives;
use crate::codec::Codec;
use crate::observer::EventKind;
use crate::storage::MarkerScope;
use crate::tag::TagPath;

/// The most markers that wait for a retry at once.
pub(crate) const MAX_WAITING: usize = 65_536;
/// How long a marker is retried before the cache gives up on it.
pub(crate) const GIVE_UP_AFTER: Duration = Duration::from_secs(600);
/// The first pause before a retry.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between retries.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(1);

/// One marker: a tag and its scope.
pub(crate) type Mark = (TagPath, MarkerScope);

#[derive(Default)]
pub(crate) struct Retries {
    /// Each waiting marker: when it first failed, and the last failure's
    /// sequence number (a retry that began before that failure does not
    /// cover it).
    waiting: Mutex<HashMap<Mark, Waiting>>,
    sequence: AtomicU64,
    running: AtomicBool,
}

#[derive(Clone, Copy)]
struct Waiting {
    since: tokio::time::Instant,
    sequence: u64,
}

impl Retries {
    /// How many markers wait.
    pub(crate) fn len(&self) -> usize {
        self.waiting.lock().len()
    }
}

impl<C: Codec> Primitives<C> {
    /// Keeps `marks` for a retry, and starts the retrying task if none runs.
    pub(crate) fn retry_later(&self, marks: &[Mark]) {
        let retries = &self.inner.retries;
        let sequence = retries.sequence.fetch_add(1, Ordering::AcqRel) + 1;
        let now = tokio::time::Instant::now();
        let mut refused = Vec::new();
        {
            let mut waiting = retries.waiting.lock();
            for mark in marks {
                if let Some(held) = waiting.get_mut(mark) {
                    held.sequence = sequence;
                } else if waiting.len() < MAX_WAITING {
                    let since = now;
                    waiting.insert(mark.clone(), Waiting { since, sequence });
                } else {
                    refused.push(mark.clone());
                }
            }
        }
        self.give_up(&refused, "too many invalidations are waiting for a retry");
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let all: Vec<Mark> = retries.waiting.lock().drain().map(|(m, _)| m).collect();
            self.give_up(&all, "no tokio runtime to retry in");
            return;
        };
        if !retries.running.swap(true, Ordering::AcqRel) {
            // Not a counted engine task: no query waits on it.
            let this = self.clone();
            drop(runtime.spawn(async move { this.retry_until_landed().await }));
        }
    }

    /// An invalidation landed: the waiting markers it covers (those that
    /// failed before it began, `since` being the sequence then) need no
    /// retry.
    pub(crate) fn landed(&self, marks: &[Mark], since: u64) {
        let retries = &self.inner.retries;
        if retries.running.load(Ordering::Acquire) {
            let mut waiting = retries.waiting.lock();
            for mark in marks {
                if waiting.get(mark).is_some_and(|held| held.sequence <= since) {
                    waiting.remove(mark);
                }
            }
        }
    }

    /// The sequence of the last failure recorded.
    pub(crate) fn retry_sequence(&self) -> u64 {
        self.inner.retries.sequence.load(Ordering::Acquire)
    }

    async fn retry_until_landed(self) {
        let retries = &self.inner.retries;
        let mut pause = FIRST_PAUSE;
        loop {
            tokio::time::sleep(pause).await;
            let sequence = retries.sequence.load(Ordering::Acquire);
            let marks: Vec<Mark> = retries.waiting.lock().keys().cloned().collect();
            if marks.is_empty() {
                retries.running.store(false, Ordering::Release);
                // A failure queued after the look, before the flag went down.
                if retries.len() == 0 || retries.running.swap(true, Ordering::AcqRel) {
                    return;
                }
                continue;
            }
            match self.try_invalidate(&marks).await {
                Ok(()) => {
                    tracing::info!(target: "t87s", markers = marks.len(), "a failed invalidation landed on retry");
                    self.landed(&marks, sequence);
                    pause = FIRST_PAUSE;
                }
                Err(error) => {
                    tracing::warn!(target: "t87s", error = %error, markers = marks.len(), "retrying an invalidation failed");
                    let now = tokio::time::Instant::now();
                    let expired: Vec<Mark> = {
                        let mut waiting = retries.waiting.lock();
                        let expired = waiting
                            .iter()
                            .filter(|(_, held)| now.duration_since(held.since) >= GIVE_UP_AFTER)
                            .map(|(mark, _)| mark.clone())
                            .collect::<Vec<_>>();
                        for mark in &expired {
                            waiting.remove(mark);
                        }
                        expired
                    };
                    self.give_up(&expired, "it kept failing");
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    /// Gives up on `marks`, loudly.
    fn give_up(&self, marks: &[Mark], why: &str) {
        if marks.is_empty() {
            return;
        }
        let tags: Vec<&str> = marks.iter().map(|(tag, _)| tag.as_str()).collect();
        tracing::error!(
            target: "t87s",
            tags = ?tags,
            "gave up invalidating ({why}): entries of these tags may be served stale until their TTL"
        );
        let failure = super::FetchFailure(format!("gave up invalidating {tags:?}: {why}"));
        for tag in tags {
            self.emit(EventKind::InvalidationFailed, tag, Some(&failure));
        }
    }
}
