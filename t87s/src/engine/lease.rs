//! The cross-process lease on fetching a key, for stores shared by several
//! processes: one process fetches, the others wait for its value.
//!
//! The lease belongs to the cache instance (one token), not to a caller:
//! callers of one instance coalesce in its flights, so whichever of them
//! leads may use a lease another one's read took. While the fetch runs the
//! lease is extended, so the others wait exactly as long as the holder lives
//! and take over within one lease timeout of its death.

use std::future::Future;
use std::time::Duration;

use super::look::Look;
use super::{Cacheable, Primitives, Served};
use crate::clock::millis;
use crate::codec::Codec;
use crate::observer::EventKind;
use crate::storage::{Lease, LeaseAsk};
use crate::tag::TagPath;

/// How waiting on another process's lease ended.
pub(crate) enum Waited<T> {
    /// It stored a fresh value.
    Served(Served<T>),
    /// Fetch here, under this lease, stamping the value with the version
    /// read with it (when that read could be had).
    Lease(Lease, Option<u64>),
}

impl<C: Codec> Primitives<C> {
    /// This instance's lease request.
    pub(crate) fn lease_ask(&self) -> LeaseAsk {
        LeaseAsk::new(
            self.inner.lease_token,
            millis(self.inner.settings.lease_timeout),
        )
    }

    /// Takes the store's cross-process lease on fetching `key`.
    pub(crate) async fn lease(&self, key: &str) -> Lease {
        let adapter = &self.inner.settings.adapter;
        match adapter.lease(self.key(key), self.lease_ask()).await {
            Ok(lease) => lease,
            Err(error) => {
                self.emit(EventKind::AdapterError, key, Some(&error));
                Lease::Unsupported
            }
        }
    }

    /// Releases a lease this process took (and reports a store fault).
    pub(crate) async fn release(&self, key: &str, lease: Lease) {
        if lease == Lease::Acquired {
            let adapter = &self.inner.settings.adapter;
            let released = adapter.release(self.key(key), self.inner.lease_token).await;
            if let Err(error) = released {
                self.emit(EventKind::AdapterError, key, Some(&error));
            }
        }
    }

    /// Runs `fetch` under `lease`, extending the lease every third of its
    /// timeout until the fetch is done.
    pub(crate) async fn holding<F: Future>(&self, key: &str, lease: Lease, fetch: F) -> F::Output {
        if lease != Lease::Acquired {
            return fetch.await;
        }
        let period = (self.inner.settings.lease_timeout / 3).max(Duration::from_millis(1));
        let mut fetch = std::pin::pin!(fetch);
        loop {
            // The fetch is polled first, then the timer (as `select!` with `biased`).
            match tokio::time::timeout(period, &mut fetch).await {
                Ok(output) => return output,
                Err(_elapsed) => {
                    let adapter = &self.inner.settings.adapter;
                    let extended = adapter.extend_lease(self.key(key), self.lease_ask()).await;
                    if let Err(error) = extended {
                        self.emit(EventKind::AdapterError, key, Some(&error));
                    }
                }
            }
        }
    }

    /// Another process holds the lease: poll for the value it will store for
    /// as long as it holds the lease (its holder extends it while it lives).
    /// Takes the lease when it frees up without a value (the holder failed
    /// or died); each poll is one read that also asks for the lease.
    pub(crate) async fn await_other_process<T: Cacheable>(
        &self,
        key: &str,
        tags: &[TagPath],
    ) -> Waited<T> {
        let mut pause = Duration::from_millis(2);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            let now = self.inner.settings.clock.now_ms();
            let Ok((read, newest)) = self.look_async(key, Some(tags), now, true).await else {
                return Waited::Lease(Lease::Unsupported, None);
            };
            let (lease, version) = (read.lease, read.version);
            if let Look::Fresh(stored, value) = self.classify::<T>(read.entry, newest, now) {
                self.emit(EventKind::Coalesced, key, None);
                return Waited::Served(Served {
                    value,
                    before: None,
                    after: stored,
                });
            }
            match lease {
                Some(Lease::Held) => {}
                Some(lease) => {
                    if lease == Lease::Acquired {
                        tracing::info!(
                            target: "t87s",
                            key,
                            "took over the fetch lease: its holder let it go without storing a value (it failed or died)"
                        );
                    }
                    return Waited::Lease(lease, Some(version));
                }
                // The store saw a fresh entry the engine cannot use (another
                // value type): ask for the lease on its own.
                None => return Waited::Lease(self.lease(key).await, Some(version)),
            }
        }
    }
}
