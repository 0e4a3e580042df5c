//! Child workflows: started from a workflow body durably and idempotently
//! (`name::child(&ctx, ..)`), and awaited durably
//! ([`ChildHandle::result`]): the parent suspends while a child runs long.
//!
//! Starting a child is a journal entry of kind `child` named by the child's
//! workflow, whose value is the child's id; the child's row records its
//! parent. Its id is derived from the parent's and the call's place, so a
//! start that crashed before its entry was journaled starts (or finds) the
//! same child on replay. Its end is a second `child` entry, named by the
//! child's id with `.result`, that journals how it ended, so a replay reads
//! it from the parent's journal even once the child is pruned.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::context::Context;
use super::state::{Execution, WaitFor};
use crate::error::RunError;
use crate::options::StartOptions;
use crate::private::{AsError, AsOutput};
use crate::record::ExecutionId;
use crate::runtime::Workflow;
use crate::status::{EntryKind, ExecutionStatus, PauseCause, StepStatus};
use crate::store::{ExecutionRow, JournalOp};

/// Options of `name::child_with`.
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    id: Option<ExecutionId>,
    start: StartOptions,
}

impl ChildOptions {
    /// No overrides: the child's id is derived from its parent's.
    pub fn new() -> Self {
        ChildOptions::default()
    }

    /// Gives the child this id instead of the derived one. Like any id it
    /// must be the same on every replay of the parent.
    pub fn id(mut self, id: impl Into<ExecutionId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The child's start options (retries, restarts, timeout).
    pub fn start_options(mut self, options: StartOptions) -> Self {
        self.start = StartOptions {
            keep_on_parent_cancel: self.start.keep_on_parent_cancel,
            ..options
        };
        self
    }

    /// Keeps the child running when its parent is cancelled (by default a
    /// cancel of the parent cancels its unfinished children).
    pub fn keep_on_parent_cancel(mut self, keep: bool) -> Self {
        self.start.keep_on_parent_cancel = keep;
        self
    }
}

/// A child workflow started by `name::child`: its id, and its result.
pub struct ChildHandle<W: Workflow> {
    parent: Context,
    id: ExecutionId,
    _workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> std::fmt::Debug for ChildHandle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChildHandle").field("id", &self.id).finish()
    }
}

/// How a child ended, as the parent's journal keeps it.
#[derive(Serialize, Deserialize)]
enum ChildEnd<T, E> {
    Completed(T),
    Failed(E),
    FailedWithout(String),
    Cancelled,
    DeadlineExceeded(String),
}

impl<W: Workflow> ChildHandle<W> {
    /// The child's execution id.
    pub fn id(&self) -> &ExecutionId {
        &self.id
    }

    /// Waits for the child's end and gives its result, as
    /// [`Handle::result`](crate::Handle::result) would; a paused child is
    /// waited for (it may be resumed). The end is journaled in the parent:
    /// a replay gets it without waiting. A wait longer than the suspension
    /// threshold suspends the parent (status `waiting`) until the child
    /// ends. Awaiting several children together (fan-out, fan-in) works:
    /// each call takes its place in the parent's journal when it is made.
    pub fn result(
        &self,
    ) -> impl Future<Output = Result<W::Output, RunError<W::Error>>> + Send + use<W> {
        let exec = Arc::clone(&self.parent.exec);
        let branch = self.parent.current_branch();
        let name = format!("{}.result", self.id);
        let reservation = exec.reserve(&branch, &name);
        let child = self.id.clone();
        async move {
            let mut r = reservation;
            exec.boundary().await;
            let what = || format!("the end of child `{child}`");
            if let Some(entry) = exec.recorded(&mut r, EntryKind::Child).await {
                let bytes = entry
                    .output
                    .filter(|_| entry.status == StepStatus::Completed)
                    .unwrap_or_default();
                let end: ChildEnd<AsOutput<W::Output>, AsError<W::Error>> =
                    exec.decode_or_park(&bytes, what).await;
                return end.into_result();
            }
            let row = exec.wait_for_child(&child).await;
            let end = child_end::<W>(&exec, &row).await;
            let bytes = match exec.codec.encode(&end, what) {
                Ok(b) => b,
                Err(e) => exec.fail(e.to_string()).await,
            };
            // Decoded back: the parent sees what a replay would.
            let end: ChildEnd<AsOutput<W::Output>, AsError<W::Error>> =
                exec.decode_or_park(&bytes, what).await;
            let op = JournalOp::RecordValue {
                at: r.entry_at(&exec.id, EntryKind::Child),
                output: bytes,
                now: exec.now_millis(),
            };
            if let Err(e) = exec.engine.store.commit(op).await {
                exec.journal_failed("the end of a child workflow", &e).await
            }
            end.into_result()
        }
    }
}

impl<T, E> ChildEnd<AsOutput<T>, AsError<E>> {
    fn into_result(self) -> Result<T, RunError<E>> {
        match self {
            ChildEnd::Completed(AsOutput(v)) => Ok(v),
            ChildEnd::Failed(AsError(e)) => Err(RunError::Workflow(e)),
            ChildEnd::FailedWithout(m) => Err(RunError::Failed(m)),
            ChildEnd::Cancelled => Err(RunError::Cancelled),
            ChildEnd::DeadlineExceeded(m) => Err(RunError::DeadlineExceeded(m)),
        }
    }
}

/// How a finished child ended, its output or error decoded (the parent
/// parks when they no longer decode).
async fn child_end<W: Workflow>(
    exec: &Execution,
    row: &ExecutionRow,
) -> ChildEnd<AsOutput<W::Output>, AsError<W::Error>> {
    let what = || format!("the result of child `{}`", row.id);
    let message = row.error_message.clone().unwrap_or_default();
    match row.status {
        ExecutionStatus::Completed => {
            let bytes = row.output.as_deref().unwrap_or_default();
            match row.codec.decode(bytes, what) {
                Ok(v) => ChildEnd::Completed(v),
                Err(e) => exec.park_for(PauseCause::Undecodable, e.to_string()).await,
            }
        }
        ExecutionStatus::Failed => match row.error.as_deref() {
            Some(bytes) => match row.codec.decode(bytes, what) {
                Ok(e) => ChildEnd::Failed(e),
                Err(e) => exec.park_for(PauseCause::Undecodable, e.to_string()).await,
            },
            None => ChildEnd::FailedWithout(message),
        },
        _ if message.starts_with(super::state::DEADLINE_EXCEEDED) => {
            ChildEnd::DeadlineExceeded(message)
        }
        _ => ChildEnd::Cancelled,
    }
}

impl Execution {
    /// Waits until child `child` has ended: in memory up to the
    /// suspension threshold, then suspended. Returns its row.
    async fn wait_for_child(&self, child: &ExecutionId) -> ExecutionRow {
        if self.stops_past_journal() {
            self.halt().await
        }
        // Before the first look at the child (see `recv`).
        let _registered = self.waiting_for(WaitFor::Child(child.clone()), None);
        let reason = || format!("waiting for child workflow `{child}`");
        self.wait_in_memory(reason, None, || self.ended_child(child))
            .await
    }

    /// The child's row once it has ended.
    async fn ended_child(&self, child: &ExecutionId) -> Option<ExecutionRow> {
        match self.engine.store.load_execution(child).await {
            Ok(Some(row)) if row.status.is_terminal() => Some(row),
            Ok(Some(_)) => None,
            Ok(None) => {
                let reason = format!(
                    "child execution `{child}` is gone (pruned, or deleted by hand) before its end was journaled"
                );
                self.fail(reason).await
            }
            Err(e) => self.journal_failed("a read of a child workflow", &e).await,
        }
    }
}

/// `name::child_with`: reserves the call's place now (call order), and
/// starts the child (or finds the one an earlier run started) when polled.
pub(crate) fn start_child<W: Workflow, I: Serialize>(
    ctx: &Context,
    options: ChildOptions,
    input: &I,
) -> impl Future<Output = ChildHandle<W>> + Send + use<W, I> {
    let exec = Arc::clone(&ctx.exec);
    let branch = ctx.current_branch();
    let descriptor = W::descriptor();
    let name = descriptor.name;
    let reservation = exec.reserve(&branch, name);
    let codec = exec.engine.defaults.codec;
    let input = codec.encode(input, || format!("the input of child workflow `{name}`"));
    let parent = ctx.clone();
    async move {
        let mut r = reservation;
        exec.boundary().await;
        let id = match exec.recorded(&mut r, EntryKind::Child).await {
            Some(entry) => {
                let bytes = entry.output.unwrap_or_default();
                let what = || format!("the id of child `{name}`");
                ExecutionId::new(exec.decode_or_park::<String>(&bytes, what).await)
            }
            None => {
                let id = options
                    .id
                    .unwrap_or_else(|| derived_id(&exec.id, &r.branch, name, r.occurrence));
                let input = match input {
                    Ok(bytes) => bytes,
                    Err(e) => exec.fail(e.to_string()).await,
                };
                match exec.engine.registry.get(name) {
                    Some(d) if std::ptr::eq(*d, descriptor) => {}
                    _ => {
                        let reason = format!(
                            "child workflow `{name}` is not registered in this process: register it with the runtime that runs `{}`",
                            exec.workflow
                        );
                        exec.fail(reason).await
                    }
                }
                let started = exec
                    .engine
                    .start(
                        descriptor,
                        id.clone(),
                        options.start,
                        input,
                        Some(exec.id.clone()),
                    )
                    .await;
                match started {
                    Ok(()) => {}
                    // The database could not take it: as any journal write.
                    Err(
                        e @ (crate::Error::Database(_)
                        | crate::Error::Busy { .. }
                        | crate::Error::Unavailable(_)
                        | crate::Error::Fenced { .. }
                        | crate::Error::Disowned(_)
                        | crate::Error::Shutdown
                        | crate::Error::Io { .. }),
                    ) => {
                        exec.journal_failed("the start of a child workflow", &e)
                            .await
                    }
                    // The start itself is refused (its id belongs to
                    // another execution, its input is over the limit):
                    // no resume would change that.
                    Err(e) => {
                        let reason = format!("child workflow `{name}` could not start: {e}");
                        exec.fail(reason).await
                    }
                }
                let what = || format!("the id of child `{name}`");
                let bytes = match exec.codec.encode(id.as_str(), what) {
                    Ok(b) => b,
                    Err(e) => exec.fail(e.to_string()).await,
                };
                let op = JournalOp::RecordValue {
                    at: r.entry_at(&exec.id, EntryKind::Child),
                    output: bytes,
                    now: exec.now_millis(),
                };
                if let Err(e) = exec.engine.store.commit(op).await {
                    exec.journal_failed("the start of a child workflow", &e)
                        .await
                }
                id
            }
        };
        ChildHandle {
            parent,
            id,
            _workflow: PhantomData,
        }
    }
}

/// A child's id from its parent's, its branch, its workflow and the
/// occurrence of the call: `order-7/charge-0`, `order-7/1/charge-0`.
fn derived_id(parent: &ExecutionId, branch: &str, name: &str, occurrence: u32) -> ExecutionId {
    if branch.is_empty() {
        ExecutionId::new(format!("{parent}/{name}-{occurrence}"))
    } else {
        ExecutionId::new(format!("{parent}/{branch}/{name}-{occurrence}"))
    }
}
