//! What a worker does when asked to start, resume, cancel or restart an
//! execution (by the API, or by an admin's request).

use std::sync::Arc;

use super::descriptor::WorkflowDescriptor;
use super::drive::Ready;
use super::engine::Engine;
use crate::error::{CodecError, Error, Result};
use crate::options::StartOptions;
use crate::record::ExecutionId;
use crate::status::ExecutionStatus;
use crate::store::{Inserted, NewExecution, Transition, TypeTag};

impl Engine {
    /// Commits a new execution's row (or finds the existing one) and drives it.
    pub(crate) async fn start(
        self: &Arc<Self>,
        descriptor: &'static WorkflowDescriptor,
        id: ExecutionId,
        options: StartOptions,
        input: Vec<u8>,
    ) -> Result<()> {
        if self.admin {
            return Err(Error::AdminMode("starting a workflow"));
        }
        if self.is_shutting_down() {
            return Err(Error::Shutdown);
        }
        let codec = self.defaults.codec;
        if input.len() > self.defaults.max_payload {
            return Err(Error::PayloadTooLarge {
                what: format!("the input of execution `{id}`"),
                size: input.len(),
                limit: self.defaults.max_payload,
            });
        }
        let options_json = serde_json::to_string(&options).map_err(|e| CodecError {
            operation: "encode",
            what: "the start options".into(),
            type_name: "StartOptions",
            message: e.to_string(),
        })?;
        let input_type = TypeTag::named((descriptor.input_type)());
        self.note_type(input_type).await;
        let new = NewExecution {
            id: id.clone(),
            workflow: descriptor.name,
            input_type: input_type.hash,
            app_version: self
                .app_version
                .clone()
                .unwrap_or_else(|| descriptor.package_version.to_owned()),
            codec,
            input: input.clone(),
            options: options_json,
            now: self.now_millis(),
        };
        match self.store.insert_execution(new).await? {
            Inserted::Existing { workflow } if workflow != descriptor.name => {
                return Err(Error::IdConflict {
                    id,
                    existing: workflow,
                    requested: descriptor.name.to_owned(),
                });
            }
            Inserted::Existing { .. } => {
                tracing::debug!(execution = %id, "start of an existing execution: attaching");
            }
            Inserted::Created => {
                if let Some(claim) = self.claim(&id) {
                    tracing::info!(execution = %id, workflow = descriptor.name, "execution started");
                    let ready = Ready {
                        descriptor,
                        codec,
                        input,
                        options,
                        restart_attempt: 0,
                        journal: Vec::new(),
                        input_type: Some(input_type.hash),
                    };
                    self.launch(claim, ready, false);
                }
            }
        }
        Ok(())
    }

    /// See `Runtime::resume`.
    pub(crate) async fn resume(self: &Arc<Self>, id: &ExecutionId) -> Result<()> {
        let status = self.status_of(id).await?;
        if status.is_terminal() {
            return Ok(());
        }
        if status == ExecutionStatus::Sleeping {
            if self.is_active(id) {
                return Ok(());
            }
            self.store.wake_now(id, self.now_millis()).await?;
        }
        self.replay(id, false).await.map(|_| ())
    }

    /// See `Runtime::cancel`.
    pub(crate) async fn cancel(self: &Arc<Self>, id: &ExecutionId) -> Result<()> {
        if self.status_of(id).await?.is_terminal() {
            return Ok(());
        }
        if let Some(claim) = self.claim(id) {
            // Not running here: nothing can race the status change.
            tracing::info!(execution = %id, "execution cancelled");
            self.set_status(id, ExecutionStatus::Cancelled, Transition::bare())
                .await;
            drop(claim);
            return Ok(());
        }
        match self.active_execution(id) {
            Some(exec) => exec.request_cancel(),
            // Claimed but not yet spawned: ask again once it runs.
            None => {
                tokio::task::yield_now().await;
                if let Some(exec) = self.active_execution(id) {
                    exec.request_cancel();
                }
            }
        }
        Ok(())
    }

    /// See `Runtime::restart`.
    pub(crate) async fn restart(self: &Arc<Self>, id: &ExecutionId) -> Result<()> {
        match self.status_of(id).await? {
            ExecutionStatus::Panicked | ExecutionStatus::Restarting | ExecutionStatus::Failed => {
                self.restart_by_replay(id).await
            }
            status => Err(Error::NotRestartable {
                id: id.clone(),
                status,
            }),
        }
    }

    /// The journaled status of `id`.
    pub(crate) async fn status_of(&self, id: &ExecutionId) -> Result<ExecutionStatus> {
        self.store
            .load_execution(id)
            .await?
            .map(|row| row.status)
            .ok_or_else(|| Error::NotFound(id.clone()))
    }
}
