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
    /// The branch this handle reserves in: `""` for the workflow body,
    /// `"0"`, `"1"`, `"0.1"`... for [`Context::branch`]es.
    pub(crate) branch: Arc<str>,
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
    /// Set when a status that ends `Handle::result` is about to be written.
    pub ending: AtomicBool,
}

/// Replay position: the journal loaded at start, consumed in call order
/// within each branch.
struct Cursor {
    /// Recorded entries not yet reached.
    journal: Recorded,
    /// The position of the next new entry (positions order all entries).
    next_position: u32,
    /// Call order in the workflow body.
    main: BranchCursor,
    /// Call order in each [`Context::branch`].
    branches: HashMap<Arc<str>, BranchCursor>,
}

impl Cursor {
    /// The call order of `branch`.
    fn branch(&mut self, branch: &Arc<str>) -> &mut BranchCursor {
        if branch.is_empty() {
            &mut self.main
        } else {
            self.branches.entry(Arc::clone(branch)).or_default()
        }
    }
}

/// Recorded entries not yet reached, per branch, indexed by their place in
/// the branch (the workflow body's own, the usual case, without a lookup).
#[derive(Default)]
struct Recorded {
    main: Vec<Option<Entry>>,
    branches: HashMap<Arc<str>, Vec<Option<Entry>>>,
    /// Entries whose place is far beyond the journal's size (a damaged
    /// row): kept aside rather than sizing a vector by them.
    far: HashMap<(Arc<str>, u32), Entry>,
    /// A second entry for an occupied place: never reached, so the
    /// completion check reports it.
    duplicates: Vec<Entry>,
}

impl Recorded {
    fn new(journal: Vec<Entry>) -> Recorded {
        // Places in a branch are dense but for calls never journaled.
        let limit = journal.len().saturating_mul(2).saturating_add(64);
        let mut recorded = Recorded::default();
        for entry in journal {
            let local = entry.local as usize;
            if local > limit {
                let key = (Arc::clone(&entry.branch), entry.local);
                if let Some(previous) = recorded.far.insert(key, entry) {
                    recorded.duplicates.push(previous);
                }
                continue;
            }
            let slots = if entry.branch.is_empty() {
                &mut recorded.main
            } else {
                recorded
                    .branches
                    .entry(Arc::clone(&entry.branch))
                    .or_default()
            };
            if slots.len() <= local {
                slots.resize_with(local + 1, || None);
            }
            if let Some(previous) = slots[local].replace(entry) {
                recorded.duplicates.push(previous);
            }
        }
        recorded
    }

    fn take(&mut self, branch: &Arc<str>, local: u32) -> Option<Entry> {
        let slots = if branch.is_empty() {
            Some(&mut self.main)
        } else {
            self.branches.get_mut(&**branch)
        };
        let found = slots.and_then(|s| s.get_mut(local as usize)?.take());
        if found.is_some() || self.far.is_empty() {
            return found;
        }
        self.far.remove(&(Arc::clone(branch), local))
    }

    /// What was never taken, by position.
    fn drain(&mut self) -> Vec<Entry> {
        let mut left: Vec<Entry> = std::mem::take(&mut self.main)
            .into_iter()
            .chain(self.branches.drain().flat_map(|(_, slots)| slots))
            .flatten()
            .chain(self.far.drain().map(|(_, e)| e))
            .chain(self.duplicates.drain(..))
            .collect();
        left.sort_by_key(|e| e.position);
        left
    }
}

/// Call order inside one branch.
#[derive(Default)]
struct BranchCursor {
    next: u32,
    occurrences: HashMap<Box<str>, u32>,
    children: u32,
}

/// A journal position reserved by a call.
pub(crate) struct Reservation {
    pub position: u32,
    pub branch: Arc<str>,
    pub local: u32,
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
        let next_position = journal.iter().map(|e| e.position + 1).max().unwrap_or(0);
        Execution {
            rt,
            id: row.id.clone(),
            workflow,
            codec: row.codec,
            restart_attempt: row.restart_attempt,
            retry,
            cursor: Mutex::new(Cursor {
                journal: Recorded::new(journal),
                next_position,
                main: BranchCursor::default(),
                branches: HashMap::new(),
            }),
            stop: Notify::new(),
            cancel: AtomicBool::new(false),
            interrupt: Notify::new(),
            recovered: AtomicBool::new(recovered),
            ending: AtomicBool::new(false),
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
    async fn sleep(&self, branch: &Arc<str>, wake: Wake) {
        self.boundary().await;
        let r = self.reserve(branch, "sleep");
        let key = StepKey {
            name: "sleep".to_owned(),
            occurrence: r.occurrence,
        };
        let at = self.entry_at(&r, EntryKind::Sleep, "sleep");
        let wake_at = match r.recorded {
            Some(entry)
                if entry.kind == EntryKind::Sleep
                    && &*entry.name == "sleep"
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

    /// Takes the next position in `branch` and the occurrence of `name`;
    /// synchronous, so a call reserves its key when it is made, not when
    /// first polled.
    pub(crate) fn reserve(&self, branch: &Arc<str>, name: &str) -> Reservation {
        // The lock is never held across an await; a panic while holding it
        // cannot leave the cursor half-updated.
        let mut guard = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let c = &mut *guard;
        let b = c.branch(branch);
        let local = b.next;
        b.next += 1;
        let occurrence = match b.occurrences.get_mut(name) {
            Some(n) => {
                *n += 1;
                *n
            }
            None => {
                b.occurrences.insert(name.into(), 0);
                0
            }
        };
        let recorded = c.journal.take(branch, local);
        let position = match &recorded {
            Some(entry) => entry.position,
            None => {
                let p = c.next_position;
                c.next_position += 1;
                p
            }
        };
        Reservation {
            position,
            branch: Arc::clone(branch),
            local,
            occurrence,
            recorded,
        }
    }

    /// Names the next child branch of `parent` (synchronous: in call order).
    fn child_branch(&self, parent: &Arc<str>) -> Arc<str> {
        let mut c = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        let b = c.branch(parent);
        let n = b.children;
        b.children += 1;
        if parent.is_empty() {
            Arc::from(n.to_string())
        } else {
            Arc::from(format!("{parent}.{n}"))
        }
    }

    /// Journal entries the run did not reach, for the completion check.
    pub(crate) fn unreached(&self) -> Vec<Entry> {
        let mut c = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        c.journal.drain()
    }

    pub(crate) fn entry_at(&self, r: &Reservation, kind: EntryKind, name: &str) -> EntryAt {
        EntryAt {
            execution: self.id.clone(),
            position: r.position,
            branch: Arc::clone(&r.branch),
            local: r.local,
            kind,
            name: Arc::from(name),
            occurrence: r.occurrence,
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

    /// Decodes a journaled value, or parks the execution when it no longer
    /// decodes (the error names what it is, the type and the serde path).
    pub(crate) async fn decode_or_park<V: DeserializeOwned>(
        &self,
        bytes: &[u8],
        what: impl FnOnce() -> String,
    ) -> V {
        match self.codec.decode(bytes, what) {
            Ok(v) => v,
            Err(e) => self.park_for(PauseCause::Undecodable, e.to_string()).await,
        }
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
    async fn journaled<V>(
        &self,
        branch: &Arc<str>,
        kind: EntryKind,
        name: &str,
        make: impl FnOnce() -> V,
    ) -> V
    where
        V: Serialize + DeserializeOwned,
    {
        self.boundary().await;
        let r = self.reserve(branch, name);
        let key = StepKey {
            name: name.to_owned(),
            occurrence: r.occurrence,
        };
        if let Some(entry) = r.recorded {
            if entry.kind != kind || *entry.name != *name || entry.occurrence != r.occurrence {
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
            let what = || format!("the value of `{key}` in workflow `{}`", self.workflow);
            return self.decode_or_park(bytes, what).await;
        }
        let value = make();
        let bytes = match self
            .codec
            .encode(&value, || format!("the value of `{key}`"))
        {
            Ok(b) => b,
            Err(e) => self.fail(e.to_string()).await,
        };
        let at = self.entry_at(&r, kind, name);
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
    /// The branch calls through this handle reserve in: the one being polled
    /// when that is a branch of this execution (a `ctx` captured from the
    /// workflow body and used inside [`Context::branch`] still reserves in
    /// the branch), otherwise this handle's own.
    fn current_branch(&self) -> Arc<str> {
        SCOPE
            .try_with(|scope| match scope {
                Scope::Workflow(c) if Arc::ptr_eq(&c.exec, &self.exec) => {
                    Some(Arc::clone(&c.branch))
                }
                _ => None,
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| Arc::clone(&self.branch))
    }

    fn in_current_branch(&self) -> Context {
        Context {
            exec: Arc::clone(&self.exec),
            branch: self.current_branch(),
        }
    }

    /// Runs `body` as a branch of the workflow with its own journal keys, so
    /// concurrent branches that each await several steps replay
    /// deterministically:
    ///
    /// ```
    /// # use replayflow::{step, workflow, AnyError, Context, Runtime};
    /// #[step]
    /// async fn fetch(n: u32) -> Result<u32, AnyError> { Ok(n) }
    ///
    /// #[workflow]
    /// async fn fan_out(ctx: Context) -> Result<u32, AnyError> {
    ///     let (a, b) = tokio::join!(
    ///         ctx.branch(async { Ok::<_, AnyError>(fetch(1).await? + fetch(2).await?) }),
    ///         ctx.branch(async { Ok::<_, AnyError>(fetch(3).await? + fetch(4).await?) }),
    ///     );
    ///     Ok(a? + b?)
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let rt = Runtime::in_memory().await?;
    /// # assert_eq!(fan_out::start(&rt, "f-1").await?.result().await?, 10);
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Step calls inside a branch are keyed by the branch (named in call
    /// order: `0`, `1`, nested `0.1`...) and their order in it, so the
    /// interleaving of branches at run time does not matter. Without
    /// branches, concurrent code that awaits several steps per branch (plain
    /// `tokio::join!` of async blocks, `select!`) could replay in another
    /// order; direct step calls in one `join!` need no branch.
    pub fn branch<F: Future>(&self, body: F) -> impl Future<Output = F::Output> + use<F> {
        let parent = self.current_branch();
        let child = Context {
            exec: Arc::clone(&self.exec),
            branch: self.exec.child_branch(&parent),
        };
        SCOPE.scope(Scope::Workflow(child), body)
    }

    /// Sleeps durably for `duration`: the absolute wake time is journaled
    /// before the workflow waits, and a replay (after a crash, a restart)
    /// waits only for what is left of it. A sleep longer than the runtime's
    /// suspension threshold ([`RuntimeBuilder::suspend_after`](crate::RuntimeBuilder::suspend_after),
    /// 500 ms by default) suspends the execution: its task and future are
    /// dropped, its status is `sleeping`, and it is resumed by replay when due.
    pub async fn sleep(&self, duration: Duration) {
        self.exec
            .sleep(&self.current_branch(), Wake::After(duration))
            .await
    }

    /// Sleeps durably until `deadline` (wall time); see [`Context::sleep`].
    pub async fn sleep_until(&self, deadline: SystemTime) {
        self.exec
            .sleep(&self.current_branch(), Wake::At(deadline))
            .await
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
            .journaled(&self.current_branch(), EntryKind::Now, "now", || {
                self.exec.now_millis()
            })
            .await;
        from_millis(ms)
    }

    /// A random number, journaled: a replay returns the same one.
    pub async fn random_u64(&self) -> u64 {
        self.exec
            .journaled(&self.current_branch(), EntryKind::Random, "random", || {
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
            .journaled(
                &self.current_branch(),
                EntryKind::Random,
                "uuid",
                uuid::Uuid::new_v4,
            )
            .await
    }

    /// Runs `body` as a step named `name`: keyed, journaled and retried like a
    /// `#[step]` function, with the runtime's retry policy.
    ///
    /// ```
    /// # use replayflow::{workflow, Context, Runtime, AnyError};
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
        let call = StepCall::reserve(self.in_current_branch(), name);
        let spec = StepSpec {
            policy: options.retry.unwrap_or(self.exec.retry),
            timeout: options.timeout,
            slow: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(position: u32, branch: &str, local: u32) -> Entry {
        Entry {
            position,
            kind: EntryKind::Step,
            name: Arc::from("s"),
            occurrence: local,
            status: StepStatus::Completed,
            attempts: 1,
            output: Some(b"1".to_vec()),
            error: None,
            error_message: None,
            wake_at: None,
            branch: Arc::from(branch),
            local,
        }
    }

    #[test]
    fn entries_are_taken_by_branch_and_place() {
        let main: Arc<str> = Arc::from("");
        let b0: Arc<str> = Arc::from("0");
        // A hole at main place 1 (a call that was never journaled).
        let mut r = Recorded::new(vec![entry(0, "", 0), entry(1, "0", 0), entry(2, "", 2)]);
        assert_eq!(r.take(&main, 1).map(|e| e.position), None);
        assert_eq!(r.take(&main, 2).map(|e| e.position), Some(2));
        assert_eq!(r.take(&b0, 0).map(|e| e.position), Some(1));
        assert_eq!(r.take(&b0, 0).map(|e| e.position), None);
        assert_eq!(r.take(&Arc::from("9"), 0).map(|e| e.position), None);
        let left: Vec<u32> = r.drain().iter().map(|e| e.position).collect();
        assert_eq!(left, [0]);
    }

    #[test]
    fn a_damaged_place_sizes_nothing_and_a_duplicate_is_left_unreached() {
        let main: Arc<str> = Arc::from("");
        let mut r = Recorded::new(vec![
            entry(0, "", 0),
            entry(1, "", u32::MAX - 1),
            entry(2, "", 0),
        ]);
        assert!(r.main.len() <= 1);
        assert_eq!(r.take(&main, u32::MAX - 1).map(|e| e.position), Some(1));
        assert_eq!(r.take(&main, 0).map(|e| e.position), Some(2));
        let left: Vec<u32> = r.drain().iter().map(|e| e.position).collect();
        assert_eq!(left, [0], "the shadowed entry is reported as unreached");
    }
}
