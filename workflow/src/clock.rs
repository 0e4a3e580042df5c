//! Wall time for the journal: the system clock, or a manual one for tests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;

use crate::record::{from_millis, to_millis};

/// Where the runtime reads wall time: the timestamps it journals and the
/// value of [`Context::now`](crate::Context::now) on a first run.
pub trait Clock: Send + Sync + 'static {
    /// The current wall time.
    fn now(&self) -> SystemTime;

    /// Completes once [`Clock::now`] has reached `deadline`: durable sleeps,
    /// backoffs and the wake-up scheduler wait through it.
    fn sleep_until(&self, deadline: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The operating system's clock. The default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep_until(&self, deadline: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Re-check after waking: the wall clock may have been adjusted.
            loop {
                match deadline.duration_since(SystemTime::now()) {
                    Ok(left) if !left.is_zero() => tokio::time::sleep(left).await,
                    _ => return,
                }
            }
        })
    }
}

/// A clock that moves only when told, for tests.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use replayflow::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_005));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    millis: Arc<AtomicI64>,
    moved: Arc<Notify>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            millis: Arc::new(AtomicI64::new(to_millis(start))),
            moved: Arc::new(Notify::new()),
        }
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.millis.fetch_add(ms, Ordering::SeqCst);
        self.moved.notify_waiters();
    }

    /// Sets the clock.
    pub fn set(&self, to: SystemTime) {
        self.millis.store(to_millis(to), Ordering::SeqCst);
        self.moved.notify_waiters();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        from_millis(self.millis.load(Ordering::SeqCst))
    }

    fn sleep_until(&self, deadline: SystemTime) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let deadline = to_millis(deadline);
            loop {
                // Registered before the check, so a move in between is not missed.
                let moved = self.moved.notified();
                tokio::pin!(moved);
                moved.as_mut().enable();
                if self.millis.load(Ordering::SeqCst) >= deadline {
                    return;
                }
                moved.await;
            }
        })
    }
}
