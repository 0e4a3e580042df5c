//! Retry policies: how many attempts a step gets and how long it waits between them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a failing step is retried.
///
/// The runtime-wide default comes from
/// [`RuntimeBuilder::retry`](crate::RuntimeBuilder::retry) (3 attempts, 1 s
/// backoff, exponential, capped at 60 s); an execution can override it with
/// [`StartOptions::retry`](crate::StartOptions::retry), and a step's own
/// attribute options override both, field by field.
///
/// ```
/// use std::time::Duration;
/// use replayflow::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_attempts(5)
///     .backoff(Duration::from_millis(200));
/// assert_eq!(policy.delay_before(2), Duration::from_millis(200));
/// assert_eq!(policy.delay_before(3), Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, counting the first (at least 1).
    pub max_attempts: u32,
    /// The wait before the second attempt.
    pub backoff: Duration,
    /// Whether the wait doubles after each failed attempt.
    pub exponential: bool,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Duration::from_secs(1),
            exponential: true,
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn no_retry() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// Sets the number of attempts (values below 1 count as 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the wait before the second attempt.
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// Sets whether the wait doubles after each failed attempt.
    pub fn exponential(mut self, exponential: bool) -> Self {
        self.exponential = exponential;
        self
    }

    /// Caps the wait between attempts.
    pub fn max_backoff(mut self, max_backoff: Duration) -> Self {
        self.max_backoff = max_backoff;
        self
    }

    /// The wait before attempt `attempt` (attempts count from 1; the first
    /// has no wait).
    pub fn delay_before(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let delay = if self.exponential {
            let doublings = (attempt - 2).min(32);
            self.backoff.saturating_mul(1u32 << doublings.min(31))
        } else {
            self.backoff
        };
        delay.min(self.max_backoff)
    }

    /// What follows failed attempt `attempt`: another attempt after a delay,
    /// or the end of the step. A permanent error ends it whatever is left.
    pub(crate) fn after_failure(&self, attempt: u32, permanent: bool) -> Retry {
        if permanent || attempt >= self.max_attempts {
            Retry::GiveUp
        } else {
            Retry::After(self.delay_before(attempt + 1))
        }
    }
}

/// The retry decision after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Run the next attempt after this delay.
    After(Duration),
    /// The step has failed: its error goes to the workflow.
    GiveUp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_and_caps() {
        let p = RetryPolicy::default()
            .backoff(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(5));
        let waits: Vec<u64> = (1..=6).map(|a| p.delay_before(a).as_secs()).collect();
        assert_eq!(waits, [0, 1, 2, 4, 5, 5]);
    }

    #[test]
    fn constant_backoff() {
        let p = RetryPolicy::default().exponential(false);
        assert_eq!(p.delay_before(5), Duration::from_secs(1));
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay_before(u32::MAX), p.max_backoff);
    }

    #[test]
    fn retries_until_the_last_attempt() {
        let policy = RetryPolicy::default()
            .max_attempts(3)
            .backoff(Duration::from_millis(100));
        assert_eq!(
            policy.after_failure(1, false),
            Retry::After(Duration::from_millis(100))
        );
        assert_eq!(
            policy.after_failure(2, false),
            Retry::After(Duration::from_millis(200))
        );
        assert_eq!(policy.after_failure(3, false), Retry::GiveUp);
        // Attempts past the budget (counted on after a crash) end it too.
        assert_eq!(policy.after_failure(7, false), Retry::GiveUp);
    }

    #[test]
    fn a_permanent_error_is_never_retried() {
        let policy = RetryPolicy::default().max_attempts(5);
        assert_eq!(policy.after_failure(1, true), Retry::GiveUp);
    }

    #[test]
    fn a_single_attempt_policy_gives_up_at_once() {
        assert_eq!(
            RetryPolicy::no_retry().after_failure(1, false),
            Retry::GiveUp
        );
    }
}
