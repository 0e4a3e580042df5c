//! A step call inside a workflow, as a small lifecycle: a replay lookup, then
//! attempts whose outcomes go through one retry decision
//! ([`RetryPolicy::after_failure`]) and end in the journal through one
//! function ([`Step::end`]).

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::attempt::{Attempt, AttemptSetup, Outcome, START_RECORD_AFTER, Timing, run_attempt};
use super::context::{SCOPE, Scope};
use super::replay::Reservation;
use super::state::Execution;
use crate::codec::Codec;
use crate::error::StepFailure;
use crate::record::StepKey;
use crate::retry::{Retry, RetryPolicy};
use crate::status::{EntryKind, PauseCause, StepStatus};
use crate::store::{AttemptEnd, EntryAt, JournalOp, TypeTag};

/// A `#[step]`'s options as written on its attribute; unset ones fall through
/// to the execution's and the runtime's defaults at run time.
#[derive(Debug)]
#[doc(hidden)]
pub struct StepMeta {
    pub name: &'static str,
    pub max_attempts: Option<u32>,
    pub backoff: Option<Duration>,
    pub exponential: Option<bool>,
    pub max_backoff: Option<Duration>,
    pub timeout: Option<Duration>,
    /// Whether the step's last attempt in this process ran for
    /// `START_RECORD_AFTER` or longer: its next attempts journal their start
    /// before the body first runs, so even a body that blocks its thread
    /// has its start on record if the process dies.
    pub slow: AtomicBool,
    /// `#[step(at_most_once)]`.
    pub at_most_once: bool,
}
/// How a step retries: resolved from the step's attribute options over the
/// execution's policy.
pub(crate) struct StepSpec {
    pub policy: RetryPolicy,
    pub timeout: Option<Duration>,
    /// A `#[step]`'s record of whether its last attempt was slow (see
    /// [`StepMeta::slow`]); inline steps have none.
    pub slow: Option<&'static AtomicBool>,
    /// Each attempt's start is committed before its body runs, and an
    /// attempt found in flight counts as failed.
    pub at_most_once: bool,
}

/// Calls a `#[step]`: inside a workflow body the call reserves its journal
/// place now (synchronously) and is replayed or journaled when awaited;
/// anywhere else, including inside another step's body, it is a plain call.
#[track_caller]
pub(crate) fn call_step<T, E, F, Fut>(
    meta: &'static StepMeta,
    convert: fn(StepFailure) -> Option<E>,
    mut body: F,
) -> impl Future<Output = Result<T, E>>
where
    T: Serialize + DeserializeOwned,
    E: Serialize + DeserializeOwned + fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let location = Location::caller();
    let call = SCOPE
        .try_with(|scope| match scope {
            Scope::Workflow(ctx) => Some(StepCall::reserve(
                &ctx.exec,
                &ctx.branch,
                meta.name,
                location,
            )),
            Scope::Step(_) => None,
        })
        .ok()
        .flatten();
    async move {
        match call {
            Some(call) => {
                let spec = StepSpec {
                    policy: overlay(call.exec.retry, meta),
                    timeout: meta.timeout,
                    slow: Some(&meta.slow),
                    at_most_once: meta.at_most_once,
                };
                call.run(spec, convert, body).await
            }
            None => body().await,
        }
    }
}

/// `policy` with the fields the step's attribute sets replaced.
fn overlay(mut policy: RetryPolicy, meta: &StepMeta) -> RetryPolicy {
    if let Some(n) = meta.max_attempts {
        policy.max_attempts = n.max(1);
    }
    if let Some(b) = meta.backoff {
        policy.backoff = b;
    }
    if let Some(e) = meta.exponential {
        policy.exponential = e;
    }
    if let Some(m) = meta.max_backoff {
        policy.max_backoff = m;
    }
    policy
}

/// A step call that has reserved its journal place.
pub(crate) struct StepCall {
    exec: Arc<Execution>,
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

/// What the replay lookup found.
enum Replayed<T, E> {
    /// The journal holds the step's end: the workflow gets it again.
    Done(Result<T, E>),
    /// The step runs, from this attempt.
    From(u32),
    /// Attempt `n` of an `at_most_once` step was in flight: it counts as failed.
    Interrupted(u32),
}

/// How an attempt ends in the journal.
enum Ending {
    /// The step's result; `ended` is when the body returned.
    Completed {
        output: Vec<u8>,
        ended: i64,
        log_attempt: bool,
        value_type: TypeTag,
    },
    /// Another attempt follows at `at`; `durable` when the execution may
    /// be suspended meanwhile (then the write is waited for).
    Retry {
        message: String,
        at: i64,
        durable: bool,
    },
    /// No value to replay (a panic, or a failure the step's error type
    /// cannot hold): a later replay runs the step again.
    Interrupted(String),
    /// The step failed for good with this encoded error.
    Failed {
        message: String,
        error: Vec<u8>,
        value_type: TypeTag,
    },
}

impl StepCall {
    /// Reserves the next place for step `name` (synchronously, at call
    /// time), called at `location` in the workflow's code.
    pub(crate) fn reserve(
        exec: &Arc<Execution>,
        branch: &Arc<str>,
        name: &str,
        location: &'static Location<'static>,
    ) -> StepCall {
        let mut reservation = exec.reserve(branch, name);
        reservation.location = Some(location);
        StepCall {
            exec: Arc::clone(exec),
            reservation,
        }
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
        let StepCall {
            exec,
            mut reservation,
        } = self;
        let step = Step {
            key: reservation.key(),
            at: reservation.entry_at(&exec.id, EntryKind::Step),
            exec: &exec,
            spec: &spec,
        };
        exec.boundary().await;
        let replayed = step.replay(&mut reservation).await;
        if !matches!(replayed, Replayed::Done(_)) && exec.stops_past_journal() {
            // In flight when the journal ends: a dry replay stops here.
            exec.halt().await
        }
        let mut attempt = match replayed {
            Replayed::Done(result) => return result,
            Replayed::From(attempt) => attempt,
            Replayed::Interrupted(attempt) => match step.interrupted(attempt, convert).await {
                Ok(next) => next,
                Err(error) => return Err(error),
            },
        };
        let span = tracing::info_span!("step", step = %step.key, execution = %exec.id);
        loop {
            let ran = step.attempt(attempt, body(), &span).await;
            let failure = match ran.outcome {
                Outcome::Succeeded(value) => {
                    match step.complete(attempt, ran.timing, value).await {
                        Ok(value) => return Ok(value),
                        Err(failure) => runtime_failure(failure, convert),
                    }
                }
                Outcome::Failed { error, permanent } => Failure {
                    message: format!("{error:?}"),
                    permanent,
                    error: Some(error),
                },
                Outcome::TimedOut(failure) => runtime_failure(failure, convert),
                // A panicking step is not retried by its policy: the
                // execution restarts by replay and this attempt count goes on.
                Outcome::Panicked { message, payload } => {
                    step.end(attempt, ran.timing.started, Ending::Interrupted(message))
                        .await;
                    std::panic::resume_unwind(payload)
                }
            };
            match spec.policy.after_failure(attempt, failure.permanent) {
                Retry::After(delay) => {
                    let at = step
                        .retry(attempt, ran.timing.started, failure.message, delay)
                        .await;
                    exec.wait_until(at).await;
                    exec.boundary().await;
                    attempt += 1;
                }
                Retry::GiveUp => {
                    return Err(step
                        .give_up(attempt, ran.timing.started, failure, convert)
                        .await);
                }
            }
        }
    }
}

/// One step call's fixed parts, shared by its lifecycle's functions.
struct Step<'a> {
    exec: &'a Execution,
    key: StepKey,
    at: EntryAt,
    spec: &'a StepSpec,
}

impl Step<'_> {
    fn what_output(&self) -> impl Fn() -> String + '_ {
        || {
            format!(
                "the output of step `{}` in workflow `{}`",
                self.key, self.exec.workflow
            )
        }
    }

    fn what_error(&self) -> impl Fn() -> String + '_ {
        || {
            format!(
                "the error of step `{}` in workflow `{}`",
                self.key, self.exec.workflow
            )
        }
    }

    /// Looks the call up in the journal (the determinism check included).
    async fn replay<T, E>(&self, r: &mut Reservation) -> Replayed<T, E>
    where
        T: DeserializeOwned,
        E: DeserializeOwned,
    {
        let exec = self.exec;
        let Some(entry) = exec.recorded(r, EntryKind::Step).await else {
            return Replayed::From(1);
        };
        match entry.status {
            StepStatus::Completed => {
                let Some(bytes) = entry.output.as_deref() else {
                    let reason =
                        format!("completed step `{}` has no output in the journal", self.key);
                    exec.park_for(PauseCause::Undecodable, reason).await
                };
                exec.check_type::<T>(entry.value_type, self.what_output())
                    .await;
                let value = exec.decode_or_park(bytes, self.what_output()).await;
                tracing::debug!(step = %self.key, "replayed completed step");
                Replayed::Done(Ok(value))
            }
            StepStatus::Failed => {
                let Some(bytes) = entry.error.as_deref() else {
                    let reason = entry.error_message.unwrap_or_default();
                    exec.fail(format!("step `{}` failed: {reason}", self.key))
                        .await
                };
                exec.check_type::<E>(entry.value_type, self.what_error())
                    .await;
                let error = exec.decode_or_park(bytes, self.what_error()).await;
                tracing::debug!(step = %self.key, "replayed failed step");
                Replayed::Done(Err(error))
            }
            // An at-most-once attempt in flight when the process stopped, or
            // one that panicked (retrying with no wake time): its effect is
            // unknown, so it is not simply run again.
            StepStatus::Running | StepStatus::Pending if self.spec.at_most_once => {
                Replayed::Interrupted(entry.attempts.max(1))
            }
            StepStatus::Retrying if self.spec.at_most_once && entry.wake_at.is_none() => {
                Replayed::Interrupted(entry.attempts.max(1))
            }
            // Waiting out a backoff when the execution stopped or was
            // suspended: the journaled retry time stands.
            StepStatus::Retrying => {
                if let Some(wake_at) = entry.wake_at {
                    exec.wait_until(wake_at).await;
                }
                Replayed::From(entry.attempts + 1)
            }
            // In flight when the process stopped: run again, counting on.
            _ => Replayed::From(entry.attempts + 1),
        }
    }

    /// Attempt `attempt` was interrupted (see [`Replayed::Interrupted`]):
    /// the retry policy decides as for any failed attempt. Returns the next
    /// attempt, or the error the step ends with.
    async fn interrupted<E>(
        &self,
        attempt: u32,
        convert: fn(StepFailure) -> Option<E>,
    ) -> Result<u32, E>
    where
        E: Serialize + DeserializeOwned + fmt::Debug,
    {
        let step = self.key.to_string();
        let failure = runtime_failure(StepFailure::Interrupted { step, attempt }, convert);
        let started = self.exec.now_millis();
        match self.spec.policy.after_failure(attempt, failure.permanent) {
            Retry::After(delay) => {
                let at = self.retry(attempt, started, failure.message, delay).await;
                self.exec.wait_until(at).await;
                self.exec.boundary().await;
                Ok(attempt + 1)
            }
            Retry::GiveUp => Err(self.give_up(attempt, started, failure, convert).await),
        }
    }

    /// Runs attempt `attempt`, journaling its start if the body is slow
    /// (or, for an at-most-once step, committing it before the body runs).
    async fn attempt<T, E, Fut>(
        &self,
        attempt: u32,
        body: Fut,
        span: &tracing::Span,
    ) -> Attempt<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let setup = AttemptSetup {
            execution: &self.exec.id,
            branch: &self.at.branch,
            key: &self.key,
            attempt,
            timeout: self.spec.timeout,
            // A step that was slow last time journals its start at once: its
            // body may block its thread, and no timer would fire meanwhile.
            eager: !self.spec.at_most_once
                && self
                    .spec
                    .slow
                    .is_some_and(|slow| slow.load(Ordering::Relaxed)),
            span,
        };
        if self.spec.at_most_once {
            let begin = JournalOp::BeginAttempt {
                at: self.at.clone(),
                attempt,
                started: self.exec.now_millis(),
            };
            if let Err(e) = self.exec.engine.store.commit(begin).await {
                let what = format!("the start of step `{}`", self.key);
                self.exec.journal_failed(&what, &e).await
            }
            let busy = self.exec.busy();
            let mut ran = run_attempt(setup, body, |_| {}, || self.exec.now_millis()).await;
            drop(busy);
            ran.timing.start_recorded = true;
            return ran;
        }
        // Queued, not waited: it commits with the next write, and a start
        // lost in a crash only means an interrupted attempt.
        let record_start = |started| {
            self.exec.engine.store.queue(JournalOp::BeginAttempt {
                at: self.at.clone(),
                attempt,
                started,
            })
        };
        let busy = self.exec.busy();
        let ran = run_attempt(setup, body, record_start, || self.exec.now_millis()).await;
        drop(busy);
        if let Some(slow) = self.spec.slow {
            let threshold = i64::try_from(START_RECORD_AFTER.as_millis()).unwrap_or(i64::MAX);
            let took = ran.timing.ended.saturating_sub(ran.timing.started);
            slow.store(took >= threshold, Ordering::Relaxed);
        }
        ran
    }

    /// Journals a successful attempt's value, which goes to the workflow as
    /// replay will give it; a value that cannot be journaled fails the attempt.
    async fn complete<T>(&self, attempt: u32, timing: Timing, value: T) -> Result<T, StepFailure>
    where
        T: Serialize + DeserializeOwned,
    {
        let (output, value) = self.round_trip(value)?;
        let ending = Ending::Completed {
            output,
            ended: timing.ended,
            log_attempt: timing.start_recorded || attempt > 1,
            value_type: TypeTag::of::<T>(),
        };
        self.end(attempt, timing.started, ending).await;
        tracing::debug!(step = %self.key, attempt, "step completed");
        self.exec.made_progress();
        Ok(value)
    }

    /// Encodes a step's value and decodes it back: the workflow gets what
    /// replay would give it. A value that cannot make the trip, or is over
    /// the size limit, is a failure of the step.
    fn round_trip<T: Serialize + DeserializeOwned>(
        &self,
        value: T,
    ) -> Result<(Vec<u8>, T), StepFailure> {
        let codec = self.exec.codec;
        let limit = self.exec.engine.defaults.max_payload;
        let bytes = codec
            .encode(&value, self.what_output())
            .map_err(|e| StepFailure::Encode {
                step: self.key.to_string(),
                message: e.to_string(),
            })?;
        if bytes.len() > limit {
            return Err(StepFailure::TooLarge {
                step: self.key.to_string(),
                size: bytes.len(),
                limit,
            });
        }
        let decoded =
            codec
                .decode::<T>(&bytes, self.what_output())
                .map_err(|e| StepFailure::Encode {
                    step: self.key.to_string(),
                    message: format!("the value does not survive the round trip: {e}"),
                })?;
        Ok((bytes, decoded))
    }

    /// Journals a failed attempt that will be retried after `delay`;
    /// returns the retry time.
    async fn retry(&self, attempt: u32, started: i64, message: String, delay: Duration) -> i64 {
        let at = self
            .exec
            .now_millis()
            .saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        tracing::info!(step = %self.key, attempt, error = %message, ?delay, "step attempt failed; retrying");
        // A long backoff is durable like a sleep: the retry time is
        // committed before the execution is suspended.
        let durable = delay > self.exec.engine.defaults.suspend_after;
        self.end(
            attempt,
            started,
            Ending::Retry {
                message,
                at,
                durable,
            },
        )
        .await;
        at
    }

    /// The step has failed for good: journals its error and returns it as
    /// replay will (or ends the execution when no error value can hold it).
    async fn give_up<E>(
        &self,
        attempt: u32,
        started: i64,
        failure: Failure<E>,
        convert: fn(StepFailure) -> Option<E>,
    ) -> E
    where
        E: Serialize + DeserializeOwned + fmt::Debug,
    {
        tracing::info!(step = %self.key, attempt, error = %failure.message, "step failed");
        let codec = self.exec.codec;
        let Some(error) = failure.error else {
            self.end(
                attempt,
                started,
                Ending::Interrupted(failure.message.clone()),
            )
            .await;
            self.exec
                .fail(format!(
                    "{} (the step's error type cannot hold it: implement `From<replayflow::StepFailure>` for it to handle this in the workflow)",
                    failure.message
                ))
                .await
        };
        let (bytes, decoded) = match encode_round_trip(codec, &error, self.what_error()) {
            Ok(pair) => pair,
            Err(message) => {
                let failure = StepFailure::Encode {
                    step: self.key.to_string(),
                    message,
                };
                match convert(failure.clone())
                    .map(|e| encode_round_trip(codec, &e, self.what_error()))
                {
                    Some(Ok(pair)) => pair,
                    _ => self.exec.fail(failure.to_string()).await,
                }
            }
        };
        let ending = Ending::Failed {
            message: failure.message,
            error: bytes,
            value_type: TypeTag::of::<E>(),
        };
        self.end(attempt, started, ending).await;
        decoded
    }

    /// Ends attempt `attempt` in the journal: the one place that turns an
    /// attempt's end into a journal write. A write the journal refuses
    /// parks the execution (the workflow must not go on as if it had been
    /// recorded), except for an interrupted attempt, which stops the
    /// execution anyway and leaves the attempt as the journal had it.
    async fn end(&self, attempt: u32, started: i64, ending: Ending) {
        let at = self.at.clone();
        // The clock is read for a failure only: a completion carries its end.
        let fail = |at, message, end| JournalOp::FailAttempt {
            at,
            attempt,
            started,
            message,
            end,
            now: self.exec.now_millis(),
        };
        let (op, what, waited) = match ending {
            Ending::Completed {
                output,
                ended,
                log_attempt,
                value_type,
            } => {
                self.exec.engine.note_type(value_type).await;
                let op = JournalOp::CompleteStep {
                    at,
                    attempt,
                    started,
                    output,
                    now: ended,
                    log_attempt,
                    value_type: value_type.hash,
                };
                (op, "the result", true)
            }
            Ending::Retry {
                message,
                at: retry_at,
                durable,
            } => (
                fail(at, message, AttemptEnd::RetryAt(retry_at)),
                "a failed attempt",
                durable,
            ),
            Ending::Interrupted(message) => {
                if let Err(e) = self
                    .exec
                    .engine
                    .store
                    .commit(fail(at, message, AttemptEnd::Interrupted))
                    .await
                {
                    tracing::warn!(execution = %self.exec.id, error = %e, "cannot record a failed attempt");
                }
                return;
            }
            Ending::Failed {
                message,
                error,
                value_type,
            } => {
                self.exec.engine.note_type(value_type).await;
                (
                    fail(at, message, AttemptEnd::Failed(error, value_type.hash)),
                    "the failure",
                    true,
                )
            }
        };
        let store = &self.exec.engine.store;
        if !waited {
            store.queue(op);
            return;
        }
        if let Err(e) = store.commit(op).await {
            let what = format!("{what} of step `{}`", self.key);
            self.exec.journal_failed(&what, &e).await
        }
    }
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
    codec: Codec,
    value: &V,
    what: impl Fn() -> String,
) -> Result<(Vec<u8>, V), String> {
    let bytes = codec.encode(value, &what).map_err(|e| e.to_string())?;
    let decoded = codec.decode(&bytes, &what).map_err(|e| e.to_string())?;
    Ok((bytes, decoded))
}
