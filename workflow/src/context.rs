//! The [`Context`] a workflow body gets: it reserves journal positions in call
//! order, replays what the journal holds and records what it does not.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::codec::Codec;
use crate::journal::{ExecutionId, StepKey, from_millis, to_millis};
use crate::retry::RetryPolicy;
use crate::runtime::Runtime;
use crate::status::{EntryKind, ExecutionStatus, StepStatus};
use crate::step::{self, StepCall, StepSpec};
use crate::store::{self, Entry, EntryAt};

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
        id: ExecutionId,
        workflow: &'static str,
        codec: Codec,
        restart_attempt: u32,
        retry: RetryPolicy,
        journal: Vec<Entry>,
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
            id,
            workflow,
            codec,
            restart_attempt,
            retry,
            cursor: Mutex::new(Cursor {
                journal: slots,
                next: 0,
                occurrences: HashMap::new(),
            }),
            stop: Notify::new(),
        }
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

    /// Parks the execution as `paused` with `reason`, then never returns: the
    /// driver drops the workflow future.
    pub(crate) async fn park(&self, reason: String) -> ! {
        tracing::warn!(execution = %self.id, workflow = self.workflow, %reason, "execution paused");
        self.rt
            .set_status(&self.id, ExecutionStatus::Paused, None, None, Some(reason))
            .await;
        self.halt().await
    }

    /// Ends the execution as `failed` for a reason the workflow's error type
    /// cannot hold, then never returns.
    pub(crate) async fn fail(&self, reason: String) -> ! {
        tracing::warn!(execution = %self.id, workflow = self.workflow, %reason, "execution failed");
        self.rt
            .set_status(&self.id, ExecutionStatus::Failed, None, None, Some(reason))
            .await;
        self.halt().await
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
        let r = self.reserve(name);
        let key = StepKey {
            name: name.to_owned(),
            occurrence: r.occurrence,
        };
        if let Some(entry) = r.recorded {
            if entry.kind != kind || entry.name != name || entry.occurrence != r.occurrence {
                let reason = self.nondeterminism(r.position, &entry, kind, &key);
                self.park(reason).await
            }
            let Some(bytes) = entry
                .output
                .as_deref()
                .filter(|_| entry.status == StepStatus::Completed)
            else {
                self.park(format!(
                    "journal entry `{key}` of `{}` has no value",
                    self.id
                ))
                .await
            };
            return match self.codec.decode(bytes, || {
                format!("the value of `{key}` in workflow `{}`", self.workflow)
            }) {
                Ok(v) => v,
                Err(e) => self.park(e.to_string()).await,
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

impl Context {
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
