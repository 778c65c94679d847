//! Time as a dependency: the host asks a [`Clock`] for the time and for sleeps, so retry and
//! rate-limit behaviour can be tested exactly with a [`ManualClock`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// A boxed sleep future, as returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall time, monotonic time and sleeps.
///
/// ```
/// use apiary_host::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let before = clock.monotonic();
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// clock.sleep(Duration::from_secs(20)).await; // returns at once, time moves on
/// # });
/// assert_eq!(clock.monotonic() - before, Duration::from_secs(20));
/// assert_eq!(clock.sleeps(), vec![Duration::from_secs(20)]);
/// ```
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The wall-clock time, used to read HTTP dates such as `Retry-After`.
    fn now(&self) -> SystemTime;
    /// Time elapsed since an arbitrary fixed origin; never goes backwards.
    fn monotonic(&self) -> Duration;
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The real clock: the system's time and tokio's timer.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: Instant,
}

impl SystemClock {
    /// A system clock whose monotonic origin is now.
    pub fn new() -> Self {
        Self { origin: Instant::now() }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn monotonic(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that only moves when slept on: every sleep returns at once, advances the time by its
/// duration and is recorded, so a test can assert exactly how long the host chose to wait.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualState>>,
}

#[derive(Debug)]
struct ManualState {
    wall: SystemTime,
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A manual clock starting at 2019-06-03 11:00:00 UTC (an arbitrary fixed date).
    pub fn new() -> Self {
        Self::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(1_559_559_600))
    }

    /// A manual clock whose wall time starts at `wall`.
    pub fn starting_at(wall: SystemTime) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ManualState {
                wall,
                elapsed: Duration::ZERO,
                sleeps: Vec::new(),
            })),
        }
    }

    /// Moves time forward by `by` without recording a sleep.
    pub fn advance(&self, by: Duration) {
        let mut state = self.lock();
        state.wall += by;
        state.elapsed += by;
    }

    /// Every sleep requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A poisoned lock only means another test thread panicked; the state is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.lock().wall
    }

    fn monotonic(&self) -> Duration {
        self.lock().elapsed
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        {
            let mut state = self.lock();
            state.sleeps.push(duration);
            state.wall += duration;
            state.elapsed += duration;
        }
        Box::pin(std::future::ready(()))
    }
}
