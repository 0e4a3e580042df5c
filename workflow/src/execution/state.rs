//! The shared state of one running execution and its lifecycle rules:
//! boundaries, waits and suspension, parking, failing and halting.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use super::check::Dry;
use super::engine::Engine;
use super::replay::Cursor;
use crate::check::CheckProblem;
use crate::codec::Codec;
use crate::record::{ExecutionId, from_millis};
use crate::retry::RetryPolicy;
use crate::status::{ExecutionStatus, PauseCause};
use crate::store::{Entry, JournalOp, Transition, TypeTag};

/// How the reason of an execution cancelled by its deadline starts: it
/// tells such a cancel from an operator's (which has no reason).
pub(crate) const DEADLINE_EXCEEDED: &str = "deadline exceeded: ";

/// The shared state of one running execution.
pub(crate) struct Execution {
    pub engine: Arc<Engine>,
    pub id: ExecutionId,
    pub workflow: &'static str,
    pub codec: Codec,
    pub restart_attempt: u32,
    pub retry: RetryPolicy,
    pub(super) cursor: Mutex<Cursor>,
    /// Told when the execution must stop (parked, failed by the runtime): the
    /// driver then drops the workflow future.
    pub stop: Notify,
    /// Set by a cancel request; honoured at the next boundary.
    cancel: AtomicBool,
    /// Wakes in-memory waits (short sleeps, backoffs) for a cancel or shutdown.
    pub(super) interrupt: Notify,
    /// Told when a message was sent to the execution by this process: a
    /// `recv` waiting in memory looks at its inbox again.
    pub mail: Notify,
    /// Taken over after an unclean end: the first progress resets the
    /// recovery count.
    recovered: AtomicBool,
    /// Set when a status that ends `Handle::result` is about to be written.
    pub ending: AtomicBool,
    /// A dry replay ([`Runtime::check`](crate::Runtime::check)): nothing
    /// runs past the journal and nothing is written; what would park the
    /// execution is kept here instead.
    pub(super) dry: Option<Dry>,
    /// When the execution must end by (Unix ms): past it, the next
    /// boundary cancels it.
    pub(super) deadline: Option<i64>,
    /// The execution that started it as a child workflow: told when it ends.
    pub parent: Option<ExecutionId>,
    /// What its branches wait for in memory (messages, children, short
    /// sleeps): a suspension wakes for the earliest of their times and
    /// looks at all of them once its status is written.
    waits: Mutex<Waits>,
    /// Step bodies running now, in any branch: while one runs, the
    /// execution is not suspended (it would be dropped mid-step).
    steps_running: std::sync::atomic::AtomicU32,
}

/// A step body running (see [`Execution::busy`]); ends when dropped.
pub(super) struct Busy<'a>(&'a Execution);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.steps_running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What an execution's branches wait for in memory.
#[derive(Default)]
struct Waits {
    next: u64,
    on: Vec<(u64, WaitFor, Option<i64>)>,
}

/// One thing a branch waits for.
#[derive(Clone)]
pub(super) enum WaitFor {
    /// A message on this topic.
    Message(Arc<str>),
    /// This child's end.
    Child(ExecutionId),
    /// A time (an in-memory sleep or backoff), given as the wait's deadline.
    Time,
}

/// A wait registered with [`Execution::waiting_for`]; unregistered when
/// dropped.
pub(super) struct WaitGuard<'a> {
    exec: &'a Execution,
    id: u64,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let mut waits = self.exec.waits.lock().unwrap_or_else(|p| p.into_inner());
        waits.on.retain(|(id, _, _)| *id != self.id);
    }
}

/// What an execution is launched with.
pub(crate) struct Launch {
    pub id: ExecutionId,
    pub codec: Codec,
    pub restart_attempt: u32,
    pub retry: RetryPolicy,
    pub journal: Vec<Entry>,
    /// Taken over after an unclean end.
    pub recovered: bool,
    /// Replayed dry, for the pre-deploy check, with the database's type
    /// names.
    pub dry: Option<Arc<std::collections::HashMap<i32, String>>>,
    /// When it must end by (Unix ms).
    pub deadline: Option<i64>,
    /// The execution that started it as a child workflow.
    pub parent: Option<ExecutionId>,
}

impl Execution {
    pub(crate) fn new(engine: Arc<Engine>, workflow: &'static str, launch: Launch) -> Self {
        Execution {
            engine,
            id: launch.id,
            workflow,
            codec: launch.codec,
            restart_attempt: launch.restart_attempt,
            retry: launch.retry,
            cursor: Mutex::new(Cursor::new(launch.journal)),
            stop: Notify::new(),
            cancel: AtomicBool::new(false),
            interrupt: Notify::new(),
            mail: Notify::new(),
            recovered: AtomicBool::new(launch.recovered),
            ending: AtomicBool::new(false),
            dry: launch.dry.map(Dry::new),
            deadline: launch.deadline,
            parent: launch.parent,
            waits: Mutex::new(Waits::default()),
            steps_running: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// In a dry replay, a call past the end of the journal stops there
    /// (true: the caller halts); a real run goes on.
    pub(crate) fn stops_past_journal(&self) -> bool {
        match &self.dry {
            Some(dry) => {
                dry.reached_end.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Asks the execution to stop as cancelled at its next boundary.
    pub(crate) fn request_cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
        self.interrupt.notify_waiters();
    }

    /// Wakes in-memory waits so they see a cancel or a shutdown.
    pub(crate) fn interrupt(&self) {
        self.interrupt.notify_waiters();
    }

    /// A step boundary: stops the execution here if it was cancelled or the
    /// runtime is shutting down.
    pub(crate) async fn boundary(&self) {
        if self.dry.is_some() {
            return;
        }
        if self.engine.store.disowned(&self.id) {
            // Another worker runs it now (a shared database): write nothing.
            tracing::warn!(execution = %self.id, "execution taken over by another worker; stopped here");
            self.halt().await
        }
        if let Some(deadline) = self.deadline
            && self.now_millis() >= deadline
        {
            let reason = format!(
                "{DEADLINE_EXCEEDED}the execution had to end by {}",
                crate::record::format_millis(deadline)
            );
            tracing::info!(execution = %self.id, %reason, "execution cancelled");
            let transition = Transition {
                message: Some(reason),
                deadline_passed: true,
                ..Transition::default()
            };
            self.engine
                .set_status(&self.id, ExecutionStatus::Cancelled, transition)
                .await;
            self.halt().await
        }
        if self.cancel.load(Ordering::SeqCst) {
            tracing::info!(execution = %self.id, "execution cancelled");
            self.engine
                .set_status(&self.id, ExecutionStatus::Cancelled, Transition::bare())
                .await;
            self.halt().await
        }
        if self.engine.store.lost_write(&self.id) {
            let reason = "the journal lost a queued write of this execution (the database refused a transaction: a full disk, an I/O error or no memory); resume it once the database can be written".to_owned();
            self.park_for(PauseCause::Storage, reason).await
        }
        if self.engine.is_shutting_down() {
            // The journal stays as it is; the next open recovers it.
            self.halt().await
        }
    }

    /// Called after a step completes: progress resets the recovery count.
    pub(crate) fn made_progress(&self) {
        if self.recovered.swap(false, Ordering::SeqCst) {
            self.engine.store.queue(JournalOp::ResetRecovery {
                id: self.id.clone(),
            });
        }
    }

    /// Waits until `wake_at` (Unix ms): in memory when it is near, otherwise
    /// by suspending the execution (which never returns here; the
    /// scheduler replays it when due).
    pub(crate) async fn wait_until(&self, wake_at: i64) {
        if self.stops_past_journal() {
            // What follows the wait is past the journal's end.
            self.halt().await
        }
        loop {
            let now = self.now_millis();
            if wake_at <= now {
                return;
            }
            let left = Duration::from_millis(u64::try_from(wake_at - now).unwrap_or(0));
            let mut look_again = None;
            if left > self.engine.defaults.suspend_after {
                if !self.others_waiting() {
                    self.suspend(wake_at).await
                }
                // Other branches wait for messages or children, or run a
                // step: the shared suspension wakes for all of them, and
                // waits while a step runs.
                let _registered =
                    self.waiting_for(WaitFor::Time, Some(self.until_deadline(wake_at)));
                let reason = format!("sleeping until {}", crate::record::format_millis(wake_at));
                if !self.suspend_waiting(reason).await {
                    continue;
                }
                // Real time, as a `recv` holds its wait in memory.
                look_again = Some(
                    self.engine
                        .defaults
                        .suspend_after
                        .max(Duration::from_millis(1)),
                );
            }
            // The deadline ends the wait early: the boundary cancels.
            let wake_at = self.until_deadline(wake_at);
            // Another branch's suspension wakes for this wait too.
            let _registered = self.waiting_for(WaitFor::Time, Some(wake_at));
            let interrupted = self.interrupt.notified();
            tokio::pin!(interrupted);
            interrupted.as_mut().enable();
            self.boundary().await;
            tokio::select! {
                () = self.engine.clock.sleep_until(from_millis(wake_at)) => {}
                () = tokio::time::sleep(look_again.unwrap_or(Duration::from_secs(3600))), if look_again.is_some() => {}
                () = interrupted => self.boundary().await,
            }
        }
    }

    /// Suspends the execution until `wake_at`: its status becomes `sleeping`
    /// with the wake time, the scheduler gets a timer, and the workflow
    /// future is dropped.
    pub(super) async fn suspend(&self, wake_at: i64) -> ! {
        let wake_at = self.until_deadline(wake_at);
        tracing::debug!(execution = %self.id, wake_at, "suspending");
        self.engine
            .set_status(
                &self.id,
                ExecutionStatus::Sleeping,
                Transition::sleeping(wake_at),
            )
            .await;
        self.engine.timers.add_wake(wake_at, self.id.clone());
        self.halt().await
    }

    pub(crate) fn now_millis(&self) -> i64 {
        self.engine.now_millis()
    }

    /// `wake_at`, or the execution's deadline when that comes first: a
    /// wait wakes for the deadline, and the next boundary ends it.
    pub(super) fn until_deadline(&self, wake_at: i64) -> i64 {
        self.deadline.map_or(wake_at, |d| wake_at.min(d))
    }

    /// Registers what a branch waits for in memory (until `deadline`), for
    /// [`suspend_waiting`](Self::suspend_waiting).
    pub(super) fn waiting_for(&self, on: WaitFor, deadline: Option<i64>) -> WaitGuard<'_> {
        let mut waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        waits.next += 1;
        let id = waits.next;
        waits.on.push((id, on, deadline));
        WaitGuard { exec: self, id }
    }

    /// The wait of a `recv` or a child's result: `look` (after a
    /// boundary) until it gives a value; between looks the wait is held in
    /// memory, woken by this process's sends and ends (`mail`), by `wake_at`
    /// or the execution's deadline, and once a second for other processes;
    /// past the suspension threshold (real time: a matter of memory, not of
    /// the workflow's clock) the execution is suspended with `reason`.
    pub(super) async fn wait_in_memory<R, F>(
        &self,
        reason: impl Fn() -> String,
        wake_at: Option<i64>,
        mut look: impl FnMut() -> F,
    ) -> R
    where
        F: Future<Output = Option<R>>,
    {
        /// How often a wait looks by itself: what another process sends or
        /// ends is not told here.
        const POLL_EVERY: Duration = Duration::from_secs(1);
        let held = tokio::time::sleep(self.engine.defaults.suspend_after);
        tokio::pin!(held);
        loop {
            // Registered before the look: a send, an end or a cancel in
            // between is not missed.
            let mail = self.mail.notified();
            tokio::pin!(mail);
            mail.as_mut().enable();
            let interrupted = self.interrupt.notified();
            tokio::pin!(interrupted);
            interrupted.as_mut().enable();
            self.boundary().await;
            if let Some(found) = look().await {
                return found;
            }
            if held.is_elapsed() {
                // Something came during the look (a look may wait for the
                // writer under load): look again rather than suspend and
                // be resumed at once.
                if futures_util::FutureExt::now_or_never(mail.as_mut()).is_some() {
                    continue;
                }
                if self.suspend_waiting(reason()).await {
                    let again = tokio::time::Instant::now() + self.engine.defaults.suspend_after;
                    held.as_mut().reset(again);
                }
                continue;
            }
            let wake = self.until_deadline(wake_at.unwrap_or(i64::MAX));
            tokio::select! {
                () = mail => {}
                () = self.engine.clock.sleep_until(from_millis(wake)) => {}
                () = &mut held => {}
                // Real time too: a test's manual clock does not hold up
                // what other processes send.
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = interrupted => {}
            }
        }
    }

    /// Whether other branches wait for messages, children or times, or
    /// run a step body: then a sleep suspends through
    /// [`suspend_waiting`](Self::suspend_waiting), which accounts for them.
    fn others_waiting(&self) -> bool {
        let waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        !waits.on.is_empty() || self.steps_running.load(Ordering::SeqCst) > 0
    }

    /// Marks a step body running until the guard drops.
    pub(super) fn busy(&self) -> Busy<'_> {
        self.steps_running.fetch_add(1, Ordering::SeqCst);
        Busy(self)
    }

    /// Suspends the execution while its branches wait (status `waiting`,
    /// with `reason`), until the earliest of their deadlines and its own,
    /// or until a message or a child's end wakes it. Returns (without
    /// suspending) when one of those came while the status was written (it
    /// found the execution running and woke nothing, so this run goes on),
    /// or, returning true, when another branch is running a step body now:
    /// the caller waits in memory a while longer.
    pub(super) async fn suspend_waiting(&self, reason: String) -> bool {
        if self.steps_running.load(Ordering::SeqCst) > 0 {
            return true;
        }
        let waits: Vec<(WaitFor, Option<i64>)> = {
            let waits = self.waits.lock().unwrap_or_else(|p| p.into_inner());
            waits.on.iter().map(|(_, on, d)| (on.clone(), *d)).collect()
        };
        let earliest = waits.iter().filter_map(|(_, d)| *d).min();
        let wake_at = match earliest {
            Some(d) => Some(self.until_deadline(d)),
            None => self.deadline,
        };
        tracing::debug!(execution = %self.id, %reason, wake_at, "suspending");
        self.engine
            .set_status(
                &self.id,
                ExecutionStatus::Waiting,
                Transition::waiting(wake_at, reason),
            )
            .await;
        let mut woken = false;
        for (on, _) in &waits {
            woken = match on {
                WaitFor::Message(topic) => self
                    .engine
                    .store
                    .has_message(&self.id, topic)
                    .await
                    .unwrap_or(true),
                WaitFor::Child(child) => match self.engine.store.load_execution(child).await {
                    Ok(Some(row)) => row.status.is_terminal(),
                    _ => true,
                },
                WaitFor::Time => false,
            };
            if woken {
                break;
            }
        }
        if woken {
            self.engine
                .set_status(&self.id, ExecutionStatus::Running, Transition::bare())
                .await;
            return false;
        }
        if let Some(at) = wake_at {
            self.engine.timers.add_wake(at, self.id.clone());
        }
        self.halt().await
    }

    /// Parks the execution as `paused` for `cause`, then never returns: the
    /// driver drops the workflow future.
    pub(crate) async fn park_for(&self, cause: PauseCause, reason: String) -> ! {
        if let Some(dry) = &self.dry {
            dry.found(CheckProblem::from(cause), reason);
            self.halt().await
        }
        tracing::warn!(execution = %self.id, workflow = self.workflow, %reason, "execution paused");
        let transition = Transition::paused(cause, reason.clone());
        let written = self
            .engine
            .set_status(&self.id, ExecutionStatus::Paused, transition)
            .await;
        if cause == PauseCause::Storage {
            self.engine.hold_for_storage(&self.id, reason, written);
        }
        self.halt().await
    }

    /// Ends the execution as `failed` for a reason the workflow's error type
    /// cannot hold, then never returns.
    pub(crate) async fn fail(&self, reason: String) -> ! {
        if let Some(dry) = &self.dry {
            dry.found(CheckProblem::Fails, reason);
            self.halt().await
        }
        tracing::warn!(execution = %self.id, workflow = self.workflow, %reason, "execution failed");
        self.engine
            .set_status(
                &self.id,
                ExecutionStatus::Failed,
                Transition::because(reason),
            )
            .await;
        self.halt().await
    }

    /// The journal refused a write (disk full, database locked past every
    /// retry): the workflow must not go on as if it had been recorded. The
    /// execution is paused (when even that cannot be written, it stays
    /// `running` and the next open recovers it) and stopped where it is.
    pub(crate) async fn journal_failed(&self, what: &str, error: &crate::Error) -> ! {
        if matches!(
            error,
            crate::Error::Fenced { .. } | crate::Error::Disowned(_)
        ) {
            tracing::warn!(execution = %self.id, %error, "stopped: another worker takes the execution over");
            self.halt().await
        }
        if let crate::Error::Shutdown = error {
            // The runtime is closing: the journal stays as it is, and the
            // next open recovers the execution.
            self.halt().await
        }
        if let crate::Error::Unavailable(_) = error {
            // Whether the write committed is unknown: the execution stops
            // here, still `running` and owned by this worker, and the sweep
            // drives it again by replay once the database answers.
            tracing::warn!(execution = %self.id, %error, "stopped until the database answers again");
            self.halt().await
        }
        let reason = format!(
            "the journal could not record {what}: {error}; resume the execution once the database can be written"
        );
        self.park_for(PauseCause::Storage, reason).await
    }

    /// Stops the execution where it is: the journal keeps its state and a
    /// later resume replays it.
    pub(crate) async fn halt(&self) -> ! {
        self.stop.notify_one();
        std::future::pending::<()>().await;
        unreachable!("a pending future never completes")
    }

    /// Parks the execution when the journaled value described by `what` was
    /// written by another type than `V` ([`TypeTag`]), unless that type was
    /// declared renamed to `V` (`#[replayflow::renamed_from]`). Values
    /// journaled without a type pass.
    pub(crate) async fn check_type<V>(&self, recorded: Option<i32>, what: impl FnOnce() -> String) {
        self.check_tag(recorded, TypeTag::of::<V>(), what).await
    }

    /// [`check_type`](Self::check_type) for a type known by its tag.
    pub(crate) async fn check_tag(
        &self,
        recorded: Option<i32>,
        tag: TypeTag,
        what: impl FnOnce() -> String,
    ) {
        let Some(hash) = recorded.filter(|h| *h != tag.hash) else {
            return;
        };
        let name = match &self.dry {
            Some(dry) => dry.type_names.get(&hash).cloned(),
            None => self.engine.store.type_name(hash).await.ok().flatten(),
        };
        let Some(written) = self.engine.written_as(hash, name.as_deref(), tag) else {
            return;
        };
        let reason = format!(
            "{} was journaled as {written} and is now read as `{}`; another type would decode it only by luck. Resume it with code that reads the type that wrote it, or declare a renamed type with #[replayflow::renamed_from(\"...\")]",
            what(),
            tag.name
        );
        self.park_for(PauseCause::Undecodable, reason).await
    }

    /// Decodes a journaled value, or parks the execution when it no longer
    /// decodes (the error names what it is, the type and the serde path).
    pub(crate) async fn decode_or_park<V: DeserializeOwned>(
        &self,
        bytes: &[u8],
        what: impl FnOnce() -> String,
    ) -> V {
        match self.codec.decode(bytes, what) {
            Ok(v) => v,
            Err(e) => self.park_for(PauseCause::Undecodable, e.to_string()).await,
        }
    }
}
