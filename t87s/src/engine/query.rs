//! The query path: look, then serve, join a flight, or lead one.
//!
//! A leader's fetch ([`Flight::fly`]) runs in the leader's future, and goes
//! on in a task of its own if that future is dropped first ([`Leading`]), so
//! dropping a caller's future never cancels what the others wait on.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tracing::Instrument;

use super::flight::{FlightGuard, Following, Fresh, Outcome, Role};
use super::lease::Waited;
use super::look::Look;
use super::share::Share;
use super::task::CatchUnwind;
use super::{Cacheable, Call, FetchFailure, Primitives, QueryOptions, Served};
use crate::codec::Codec;
use crate::entry::StoredEntry;
use crate::observer::EventKind;
use crate::storage::Lease;
use crate::tag::TagPath;

/// How many outcomes a caller may find unusable (its leader panicked, or
/// fetched before an invalidation this caller must see) before it fetches
/// on its own. A failed fetch whose error is not shared is no such outcome:
/// the caller takes its turn at the next flight.
const MAX_REJECTED: usize = 8;

impl<C: Codec> Primitives<C> {
    /// The engine's whole decision procedure for one query. The call builds
    /// its tags and its fetch only when they are needed, so a hit pays for
    /// neither.
    pub(crate) async fn run<T, E, S, TG, TT, M, F, Fut>(
        &self,
        key: &str,
        mut call: Call<S, TG, TT, M>,
        options: QueryOptions<T>,
        share: Share<E>,
    ) -> Result<Served<T>, E>
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        TG: Fn(&S) -> TT,
        TT: AsRef<[TagPath]>,
        M: FnOnce(S) -> F,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        // Every invalidation this process completed before the query began.
        let epoch = self.local_epoch();
        let mut before = None;
        let mut version = None;
        let mut rejected = 0;
        while rejected < MAX_REJECTED {
            let now = self.inner.settings.clock.now_ms();
            let generation = self.inner.flights.generation();
            // The lease this look took (a shared store takes it in the same
            // round trip when the entry wants a fetch) and its version.
            let mut first = None;
            let seen = match self.look_now(key, now) {
                Some(seen) => seen,
                None => self.look_async(key, Some(call.tags()), now, true).await,
            };
            match seen {
                Ok((read, newest)) => {
                    version = Some(read.version);
                    first = read.lease.map(|lease| (lease, read.version));
                    match self.classify::<T>(read.entry, newest, now) {
                        Look::Fresh(stored, value) => {
                            self.emit(self.hit_kind(&stored), key, None);
                            self.keep_decoded(key, &stored, &value);
                            if self.inner.verify {
                                self.maybe_verify(key, &value, call);
                            }
                            return Ok(Served::hit(value, stored));
                        }
                        Look::Graced(stored, value) => {
                            self.emit(EventKind::StaleServed, key, None);
                            let refresh = (read.version, read.lease, &value, share);
                            self.maybe_refresh(key, &options, refresh, call, now);
                            return Ok(Served::hit(value, stored));
                        }
                        Look::Invalidated(stored) => before = Some(stored),
                        Look::Undecodable(error) => {
                            self.emit(EventKind::Undecodable, key, Some(&error));
                        }
                        Look::Dead | Look::Missing => {}
                    }
                }
                // Fail-open: answer from the source; callers still share it.
                Err(error) => self.emit(EventKind::AdapterError, key, Some(&error)),
            }

            let mut following = match self.inner.flights.join_or_lead(key) {
                Role::Leader(guard) => {
                    let (tags, fetch) = call.split();
                    let span = self.work_span("fetch", key, tags.as_ref().len());
                    let flight = Flight {
                        engine: self.clone(),
                        guard,
                        key: key.into(),
                        tags: tags.as_ref().into(),
                        options,
                        before,
                        share,
                        // Still the store as it is, unless a flight of this
                        // process published since the look.
                        first: first.filter(|_| self.inner.flights.generation() == generation),
                    };
                    return flight.lead(fetch, span).await;
                }
                Role::Follower(following) => following,
            };
            match following.outcome().await {
                Some(Outcome::Fresh(fresh)) => {
                    if let Some(value) = self.accept::<T>(key, &fresh, &following, epoch).await {
                        self.emit(EventKind::Coalesced, key, None);
                        return Ok(Served {
                            value,
                            before,
                            after: fresh.entry,
                        });
                    }
                    rejected += 1;
                }
                Some(Outcome::FailSafe(stored)) => {
                    let now = self.inner.settings.clock.now_ms();
                    if stored.live_until() > now {
                        if let Ok(value) = self.value_of::<T>(&stored) {
                            self.emit(EventKind::FailSafe, key, None);
                            return Ok(Served::hit(value, stored));
                        }
                    }
                    rejected += 1;
                }
                Some(Outcome::Failed(failure)) => {
                    if let Some(error) = share.error(&failure) {
                        self.emit(EventKind::Coalesced, key, None);
                        return Err(error);
                    }
                    // Not shareable: take a turn at the next flight.
                }
                // The leader's fetch panicked: look again.
                None => rejected += 1,
            }
        }
        let (tags, fetch) = call.split();
        let span = self.work_span("fetch", key, tags.as_ref().len());
        // Boxed: a rare path, kept out of every miss's future.
        Box::pin(self.fetch_alone(key, tags.as_ref(), &options, before, version, fetch))
            .instrument(span)
            .await
    }

    /// A follower checks a flight's value before taking it. A fetch that
    /// began after this caller joined is new enough. Otherwise (it began
    /// earlier, or the value was found in the store) the markers as they are
    /// now decide; if they cannot be read, a fetch of this process that began
    /// after its last invalidation before this query is taken (the store is
    /// unreachable: no invalidation can have landed there either).
    async fn accept<T: Cacheable>(
        &self,
        key: &str,
        fresh: &Fresh,
        following: &Following,
        epoch: u64,
    ) -> Option<T> {
        if !(fresh.fetched && following.before_start) {
            let markers = self.markers(&fresh.entry.tags);
            match self.inner.settings.adapter.newest_marker(markers).await {
                Ok(newest) if newest < fresh.entry.version => {}
                Ok(_) => return None,
                Err(error) => {
                    self.emit(EventKind::AdapterError, key, Some(&error));
                    if !(fresh.fetched && fresh.epoch >= epoch) {
                        return None;
                    }
                }
            }
        }
        self.value_of::<T>(&fresh.entry).ok()
    }

    /// Fetches without coalescing, when outcomes kept being unusable. Stores
    /// the value only when `version` (from a read before the fetch) is known.
    async fn fetch_alone<T, E, F, Fut>(
        &self,
        key: &str,
        tags: &[TagPath],
        options: &QueryOptions<T>,
        before: Option<Arc<StoredEntry>>,
        version: Option<u64>,
        fetch: F,
    ) -> Result<Served<T>, E>
    where
        T: Cacheable,
        E: fmt::Display + Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        self.emit(EventKind::Miss, key, None);
        let started = Instant::now();
        let result = fetch().await;
        self.emit_timed(EventKind::Fetched, key, started.elapsed());
        let produced = self.inner.settings.clock.now_ms();
        match result {
            Ok(value) => {
                let after = self
                    .store(
                        key,
                        (tags, options),
                        value.clone(),
                        version,
                        produced,
                        Lease::Unsupported,
                    )
                    .await;
                Ok(Served {
                    value,
                    before,
                    after,
                })
            }
            Err(error) => self.fail_safe::<T>(key, &error, before).ok_or(error),
        }
    }

    /// After a failed fetch: the graced old entry, if it is still inside grace.
    fn fail_safe<T: Cacheable>(
        &self,
        key: &str,
        error: &dyn fmt::Display,
        before: Option<Arc<StoredEntry>>,
    ) -> Option<Served<T>> {
        let failure = FetchFailure(error.to_string());
        self.emit(EventKind::FetchError, key, Some(&failure));
        let now = self.inner.settings.clock.now_ms();
        let stored = before.filter(|b| b.grace_until.is_some_and(|g| g > now))?;
        let value = self.value_of::<T>(&stored).ok()?;
        self.emit(EventKind::FailSafe, key, Some(&failure));
        Some(Served::hit(value, stored))
    }
}

/// A flight this caller leads: everything its fetch needs, owned, so it can
/// go on in a task of its own (see [`Leading`]).
struct Flight<C: Codec, T, E> {
    engine: Primitives<C>,
    guard: FlightGuard,
    key: Box<str>,
    tags: Arc<[TagPath]>,
    options: QueryOptions<T>,
    /// The entry the leader found invalidated, if any (fail-safe candidate).
    before: Option<Arc<StoredEntry>>,
    share: Share<E>,
    /// The lease the leader's look took, and the version it read, when that
    /// look is still current: no second look is needed before the fetch.
    first: Option<(Lease, u64)>,
}

impl<C: Codec, T: Cacheable, E: fmt::Display + Send + 'static> Flight<C, T, E> {
    /// The flight, run by this caller's future (in `span`) until it is
    /// done, or handed to a task of its own if the caller goes away first
    /// (see [`Leading`]).
    fn lead<F, Fut>(self, fetch: F, span: tracing::Span) -> Leading<C, T, E>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let engine = self.engine.clone();
        Leading {
            flight: Some(CatchUnwind::boxed(Box::pin(
                self.fly(fetch).instrument(span),
            ))),
            engine,
        }
    }

    /// Takes the cross-process lease (unless the leader's look took it),
    /// looks once more when that look is not current (another process may
    /// just have stored the value), then fetches (extending the lease),
    /// stores and releases in one call, and publishes.
    fn fly<F, Fut>(
        self,
        fetch: F,
    ) -> impl Future<Output = Result<Served<T>, E>> + use<C, T, E, F, Fut>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let Flight {
            engine,
            guard,
            key,
            tags,
            options,
            mut before,
            share,
            first,
        } = self;
        // Taken apart before the future is made: an `async fn` would hold
        // both `self` and its parts.
        async move {
            let key = &*key;
            let (mut lease, mut version) = match first {
                Some((lease, version)) => (lease, Some(version)),
                None => (engine.lease(key).await, None),
            };
            if lease == Lease::Held {
                // Boxed: a rare path, kept out of every flight's future.
                match Box::pin(engine.await_other_process::<T>(key, &tags)).await {
                    Waited::Served(served) => {
                        guard.publish(found(&served.after, &engine));
                        return Ok(served);
                    }
                    Waited::Lease(next, read) => (lease, version) = (next, read),
                }
            }
            let version = match version {
                Some(version) => Some(version),
                None => {
                    let now = engine.inner.settings.clock.now_ms();
                    match engine.look(key, Some(&tags), now).await {
                        Ok((read, newest)) => {
                            match engine.classify::<T>(read.entry, newest, now) {
                                Look::Fresh(stored, value) => {
                                    engine.release(key, lease).await;
                                    engine.emit(engine.hit_kind(&stored), key, None);
                                    guard.publish(found(&stored, &engine));
                                    return Ok(Served::hit(value, stored));
                                }
                                Look::Graced(stored, _) | Look::Invalidated(stored) => {
                                    before = Some(stored);
                                }
                                Look::Undecodable(_) | Look::Dead | Look::Missing => {}
                            }
                            Some(read.version)
                        }
                        Err(error) => {
                            // Unreadable (down, or a key holding something
                            // else): fetch anyway; store if the version can be
                            // had (overwriting what could not be read).
                            engine.emit(EventKind::AdapterError, key, Some(&error));
                            engine.inner.settings.adapter.version().await.ok()
                        }
                    }
                }
            };

            let epoch = engine.local_epoch();
            guard.start_fetch();
            engine.emit(EventKind::Miss, key, None);
            let started = Instant::now();
            let result = match CatchUnwind::new(engine.holding(key, lease, fetch())).await {
                Ok(result) => {
                    engine.emit_timed(EventKind::Fetched, key, started.elapsed());
                    result
                }
                Err(panic) => {
                    // Followers wake and one fetches instead; the lease goes now,
                    // not when it times out.
                    drop(guard);
                    engine.release(key, lease).await;
                    std::panic::resume_unwind(panic);
                }
            };
            let produced = engine.inner.settings.clock.now_ms();
            match result {
                Ok(value) => {
                    // Stored, then the lease released, in one call: a process
                    // waiting on the lease finds the value, not a free lease and
                    // an empty key.
                    let after = engine
                        .store(
                            key,
                            (&tags, &options),
                            value.clone(),
                            version,
                            produced,
                            lease,
                        )
                        .await;
                    guard.publish(Outcome::Fresh(Fresh {
                        entry: Arc::clone(&after),
                        fetched: true,
                        epoch,
                    }));
                    Ok(Served {
                        value,
                        before,
                        after,
                    })
                }
                Err(error) => {
                    engine.release(key, lease).await;
                    match engine.fail_safe::<T>(key, &error, before) {
                        Some(served) => {
                            guard.publish(Outcome::FailSafe(Arc::clone(&served.after)));
                            Ok(served)
                        }
                        None => {
                            guard.publish(Outcome::Failed(Arc::new(share.failure(&error))));
                            Err(error)
                        }
                    }
                }
            }
        }
    }
}

/// A flight's future, boxed so it can be handed to a task, its panics
/// caught while the leader polls it.
type BoxedFlight<T, E> = CatchUnwind<dyn Future<Output = Result<Served<T>, E>> + Send>;

/// A leader's flight, polled by the leader's own future.
///
/// A miss spawns no task: a task per miss costs a spawn and, with tokio's
/// cache-line-aligned task cells, an aligned allocation that glibc's malloc
/// serves by splitting its heap (resident memory per entry grew to several
/// times the entries' size). But the flight must outlive its leader, whose
/// future may be dropped mid-fetch while other callers wait on the flight
/// (and a shared store's lease is held for it): so if the leader goes away
/// before the flight is done, the flight goes on in a task of its own,
/// spawned then.
struct Leading<C: Codec, T: 'static, E: 'static> {
    /// `None` once done (or once it panicked: it is never polled again).
    flight: Option<BoxedFlight<T, E>>,
    engine: Primitives<C>,
}

impl<C: Codec, T: 'static, E: 'static> Future for Leading<C, T, E> {
    type Output = Result<Served<T>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(flight) = self.flight.as_mut() else {
            // Polled after it answered: it never answers twice.
            return Poll::Pending;
        };
        let Poll::Ready(outcome) = Pin::new(flight).poll(cx) else {
            return Poll::Pending;
        };
        // Done, or panicked (the flight released its lease and woke its
        // followers): either way it is not handed on.
        self.flight = None;
        match outcome {
            Ok(served) => Poll::Ready(served),
            // Re-raised in the leader, as it was raised.
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<C: Codec, T: 'static, E: 'static> Drop for Leading<C, T, E> {
    fn drop(&mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        // The leader went away mid-flight: the flight goes on by itself.
        // With no runtime to run it (or one shutting down), it is dropped:
        // its followers wake and one of them fetches.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            // Its callers have their answer from the flight itself.
            let flight = flight.into_inner();
            let flight = async move { drop(flight.await) };
            drop(self.engine.spawn(&runtime, flight));
        }
    }
}

/// The outcome for a value found in the store rather than fetched: followers
/// check it against the markers.
fn found<C: Codec>(entry: &Arc<StoredEntry>, engine: &Primitives<C>) -> Outcome {
    Outcome::Fresh(Fresh {
        entry: Arc::clone(entry),
        fetched: false,
        epoch: engine.local_epoch(),
    })
}
