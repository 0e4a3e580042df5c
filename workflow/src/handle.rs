//! [`Handle`]: waiting for an execution's end.

use std::marker::PhantomData;
use std::time::Duration;

use crate::error::{Error, RunError};
use crate::journal::ExecutionId;
use crate::runtime::{Runtime, Workflow};
use crate::status::ExecutionStatus;
use crate::store;

/// A started execution of workflow `W`; [`Handle::result`] waits for its end.
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

    /// Waits until the execution is completed, failed, cancelled or paused,
    /// and returns its output, or why there is none.
    pub async fn result(&self) -> std::result::Result<W::Output, RunError<W::Error>> {
        let watch = self.rt.watch(&self.id);
        loop {
            // Registered before the read, so a change in between is not missed.
            let changed = watch.notify.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let id = self.id.clone();
            let row = self
                .rt
                .inner
                .store
                .read(move |conn| store::load_execution(conn, &id))
                .await?
                .ok_or_else(|| Error::NotFound(self.id.clone()))?;
            let message = || row.error_message.clone().unwrap_or_default();
            match row.status {
                ExecutionStatus::Completed => {
                    let bytes = row.output.as_deref().unwrap_or_default();
                    let what = || format!("the output of execution `{}`", self.id);
                    return row
                        .codec
                        .decode(bytes, what)
                        .map_err(|e| RunError::Runtime(e.into()));
                }
                ExecutionStatus::Failed => {
                    return Err(match row.error.as_deref() {
                        Some(bytes) => {
                            let what = || format!("the error of execution `{}`", self.id);
                            match row.codec.decode(bytes, what) {
                                Ok(e) => RunError::Workflow(e),
                                Err(e) => RunError::Runtime(e.into()),
                            }
                        }
                        None => RunError::Failed(message()),
                    });
                }
                ExecutionStatus::Cancelled => return Err(RunError::Cancelled),
                ExecutionStatus::Paused => return Err(RunError::Paused(message())),
                _ => {}
            }
            // Changes made by another process (an admin open watching a
            // worker) are not notified here: read again at least every second.
            let _ = tokio::time::timeout(Duration::from_secs(1), changed).await;
        }
    }
}
