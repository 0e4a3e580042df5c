//! The [`Context`] a workflow body gets: durable sleeps, journaled helper
//! values, branches and inline steps, all through the execution's replay
//! cursor.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::attempt::StepState;
use super::replay::PatchPlace;
use super::state::Execution;
use super::step::{StepCall, StepSpec};
use crate::options::StepOptions;
use crate::record::{ExecutionId, from_millis, to_millis};
use crate::status::{EntryKind, PauseCause, StepStatus};
use crate::store::JournalOp;

tokio::task_local! {
    /// What the code being polled runs inside: a workflow body, or a step body.
    pub(crate) static SCOPE: Scope;
}

#[derive(Clone)]
pub(crate) enum Scope {
    Workflow(Context),
    Step(Arc<StepState>),
}

/// The handle a workflow body gets as its first argument.
///
/// It identifies the execution, gives journaled helper values (`now`,
/// random numbers) that replay returns unchanged, and runs inline steps.
/// Cloning it is cheap; every clone is the same execution.
///
/// ```
/// use std::time::Duration;
/// use replayflow::{workflow, AnyError, Context, Runtime};
///
/// #[workflow]
/// async fn send_reminder(ctx: Context, user: String) -> Result<String, AnyError> {
///     // Time and randomness come from the context: they are journaled, so a
///     // replay after a crash sees the values of the first run.
///     let sent_at = ctx.now().await;
///     let reminder = ctx.uuid().await;
///     let jitter_ms = ctx.random_u64().await % 5;
///     // A durable sleep: its wake time is journaled before the workflow waits.
///     ctx.sleep(Duration::from_millis(10 + jitter_ms)).await;
///     let waited = ctx.now().await.duration_since(sent_at)?;
///     Ok(format!(
///         "{} (restart {}): reminder {reminder} for {user} after {} ms",
///         ctx.execution_id(),
///         ctx.restart_attempt(),
///         waited.as_millis(),
///     ))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// let handle = send_reminder::start(&rt, "reminder-1", "ada".into()).await?;
/// let out = handle.result().await?;
/// assert!(out.starts_with("reminder-1 (restart 0): reminder "));
/// assert!(out.contains(" for ada after "));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Context {
    pub(crate) exec: Arc<Execution>,
    /// The branch this handle reserves in: `""` for the workflow body,
    /// `"0"`, `"1"`, `"0.1"`... for [`Context::branch`]es.
    pub(crate) branch: Arc<str>,
}

impl Execution {
    /// A durable sleep until `wake`, computed once and journaled before the
    /// workflow waits.
    async fn sleep(&self, branch: &Arc<str>, wake: Wake) {
        self.boundary().await;
        let mut r = self.reserve(branch, "sleep");
        let at = r.entry_at(&self.id, EntryKind::Sleep);
        let wake_at = match self.recorded(&mut r, EntryKind::Sleep).await {
            Some(entry) if entry.status == StepStatus::Completed => return,
            // Never recomputed from "now": the journaled time stands.
            Some(entry) => entry.wake_at.unwrap_or(0),
            None => {
                let now = self.now_millis();
                let wake_at = match wake {
                    Wake::After(d) => {
                        now.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                    }
                    Wake::At(t) => to_millis(t),
                };
                let record = JournalOp::RecordSleep {
                    at: at.clone(),
                    wake_at,
                    now,
                };
                if let Err(e) = self.engine.store.commit(record).await {
                    self.journal_failed("a sleep", &e).await
                }
                wake_at
            }
        };
        self.wait_until(wake_at).await;
        let now = self.now_millis();
        self.engine
            .store
            .queue(JournalOp::CompleteSleep { at, now });
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
        let mut r = self.reserve(branch, name);
        if let Some(entry) = self.recorded(&mut r, kind).await {
            let key = r.key();
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
            .encode(&value, || format!("the value of `{}`", r.key()))
        {
            Ok(b) => b,
            Err(e) => self.fail(e.to_string()).await,
        };
        let at = r.entry_at(&self.id, kind);
        let now = self.now_millis();
        self.engine.store.queue(JournalOp::RecordValue {
            at,
            output: bytes,
            now,
        });
        value
    }
}

impl Execution {
    /// `Context::patched` and `Context::deprecate_patch`.
    async fn patch(&self, branch: &Arc<str>, id: &str, record: bool) -> bool {
        self.boundary().await;
        match self.reserve_patch(branch, id, record) {
            PatchPlace::Marked => true,
            PatchPlace::Passed => false,
            PatchPlace::New(r) => {
                if self.stops_past_journal() {
                    self.halt().await
                }
                self.engine.store.queue(JournalOp::RecordValue {
                    at: r.entry_at(&self.id, EntryKind::Patch),
                    output: Vec::new(),
                    now: self.now_millis(),
                });
                true
            }
        }
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
    pub(super) fn current_branch(&self) -> Arc<str> {
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
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use replayflow::{workflow, AnyError, Context, EntryKind, Runtime, StepStatus};
    /// #[workflow]
    /// async fn cool_down(ctx: Context) -> Result<(), AnyError> {
    ///     ctx.sleep(Duration::from_millis(10)).await;
    ///     Ok(())
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// cool_down::start(&rt, "cool-1").await?.result().await?;
    ///
    /// // The sleep is a journal entry, with the wake time it was given.
    /// let sleep = &rt.status("cool-1").await?.steps[0];
    /// assert_eq!(sleep.kind, EntryKind::Sleep);
    /// assert_eq!(sleep.status, StepStatus::Completed);
    /// assert!(sleep.wake_at.is_some());
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// Read it instead of [`SystemTime::now`] in a workflow body. It comes
    /// from the runtime's [`Clock`](crate::Clock), so a test can set it with a
    /// [`ManualClock`](crate::ManualClock):
    ///
    /// ```
    /// # use std::time::{Duration, SystemTime, UNIX_EPOCH};
    /// # use replayflow::{workflow, AnyError, Context, ManualClock, Runtime};
    /// #[workflow]
    /// async fn make_offer(ctx: Context) -> Result<SystemTime, AnyError> {
    ///     let expires = ctx.now().await + Duration::from_secs(24 * 3600);
    ///     Ok(expires)
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    /// let rt = Runtime::builder()
    ///     .in_memory()
    ///     .clock(ManualClock::new(start))
    ///     .open()
    ///     .await?;
    /// let expires = make_offer::start(&rt, "offer-1").await?.result().await?;
    /// assert_eq!(expires, start + Duration::from_secs(24 * 3600));
    /// # Ok(())
    /// # }
    /// ```
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
    ///
    /// ```
    /// # use replayflow::{step, workflow, AnyError, Context, EntryKind, Runtime, Uuid};
    /// #[step]
    /// async fn create_invoice(reference: Uuid) -> Result<String, AnyError> {
    ///     Ok(format!("invoice {reference}")) // an external call goes here
    /// }
    ///
    /// #[workflow]
    /// async fn bill(ctx: Context) -> Result<Uuid, AnyError> {
    ///     // Not Uuid::new_v4(): a replay would make another one.
    ///     let reference = ctx.uuid().await;
    ///     create_invoice(reference).await?;
    ///     Ok(reference)
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// let reference = bill::start(&rt, "bill-1").await?.result().await?;
    ///
    /// // The value is in the journal, where a replay reads it.
    /// let entry = &rt.status("bill-1").await?.steps[0];
    /// assert_eq!(entry.kind, EntryKind::Random);
    /// assert_eq!(entry.output.as_ref().unwrap().decode::<Uuid>()?, reference);
    /// # Ok(())
    /// # }
    /// ```
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

    /// Whether this execution runs the code of change `id`: true for an
    /// execution that reaches this point on code that has the change, false
    /// for one that had already passed it on the code before (which goes on
    /// down its old path, as its journal recorded it).
    ///
    /// The first time an execution reaches the call past the end of its
    /// journal, a marker named `id` is journaled at the call's place; a
    /// replay finds it there and returns true again. An execution whose
    /// journal goes on past this point without the marker was started by
    /// the old code and gets false, on every replay. So a change to a
    /// workflow's calls ships in three deploys:
    ///
    /// 1. `if ctx.patched("id") { new } else { old }`: executions in flight
    ///    keep the old calls, new ones take the new.
    /// 2. Once no execution that took the old path is unfinished (the
    ///    pre-deploy check, [`Runtime::check`](crate::Runtime::check), tells):
    ///    `ctx.deprecate_patch("id"); new`.
    /// 3. Later, the `deprecate_patch` call goes too. A marker no call asks
    ///    for is passed over by the next call at its place, so removing it
    ///    never parks an execution.
    ///
    /// ```
    /// # use replayflow::{step, workflow, AnyError, Context, EntryKind, Runtime};
    /// #[step]
    /// async fn charge_card(order: u64) -> Result<String, AnyError> { Ok(format!("card {order}")) }
    /// #[step]
    /// async fn charge_wallet(order: u64) -> Result<String, AnyError> { Ok(format!("wallet {order}")) }
    ///
    /// #[workflow]
    /// async fn pay_order(ctx: Context, order: u64) -> Result<String, AnyError> {
    ///     if ctx.patched("pay-by-wallet").await {
    ///         charge_wallet(order).await
    ///     } else {
    ///         charge_card(order).await
    ///     }
    /// }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let rt = Runtime::in_memory().await?;
    /// assert_eq!(pay_order::start(&rt, "pay-7", 7).await?.result().await?, "wallet 7");
    /// let marker = &rt.status("pay-7").await?.steps[0];
    /// assert_eq!((marker.kind, marker.key.name.as_str()), (EntryKind::Patch, "pay-by-wallet"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn patched(&self, id: &str) -> bool {
        self.exec.patch(&self.current_branch(), id, true).await
    }

    /// The clean-up phase of change `id` (see [`Context::patched`]): every
    /// execution runs the new code, and an execution that journaled the
    /// change's marker here has it taken, as `patched` would. Journals
    /// nothing.
    pub async fn deprecate_patch(&self, id: &str) {
        self.exec.patch(&self.current_branch(), id, false).await;
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
    #[track_caller]
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
    #[track_caller]
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
        let location = std::panic::Location::caller();
        let call = StepCall::reserve(&self.exec, &self.current_branch(), name, location);
        let spec = StepSpec {
            policy: options.retry.unwrap_or(self.exec.retry),
            timeout: options.timeout,
            slow: None,
            at_most_once: options.at_most_once,
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
