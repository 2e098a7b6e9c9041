//! The time source: real time in production, a hand-moved clock in tests.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
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

/// The system's clock: wall time, read cheaply.
///
/// A full wall-clock read costs tens of nanoseconds, a noticeable share of a
/// cache hit. So this clock adds the kernel's coarse monotonic clock
/// (`CLOCK_MONOTONIC_COARSE` on Linux, a few nanoseconds, a resolution of
/// one kernel tick) to an offset, and re-reads the wall clock at most once a
/// second to refresh that offset. A wall-clock step (NTP, a VM restored from
/// a snapshot) or a suspend is followed within a second, and a read writes
/// to no memory shared between cores (only the once-a-second refresh does).
///
/// Invalidation never depends on it (stores order invalidations with
/// versions); TTL and grace do.
///
/// ```
/// use t87s::{Clock, SystemClock};
/// let now = SystemClock.now_ms();
/// assert!(now > 1_600_000_000_000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// How often (monotonic ms) [`SystemClock`] re-reads the wall clock.
const RECHECK_MS: u64 = 1_000;
/// `Anchor::offset_ms` before the first wall-clock read.
const UNSET: u64 = u64::MAX;

/// Wall time as monotonic time plus an offset refreshed from the wall clock
/// at most every [`RECHECK_MS`].
struct Anchor {
    /// `wall - mono` (wrapping), or [`UNSET`].
    offset_ms: AtomicU64,
    /// The monotonic time at which the next refresh is due.
    next_check_ms: AtomicU64,
}

impl Anchor {
    const fn new() -> Self {
        Self {
            offset_ms: AtomicU64::new(UNSET),
            next_check_ms: AtomicU64::new(0),
        }
    }

    /// The wall time at monotonic time `mono_ms`; `wall` reads the wall clock.
    fn now_ms(&self, mono_ms: u64, wall: impl FnOnce() -> u64) -> u64 {
        let due = self.next_check_ms.load(Ordering::Relaxed);
        if mono_ms >= due
            && self
                .next_check_ms
                .compare_exchange(
                    due,
                    mono_ms.saturating_add(RECHECK_MS),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            // One caller a second refreshes; the others keep the old offset.
            let wall = wall();
            self.offset_ms
                .store(wall.wrapping_sub(mono_ms), Ordering::Release);
            return wall;
        }
        match self.offset_ms.load(Ordering::Acquire) {
            // Another thread is taking the first reading right now.
            UNSET => wall(),
            offset => mono_ms.wrapping_add(offset),
        }
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// Coarse monotonic milliseconds (since boot), without the process-wide
/// write `coarsetime::Instant::now` makes.
#[inline]
fn mono_ms() -> u64 {
    let ticks = coarsetime::Instant::now_without_cache_update().as_ticks();
    coarsetime::Duration::from_ticks(ticks).as_millis()
}

impl Clock for SystemClock {
    #[inline]
    fn now_ms(&self) -> u64 {
        static ANCHOR: Anchor = Anchor::new();
        ANCHOR.now_ms(mono_ms(), wall_ms)
    }
}

/// The engine's time source: [`SystemClock`] read in line (a hit reads
/// the time once), or any other [`Clock`] through its trait object.
#[derive(Debug, Clone)]
pub(crate) enum Time {
    System,
    Other(Arc<dyn Clock>),
}

impl Time {
    /// `clock` as a time source.
    pub(crate) fn of(clock: impl Clock) -> Self {
        if (&clock as &dyn std::any::Any).is::<SystemClock>() {
            Time::System
        } else {
            Time::Other(Arc::new(clock))
        }
    }

    /// Milliseconds since the Unix epoch.
    #[inline(always)]
    pub(crate) fn now_ms(&self) -> u64 {
        match self {
            Time::System => SystemClock.now_ms(),
            Time::Other(clock) => clock.now_ms(),
        }
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

#[cfg(test)]
mod tests {
    use super::{Anchor, RECHECK_MS};

    #[test]
    fn system_clock_follows_a_wall_clock_step() {
        let anchor = Anchor::new();
        let wall = 1_700_000_000_000u64;
        assert_eq!(anchor.now_ms(0, || wall), wall);
        // Monotonic time moves; the wall clock is not read again yet.
        assert_eq!(
            anchor.now_ms(500, || unreachable!("read within a second")),
            wall + 500
        );
        // The wall clock is stepped forward an hour (NTP, a restored VM):
        // followed at the next refresh, not skewed for the life of the process.
        let stepped = wall + 3_600_000 + RECHECK_MS;
        assert_eq!(anchor.now_ms(RECHECK_MS, || stepped), stepped);
        assert_eq!(
            anchor.now_ms(RECHECK_MS + 10, || unreachable!()),
            stepped + 10
        );
        // And stepped back.
        let back = wall;
        assert_eq!(anchor.now_ms(2 * RECHECK_MS + 10, || back), back);
    }

    #[test]
    fn system_clock_catches_up_after_a_suspend() {
        let anchor = Anchor::new();
        let wall = 1_700_000_000_000u64;
        anchor.now_ms(0, || wall);
        // Suspended for ten minutes: the monotonic clock stood still, the
        // wall clock did not.
        let resumed = wall + 600_000;
        assert_eq!(anchor.now_ms(RECHECK_MS, || resumed), resumed);
    }
}
