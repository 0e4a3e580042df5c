//! Driving executions: each runs on its own task from the start of its
//! journal (replay), until it ends, is stopped, or panics. Starting, waking,
//! recovering and restarting all come through [`Engine::launch`].

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::context::{Context, SCOPE, Scope};
use super::descriptor::{WorkflowDescriptor, WorkflowOutcome};
use super::engine::{Claim, Engine};
use super::panic::CatchUnwind;
use super::state::{Execution, Launch};
use crate::codec::{Codec, Payload};
use crate::error::{Error, Result};
use crate::options::StartOptions;
use crate::record::ExecutionId;
use crate::status::{ExecutionStatus, PauseCause};
use crate::store::{Claimed, Entry, ExecutionRow, Loaded, Transition, TypeTag};

/// How an execution restarts after a panic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RestartPolicy {
    pub max_restarts: u32,
    pub delay: Duration,
}

/// An execution ready to run: what its task needs besides the engine.
pub(crate) struct Ready {
    pub descriptor: &'static WorkflowDescriptor,
    pub codec: Codec,
    pub input: Vec<u8>,
    pub options: StartOptions,
    pub restart_attempt: u32,
    pub journal: Vec<Entry>,
    /// Which types the input was written as, if recorded.
    pub input_type: Option<i32>,
    /// When the execution must end by (Unix ms).
    pub deadline_at: Option<i64>,
    /// The execution that started it as a child.
    pub parent_id: Option<ExecutionId>,
}

impl Ready {
    /// From a loaded row; an unregistered workflow is an error.
    fn from_loaded(engine: &Engine, loaded: Loaded) -> Result<Ready> {
        let Loaded { row, journal } = loaded;
        let descriptor = engine.descriptor(&row.workflow)?;
        Ok(Ready {
            descriptor,
            codec: row.codec,
            options: start_options(&row),
            input: row.input,
            restart_attempt: row.restart_attempt,
            input_type: row.input_type,
            deadline_at: row.deadline_at,
            parent_id: row.parent_id,
            journal,
        })
    }
}

/// The start options journaled with an execution; the defaults if they no
/// longer read (logged).
pub(crate) fn start_options(row: &ExecutionRow) -> StartOptions {
    serde_json::from_str(&row.options).unwrap_or_else(|e| {
        tracing::warn!(execution = %row.id, error = %e, "unreadable start options; using the defaults");
        StartOptions::default()
    })
}

impl Engine {
    /// The restart policy of an execution: its start options, then the
    /// workflow's attribute, then the runtime default.
    pub(crate) fn restart_policy(
        &self,
        descriptor: &WorkflowDescriptor,
        options: &StartOptions,
    ) -> RestartPolicy {
        RestartPolicy {
            max_restarts: options
                .max_restarts
                .or(descriptor.max_restarts)
                .unwrap_or(self.defaults.max_restarts),
            delay: options
                .restart_delay
                .or(descriptor.restart_delay)
                .unwrap_or(self.defaults.restart_delay),
        }
    }

    /// Claims `id`, loads its row and journal (through the writer, so replay
    /// sees every write already queued), moving it to `running` in the same
    /// commit, and drives it from the start. `Ok(false)` when it is finished,
    /// of a workflow not registered here, or already running here.
    pub(crate) async fn replay(
        self: &Arc<Self>,
        id: &ExecutionId,
        recovered: bool,
    ) -> Result<bool> {
        self.replay_with(id, recovered, false).await
    }

    /// Replays `id` for a wake-up (a timer, a message, a child's end, the
    /// sweep): only while it is still suspended. One that was resumed,
    /// paused or panicked meanwhile is not the wake-up's to drive (a stale
    /// timer must not skip a restart delay).
    pub(crate) async fn replay_woken(self: &Arc<Self>, id: &ExecutionId) -> Result<bool> {
        self.replay_with(id, false, true).await
    }

    async fn replay_with(
        self: &Arc<Self>,
        id: &ExecutionId,
        recovered: bool,
        woken: bool,
    ) -> Result<bool> {
        let Some(claim) = self.claim(id) else {
            return Ok(false);
        };
        let claimed = self
            .store
            .claim_for_replay(id, Arc::clone(&self.registered), self.now_millis(), woken)
            .await?;
        let loaded = match claimed {
            Claimed::Loaded(loaded) => loaded,
            Claimed::Missing => return Err(Error::NotFound(id.clone())),
            Claimed::Untouched => return Ok(false),
        };
        let ready = Ready::from_loaded(self, loaded)?;
        self.notify_change(id);
        tracing::info!(execution = %id, workflow = ready.descriptor.name, entries = ready.journal.len(), "resuming by replay");
        self.launch(claim, ready, recovered);
        Ok(true)
    }

    /// Restarts a panicked execution by replay when its restart timer is
    /// due. One that is held (restarted by hand meanwhile) or no longer
    /// panicked has nothing to do; `Runtime::restart` goes through
    /// `Engine::restart` instead.
    pub(crate) async fn restart_by_replay(self: &Arc<Self>, id: &ExecutionId) -> Result<()> {
        let Some(claim) = self.claim(id) else {
            return Ok(());
        };
        self.restart_claimed(claim, id).await.map(drop)
    }

    /// Restarts `id`, claimed by the caller, if its status still allows it
    /// (`Ok(false)` when it does not).
    pub(crate) async fn restart_claimed(
        self: &Arc<Self>,
        claim: Claim,
        id: &ExecutionId,
    ) -> Result<bool> {
        let Some(loaded) = self.store.begin_restart(id, self.now_millis()).await? else {
            return Ok(false);
        };
        self.notify_change(id);
        let ready = Ready::from_loaded(self, loaded)?;
        tracing::info!(execution = %id, restart_attempt = ready.restart_attempt, "restarting by replay");
        self.launch(claim, ready, false);
        Ok(true)
    }

    /// Drives one claimed execution on its own task; the claim goes with it
    /// and is released when the task is done with the execution.
    pub(crate) fn launch(self: &Arc<Self>, claim: Claim, ready: Ready, recovered: bool) {
        let restarts = self.restart_policy(ready.descriptor, &ready.options);
        let launch = Launch {
            id: claim.id().clone(),
            codec: ready.codec,
            restart_attempt: ready.restart_attempt,
            retry: ready.options.retry.unwrap_or(self.defaults.retry),
            journal: ready.journal,
            recovered,
            dry: None,
            deadline: ready.deadline_at,
            parent: ready.parent_id,
        };
        let exec = Arc::new(Execution::new(
            Arc::clone(self),
            ready.descriptor.name,
            launch,
        ));
        claim.attach(&exec);
        self.release_storage_hold(claim.id());
        let span =
            tracing::info_span!("workflow", workflow = ready.descriptor.name, execution = %exec.id);
        let input = Payload::new(ready.codec, ready.input);
        let run = drive(
            claim,
            exec,
            ready.descriptor,
            input,
            ready.input_type,
            restarts,
        );
        tokio::spawn(run.instrument(span));
    }

    /// After a panic: schedules a restart by replay once its delay has
    /// passed, or fails the execution when its restart budget is spent. The
    /// claim is released before a restart is scheduled (so the restart can
    /// claim it) and after a failure is written (so nothing overwrites it).
    pub(crate) async fn after_panic(
        self: &Arc<Self>,
        claim: Option<Claim>,
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
            self.set_status(&id, ExecutionStatus::Failed, Transition::because(reason))
                .await;
            return;
        }
        drop(claim);
        if !self.defaults.auto_restart {
            tracing::info!(execution = %id, "auto-restart is off; the execution stays panicked");
            return;
        }
        let due = self.clock.now() + policy.delay;
        self.timers.add_restart(crate::record::to_millis(due), id);
    }
}

/// Runs a workflow body to its end, or until the runtime stops it, and
/// records the outcome; the claim is released when this returns.
async fn drive(
    claim: Claim,
    exec: Arc<Execution>,
    descriptor: &'static WorkflowDescriptor,
    input: Payload,
    input_type: Option<i32>,
    restarts: RestartPolicy,
) {
    let ctx = Context {
        exec: Arc::clone(&exec),
        branch: Arc::from(""),
    };
    let body = SCOPE.scope(
        Scope::Workflow(ctx.clone()),
        run_body(ctx, descriptor, input, input_type),
    );
    let outcome = tokio::select! {
        biased;
        () = exec.stop.notified() => None,
        outcome = CatchUnwind::new(body) => Some(outcome),
    };
    let engine = &exec.engine;
    match outcome {
        // Stopped: whoever stopped it recorded why.
        None => {}
        Some(Ok(outcome)) => finish(&exec, descriptor, outcome).await,
        Some(Err((panic, _payload))) => {
            let message = panic.to_string();
            tracing::error!(execution = %exec.id, %message, "workflow panicked");
            let transition = Transition::because(message.clone());
            engine
                .set_status(&exec.id, ExecutionStatus::Panicked, transition)
                .await;
            engine
                .after_panic(
                    Some(claim),
                    exec.id.clone(),
                    exec.restart_attempt,
                    restarts,
                    message,
                )
                .await;
        }
    }
}

async fn finish(exec: &Execution, descriptor: &WorkflowDescriptor, outcome: WorkflowOutcome) {
    // The input no longer decodes: the body never ran, so what it did not
    // reach says nothing.
    let undecodable = matches!(outcome, WorkflowOutcome::Undecodable(_));
    if let Some(reason) = unreached_reason(exec).filter(|_| !undecodable) {
        tracing::warn!(execution = %exec.id, %reason, "execution paused");
        let transition = Transition::paused(PauseCause::Nondeterminism, reason);
        exec.engine
            .set_status(&exec.id, ExecutionStatus::Paused, transition)
            .await;
        return;
    }
    let limit = exec.engine.defaults.max_payload;
    let (status, transition) = match outcome {
        WorkflowOutcome::Completed(bytes) if bytes.len() > limit => (
            ExecutionStatus::Failed,
            Transition::because(format!(
                "the output is {} bytes, over the configured limit of {limit} bytes",
                bytes.len()
            )),
        ),
        WorkflowOutcome::Completed(bytes) => {
            let tag = TypeTag::named((descriptor.output_type)());
            exec.engine.note_type(tag).await;
            (
                ExecutionStatus::Completed,
                Transition::completed(bytes, tag.hash),
            )
        }
        WorkflowOutcome::Failed { error, message } => {
            let tag = TypeTag::named((descriptor.error_type)());
            exec.engine.note_type(tag).await;
            (
                ExecutionStatus::Failed,
                Transition::failed_with(error, tag.hash, message),
            )
        }
        WorkflowOutcome::Unrecordable(message) => {
            (ExecutionStatus::Failed, Transition::because(message))
        }
        WorkflowOutcome::Undecodable(message) => (
            ExecutionStatus::Paused,
            Transition::paused(PauseCause::Undecodable, message),
        ),
    };
    tracing::info!(execution = %exec.id, %status, "execution finished");
    exec.engine.set_status(&exec.id, status, transition).await;
}

/// Why an execution whose body returned is paused instead: journal entries
/// its run never reached (the code no longer makes those calls).
pub(super) fn unreached_reason(exec: &Execution) -> Option<String> {
    let unreached = exec.unreached();
    let first = unreached.first()?;
    Some(format!(
        "non-determinism in workflow `{}`: it finished without reaching {} journaled entr{} (first: {} `{}#{}` at position {})",
        exec.workflow,
        unreached.len(),
        if unreached.len() == 1 { "y" } else { "ies" },
        first.kind,
        first.name,
        first.occurrence,
        first.position
    ))
}

/// A workflow's body, once its input is known to be of the types it was
/// written as (else the execution parks, naming both).
pub(super) async fn run_body(
    ctx: Context,
    descriptor: &'static WorkflowDescriptor,
    input: Payload,
    input_type: Option<i32>,
) -> WorkflowOutcome {
    let tag = TypeTag::named((descriptor.input_type)());
    let what = || format!("the input of workflow `{}`", descriptor.name);
    ctx.exec.check_tag(input_type, tag, what).await;
    (descriptor.run)(ctx, input).await
}
