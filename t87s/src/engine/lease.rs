//! The cross-process lease on fetching a key, for stores shared by several
//! processes: one process fetches, the others wait for its value.

use std::time::Duration;

use super::look::Look;
use super::{Cacheable, Primitives, Served};
use crate::clock::millis;
use crate::codec::Codec;
use crate::observer::EventKind;
use crate::storage::Lease;
use crate::tag::TagPath;

/// How waiting on another process's lease ended.
pub(crate) enum Waited<T> {
    /// It stored a fresh value.
    Served(Served<T>),
    /// Fetch here, under this lease.
    Lease(Lease),
}

impl<C: Codec> Primitives<C> {
    /// Takes the store's cross-process lease on fetching `key`.
    pub(crate) async fn lease(&self, key: &str) -> Lease {
        let ttl = millis(self.inner.settings.lease_timeout);
        match self.inner.settings.adapter.lease(self.key(key), ttl).await {
            Ok(lease) => lease,
            Err(error) => {
                self.emit(EventKind::AdapterError, key, Some(&error));
                Lease::Unsupported
            }
        }
    }

    /// Releases a lease this process took (and reports a store fault).
    pub(crate) async fn release(&self, key: &str, lease: Lease) {
        if let Lease::Acquired(token) = lease {
            let released = self
                .inner
                .settings
                .adapter
                .release(self.key(key), token)
                .await;
            if let Err(error) = released {
                self.emit(EventKind::AdapterError, key, Some(&error));
            }
        }
    }

    /// Another process holds the lease: poll for the value it will store,
    /// until the lease timeout. Takes the lease if it frees up first (its
    /// holder failed or died).
    pub(crate) async fn await_other_process<T: Cacheable>(
        &self,
        key: &str,
        tags: &[TagPath],
    ) -> Waited<T> {
        let start = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            let now = self.inner.settings.clock.now_ms();
            let Ok((read, newest)) = self.look(key, Some(tags), now).await else {
                return Waited::Lease(Lease::Unsupported);
            };
            if let Look::Fresh(stored, value) = self.classify::<T>(read.entry, newest, now) {
                self.emit(EventKind::Coalesced, key, None);
                return Waited::Served(Served {
                    value,
                    before: None,
                    after: stored,
                });
            }
            if start.elapsed() >= self.inner.settings.lease_timeout {
                return Waited::Lease(Lease::Unsupported);
            }
            match self.lease(key).await {
                Lease::Held => {}
                lease => return Waited::Lease(lease),
            }
        }
    }
}
