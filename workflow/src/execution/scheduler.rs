//! Time-driven work: waking suspended executions at their wake time,
//! restarting panicked ones after their delay, and the periodic sweep (due
//! sleepers the timers missed, admin requests, and now and then a prune of
//! the executions past their retention).
//!
//! A suspended execution costs one heap entry here (its wake time and id),
//! not a task or a future.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use super::engine::Engine;
use super::retention;
use crate::clock::Clock;
use crate::record::{ExecutionId, from_millis, to_millis};
use crate::status::{AdminAction, REFUSED};
use crate::store::RequestAction;

/// How often the sweep looks for due sleepers the timers missed.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Sweeps between two background prunes (when the builder set a
/// retention); the first sweep, at open, prunes too.
const PRUNE_SWEEPS: u32 = 60;

/// Sweeps between two tries of the executions held for storage: a full
/// disk is not retried every second, since each try may run a step body
/// again whose result could not be written.
const STORAGE_RETRY_SWEEPS: u32 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Wake,
    Restart,
}

/// The timer heap shared by the runtime and its scheduler task.
#[derive(Default)]
pub(crate) struct Timers {
    heap: Mutex<BinaryHeap<Reverse<(i64, Due, ExecutionId)>>>,
    changed: Notify,
    stopped: AtomicBool,
}

impl Timers {
    fn push(&self, at: i64, due: Due, id: ExecutionId) {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = heap.peek().map(|Reverse((t, _, _))| *t);
        heap.push(Reverse((at, due, id)));
        drop(heap);
        if earliest.is_none_or(|t| at < t) {
            self.changed.notify_one();
        }
    }

    /// Wakes a suspended execution at `at` (Unix ms).
    pub(crate) fn add_wake(&self, at: i64, id: ExecutionId) {
        self.push(at, Due::Wake, id);
    }

    /// Restarts a panicked execution at `at` (Unix ms).
    pub(crate) fn add_restart(&self, at: i64, id: ExecutionId) {
        self.push(at, Due::Restart, id);
    }

    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.changed.notify_one();
    }

    fn next_at(&self) -> Option<i64> {
        let heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        heap.peek().map(|Reverse((t, _, _))| *t)
    }

    fn pop_due(&self, now: i64) -> Vec<(Due, ExecutionId)> {
        let mut heap = self.heap.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        while heap.peek().is_some_and(|Reverse((t, _, _))| *t <= now) {
            if let Some(Reverse((_, kind, id))) = heap.pop() {
                due.push((kind, id));
            }
        }
        due
    }
}

impl Engine {
    /// Starts the scheduler task. It holds the engine weakly, so dropping
    /// the last `Runtime` ends it.
    pub(crate) fn start_scheduler(self: &Arc<Self>) {
        let timers = Arc::clone(&self.timers);
        let clock = Arc::clone(&self.clock);
        let weak = Arc::downgrade(self);
        let retention = self.defaults.retention;
        tokio::spawn(scheduler(timers, clock, weak, retention));
    }
}

async fn scheduler(
    timers: Arc<Timers>,
    clock: Arc<dyn Clock>,
    weak: Weak<Engine>,
    retention: Option<Duration>,
) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let mut sweeps = 0u32;
    let mut suspects = std::collections::HashSet::new();
    let pruning = Arc::new(AtomicBool::new(false));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if timers.stopped.load(Ordering::SeqCst) {
            break;
        }
        let changed = timers.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let next = timers.next_at();
        let due = async {
            match next {
                Some(at) => clock.sleep_until(from_millis(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut changed => continue,
            () = due => {
                let Some(engine) = weak.upgrade() else { break };
                for (kind, id) in timers.pop_due(to_millis(clock.now())) {
                    let engine = Arc::clone(&engine);
                    tokio::spawn(async move {
                        let result = match kind {
                            Due::Wake => engine.replay_woken(&id).await.map(|_| ()),
                            Due::Restart => engine.restart_by_replay(&id).await,
                        };
                        if let Err(e) = result {
                            tracing::error!(execution = %id, error = %e, "scheduled wake-up failed");
                        }
                    });
                }
            }
            _ = sweep.tick() => {
                if let Some(retention) = retention
                    && sweeps.is_multiple_of(PRUNE_SWEEPS)
                {
                    // A task of its own, writing through the writer: the
                    // sweeps and timers go on while it runs.
                    retention::prune_in_background(weak.clone(), retention, &pruning);
                }
                let Some(engine) = weak.upgrade() else { break };
                engine.take_over(&mut suspects).await;
                sweep_due_sleepers(&engine).await;
                apply_requests(&engine).await;
                sweeps = sweeps.wrapping_add(1);
                if sweeps.is_multiple_of(STORAGE_RETRY_SWEEPS) {
                    retry_storage_holds(&engine);
                }
            }
        }
    }
    tracing::debug!("scheduler stopped");
}

/// Wakes sleepers whose time has come but that no timer woke (a wake-up
/// that raced the end of the task that suspended it).
async fn sweep_due_sleepers(engine: &Arc<Engine>) {
    let due = match engine.store.due_sleepers(engine.now_millis()).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "sweep could not read the journal");
            return;
        }
    };
    for id in due {
        if engine.is_active(&id) {
            continue;
        }
        let engine = Arc::clone(engine);
        tokio::spawn(async move {
            if let Err(e) = engine.replay_woken(&id).await {
                tracing::error!(execution = %id, error = %e, "sweep could not wake an execution");
            }
        });
    }
}

/// Tries again the executions paused because the journal could not be
/// written: replaying one writes its move to `running` first, so one that
/// still cannot be written stays held; one that can goes on by itself.
fn retry_storage_holds(engine: &Arc<Engine>) {
    for (id, reason) in engine.take_storage_holds() {
        let engine = Arc::clone(engine);
        tokio::spawn(async move {
            match engine.replay(&id, false).await {
                Ok(_) => {
                    tracing::info!(execution = %id, "resumed after the journal could be written again")
                }
                Err(e) => {
                    tracing::debug!(execution = %id, error = %e, "the journal still cannot be written");
                    engine.hold_for_storage(&id, reason, true);
                }
            }
        });
    }
}

/// Applies the requests admins recorded (CLI, dashboard), oldest first.
async fn apply_requests(engine: &Arc<Engine>) {
    let pending = match engine.store.pending_requests().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read admin requests");
            return;
        }
    };
    for request in pending {
        let id = &request.execution;
        let (result, action) = match &request.action {
            RequestAction::Control(action) => {
                let result = match action {
                    AdminAction::Cancel => engine.cancel(id).await,
                    AdminAction::Resume => engine.resume(id).await,
                    AdminAction::Restart => engine.restart(id).await,
                };
                (result, action.as_str())
            }
            RequestAction::Start { workflow, input } => {
                let result = match serde_json::from_slice::<serde_json::Value>(input) {
                    Ok(input) => engine.start_json(workflow, id.clone(), &input).await,
                    Err(e) => Err(crate::Error::InvalidOption(format!(
                        "the input of the request is not JSON: {e}"
                    ))),
                };
                (result, "start")
            }
        };
        let outcome = match &result {
            Ok(()) => "applied".to_owned(),
            Err(e) => format!("{REFUSED}{e}"),
        };
        tracing::info!(execution = %id, action, %outcome, "admin request");
        if let Err(e) = engine
            .store
            .finish_request(request.id, outcome, engine.now_millis())
            .await
        {
            tracing::warn!(error = %e, "cannot mark an admin request applied");
        }
    }
}
