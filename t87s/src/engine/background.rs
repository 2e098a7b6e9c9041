//! Work after the caller has its answer: stale-while-revalidate refreshes
//! (one per key, backing off after a failure or a panic) and sampled
//! verifications (one per key).

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::flight::{Fresh, Outcome};
use super::share::Share;
use super::task::CatchUnwind;
use super::{Cacheable, Call, FetchFailure, Primitives, QueryOptions};
use crate::codec::Codec;
use crate::observer::EventKind;
use crate::storage::{Lease, VerificationReport};
use crate::tag::TagPath;

/// What a refresh starts from: the version read before it (its fetch is
/// stamped with it), the lease that read took (if it asked), the stale value
/// (for `on_refresh`), and how its waiters share a failure.
pub(crate) type RefreshFrom<'a, T, E> = (u64, Option<Lease>, &'a T, Share<E>);

impl<C: Codec> Primitives<C> {
    /// Starts the one background refresh of a graced key, unless one is under
    /// way or the key is backing off after a failed refresh.
    pub(crate) fn maybe_refresh<T, E, S, TG, TT, M, F, Fut>(
        &self,
        key: &str,
        options: &QueryOptions<T>,
        (version, lease, old, share): RefreshFrom<'_, T, E>,
        call: Call<S, TG, TT, M>,
        now: u64,
    ) where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        TG: Fn(&S) -> TT,
        TT: AsRef<[TagPath]>,
        M: FnOnce(S) -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // Another process holds the lease: it is refreshing this key.
        if lease == Some(Lease::Held) || self.backing_off(key, now) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let Some(guard) = self.inner.flights.try_lead(key) else {
            return;
        };
        let this = self.clone();
        let key: Box<str> = key.into();
        let (tags, fetch) = call.split();
        let tags: Arc<[TagPath]> = tags.as_ref().into();
        let span = self.work_span("refresh", &key, tags.len());
        let options = options.clone();
        let old = old.clone();
        let refresh = async move {
            // One refresh per key across processes: the lease decides.
            let lease = match lease {
                Some(lease) => lease,
                None => this.lease(&key).await,
            };
            if lease == Lease::Held {
                return;
            }
            let epoch = this.local_epoch();
            guard.start_fetch();
            let started = Instant::now();
            let result = match CatchUnwind::new(this.holding(&key, lease, fetch())).await {
                Ok(result) => {
                    this.emit_timed(EventKind::Fetched, &key, started.elapsed());
                    result
                }
                Err(_panic) => {
                    // Contained: the caller already has its value. The key
                    // backs off like any failed refresh; waiters retry.
                    drop(guard);
                    this.release(&key, lease).await;
                    let failure = FetchFailure("the refresh panicked".into());
                    this.emit(EventKind::RefreshFailed, &key, Some(&failure));
                    this.back_off(&key);
                    return;
                }
            };
            match result {
                Ok(new) => {
                    let produced = this.inner.settings.clock.now_ms();
                    let after = this
                        .store(
                            &key,
                            (&tags, &options),
                            new.clone(),
                            Some(version),
                            produced,
                            lease,
                        )
                        .await;
                    guard.publish(Outcome::Fresh(Fresh {
                        entry: after,
                        fetched: true,
                        epoch,
                    }));
                    let changed = new != old;
                    this.emit(EventKind::Refreshed { changed }, &key, None);
                    this.report(&key, changed).await;
                    if let Some(on_refresh) = options.on_refresh.clone() {
                        // On the blocking pool: a slow callback stalls no
                        // worker (and none of the callers it woke).
                        let call = tokio::task::spawn_blocking(move || {
                            catch_unwind(AssertUnwindSafe(|| on_refresh(&old, &new, changed)))
                        });
                        if !matches!(call.await, Ok(Ok(()))) {
                            this.emit(EventKind::CallbackPanicked, &key, None);
                        }
                    }
                }
                Err(error) => {
                    this.release(&key, lease).await;
                    let failure = FetchFailure(error.to_string());
                    this.emit(EventKind::RefreshFailed, &key, Some(&failure));
                    this.back_off(&key);
                    guard.publish(Outcome::Failed(Arc::new(share.failure(&error))));
                }
            }
        };
        drop(self.spawn(&runtime, refresh.instrument(span)));
    }

    /// Whether `key` is waiting out a failed refresh at `now`.
    fn backing_off(&self, key: &str, now: u64) -> bool {
        match self.inner.backoff.get(key) {
            Some(until) if now < until => true,
            Some(_) => {
                self.inner.backoff.remove(key);
                false
            }
            None => false,
        }
    }

    /// Starts `key`'s wait after a failed refresh. O(1): the table is a
    /// bounded cache, and a key pushed out of it merely refreshes sooner.
    fn back_off(&self, key: &str) {
        let now = self.inner.settings.clock.now_ms();
        let until = now.saturating_add(self.inner.settings.refresh_backoff_ms);
        self.inner.backoff.insert(key.into(), until);
    }

    /// On a sampled fresh hit, re-runs the fetch in the background and reports
    /// whether the cached value was stale. At most one per key at a time.
    pub(crate) fn maybe_verify<T, E, S, TG, TT, M, F, Fut>(
        &self,
        key: &str,
        cached: &T,
        call: Call<S, TG, TT, M>,
    ) where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        TG: Fn(&S) -> TT,
        TT: AsRef<[TagPath]>,
        M: FnOnce(S) -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if fastrand::f64() >= self.inner.settings.verify_percent {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.inner.verifying.lock().insert(key.into()) {
            return;
        }
        let done = Verifying {
            cache: self.clone(),
            key: key.into(),
        };
        let cached = cached.clone();
        let fetch = call.into_fetch();
        let span = self.work_span("verify", key, 0);
        let verify = async move {
            let this = &done.cache;
            let key = &*done.key;
            let started = Instant::now();
            let result = fetch().await;
            this.emit_timed(EventKind::Fetched, key, started.elapsed());
            match result {
                Ok(fresh) => {
                    let stale = fresh != cached;
                    this.emit(EventKind::Verified { stale }, key, None);
                    this.report(key, stale).await;
                }
                Err(error) => {
                    let failure = FetchFailure(error.to_string());
                    this.emit(EventKind::VerificationFailed, key, Some(&failure));
                }
            }
        };
        drop(self.spawn(&runtime, verify.instrument(span)));
    }

    async fn report(&self, key: &str, stale: bool) {
        if !self.inner.settings.adapter.accepts_verification() {
            return;
        }
        let report = VerificationReport {
            key: key.to_owned(),
            stale,
        };
        if let Err(error) = self
            .inner
            .settings
            .adapter
            .report_verification(&report)
            .await
        {
            self.emit(EventKind::AdapterError, key, Some(&error));
        }
    }
}

/// Clears a key's verification slot however the verification ends.
struct Verifying<C: Codec> {
    cache: Primitives<C>,
    key: Box<str>,
}

impl<C: Codec> Drop for Verifying<C> {
    fn drop(&mut self) {
        self.cache.inner.verifying.lock().remove(&self.key);
    }
}
