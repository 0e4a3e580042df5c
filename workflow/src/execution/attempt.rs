//! One attempt of a step body: the step-side API ([`StepContext`],
//! [`permanent`]), the attempt run under its timeout and panic guard, and
//! its outcome as data.

use std::any::Any;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use tracing::Instrument;

use super::context::{SCOPE, Scope};
use super::panic::CatchUnwind;
use crate::error::StepFailure;
use crate::record::{ExecutionId, StepKey};

/// What a step body can learn about the attempt it runs in.
pub(crate) struct StepState {
    execution: ExecutionId,
    branch: Arc<str>,
    key: StepKey,
    attempt: u32,
    permanent: AtomicBool,
}

/// The step an async body is running as, read with [`StepContext::current`].
///
/// Use the attempt number for logging and the idempotency key to make a call
/// to an external system exactly-once (pass it as the provider's idempotency
/// key: a retried or replayed-after-crash attempt sends the same key).
///
/// ```
/// use std::sync::Mutex;
/// use replayflow::{step, workflow, AnyError, Context, Runtime, StepContext};
///
/// /// A payment provider that charges once per idempotency key.
/// static CHARGES: Mutex<Vec<(String, u64)>> = Mutex::new(Vec::new());
/// fn provider_charge(idempotency_key: &str, cents: u64) -> String {
///     let mut charges = CHARGES.lock().unwrap();
///     let n = match charges.iter().position(|(k, _)| k == idempotency_key) {
///         Some(n) => n, // seen before: the existing charge, not a new one
///         None => {
///             charges.push((idempotency_key.to_owned(), cents));
///             charges.len() - 1
///         }
///     };
///     format!("ch_{n}")
/// }
///
/// #[step(max_attempts = 3, backoff = "10ms")]
/// async fn charge_card(cents: u64) -> Result<String, AnyError> {
///     let step = StepContext::current().ok_or("not running in a workflow")?;
///     let key = step.idempotency_key(); // "<execution id>/charge_card#0"
///     let charge = provider_charge(&key, cents);
///     if step.attempt() == 1 {
///         // The provider's first answer is lost: the step fails and is retried.
///         return Err(AnyError::msg("connection reset"));
///     }
///     Ok(format!("{charge} (attempt {}, key {key})", step.attempt()))
/// }
///
/// #[workflow]
/// async fn checkout(ctx: Context, cents: u64) -> Result<String, AnyError> {
///     charge_card(cents).await
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// let out = checkout::start(&rt, "order-42", 1999).await?.result().await?;
/// assert_eq!(out, "ch_0 (attempt 2, key order-42/charge_card#0)");
/// // Two attempts, one charge.
/// assert_eq!(*CHARGES.lock().unwrap(), [("order-42/charge_card#0".to_owned(), 1999)]);
///
/// // Outside a step body there is none (here, or in a workflow body).
/// assert!(StepContext::current().is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StepContext {
    state: Arc<StepState>,
}

impl StepContext {
    /// The step running on this task, if the caller is inside a step body
    /// that runs as part of a workflow.
    pub fn current() -> Option<StepContext> {
        SCOPE
            .try_with(|scope| match scope {
                Scope::Step(state) => Some(StepContext {
                    state: Arc::clone(state),
                }),
                Scope::Workflow(_) => None,
            })
            .ok()
            .flatten()
    }

    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.state.attempt
    }

    /// The execution the step belongs to.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.state.execution
    }

    /// The step's key (`name#occurrence`).
    pub fn key(&self) -> &StepKey {
        &self.state.key
    }

    /// `"<execution id>/<step name>#<occurrence>"` (with the branch inside
    /// a [`Context::branch`](crate::Context::branch):
    /// `"<execution id>/<branch>/<step name>#<occurrence>"`): the same for
    /// every attempt of this step in this execution, different for every
    /// other step call.
    pub fn idempotency_key(&self) -> String {
        if self.state.branch.is_empty() {
            format!("{}/{}", self.state.execution, self.state.key)
        } else {
            format!(
                "{}/{}/{}",
                self.state.execution, self.state.branch, self.state.key
            )
        }
    }
}

impl fmt::Debug for StepContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepContext")
            .field("execution", &self.state.execution)
            .field("key", &self.state.key.to_string())
            .field("attempt", &self.state.attempt)
            .finish()
    }
}

/// Marks the error a step body is about to return as permanent: the step is
/// not retried, whatever its policy, and the error goes to the workflow at once.
///
/// It returns `error` unchanged, so it wraps the value in `Err(...)`:
///
/// ```
/// # use replayflow::{workflow, Context, RunError, Runtime};
/// # #[derive(Debug, serde::Serialize, serde::Deserialize)]
/// # enum PaymentError { Declined, Unavailable }
/// # fn card_declined() -> bool { true }
/// #[replayflow::step(max_attempts = 5)]
/// async fn charge(amount: u64) -> Result<u64, PaymentError> {
///     if card_declined() {
///         return Err(replayflow::permanent(PaymentError::Declined));
///     }
///     Ok(amount)
/// }
///
/// #[workflow]
/// async fn pay(ctx: Context, amount: u64) -> Result<u64, PaymentError> {
///     charge(amount).await
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// let result = pay::start(&rt, "pay-1", 500).await?.result().await;
/// assert!(matches!(result, Err(RunError::Workflow(PaymentError::Declined))));
/// // One attempt of the five: a permanent error is not retried.
/// assert_eq!(rt.status("pay-1").await?.steps[0].attempts, 1);
/// # Ok(())
/// # }
/// ```
///
/// Called outside a step body (or in a step called outside a workflow), it
/// does nothing.
pub fn permanent<E>(error: E) -> E {
    let _ = SCOPE.try_with(|scope| {
        if let Scope::Step(state) = scope {
            state.permanent.store(true, Ordering::Relaxed);
        }
    });
    error
}

/// How one attempt of a step body ended, before anything is journaled.
pub(crate) enum Outcome<T, E> {
    /// The body returned `Ok`.
    Succeeded(T),
    /// The body returned `Err`; `permanent` if it said so with [`permanent`].
    Failed { error: E, permanent: bool },
    /// The body panicked; the payload is resumed once the attempt is journaled.
    Panicked {
        message: String,
        payload: Box<dyn Any + Send>,
    },
    /// The attempt ran past the step's timeout and was dropped.
    TimedOut(StepFailure),
}

/// One attempt as it ran.
pub(crate) struct Attempt<T, E> {
    pub outcome: Outcome<T, E>,
    pub timing: Timing,
}

/// When an attempt ran, and whether its start is on record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    /// When it began and ended (Unix ms, the runtime's clock).
    pub started: i64,
    pub ended: i64,
    /// Whether its start was journaled while the body ran.
    pub start_recorded: bool,
}

/// What an attempt needs besides its body.
pub(crate) struct AttemptSetup<'a> {
    pub execution: &'a ExecutionId,
    pub branch: &'a Arc<str>,
    pub key: &'a StepKey,
    pub attempt: u32,
    pub timeout: Option<Duration>,
    /// Journal the start before the body runs (the step was slow last time).
    pub eager: bool,
    pub span: &'a tracing::Span,
}

/// Runs one attempt of `body`: in the step's scope, under its timeout and a
/// panic guard, calling `record_start` if the body is slow (see
/// [`START_RECORD_AFTER`]). `now` reads the runtime's clock.
pub(crate) async fn run_attempt<T, E, Fut>(
    setup: AttemptSetup<'_>,
    body: Fut,
    record_start: impl FnOnce(i64),
    now: impl Fn() -> i64,
) -> Attempt<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let started = now();
    let state = Arc::new(StepState {
        execution: setup.execution.clone(),
        branch: Arc::clone(setup.branch),
        key: setup.key.clone(),
        attempt: setup.attempt,
        permanent: AtomicBool::new(false),
    });
    let running = CatchUnwind::new(SCOPE.scope(Scope::Step(Arc::clone(&state)), body))
        .instrument(setup.span.clone());
    let limited = async move {
        match setup.timeout {
            None => Ok(running.await),
            Some(limit) => tokio::time::timeout(limit, running)
                .await
                .map_err(|_| limit),
        }
    };
    let record = move || record_start(started);
    let (ran, start_recorded) = recording_start(limited, record, setup.eager).await;
    let outcome = match ran {
        Ok(Ok(Ok(value))) => Outcome::Succeeded(value),
        Ok(Ok(Err(error))) => Outcome::Failed {
            error,
            permanent: state.permanent.load(Ordering::Relaxed),
        },
        Ok(Err((panic, payload))) => Outcome::Panicked {
            message: panic.to_string(),
            payload,
        },
        Err(limit) => Outcome::TimedOut(StepFailure::Timeout {
            step: setup.key.to_string(),
            attempt: setup.attempt,
            timeout_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        }),
    };
    Attempt {
        outcome,
        timing: Timing {
            started,
            ended: now(),
            start_recorded,
        },
    }
}

/// How long a step body runs before its start is journaled on its own. A
/// quicker step's start and result are written together, as one statement
/// in one waited commit.
pub(crate) const START_RECORD_AFTER: Duration = Duration::from_millis(10);

/// Runs `body`, calling `record` once if it is still running after
/// [`START_RECORD_AFTER`]; returns its output and whether `record` was called.
/// The timer exists only for a body that does not finish at its first poll.
///
/// With `eager`, `record` is called before the body first runs.
async fn recording_start<F: Future>(
    body: F,
    record: impl FnOnce(),
    eager: bool,
) -> (F::Output, bool) {
    let mut body = pin!(body);
    let mut record = Some(record);
    if eager && let Some(record) = record.take() {
        record();
    }
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let output = poll_fn(|cx| {
        if let Poll::Ready(output) = body.as_mut().poll(cx) {
            return Poll::Ready(output);
        }
        if record.is_some() {
            let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(START_RECORD_AFTER)));
            if t.as_mut().poll(cx).is_ready() {
                timer = None;
                if let Some(record) = record.take() {
                    record();
                }
            }
        }
        Poll::Pending
    })
    .await;
    (output, record.is_none())
}
