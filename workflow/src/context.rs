//! The [`Context`] a workflow body gets: it reserves journal positions in call
//! order, replays what the journal holds and records what it does not.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::codec::Codec;
use crate::journal::{ExecutionId, StepKey, from_millis, to_millis};
use crate::retry::RetryPolicy;
use crate::runtime::Runtime;
use crate::status::{EntryKind, ExecutionStatus, PauseCause, StepStatus};
use crate::step::{self, StepCall, StepSpec};
use crate::store::{self, Entry, EntryAt, Transition};

tokio::task_local! {
    /// What the code being polled runs inside: a workflow body, or a step body.
    pub(crate) static SCOPE: Scope;
}

#[derive(Clone)]
pub(crate) enum Scope {
    Workflow(Context),
    Step(Arc<step::StepState>),
}

/// The handle a workflow body gets as its first argument.
///
/// It identifies the execution, gives journaled helper values (`now`,
/// random numbers) that replay returns unchanged, and runs inline steps.
/// Cloning it is cheap; every clone is the same execution.
#[derive(Clone)]
pub struct Context {
    pub(crate) exec: Arc<Execution>,
}

/// The shared state of one running execution.
pub(crate) struct Execution {
    pub rt: Runtime,
    pub id: ExecutionId,
    pub workflow: &'static str,
    pub codec: Codec,
    pub restart_attempt: u32,
    pub retry: RetryPolicy,
    cursor: Mutex<Cursor>,
    /// Told when the execution must stop (parked, failed by the runtime): the
    /// driver then drops the workflow future.
    pub stop: Notify,
    /// Set by a cancel request; honoured at the next boundary.
    cancel: AtomicBool,
    /// Wakes in-memory waits (short sleeps, backoffs) for a cancel or shutdown.
    interrupt: Notify,
    /// Taken over after an unclean end: the first progress resets the
    /// recovery count.
    recovered: AtomicBool,
}

/// Replay position: the journal loaded at start, consumed in call order.
struct Cursor {
    journal: Vec<Option<Entry>>,
    next: u32,
    occurrences: HashMap<Box<str>, u32>,
}

/// A journal position reserved by a call.
pub(crate) struct Reservation {
    pub position: u32,
    pub occurrence: u32,
    pub recorded: Option<Entry>,
}

impl Execution {
    pub(crate) fn new(
        rt: Runtime,
        row: &store::ExecutionRow,
        workflow: &'static str,
        retry: RetryPolicy,
        journal: Vec<Entry>,
        recovered: bool,
    ) -> Self {
        let len = journal
            .iter()
            .map(|e| e.position as usize + 1)
            .max()
            .unwrap_or(0);
        let mut slots: Vec<Option<Entry>> = Vec::with_capacity(len);
        slots.resize_with(len, || None);
        for entry in journal {
            let at = entry.position as usize;
            slots[at] = Some(entry);
        }
        Execution {
            rt,
            id: row.id.clone(),
            workflow,
            codec: row.codec,
            restart_attempt: row.restart_attempt,
            retry,
            cursor: Mutex::new(Cursor {
                journal: slots,
                next: 0,
                occurrences: HashMap::new(),
            }),
            stop: Notify::new(),
            cancel: AtomicBool::new(false),
            interrupt: Notify::new(),
            recovered: AtomicBool::new(recovered),
        }
    }

    /// Asks the execution to stop as cancelled at its next boundary.
    pub(crate) fn request_cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.interrupt.notify_waiters();
    }

    /// Wakes in-memory waits so they see a cancel or a shutdown.
    pub(crate) fn interrupt(&self) {
        self.interrupt.notify_waiters();
    }

    /// A step boundary: stops the execution here if it was cancelled or the
    /// runtime is shutting down.
    pub(crate) async fn boundary(&self) {
        if self.cancel.load(Ordering::SeqCst) {
            tracing::info!(execution = %self.id, "execution cancelled");
            self.rt
                .set_status(&self.id, ExecutionStatus::Cancelled, Transition::default())
                .await;
            self.halt().await
        }
        if self.rt.is_shutting_down() {
            // The journal stays as it is; the next open recovers it.
            self.halt().await
        }
    }

    /// Called after a step completes: progress resets the recovery count.
    pub(crate) fn made_progress(&self) {
        if self.recovered.swap(false, Ordering::SeqCst) {
            let id = self.id.clone();
            self.rt
                .inner
                .store
                .enqueue(move |conn| store::reset_recovery(conn, &id));
        }
    }

    /// Waits until `wake_at` (Unix ms): in memory when it is near, otherwise
    /// by suspending the execution (which never returns here; the
    /// scheduler replays it when due).
    pub(crate) async fn wait_until(&self, wake_at: i64) {
        loop {
            let now = self.now_millis();
            if wake_at <= now {
                return;
            }
            let left = Duration::from_millis(u64::try_from(wake_at - now).unwrap_or(0));
            if left > self.rt.inner.defaults.suspend_after {
                self.suspend(wake_at).await
            }
            let interrupted = self.interrupt.notified();
            tokio::pin!(interrupted);
            interrupted.as_mut().enable();
            self.boundary().await;
            tokio::select! {
                () = self.rt.inner.clock.sleep_until(from_millis(wake_at)) => {}
                () = interrupted => self.boundary().await,
            }
        }
    }

    /// Suspends the execution until `wake_at`: its status becomes `sleeping`
    /// with the wake time, the scheduler gets a timer, and the workflow
    /// future is dropped.
    async fn suspend(&self, wake_at: i64) -> ! {
        tracing::debug!(execution = %self.id, wake_at, "suspending");
        let transition = Transition {
            wake_at: Some(wake_at),
            ..Transition::default()
        };
        self.rt
            .set_status(&self.id, ExecutionStatus::Sleeping, transition)
            .await;
        self.rt.inner.timers.add_wake(wake_at, self.id.clone());
        self.halt().await
    }

    /// A durable sleep until `wake`, computed once and journaled before the
    /// workflow waits.
    async fn sleep(&self, wake: Wake) {
        self.boundary().await;
        let r = self.reserve("sleep");
        let key = StepKey {
            name: "sleep".to_owned(),
            occurrence: r.occurrence,
        };
        let at = self.entry_at(r.position, EntryKind::Sleep, "sleep", r.occurrence);
        let wake_at = match r.recorded {
            Some(entry)
                if entry.kind == EntryKind::Sleep
                    && entry.name == "sleep"
                    && entry.occurrence == r.occurrence =>
            {
                if entry.status == StepStatus::Completed {
                    return;
                }
                // Never recomputed from "now": the journaled time stands.
                entry.wake_at.unwrap_or(0)
            }
            Some(entry) => {
                let reason = self.nondeterminism(r.position, &entry, EntryKind::Sleep, &key);
                self.park_for(PauseCause::Nondeterminism, reason).await
            }
            None => {
                let now = self.now_millis();
                let wake_at = match wake {
                    Wake::After(d) => {
                        now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    }
                    Wake::At(t) => to_millis(t),
                };
                let record = at.clone();
                let written = self
                    .rt
                    .inner
                    .store
                    .write(move |conn| store::record_sleep(conn, &record, wake_at, now))
                    .await;
                if let Err(e) = written {
                    self.journal_failed("a sleep", &e).await
                }
                wake_at
            }
        };
        self.wait_until(wake_at).await;
        let now = self.now_millis();
        self.rt
            .inner
            .store
            .enqueue(move |conn| store::complete_sleep(conn, &at, now));
    }

    /// Takes the next position and the occurrence of `name`; synchronous, so a
    /// call reserves its key when it is made, not when first polled.
    pub(crate) fn reserve(&self, name: &str) -> Reservation {
        // The lock is never held across an await; a panic while holding it
        // cannot leave the cursor half-updated.
        let mut c = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let position = c.next;
        c.next += 1;
        let occurrence = match c.occurrences.get_mut(name) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                c.occurrences.insert(name.into(), 0);
                0
            }
        };
        let recorded = c.journal.get_mut(position as usize).and_then(Option::take);
        Reservation {
            position,
            occurrence,
            recorded,
        }
    }

    /// Journal entries the run did not reach, for the completion check.
    pub(crate) fn unreached(&self) -> Vec<Entry> {
        let mut c = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        c.journal.iter_mut().filter_map(Option::take).collect()
    }

    pub(crate) fn entry_at(
        &self,
        position: u32,
        kind: EntryKind,
        name: &str,
        occurrence: u32,
    ) -> EntryAt {
        EntryAt {
            execution: self.id.clone(),
            position,
            kind,
            name: name.to_owned(),
            occurrence,
        }
    }

    pub(crate) fn now_millis(&self) -> i64 {
        to_millis(self.rt.inner.clock.now())
    }

    /// Parks the execution as `paused` for `cause`, then never returns: the
    /// driver drops the workflow future.
    pub(crate) async fn park_for(&self, cause: PauseCause, reason: String) -> ! {
        tracing::warn!(execution = %self.id, workflow = self.workflow, %reason, "execution paused");
        let transition = Transition {
            message: Some(reason),
            cause: Some(cause),
            ..Transition::default()
        };
        self.rt
            .set_status(&self.id, ExecutionStatus::Paused, transition)
            .await;
        self.halt().await
    }

    /// Ends the execution as `failed` for a reason the workflow's error type
    /// cannot hold, then never returns.
    pub(crate) async fn fail(&self, reason: String) -> ! {
        tracing::warn!(execution = %self.id, workflow = self.workflow, %reason, "execution failed");
        let transition = Transition {
            message: Some(reason),
            ..Transition::default()
        };
        self.rt
            .set_status(&self.id, ExecutionStatus::Failed, transition)
            .await;
        self.halt().await
    }

    /// The journal refused a write (disk full, database locked past every
    /// retry): the workflow must not go on as if it had been recorded. The
    /// execution is paused (when even that cannot be written, it stays
    /// `running` and the next open recovers it) and stopped where it is.
    pub(crate) async fn journal_failed(&self, what: &str, error: &crate::Error) -> ! {
        let reason = format!(
            "the journal could not record {what}: {error}; resume the execution once the database can be written"
        );
        self.park_for(PauseCause::Storage, reason).await
    }

    /// Stops the execution where it is: the journal keeps its state and a
    /// later resume replays it.
    pub(crate) async fn halt(&self) -> ! {
        self.stop.notify_one();
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }

    /// A human-readable description of a position mismatch.
    pub(crate) fn nondeterminism(
        &self,
        position: u32,
        recorded: &Entry,
        kind: EntryKind,
        key: &StepKey,
    ) -> String {
        format!(
            "non-determinism in workflow `{}` at position {position}: the journal recorded {} `{}#{}` but the workflow now calls {kind} `{key}`; no step body ran. Resume it with code that makes the recorded calls.",
            self.workflow, recorded.kind, recorded.name, recorded.occurrence
        )
    }

    /// A journaled helper value: replayed from the journal, or made now and
    /// queued (it commits with the next waited write, before anything that
    /// could depend on it becomes durable).
    async fn journaled<V>(&self, kind: EntryKind, name: &str, make: impl FnOnce() -> V) -> V
    where
        V: Serialize + DeserializeOwned,
    {
        self.boundary().await;
        let r = self.reserve(name);
        let key = StepKey {
            name: name.to_owned(),
            occurrence: r.occurrence,
        };
        if let Some(entry) = r.recorded {
            if entry.kind != kind || entry.name != name || entry.occurrence != r.occurrence {
                let reason = self.nondeterminism(r.position, &entry, kind, &key);
                self.park_for(PauseCause::Nondeterminism, reason).await
            }
            let Some(bytes) = entry
                .output
                .as_deref()
                .filter(|_| entry.status == StepStatus::Completed)
            else {
                self.park_for(
                    PauseCause::Undecodable,
                    format!("journal entry `{key}` of `{}` has no value", self.id),
                )
                .await
            };
            return match self.codec.decode(bytes, || {
                format!("the value of `{key}` in workflow `{}`", self.workflow)
            }) {
                Ok(v) => v,
                Err(e) => self.park_for(PauseCause::Undecodable, e.to_string()).await,
            };
        }
        let value = make();
        let bytes = match self
            .codec
            .encode(&value, || format!("the value of `{key}`"))
        {
            Ok(b) => b,
            Err(e) => self.fail(e.to_string()).await,
        };
        let at = self.entry_at(r.position, kind, name, r.occurrence);
        let now = self.now_millis();
        self.rt
            .inner
            .store
            .enqueue(move |conn| store::record_value(conn, &at, &bytes, now));
        value
    }
}

/// When a durable sleep ends.
enum Wake {
    After(Duration),
    At(SystemTime),
}

impl Context {
    /// Sleeps durably for `duration`: the absolute wake time is journaled
    /// before the workflow waits, and a replay (after a crash, a restart)
    /// waits only for what is left of it. A sleep longer than the runtime's
    /// suspension threshold ([`RuntimeBuilder::suspend_after`](crate::RuntimeBuilder::suspend_after),
    /// 500 ms by default) suspends the execution: its task and future are
    /// dropped, its status is `sleeping`, and it is resumed by replay when due.
    pub async fn sleep(&self, duration: Duration) {
        self.exec.sleep(Wake::After(duration)).await
    }

    /// Sleeps durably until `deadline` (wall time); see [`Context::sleep`].
    pub async fn sleep_until(&self, deadline: SystemTime) {
        self.exec.sleep(Wake::At(deadline)).await
    }

    /// The id of this execution.
    pub fn execution_id(&self) -> &ExecutionId {
        &self.exec.id
    }

    /// The registered name of this workflow.
    pub fn workflow_name(&self) -> &str {
        self.exec.workflow
    }

    /// How many times this execution has been restarted after a panic or by
    /// request: 0 on the first run.
    pub fn restart_attempt(&self) -> u32 {
        self.exec.restart_attempt
    }

    /// The current wall time, journaled: a replay returns the time of the first run.
    pub async fn now(&self) -> SystemTime {
        let ms = self
            .exec
            .journaled(EntryKind::Now, "now", || self.exec.now_millis())
            .await;
        from_millis(ms)
    }

    /// A random number, journaled: a replay returns the same one.
    pub async fn random_u64(&self) -> u64 {
        self.exec
            .journaled(EntryKind::Random, "random", || {
                let bytes = uuid::Uuid::new_v4().into_bytes();
                let mut half = [0u8; 8];
                half.copy_from_slice(&bytes[..8]);
                u64::from_le_bytes(half)
            })
            .await
    }

    /// A random (version 4) UUID, journaled: a replay returns the same one.
    pub async fn uuid(&self) -> uuid::Uuid {
        self.exec
            .journaled(EntryKind::Random, "uuid", uuid::Uuid::new_v4)
            .await
    }

    /// Runs `body` as a step named `name`: keyed, journaled and retried like a
    /// `#[step]` function, with the runtime's retry policy.
    ///
    /// ```
    /// # use workflow::{workflow, Context, Runtime, AnyError};
    /// #[workflow]
    /// async fn greet(ctx: Context, name: String) -> Result<String, AnyError> {
    ///     let greeting = ctx
    ///         .step("compose", || async { Ok::<_, AnyError>(format!("hello, {name}")) })
    ///         .await?;
    ///     Ok(greeting)
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// let out = greet::start(&rt, "g-1", "ada".into()).await?.result().await?;
    /// assert_eq!(out, "hello, ada");
    /// # Ok(())
    /// # }
    /// ```
    pub fn step<T, E, F, Fut>(
        &self,
        name: &str,
        body: F,
    ) -> impl Future<Output = Result<T, E>> + use<T, E, F, Fut>
    where
        T: Serialize + DeserializeOwned,
        E: Serialize + DeserializeOwned + fmt::Debug,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.step_with(name, StepOptions::default(), body)
    }

    /// Like [`Context::step`], with retry options.
    pub fn step_with<T, E, F, Fut>(
        &self,
        name: &str,
        options: StepOptions,
        body: F,
    ) -> impl Future<Output = Result<T, E>> + use<T, E, F, Fut>
    where
        T: Serialize + DeserializeOwned,
        E: Serialize + DeserializeOwned + fmt::Debug,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let call = StepCall::reserve(self.clone(), name);
        let spec = StepSpec {
            policy: options.retry.unwrap_or(self.exec.retry),
            timeout: options.timeout,
        };
        call.run(spec, |_| None, body)
    }
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("execution_id", &self.exec.id)
            .field("workflow", &self.exec.workflow)
            .field("restart_attempt", &self.exec.restart_attempt)
            .finish()
    }
}

/// Options of an inline step ([`Context::step_with`]).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StepOptions {
    /// The retry policy; the execution's when unset.
    pub retry: Option<RetryPolicy>,
    /// The longest one attempt may run.
    pub timeout: Option<std::time::Duration>,
}

impl StepOptions {
    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}
