//! Time-driven work: waking suspended executions at their wake time,
//! restarting panicked ones after their delay, the periodic sweep, and
//! recovery of unfinished executions on open.
//!
//! A suspended execution costs one heap entry here (its wake time and id),
//! not a task or a future.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;

use crate::clock::Clock;
use crate::error::Result;
use crate::journal::{ExecutionId, from_millis, to_millis};
use crate::runtime::{Inner, Runtime, StartOptions};
use crate::status::{AdminAction, ExecutionStatus, PauseCause};
use crate::store::{self, Transition};

/// How often the sweep looks for due sleepers the timers missed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

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

impl Runtime {
    /// Starts the scheduler task. It holds the runtime weakly, so dropping
    /// the last `Runtime` ends it.
    pub(crate) fn start_scheduler(&self) {
        let timers = Arc::clone(&self.inner.timers);
        let clock = Arc::clone(&self.inner.clock);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(scheduler(timers, clock, weak));
    }

    /// Picks up every unfinished execution after open: running ones by
    /// replay (counting the claim against the recovery budget), sleeping ones
    /// at their wake time, panicked ones per their restart policy, and ones
    /// paused for non-determinism by replay (the code may have been fixed).
    pub(crate) async fn recover(&self) -> Result<()> {
        let rows = self.inner.store.write(store::load_unfinished).await?;
        let mut interrupted = Vec::new();
        for row in rows {
            let Ok(descriptor) = self.descriptor(&row.workflow) else {
                tracing::warn!(
                    execution = %row.id,
                    workflow = %row.workflow,
                    "execution of a workflow this process does not register; left as it is"
                );
                continue;
            };
            match row.status {
                ExecutionStatus::Running | ExecutionStatus::Restarting => interrupted.push(row.id),
                ExecutionStatus::Sleeping => {
                    self.inner.timers.add_wake(row.wake_at.unwrap_or(0), row.id)
                }
                ExecutionStatus::Panicked => {
                    let options: StartOptions =
                        serde_json::from_str(&row.options).unwrap_or_default();
                    let policy = self.restart_policy(descriptor, &options);
                    let message = row.error_message.unwrap_or_else(|| "panicked".to_owned());
                    self.after_panic(row.id, row.restart_attempt, policy, message)
                        .await;
                }
                ExecutionStatus::Paused if row.cause == Some(PauseCause::Nondeterminism) => {
                    if let Err(e) = self.replay(&row.id, false).await {
                        tracing::error!(execution = %row.id, error = %e, "cannot resume a paused execution");
                    }
                }
                _ => {}
            }
        }
        if interrupted.is_empty() {
            return Ok(());
        }
        if self.inner.store.previous_end_clean() {
            // Stopped by a clean shutdown, not by a crash: nothing to count.
            self.replay_all(interrupted.into_iter().map(|id| (id, false)).collect())
                .await;
            return Ok(());
        }
        // One transaction counts every claim: a workflow that kills the
        // process each time it runs must run out of budget, not loop forever.
        let ids = interrupted.clone();
        let counts = self
            .inner
            .store
            .write(move |conn| {
                ids.iter()
                    .map(|id| store::count_recovery(conn, id))
                    .collect::<rusqlite::Result<Vec<u32>>>()
            })
            .await?;
        let budget = self.inner.defaults.recovery_budget;
        let mut resumed = Vec::new();
        for (id, count) in interrupted.into_iter().zip(counts) {
            if count > budget {
                let reason = format!(
                    "interrupted {count} times in a row without progress (recovery budget {budget}); resume it once the cause is fixed"
                );
                tracing::warn!(execution = %id, %reason, "execution paused");
                let transition = Transition {
                    message: Some(reason),
                    cause: Some(PauseCause::RecoveryBudget),
                    ..Transition::default()
                };
                self.set_status(&id, ExecutionStatus::Paused, transition)
                    .await;
                continue;
            }
            tracing::info!(execution = %id, attempt = count, "recovering an interrupted execution");
            resumed.push((id, true));
        }
        self.replay_all(resumed).await;
        Ok(())
    }

    /// Replays executions side by side, so the writer loads and commits
    /// them in a few group commits rather than one commit each.
    async fn replay_all(&self, executions: Vec<(ExecutionId, bool)>) {
        let mut tasks = tokio::task::JoinSet::new();
        for (id, recovered) in executions {
            let rt = self.clone();
            tasks.spawn(async move {
                if let Err(e) = rt.replay(&id, recovered).await {
                    tracing::error!(execution = %id, error = %e, "cannot recover an execution");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn scheduler(timers: Arc<Timers>, clock: Arc<dyn Clock>, weak: Weak<Inner>) {
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
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
                let Some(inner) = weak.upgrade() else { break };
                let rt = Runtime { inner };
                for (kind, id) in timers.pop_due(to_millis(clock.now())) {
                    let rt = rt.clone();
                    tokio::spawn(async move {
                        let result = match kind {
                            Due::Wake => rt.replay(&id, false).await.map(|_| ()),
                            Due::Restart => rt.restart_by_replay(&id).await,
                        };
                        if let Err(e) = result {
                            tracing::error!(execution = %id, error = %e, "scheduled wake-up failed");
                        }
                    });
                }
            }
            _ = sweep.tick() => {
                let Some(inner) = weak.upgrade() else { break };
                let rt = Runtime { inner };
                sweep_due_sleepers(&rt, clock.as_ref()).await;
                apply_requests(&rt, clock.as_ref()).await;
            }
        }
    }
    tracing::debug!("scheduler stopped");
}

/// Wakes sleepers whose time has come but that no timer woke (a wake-up
/// that raced the end of the task that suspended it).
async fn sweep_due_sleepers(rt: &Runtime, clock: &dyn Clock) {
    let now = to_millis(clock.now());
    let due = match rt
        .inner
        .store
        .read(move |conn| store::due_sleepers(conn, now))
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "sweep could not read the journal");
            return;
        }
    };
    for id in due {
        if rt.is_active(&id) {
            continue;
        }
        let rt = rt.clone();
        tokio::spawn(async move {
            if let Err(e) = rt.replay(&id, false).await {
                tracing::error!(execution = %id, error = %e, "sweep could not wake an execution");
            }
        });
    }
}

/// Applies the requests admins recorded (CLI, dashboard), oldest first.
async fn apply_requests(rt: &Runtime, clock: &dyn Clock) {
    let pending = match rt.inner.store.read(store::pending_requests).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read admin requests");
            return;
        }
    };
    for (request, id, action) in pending {
        let result = match action {
            AdminAction::Cancel => rt.cancel(id.clone()).await,
            AdminAction::Resume => rt.resume(id.clone()).await,
            AdminAction::Restart => rt.restart(id.clone()).await,
        };
        let outcome = match &result {
            Ok(()) => "applied".to_owned(),
            Err(e) => format!("refused: {e}"),
        };
        tracing::info!(execution = %id, %action, %outcome, "admin request");
        let now = to_millis(clock.now());
        if let Err(e) = rt
            .inner
            .store
            .write(move |conn| store::finish_request(conn, request, &outcome, now))
            .await
        {
            tracing::warn!(error = %e, "cannot mark an admin request applied");
        }
    }
}
