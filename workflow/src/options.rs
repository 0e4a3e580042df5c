//! Per-execution and per-inline-step options.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::retry::RetryPolicy;

/// Per-execution overrides, journaled with the execution
/// (`name::start_with(&rt, id, options, args...)`).
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
/// use replayflow::{step, workflow, AnyError, Context, RetryPolicy, Runtime, StartOptions};
///
/// static CALLS: AtomicU32 = AtomicU32::new(0);
///
/// // No retry options of its own: the execution's policy applies.
/// #[step]
/// async fn fetch_rate() -> Result<f64, AnyError> {
///     if CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
///         return Err(AnyError::msg("rate service unavailable"));
///     }
///     Ok(1.08)
/// }
///
/// #[workflow]
/// async fn convert(ctx: Context, cents: u64) -> Result<u64, AnyError> {
///     let rate = fetch_rate().await?;
///     Ok((cents as f64 * rate).round() as u64)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// let options = StartOptions::new()
///     .retry(RetryPolicy::default().max_attempts(5).backoff(Duration::from_millis(10)))
///     .max_restarts(1);
/// let handle = convert::start_with(&rt, "convert-1", options, 1000).await?;
/// assert_eq!(handle.result().await?, 1080);
/// assert_eq!(rt.status("convert-1").await?.steps[0].attempts, 3);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StartOptions {
    /// The retry policy of this execution's steps, where a step's attribute
    /// leaves a field unset.
    pub retry: Option<RetryPolicy>,
    /// Restarts allowed after panics.
    pub max_restarts: Option<u32>,
    /// Wait before a restart.
    pub restart_delay: Option<Duration>,
    /// How long the execution may take, from its start; see
    /// [`StartOptions::timeout`].
    pub timeout: Option<Duration>,
    /// A child workflow that outlives a cancel of its parent
    /// ([`ChildOptions::keep_on_parent_cancel`](crate::ChildOptions::keep_on_parent_cancel)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) keep_on_parent_cancel: bool,
}

impl StartOptions {
    /// No overrides.
    pub fn new() -> Self {
        StartOptions::default()
    }

    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Sets the restart budget.
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = Some(n);
        self
    }

    /// Sets the restart delay.
    pub fn restart_delay(mut self, delay: Duration) -> Self {
        self.restart_delay = Some(delay);
        self
    }

    /// Gives the execution a deadline: its start plus `timeout`, journaled
    /// with it (restarts and recoveries keep it). Past it the execution
    /// ends at its next boundary (a step call, a sleep, a `recv`, never in
    /// the middle of a step) as cancelled, and
    /// [`Handle::result`](crate::Handle::result) gives
    /// [`RunError::DeadlineExceeded`](crate::RunError::DeadlineExceeded).
    /// Overrides the workflow's `#[workflow(timeout = "...")]`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Options of an inline step ([`Context::step_with`](crate::Context::step_with)).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StepOptions {
    /// The retry policy; the execution's when unset.
    pub retry: Option<RetryPolicy>,
    /// The longest one attempt may run.
    pub timeout: Option<std::time::Duration>,
    /// Commit each attempt's start before its body runs, and count an
    /// attempt found in flight after a crash as failed (see `#[step(at_most_once)]`).
    pub at_most_once: bool,
}

impl StepOptions {
    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Commits each attempt's start before its body runs; an attempt found
    /// in flight after a crash (or a panic) counts as a failed attempt,
    /// [`StepFailure::Interrupted`](crate::StepFailure::Interrupted), left to
    /// the retry policy: with one attempt the body never runs twice.
    pub fn at_most_once(mut self, on: bool) -> Self {
        self.at_most_once = on;
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}
