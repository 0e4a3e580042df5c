//! What a worker does when asked to start, resume, cancel or restart an
//! execution (by the API, or by an admin's request).

use std::sync::Arc;

use super::descriptor::WorkflowDescriptor;
use super::drive::Ready;
use super::engine::Engine;
use crate::error::{CodecError, Error, Result};
use crate::options::StartOptions;
use crate::record::ExecutionId;
use crate::status::{AdminAction, ExecutionStatus};
use crate::store::{Inserted, NewExecution, Transition, TypeTag};

/// How often a restart looks again at an execution another task holds.
const RESTART_POLL: std::time::Duration = std::time::Duration::from_millis(2);

impl Engine {
    /// Commits a new execution's row (or finds the existing one) and drives it.
    pub(crate) async fn start(
        self: &Arc<Self>,
        descriptor: &'static WorkflowDescriptor,
        id: ExecutionId,
        options: StartOptions,
        input: Vec<u8>,
        parent: Option<ExecutionId>,
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
        let now = self.now_millis();
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
            now,
            parent_id: parent.clone(),
            deadline_at: options
                .timeout
                .or(descriptor.timeout)
                .map(|t| now.saturating_add(i64::try_from(t.as_millis()).unwrap_or(i64::MAX))),
        };
        let new_deadline = new.deadline_at;
        match self.store.insert_execution(new).await? {
            Inserted::Existing { workflow, .. } if workflow != descriptor.name => {
                return Err(Error::IdConflict {
                    id,
                    existing: workflow,
                    requested: descriptor.name.to_owned(),
                });
            }
            Inserted::Existing {
                parent: existing, ..
            } if parent.is_some() && existing != parent => {
                // A child attaches only to itself (a start that crashed
                // before its parent journaled it), never to another
                // execution that happens to have its id.
                return Err(Error::InvalidOption(format!(
                    "execution `{id}` exists and is not a child of `{}`: give the child an id of its own",
                    parent.as_ref().map(ExecutionId::as_str).unwrap_or_default()
                )));
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
                        deadline_at: new_deadline,
                        parent_id: parent,
                        input_type: Some(input_type.hash),
                    };
                    self.launch(claim, ready, false);
                }
            }
        }
        Ok(())
    }

    /// Starts (or attaches to) execution `id` of the workflow registered as
    /// `workflow`, its input given as JSON: see `Runtime::start_by_name`.
    pub(crate) async fn start_json(
        self: &Arc<Self>,
        workflow: &str,
        id: ExecutionId,
        input: &serde_json::Value,
    ) -> Result<()> {
        let descriptor = self.descriptor(workflow)?;
        let codec = self.defaults.codec;
        let bytes = codec.encode(input, || format!("the input of workflow `{workflow}`"))?;
        let payload = crate::codec::Payload::new(codec, bytes);
        (descriptor.check_input)(&payload).map_err(|mut e| {
            e.what = format!("the input of workflow `{workflow}`");
            Error::Codec(e)
        })?;
        self.start(
            descriptor,
            id,
            StartOptions::default(),
            payload.bytes().to_vec(),
            None,
        )
        .await
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
        // A waiting execution replays and waits again: its deadline stands.
        if status == ExecutionStatus::Waiting && self.is_active(id) {
            return Ok(());
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
    ///
    /// A task of this process may still hold the execution although its
    /// status already reads restartable: the driver of a panicked execution
    /// keeps it until it has written `failed` (a spent budget) or scheduled
    /// the restart, and a timer's restart holds it while it begins.
    /// Returning `Ok` there without restarting would leave that `failed`
    /// standing, so this waits for the holder: it restarts once the execution is free, succeeds if a restart
    /// took effect meanwhile (the restart count went up), and is refused if
    /// the status moved on to one that does not restart.
    pub(crate) async fn restart(self: &Arc<Self>, id: &ExecutionId) -> Result<()> {
        let mut seen_attempt = None;
        let mut refused_when_claimed = false;
        loop {
            let row = self
                .store
                .load_execution(id)
                .await?
                .ok_or_else(|| Error::NotFound(id.clone()))?;
            if seen_attempt.is_some_and(|seen| row.restart_attempt > seen) {
                return Ok(());
            }
            if !AdminAction::Restart.applies_to(row.status) {
                return Err(Error::NotRestartable {
                    id: id.clone(),
                    status: row.status,
                });
            }
            if refused_when_claimed {
                // Still restartable, yet the store would not begin it: on a
                // shared database another worker owns it, and
                // `Runtime::control` leaves it a request.
                return Ok(());
            }
            seen_attempt.get_or_insert(row.restart_attempt);
            match self.claim(id) {
                Some(claim) => {
                    if self.restart_claimed(claim, id).await? {
                        return Ok(());
                    }
                    // The next read says why.
                    refused_when_claimed = true;
                }
                None if self.is_shutting_down() => return Err(Error::Shutdown),
                // Held only for one or two journal writes (see above).
                None => tokio::time::sleep(RESTART_POLL).await,
            }
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
