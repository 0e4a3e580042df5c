//! Recovery on open: every unfinished execution is picked up by the path
//! that suits its status, and claims after an unclean end are counted.

use std::collections::HashSet;
use std::sync::Arc;

use super::engine::Engine;
use crate::error::Result;
use crate::options::StartOptions;
use crate::record::ExecutionId;
use crate::status::{ExecutionStatus, PauseCause};
use crate::store::Transition;

impl Engine {
    /// Picks up every unfinished execution after open: running ones by
    /// replay (counting the claim against the recovery budget), sleeping ones
    /// at their wake time, panicked ones per their restart policy, and ones
    /// paused for non-determinism by replay (the code may have been fixed).
    pub(crate) async fn recover(self: &Arc<Self>) -> Result<()> {
        if self.store.is_shared() {
            self.take_over(&mut HashSet::new()).await;
            return Ok(());
        }
        let rows = self.store.load_unfinished().await?;
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
            if !self.registered.accepts(&row.app_version) {
                tracing::warn!(
                    execution = %row.id,
                    app_version = %row.app_version,
                    "execution of an app version this process does not accept; left as it is"
                );
                continue;
            }
            match row.status {
                ExecutionStatus::Running | ExecutionStatus::Restarting => interrupted.push(row.id),
                ExecutionStatus::Sleeping => self.timers.add_wake(row.wake_at.unwrap_or(0), row.id),
                // A message or its deadline wakes it; without a deadline,
                // a message sent meanwhile set its wake time.
                ExecutionStatus::Waiting => {
                    if let Some(at) = row.wake_at {
                        self.timers.add_wake(at, row.id)
                    }
                }
                ExecutionStatus::Panicked => {
                    let options: StartOptions =
                        serde_json::from_str(&row.options).unwrap_or_default();
                    let policy = self.restart_policy(descriptor, &options);
                    let message = row.error_message.unwrap_or_else(|| "panicked".to_owned());
                    self.after_panic(None, row.id, row.restart_attempt, policy, message)
                        .await;
                }
                // The code may have been fixed, or space freed.
                ExecutionStatus::Paused
                    if matches!(
                        row.cause,
                        Some(PauseCause::Nondeterminism | PauseCause::Storage)
                    ) =>
                {
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
        if self.store.previous_end_clean() {
            // Stopped by a clean shutdown, not by a crash: nothing to count.
            self.replay_all(interrupted.into_iter().map(|id| (id, false)).collect())
                .await;
            return Ok(());
        }
        // One transaction counts every claim: a workflow that kills the
        // process each time it runs must run out of budget, not loop forever.
        let counts = self.store.count_recoveries(interrupted.clone()).await?;
        let budget = self.defaults.recovery_budget;
        let mut resumed = Vec::new();
        for (id, count) in interrupted.into_iter().zip(counts) {
            if count > budget {
                let reason = format!(
                    "interrupted {count} times in a row without progress (recovery budget {budget}); resume it once the cause is fixed"
                );
                tracing::warn!(execution = %id, %reason, "execution paused");
                let transition = Transition::paused(PauseCause::RecoveryBudget, reason);
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

    /// On a database shared by many workers: registers anew after a lost
    /// lease (dropping every execution driven here), reaps workers whose
    /// lease ran out, claims what nobody owns, and drives what this worker
    /// owns but no task here drives (seen so in two sweeps in a row, so
    /// that a start or a wake-up in progress is not taken for one).
    pub(crate) async fn take_over(self: &Arc<Self>, suspects: &mut HashSet<ExecutionId>) {
        #[cfg(feature = "postgres")]
        {
            let Some(pg) = self.store.shared() else {
                return;
            };
            if pg.fenced() {
                for id in self.active_ids() {
                    pg.disown(&id);
                }
                for exec in self.active_executions() {
                    exec.interrupt();
                }
                if let Err(e) = pg.reregister().await {
                    tracing::warn!(error = %e, "cannot register this worker anew");
                    return;
                }
            }
            match pg.reap().await {
                Ok(dead) if !dead.is_empty() => {
                    tracing::warn!(workers = ?dead, "workers whose lease ran out declared dead; their executions are released")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot reap expired workers"),
            }
            const CLAIM_AT_ONCE: i64 = 256;
            // Sleepers and waiters due before the next sweep are claimed now,
            // and their timers here wake them on time: an orphan is late by
            // the sweep's period only when it was already due at the hand-over.
            let now = self.now_millis();
            let due_by = now.saturating_add(
                i64::try_from(super::scheduler::SWEEP_EVERY.as_millis()).unwrap_or(i64::MAX),
            );
            loop {
                let claimed = match pg.claim_orphans(due_by, CLAIM_AT_ONCE).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot claim executions");
                        break;
                    }
                };
                let full = claimed.len() as i64 == CLAIM_AT_ONCE;
                for (row, recoveries) in claimed {
                    self.pick_up(row, recoveries).await;
                }
                if !full {
                    break;
                }
            }
            let owned = match pg.owned_running().await {
                Ok(owned) => owned,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list this worker's executions");
                    return;
                }
            };
            let idle: HashSet<ExecutionId> =
                owned.into_iter().filter(|id| !self.is_active(id)).collect();
            for id in idle.intersection(suspects) {
                let engine = Arc::clone(self);
                let id = id.clone();
                tokio::spawn(async move {
                    if let Err(e) = engine.replay(&id, false).await {
                        tracing::error!(execution = %id, error = %e, "cannot drive an execution");
                    }
                });
            }
            *suspects = idle;
        }
        #[cfg(not(feature = "postgres"))]
        let _ = suspects;
    }

    /// Drives an execution just claimed from the shared database, by the
    /// path its status needs; `recoveries` is how many times in a row its
    /// owner died while it ran.
    #[cfg(feature = "postgres")]
    async fn pick_up(self: &Arc<Self>, row: crate::store::Unfinished, recoveries: u32) {
        let Ok(descriptor) = self.descriptor(&row.workflow) else {
            return;
        };
        match row.status {
            ExecutionStatus::Sleeping => self.timers.add_wake(row.wake_at.unwrap_or(0), row.id),
            ExecutionStatus::Waiting => {
                if let Some(at) = row.wake_at {
                    self.timers.add_wake(at, row.id)
                }
            }
            ExecutionStatus::Panicked => {
                let options: StartOptions = serde_json::from_str(&row.options).unwrap_or_default();
                let policy = self.restart_policy(descriptor, &options);
                let message = row.error_message.unwrap_or_else(|| "panicked".to_owned());
                self.after_panic(None, row.id, row.restart_attempt, policy, message)
                    .await;
            }
            _ => {
                let budget = self.defaults.recovery_budget;
                if recoveries > budget {
                    let reason = format!(
                        "interrupted {recoveries} times in a row without progress (recovery budget {budget}); resume it once the cause is fixed"
                    );
                    tracing::warn!(execution = %row.id, %reason, "execution paused");
                    let transition = Transition::paused(PauseCause::RecoveryBudget, reason);
                    self.set_status(&row.id, ExecutionStatus::Paused, transition)
                        .await;
                    return;
                }
                if recoveries > 0 {
                    tracing::info!(execution = %row.id, attempt = recoveries, "taking over an interrupted execution");
                }
                let engine = Arc::clone(self);
                tokio::spawn(async move {
                    if let Err(e) = engine.replay(&row.id, recoveries > 0).await {
                        tracing::error!(execution = %row.id, error = %e, "cannot take over an execution");
                    }
                });
            }
        }
    }

    /// Replays executions side by side, so the writer loads and commits
    /// them in a few group commits rather than one commit each.
    async fn replay_all(self: &Arc<Self>, executions: Vec<(ExecutionId, bool)>) {
        let mut tasks = tokio::task::JoinSet::new();
        for (id, recovered) in executions {
            let engine = Arc::clone(self);
            tasks.spawn(async move {
                if let Err(e) = engine.replay(&id, recovered).await {
                    tracing::error!(execution = %id, error = %e, "cannot recover an execution");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}
