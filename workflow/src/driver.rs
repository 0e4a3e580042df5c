//! Driving executions: each runs on its own task from the start of its
//! journal (replay), until it ends, is stopped, or panics.

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::codec::Payload;
use crate::context::{Context, Execution, SCOPE, Scope};
use crate::error::Result;
use crate::journal::{ExecutionId, to_millis};
use crate::panic::CatchUnwind;
use crate::private::{WorkflowDescriptor, WorkflowOutcome};
use crate::runtime::{Runtime, StartOptions};
use crate::status::{ExecutionStatus, PauseCause};
use crate::store::{self, Entry, ExecutionRow, Transition};

/// How an execution restarts after a panic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartPolicy {
    pub max_restarts: u32,
    pub delay: Duration,
}

impl Runtime {
    /// The restart policy of an execution: its start options, then the
    /// workflow's attribute, then the runtime default.
    pub(crate) fn restart_policy(
        &self,
        descriptor: &WorkflowDescriptor,
        options: &StartOptions,
    ) -> RestartPolicy {
        let defaults = &self.inner.defaults;
        RestartPolicy {
            max_restarts: options
                .max_restarts
                .or(descriptor.max_restarts)
                .unwrap_or(defaults.max_restarts),
            delay: options
                .restart_delay
                .or(descriptor.restart_delay)
                .unwrap_or(defaults.restart_delay),
        }
    }

    /// Claims `id`, loads its row and journal (through the writer, so replay
    /// sees every write already queued) and drives it from the start.
    /// `Ok(false)` when it is finished or already running here.
    pub(crate) async fn replay(&self, id: &ExecutionId, recovered: bool) -> Result<bool> {
        if !self.claim(id) {
            return Ok(false);
        }
        let lookup = id.clone();
        let now = to_millis(self.inner.clock.now());
        // Loading and the move to `running` are one write: one commit
        // before the woken workflow runs.
        let rt = self.clone();
        let loaded = self
            .inner
            .store
            .write(move |conn| {
                let mut row = store::load_execution(conn, &lookup)?;
                let journal = match &mut row {
                    // An unregistered workflow is left as it is (reported below).
                    Some(r)
                        if !r.status.is_terminal()
                            && rt.inner.registry.contains_key(r.workflow.as_str()) =>
                    {
                        if r.status != ExecutionStatus::Running {
                            store::set_status(
                                conn,
                                &lookup,
                                ExecutionStatus::Running,
                                &Transition::default(),
                                now,
                            )?;
                            r.status = ExecutionStatus::Running;
                        }
                        store::load_journal(conn, &lookup)?
                    }
                    _ => Vec::new(),
                };
                Ok((row, journal))
            })
            .await;
        let (row, journal) = match loaded {
            Ok((Some(row), journal)) if !row.status.is_terminal() => (row, journal),
            Ok((None, _)) => {
                self.release(id);
                return Err(crate::Error::NotFound(id.clone()));
            }
            Ok(_) => {
                self.release(id);
                return Ok(false);
            }
            Err(e) => {
                self.release(id);
                return Err(e);
            }
        };
        let descriptor = match self.descriptor(&row.workflow) {
            Ok(d) => d,
            Err(e) => {
                self.release(id);
                return Err(e);
            }
        };
        self.notify_change(id);
        tracing::info!(execution = %id, workflow = descriptor.name, entries = journal.len(), "resuming by replay");
        self.spawn(descriptor, row, journal, recovered);
        Ok(true)
    }

    /// Drives one claimed execution on its own task.
    pub(crate) fn spawn(
        &self,
        descriptor: &'static WorkflowDescriptor,
        row: ExecutionRow,
        journal: Vec<Entry>,
        recovered: bool,
    ) {
        let options: StartOptions = serde_json::from_str(&row.options).unwrap_or_else(|e| {
            tracing::warn!(execution = %row.id, error = %e, "unreadable start options; using the defaults");
            StartOptions::default()
        });
        let exec = Arc::new(Execution::new(
            self.clone(),
            &row,
            descriptor.name,
            options.retry.unwrap_or(self.inner.defaults.retry),
            journal,
            recovered,
        ));
        self.attach(&exec);
        let span = tracing::info_span!("workflow", workflow = descriptor.name, execution = %row.id);
        let input = Payload::new(row.codec, row.input);
        let restarts = self.restart_policy(descriptor, &options);
        tokio::spawn(drive(exec, descriptor, input, restarts).instrument(span));
    }

    /// After a panic: schedules a restart by replay once its delay has
    /// passed, or fails the execution when its restart budget is spent.
    pub(crate) async fn after_panic(
        &self,
        id: ExecutionId,
        restart_attempt: u32,
        policy: RestartPolicy,
        panic: String,
    ) {
        if restart_attempt >= policy.max_restarts {
            let reason = format!(
                "{panic} (restart budget of {} spent after {} run{})",
                policy.max_restarts,
                restart_attempt + 1,
                if restart_attempt == 0 { "" } else { "s" }
            );
            let transition = Transition {
                message: Some(reason),
                ..Transition::default()
            };
            self.set_status(&id, ExecutionStatus::Failed, transition)
                .await;
            return;
        }
        if !self.inner.defaults.auto_restart {
            tracing::info!(execution = %id, "auto-restart is off; the execution stays panicked");
            return;
        }
        let due = self.inner.clock.now() + policy.delay;
        self.inner.timers.add_restart(to_millis(due), id);
    }

    /// Restarts a panicked (or failed) execution by replay; see `Runtime::restart`.
    pub(crate) async fn restart_by_replay(&self, id: &ExecutionId) -> Result<()> {
        if !self.claim(id) {
            return Ok(());
        }
        let lookup = id.clone();
        let now = to_millis(self.inner.clock.now());
        let loaded = self
            .inner
            .store
            .write(move |conn| {
                if !store::begin_restart(conn, &lookup, now)? {
                    return Ok(None);
                }
                let row = store::load_execution(conn, &lookup)?;
                let journal = store::load_journal(conn, &lookup)?;
                Ok(row.map(|r| (r, journal)))
            })
            .await;
        let (row, journal) = match loaded {
            Ok(Some(found)) => found,
            Ok(None) => {
                self.release(id);
                return Ok(());
            }
            Err(e) => {
                self.release(id);
                return Err(e);
            }
        };
        self.notify_change(id);
        let descriptor = match self.descriptor(&row.workflow) {
            Ok(d) => d,
            Err(e) => {
                self.release(id);
                return Err(e);
            }
        };
        tracing::info!(execution = %id, restart_attempt = row.restart_attempt, "restarting by replay");
        self.spawn(descriptor, row, journal, false);
        Ok(())
    }
}

/// Runs a workflow body to its end, or until the runtime stops it, and
/// records the outcome.
async fn drive(
    exec: Arc<Execution>,
    descriptor: &'static WorkflowDescriptor,
    input: Payload,
    restarts: RestartPolicy,
) {
    let ctx = Context {
        exec: Arc::clone(&exec),
        branch: Arc::from(""),
    };
    let body = SCOPE.scope(Scope::Workflow(ctx.clone()), (descriptor.run)(ctx, input));
    let outcome = tokio::select! {
        biased;
        () = exec.stop.notified() => None,
        outcome = CatchUnwind::new(body) => Some(outcome),
    };
    let rt = exec.rt.clone();
    match outcome {
        // Stopped: whoever stopped it recorded why.
        None => rt.release(&exec.id),
        Some(Ok(outcome)) => {
            finish(&exec, outcome).await;
            rt.release(&exec.id);
        }
        Some(Err((panic, _payload))) => {
            let message = panic.to_string();
            tracing::error!(execution = %exec.id, %message, "workflow panicked");
            let transition = Transition {
                message: Some(message.clone()),
                ..Transition::default()
            };
            rt.set_status(&exec.id, ExecutionStatus::Panicked, transition)
                .await;
            rt.release(&exec.id);
            rt.after_panic(exec.id.clone(), exec.restart_attempt, restarts, message)
                .await;
        }
    }
}

async fn finish(exec: &Execution, outcome: WorkflowOutcome) {
    let unreached = exec.unreached();
    if let Some(first) = unreached.first() {
        let reason = format!(
            "non-determinism in workflow `{}`: it finished without reaching {} journaled entr{} (first: {} `{}#{}` at position {})",
            exec.workflow,
            unreached.len(),
            if unreached.len() == 1 { "y" } else { "ies" },
            first.kind,
            first.name,
            first.occurrence,
            first.position
        );
        tracing::warn!(execution = %exec.id, %reason, "execution paused");
        let transition = Transition {
            message: Some(reason),
            cause: Some(PauseCause::Nondeterminism),
            ..Transition::default()
        };
        exec.rt
            .set_status(&exec.id, ExecutionStatus::Paused, transition)
            .await;
        return;
    }
    let limit = exec.rt.inner.defaults.max_payload;
    let (status, transition) = match outcome {
        WorkflowOutcome::Completed(bytes) if bytes.len() > limit => (
            ExecutionStatus::Failed,
            Transition {
                message: Some(format!(
                    "the output is {} bytes, over the configured limit of {limit} bytes",
                    bytes.len()
                )),
                ..Transition::default()
            },
        ),
        WorkflowOutcome::Completed(bytes) => (
            ExecutionStatus::Completed,
            Transition {
                output: Some(bytes),
                ..Transition::default()
            },
        ),
        WorkflowOutcome::Failed { error, message } => (
            ExecutionStatus::Failed,
            Transition {
                error: Some(error),
                message: Some(message),
                ..Transition::default()
            },
        ),
        WorkflowOutcome::Unrecordable(message) => (
            ExecutionStatus::Failed,
            Transition {
                message: Some(message),
                ..Transition::default()
            },
        ),
        WorkflowOutcome::Undecodable(message) => (
            ExecutionStatus::Paused,
            Transition {
                message: Some(message),
                cause: Some(PauseCause::Undecodable),
                ..Transition::default()
            },
        ),
    };
    tracing::info!(execution = %exec.id, %status, "execution finished");
    exec.rt.set_status(&exec.id, status, transition).await;
}
