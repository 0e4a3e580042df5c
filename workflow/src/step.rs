//! Running a step inside a workflow: replay from the journal, or attempts
//! with retries, each journaled, and the step-side API ([`StepContext`],
//! [`permanent`]).

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

use crate::context::{Context, Execution, Reservation, SCOPE, Scope};
use crate::error::StepFailure;
use crate::journal::{ExecutionId, StepKey};
use crate::panic::CatchUnwind;
use crate::retry::RetryPolicy;
use crate::status::{EntryKind, PauseCause, StepStatus};
use crate::store::{self, EntryAt};

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

/// How a step retries: resolved from the step's attribute options over the
/// execution's policy.
pub(crate) struct StepSpec {
    pub policy: RetryPolicy,
    pub timeout: Option<Duration>,
    /// A `#[step]`'s record of whether its last attempt was slow (see
    /// [`StepMeta::slow`](crate::private::StepMeta)); inline steps have none.
    pub slow: Option<&'static AtomicBool>,
}

/// A step call that has reserved its journal position.
pub(crate) struct StepCall {
    ctx: Context,
    name: String,
    reservation: Reservation,
}

/// One attempt's failure, before the retry decision.
struct Failure<E> {
    /// The value the workflow would get (None: the error type cannot hold a
    /// runtime failure).
    error: Option<E>,
    message: String,
    permanent: bool,
}

impl StepCall {
    /// Reserves the next position for step `name` (synchronously, at call time).
    pub(crate) fn reserve(ctx: Context, name: &str) -> StepCall {
        let reservation = ctx.exec.reserve(&ctx.branch, name);
        StepCall {
            ctx,
            name: name.to_owned(),
            reservation,
        }
    }

    /// The execution's retry policy, before the step's own options.
    pub(crate) fn policy(&self) -> RetryPolicy {
        self.ctx.exec.retry
    }

    /// Replays the step from the journal, or runs its attempts.
    pub(crate) async fn run<T, E, F, Fut>(
        self,
        spec: StepSpec,
        convert: fn(StepFailure) -> Option<E>,
        mut body: F,
    ) -> Result<T, E>
    where
        T: Serialize + DeserializeOwned,
        E: Serialize + DeserializeOwned + fmt::Debug,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let exec = Arc::clone(&self.ctx.exec);
        let StepCall {
            name, reservation, ..
        } = self;
        let key = StepKey {
            name,
            occurrence: reservation.occurrence,
        };
        let position = reservation.position;
        let at = exec.entry_at(&reservation, EntryKind::Step, &key.name);
        let what_output = || format!("the output of step `{key}` in workflow `{}`", exec.workflow);
        let what_error = || format!("the error of step `{key}` in workflow `{}`", exec.workflow);

        exec.boundary().await;
        let mut attempt = 1;
        if let Some(entry) = reservation.recorded {
            if entry.kind != EntryKind::Step
                || *entry.name != *key.name
                || entry.occurrence != key.occurrence
            {
                let reason = exec.nondeterminism(position, &entry, EntryKind::Step, &key);
                exec.park_for(PauseCause::Nondeterminism, reason).await
            }
            match entry.status {
                StepStatus::Completed => {
                    let Some(bytes) = entry.output.as_deref() else {
                        exec.park_for(
                            PauseCause::Undecodable,
                            format!("completed step `{key}` has no output in the journal"),
                        )
                        .await
                    };
                    let value = exec.decode_or_park(bytes, what_output).await;
                    tracing::debug!(step = %key, "replayed completed step");
                    return Ok(value);
                }
                StepStatus::Failed => {
                    let Some(bytes) = entry.error.as_deref() else {
                        let reason = entry.error_message.unwrap_or_default();
                        exec.fail(format!("step `{key}` failed: {reason}")).await
                    };
                    let error = exec.decode_or_park(bytes, what_error).await;
                    tracing::debug!(step = %key, "replayed failed step");
                    return Err(error);
                }
                // Waiting out a backoff when the execution stopped or was
                // suspended: the journaled retry time stands.
                StepStatus::Retrying => {
                    if let Some(wake_at) = entry.wake_at {
                        exec.wait_until(wake_at).await;
                    }
                    attempt = entry.attempts + 1;
                }
                // In flight when the process stopped: run again, counting on.
                _ => attempt = entry.attempts + 1,
            }
        }

        let span = tracing::info_span!("step", step = %key, execution = %exec.id);
        loop {
            let started = exec.now_millis();
            let state = Arc::new(StepState {
                execution: exec.id.clone(),
                branch: Arc::clone(&at.branch),
                key: key.clone(),
                attempt,
                permanent: AtomicBool::new(false),
            });
            let running = CatchUnwind::new(SCOPE.scope(Scope::Step(Arc::clone(&state)), body()))
                .instrument(span.clone());
            let attempt_key = &key;
            let timeout = spec.timeout;
            let limited = async move {
                match timeout {
                    None => Ok(running.await),
                    Some(limit) => tokio::time::timeout(limit, running).await.map_err(|_| {
                        StepFailure::Timeout {
                            step: attempt_key.to_string(),
                            attempt,
                            timeout_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
                        }
                    }),
                }
            };
            // Queued, not waited: it commits with the next write, and a start
            // lost in a crash only means an interrupted attempt.
            let record_start = || {
                let begin_at = at.clone();
                exec.rt
                    .inner
                    .store
                    .enqueue(move |conn| store::begin_attempt(conn, &begin_at, attempt, started));
            };
            // A step that was slow last time journals its start at once: its
            // body may block its thread, and no timer would fire meanwhile.
            let eager = spec.slow.is_some_and(|slow| slow.load(Ordering::Relaxed));
            let (outcome, start_recorded) = recording_start(limited, record_start, eager).await;
            let ended = exec.now_millis();
            if let Some(slow) = spec.slow {
                let threshold = i64::try_from(START_RECORD_AFTER.as_millis()).unwrap_or(i64::MAX);
                slow.store(
                    ended.saturating_sub(started) >= threshold,
                    Ordering::Relaxed,
                );
            }

            let failure = match outcome {
                Ok(Ok(Ok(value))) => {
                    let failure = match exec.codec.encode(&value, what_output) {
                        Ok(bytes) if bytes.len() > exec.rt.inner.defaults.max_payload => {
                            StepFailure::TooLarge {
                                step: key.to_string(),
                                size: bytes.len(),
                                limit: exec.rt.inner.defaults.max_payload,
                            }
                        }
                        Ok(bytes) => {
                            // The workflow gets the decoded value, on the first
                            // run as on replay.
                            match exec.codec.decode::<T>(&bytes, what_output) {
                                Ok(decoded) => {
                                    // The last use of `at`: moved, not copied.
                                    let done_at = at;
                                    let now = ended;
                                    let log_attempt = start_recorded || attempt > 1;
                                    let op = move |conn: &rusqlite::Connection| {
                                        store::complete_step(
                                            conn,
                                            &done_at,
                                            attempt,
                                            started,
                                            &bytes,
                                            now,
                                            log_attempt,
                                        )
                                    };
                                    let store = &exec.rt.inner.store;
                                    let written = if log_attempt {
                                        store.write(op).await
                                    } else {
                                        // One statement: the entry, completed.
                                        store.write_one(op).await
                                    };
                                    if let Err(e) = written {
                                        exec.journal_failed(
                                            &format!("the result of step `{key}`"),
                                            &e,
                                        )
                                        .await
                                    }
                                    tracing::debug!(step = %key, attempt, "step completed");
                                    exec.made_progress();
                                    return Ok(decoded);
                                }
                                Err(e) => StepFailure::Encode {
                                    step: key.to_string(),
                                    message: format!(
                                        "the value does not survive the round trip: {e}"
                                    ),
                                },
                            }
                        }
                        Err(e) => StepFailure::Encode {
                            step: key.to_string(),
                            message: e.to_string(),
                        },
                    };
                    runtime_failure(failure, convert)
                }
                Ok(Ok(Err(error))) => Failure {
                    message: format!("{error:?}"),
                    permanent: state.permanent.load(Ordering::Relaxed),
                    error: Some(error),
                },
                Ok(Err((panic, payload))) => {
                    // A panicking step is not retried by its policy: the
                    // execution restarts by replay and this attempt count goes on.
                    record_failed_attempt(&exec, &at, attempt, started, panic.to_string()).await;
                    std::panic::resume_unwind(payload)
                }
                Err(timeout) => runtime_failure(timeout, convert),
            };

            let last = failure.permanent || attempt >= spec.policy.max_attempts;
            if !last {
                let delay = spec.policy.delay_before(attempt + 1);
                let now = exec.now_millis();
                let retry_at =
                    now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
                let failed_at = at.clone();
                let message = failure.message.clone();
                let record = move |conn: &rusqlite::Connection| {
                    store::fail_attempt(
                        conn,
                        &failed_at,
                        attempt,
                        started,
                        &message,
                        None,
                        Some(retry_at),
                        now,
                    )
                };
                tracing::info!(step = %key, attempt, error = %failure.message, ?delay, "step attempt failed; retrying");
                if delay > exec.rt.inner.defaults.suspend_after {
                    // A long backoff is durable like a sleep: the retry time is
                    // committed before the execution is suspended.
                    if let Err(e) = exec.rt.inner.store.write(record).await {
                        exec.journal_failed(&format!("a failed attempt of step `{key}`"), &e)
                            .await
                    }
                } else {
                    exec.rt.inner.store.enqueue(record);
                }
                exec.wait_until(retry_at).await;
                exec.boundary().await;
                attempt += 1;
                continue;
            }

            tracing::info!(step = %key, attempt, error = %failure.message, "step failed");
            let Some(error) = failure.error else {
                record_failed_attempt(&exec, &at, attempt, started, failure.message.clone()).await;
                exec.fail(format!(
                    "{} (the step's error type cannot hold it: implement `From<replayflow::StepFailure>` for it to handle this in the workflow)",
                    failure.message
                ))
                .await
            };
            let (bytes, decoded) = match encode_round_trip(&exec.codec, &error, what_error) {
                Ok(pair) => pair,
                Err(message) => {
                    let failure = StepFailure::Encode {
                        step: key.to_string(),
                        message,
                    };
                    match convert(failure.clone())
                        .map(|e| encode_round_trip(&exec.codec, &e, what_error))
                    {
                        Some(Ok(pair)) => pair,
                        _ => exec.fail(failure.to_string()).await,
                    }
                }
            };
            let written =
                write_failed_attempt(&exec, &at, attempt, started, failure.message, Some(bytes))
                    .await;
            if let Err(e) = written {
                exec.journal_failed(&format!("the failure of step `{key}`"), &e)
                    .await
            }
            return Err(decoded);
        }
    }
}

/// Journals attempt `attempt` as failed for good with `message` and the
/// encoded `error` (none for a panic, or a failure the step's error type
/// cannot hold), waiting for the commit.
async fn write_failed_attempt(
    exec: &Execution,
    at: &EntryAt,
    attempt: u32,
    started: i64,
    message: String,
    error: Option<Vec<u8>>,
) -> crate::error::Result<()> {
    let at = at.clone();
    let now = exec.now_millis();
    exec.rt
        .inner
        .store
        .write(move |conn| {
            store::fail_attempt(
                conn,
                &at,
                attempt,
                started,
                &message,
                error.as_deref(),
                None,
                now,
            )
        })
        .await
}

/// [`write_failed_attempt`] without an error value, before the execution
/// stops: a write that fails leaves the attempt as the journal had it, which
/// replay handles.
async fn record_failed_attempt(
    exec: &Execution,
    at: &EntryAt,
    attempt: u32,
    started: i64,
    message: String,
) {
    if let Err(e) = write_failed_attempt(exec, at, attempt, started, message, None).await {
        tracing::warn!(execution = %exec.id, error = %e, "cannot record a failed attempt");
    }
}

/// How long a step body runs before its start is journaled on its own. A
/// quicker step's start and result are written together, as one statement
/// in one waited commit.
const START_RECORD_AFTER: Duration = Duration::from_millis(10);

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

/// A failure the runtime itself produced, as the step's error if it can hold one.
fn runtime_failure<E: fmt::Debug>(
    failure: StepFailure,
    convert: fn(StepFailure) -> Option<E>,
) -> Failure<E> {
    Failure {
        message: failure.to_string(),
        permanent: !failure.is_transient(),
        error: convert(failure),
    }
}

/// Encodes a value and decodes it back, so the caller hands on what replay would.
fn encode_round_trip<V: Serialize + DeserializeOwned>(
    codec: &crate::codec::Codec,
    value: &V,
    what: impl Fn() -> String,
) -> Result<(Vec<u8>, V), String> {
    let bytes = codec.encode(value, &what).map_err(|e| e.to_string())?;
    let decoded = codec.decode(&bytes, &what).map_err(|e| e.to_string())?;
    Ok((bytes, decoded))
}
