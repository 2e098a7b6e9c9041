//! The time source: real time in production, a hand-moved clock in tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of wall-clock time, in milliseconds since the Unix epoch.
///
/// The engine reads it to stamp entries (`created_at`, `expires_at`,
/// `grace_until`) and to decide whether they are fresh. Inject a
/// [`ManualClock`] to test TTL and grace without sleeping.
///
/// ```
/// use t87s::{Clock, SystemClock};
/// assert!(SystemClock.now_ms() > 1_600_000_000_000);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system's clock: the wall time when first read, advanced by the
/// kernel's coarse monotonic clock (`CLOCK_MONOTONIC_COARSE` on Linux).
///
/// Reading it costs a few nanoseconds instead of a full clock call, which
/// matters on a cache hit; its resolution is the kernel tick (at most a few
/// milliseconds), ample for TTLs. Being monotonic, it never runs backwards when
/// the wall clock is stepped. Invalidation never depends on it (stores order
/// invalidations with versions).
///
/// ```
/// use t87s::{Clock, SystemClock};
/// let a = SystemClock.now_ms();
/// assert!(SystemClock.now_ms() >= a);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// Wall time (ms since the epoch) and the coarse instant it was read at.
fn anchor() -> &'static (u64, coarsetime::Instant) {
    static ANCHOR: OnceLock<(u64, coarsetime::Instant)> = OnceLock::new();
    ANCHOR.get_or_init(|| {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        (wall, coarsetime::Instant::now())
    })
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        let (wall, at) = anchor();
        let elapsed = coarsetime::Instant::now().duration_since(*at);
        wall.saturating_add(elapsed.as_millis())
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use t87s::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// let same = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(same.now_ms(), 3_000);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock reading `now_ms` milliseconds since the epoch.
    ///
    /// ```
    /// use t87s::Clock;
    /// assert_eq!(t87s::ManualClock::new(42).now_ms(), 42);
    /// ```
    pub fn new(now_ms: u64) -> Self {
        Self {
            now: Arc::new(AtomicU64::new(now_ms)),
        }
    }

    /// Moves the clock forward by `by` (saturating).
    ///
    /// ```
    /// use t87s::Clock;
    /// let clock = t87s::ManualClock::new(0);
    /// clock.advance(std::time::Duration::from_millis(1500));
    /// assert_eq!(clock.now_ms(), 1500);
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let mut current = self.now.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(by);
            match self
                .now
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// Sets the clock to `now_ms` (it may go backwards, like a real clock).
    ///
    /// ```
    /// use t87s::Clock;
    /// let clock = t87s::ManualClock::new(10);
    /// clock.set(5);
    /// assert_eq!(clock.now_ms(), 5);
    /// ```
    pub fn set(&self, now_ms: u64) {
        self.now.store(now_ms, Ordering::Release);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::Acquire)
    }
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
