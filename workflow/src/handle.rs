//! [`Handle`]: waiting for an execution's end.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::codec::Codec;
use crate::error::{Error, RunError};
use crate::execution::{Ended, WatchGuard};
use crate::private::{AsError, AsOutput};
use crate::record::ExecutionId;
use crate::runtime::{Runtime, Workflow};
use crate::status::ExecutionStatus;

/// A started execution of workflow `W`; [`Handle::result`] waits for its end.
///
/// `name::start` returns one; [`Runtime::handle`] makes one from an id alone,
/// to wait for an execution started elsewhere (another task, or before a
/// restart of the process).
///
/// ```
/// use replayflow::{workflow, AnyError, Context, Runtime};
///
/// #[workflow]
/// async fn monthly_report(ctx: Context, month: String) -> Result<String, AnyError> {
///     Ok(format!("report for {month}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// let handle = monthly_report::start(&rt, "report-2025-11", "2025-11".into()).await?;
/// assert_eq!(handle.id().as_str(), "report-2025-11");
/// assert_eq!(handle.result().await?, "report for 2025-11");
///
/// // Later, with only the id: the same execution, and the same result.
/// let again = rt.handle::<monthly_report>("report-2025-11");
/// assert_eq!(again.result().await?, "report for 2025-11");
/// # Ok(())
/// # }
/// ```
pub struct Handle<W: Workflow> {
    rt: Runtime,
    id: ExecutionId,
    _workflow: PhantomData<fn() -> W>,
}

impl<W: Workflow> Handle<W> {
    pub(crate) fn new(rt: Runtime, id: ExecutionId) -> Self {
        Handle {
            rt,
            id,
            _workflow: PhantomData,
        }
    }
}

impl<W: Workflow> Clone for Handle<W> {
    fn clone(&self) -> Self {
        Handle {
            rt: self.rt.clone(),
            id: self.id.clone(),
            _workflow: PhantomData,
        }
    }
}

impl<W: Workflow> std::fmt::Debug for Handle<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").field("id", &self.id).finish()
    }
}

impl<W: Workflow> Handle<W> {
    /// The execution's id.
    pub fn id(&self) -> &ExecutionId {
        &self.id
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Waits until the execution is completed, failed, cancelled or paused,
    /// and returns its output, or why there is none.
    pub async fn result(&self) -> std::result::Result<W::Output, RunError<W::Error>> {
        let guard = self.rt.engine.watch(&self.id);
        // An end published before this point belongs to an earlier run. Read
        // before `active_codec`: an end published in between is then either
        // of a run already `ending` (so it is read from the journal) or new.
        let stale = self.published(&guard);
        // An execution this process drives tells its end to the watch: no
        // read is needed until it changes.
        let driven = self.rt.engine.active_codec(&self.id);
        let mut read = driven.is_none();
        loop {
            // Registered before the read, so a change in between is not missed.
            let changed = guard.watch.notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let ended = self
                .published(&guard)
                .filter(|e| !stale.as_ref().is_some_and(|s| Arc::ptr_eq(s, e)));
            if let (Some(ended), Some(codec)) = (ended, driven) {
                let t = &ended.transition;
                let end = End {
                    status: ended.status,
                    codec,
                    output: t.output.as_deref(),
                    error: t.error.as_deref(),
                    value_type: t.value_type,
                    message: t.message.as_deref(),
                    deadline_passed: t.deadline_passed,
                };
                if let Some(result) = self.outcome(end).await {
                    return result;
                }
            }
            if read {
                let row = self
                    .rt
                    .engine
                    .store
                    .load_execution(&self.id)
                    .await?
                    .ok_or_else(|| Error::NotFound(self.id.clone()))?;
                let expected = W::descriptor().name;
                if row.workflow != expected {
                    // A handle of another workflow's type would decode its
                    // output by luck, or fail with a codec error.
                    return Err(RunError::Runtime(Error::IdConflict {
                        id: self.id.clone(),
                        existing: row.workflow,
                        requested: expected.to_owned(),
                    }));
                }
                let end = End {
                    status: row.status,
                    codec: row.codec,
                    output: row.output.as_deref(),
                    error: row.error.as_deref(),
                    value_type: row.output_type,
                    message: row.error_message.as_deref(),
                    // Cancelled by its deadline (an operator's cancel has
                    // no reason).
                    deadline_passed: row
                        .error_message
                        .as_deref()
                        .is_some_and(|m| m.starts_with(crate::execution::DEADLINE_EXCEEDED)),
                };
                if let Some(result) = self.outcome(end).await {
                    return result;
                }
            }
            // Changes made by another process (an admin open watching a
            // worker) are not notified here: read again at least every second.
            let _ = tokio::time::timeout(Duration::from_secs(1), changed).await;
            read = true;
        }
    }

    fn published(&self, guard: &WatchGuard) -> Option<Arc<Ended>> {
        guard
            .watch
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The result an execution's status gives, if it is one `result` returns.
    async fn outcome(
        &self,
        end: End<'_>,
    ) -> Option<std::result::Result<W::Output, RunError<W::Error>>> {
        let message = || end.message.unwrap_or_default().to_owned();
        Some(match end.status {
            ExecutionStatus::Completed => {
                let bytes = end.output.unwrap_or_default();
                let what = || format!("the output of execution `{}`", self.id);
                if let Err(e) = self
                    .rt
                    .engine
                    .readable_as::<W::Output>(end.value_type, what())
                    .await
                {
                    return Some(Err(RunError::Runtime(e.into())));
                }
                end.codec
                    .decode(bytes, what)
                    .map(|AsOutput(v)| v)
                    .map_err(|e| RunError::Runtime(e.into()))
            }
            ExecutionStatus::Failed => Err(match end.error {
                Some(bytes) => {
                    let what = || format!("the error of execution `{}`", self.id);
                    if let Err(e) = self
                        .rt
                        .engine
                        .readable_as::<W::Error>(end.value_type, what())
                        .await
                    {
                        return Some(Err(RunError::Runtime(e.into())));
                    }
                    match end.codec.decode(bytes, what) {
                        Ok(AsError(e)) => RunError::Workflow(e),
                        Err(e) => RunError::Runtime(e.into()),
                    }
                }
                None => RunError::Failed(message()),
            }),
            ExecutionStatus::Cancelled if end.deadline_passed => {
                Err(RunError::DeadlineExceeded(message()))
            }
            ExecutionStatus::Cancelled => Err(RunError::Cancelled),
            ExecutionStatus::Paused => Err(RunError::Paused(message())),
            _ => return None,
        })
    }
}

/// An execution's status with what it ended with, from the journal or from
/// the watch.
struct End<'a> {
    status: ExecutionStatus,
    codec: Codec,
    output: Option<&'a [u8]>,
    error: Option<&'a [u8]>,
    /// Which type wrote `output` or `error`, when recorded.
    value_type: Option<i32>,
    message: Option<&'a str>,
    /// A cancel because the deadline passed.
    deadline_passed: bool,
}
