//! Dry replay, for the pre-deploy check: an execution's journal replayed
//! against the code of this build with no step body run and nothing
//! written, stopping at the first call past the journal's end.
//!
//! A dry execution is an ordinary [`Execution`] with [`Dry`] set: every
//! place that would run a body, wait, or write a status asks it first
//! ([`Execution::stops_past_journal`], `park_for`, `fail`), so the check
//! goes through the very code a real replay does and reports the same
//! reasons.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Wake, Waker};

use super::context::{Context, SCOPE, Scope};
use super::descriptor::WorkflowOutcome;
use super::drive::{run_body, start_options, unreached_reason};
use super::engine::Engine;
use super::panic::CatchUnwind;
use super::state::{Execution, Launch};
use crate::check::{CheckFinding, CheckProblem, CheckReport};
use crate::codec::Payload;
use crate::error::Result;
use crate::record::ExecutionId;
use crate::store::Loaded;

/// What a dry replay found.
#[derive(Default)]
pub(crate) struct Dry {
    /// The database's type names (read once per check: a dry replay
    /// reads nothing while it runs).
    pub(super) type_names: Arc<HashMap<i32, String>>,
    /// The first thing that would park or fail the execution.
    finding: Mutex<Option<(CheckProblem, String)>>,
    /// Whether a call reached past the end of the journal.
    pub(super) reached_end: AtomicBool,
}

impl Dry {
    pub(super) fn new(type_names: Arc<HashMap<i32, String>>) -> Dry {
        Dry {
            type_names,
            ..Dry::default()
        }
    }

    pub(super) fn found(&self, problem: CheckProblem, message: String) {
        let mut finding = self.finding.lock().unwrap_or_else(|p| p.into_inner());
        finding.get_or_insert((problem, message));
    }

    fn take(&self) -> Option<(CheckProblem, String)> {
        self.finding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// How many unfinished executions the check loads at once.
const PAGE: u32 = 500;

/// How often a dry replay polls the workflow before giving up on it: every
/// journaled call is ready at once, so a journal of `n` entries settles in
/// about `n` polls at most.
const POLLS_PER_ENTRY: usize = 4;

impl Engine {
    /// Replays every unfinished execution dry, in id order.
    pub(crate) async fn check(self: &Arc<Self>) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let names = Arc::new(self.store.type_names().await?);
        let mut after = String::new();
        loop {
            let page = self.store.unfinished_page(after.clone(), PAGE).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.row.id.as_str().to_owned();
            let full = page.len() == PAGE as usize;
            for loaded in page {
                report.checked += 1;
                if let Some(finding) = self.dry_replay(loaded, &names) {
                    report.findings.push(finding);
                }
            }
            if !full {
                break;
            }
            // Other tasks of this runtime go on between pages.
            tokio::task::yield_now().await;
        }
        Ok(report)
    }

    /// Replays one execution dry; `Ok(None)` when it is unknown or finished.
    pub(crate) async fn check_one(
        self: &Arc<Self>,
        id: &ExecutionId,
    ) -> Result<Option<CheckFinding>> {
        let Some(row) = self.store.load_execution(id).await? else {
            return Err(crate::Error::NotFound(id.clone()));
        };
        if row.status.is_terminal() {
            return Ok(None);
        }
        let journal = self.store.load_journal(id).await?;
        let names = Arc::new(self.store.type_names().await?);
        Ok(self.dry_replay(Loaded { row, journal }, &names))
    }

    /// Replays one loaded execution dry: what would park, fail or panic it
    /// on this build, if anything. Synchronous: every journaled call is
    /// ready at once, and the first call past the journal pends for good.
    fn dry_replay(
        self: &Arc<Self>,
        loaded: Loaded,
        names: &Arc<HashMap<i32, String>>,
    ) -> Option<CheckFinding> {
        let Loaded { row, journal } = loaded;
        let finding = |problem, message| CheckFinding {
            id: row.id.clone(),
            workflow: row.workflow.clone(),
            status: row.status,
            problem,
            message,
        };
        let Some(descriptor) = self.registry.get(row.workflow.as_str()).copied() else {
            let message = format!(
                "workflow `{}` is not registered in this build: its executions would be left as they are",
                row.workflow
            );
            return Some(finding(CheckProblem::UnknownWorkflow, message));
        };
        let options = start_options(&row);
        let polls = journal
            .len()
            .saturating_mul(POLLS_PER_ENTRY)
            .saturating_add(64);
        let exec = Arc::new(Execution::new(
            Arc::clone(self),
            descriptor.name,
            Launch {
                id: row.id.clone(),
                codec: row.codec,
                restart_attempt: row.restart_attempt,
                retry: options.retry.unwrap_or(self.defaults.retry),
                journal,
                recovered: false,
                dry: Some(Arc::clone(names)),
                deadline: None,
                parent: None,
            },
        ));
        let ctx = Context {
            exec: Arc::clone(&exec),
            branch: Arc::from(""),
        };
        let input = Payload::new(row.codec, row.input.clone());
        let body = SCOPE.scope(
            Scope::Workflow(ctx.clone()),
            run_body(ctx, descriptor, input, row.input_type),
        );
        let mut body = std::pin::pin!(CatchUnwind::new(body));
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(Arc::clone(&woken));
        let mut cx = std::task::Context::from_waker(&waker);
        let dry = exec.dry.as_ref()?;
        let mut ended = None;
        for _ in 0..polls {
            woken.0.store(false, Ordering::SeqCst);
            if let Poll::Ready(out) = body.as_mut().poll(&mut cx) {
                ended = Some(out);
                break;
            }
            // Pending with nothing to wake it: every branch stopped at the
            // journal's end, or parked.
            if !woken.0.load(Ordering::SeqCst) {
                break;
            }
        }
        if let Some((problem, message)) = dry.take() {
            return Some(finding(problem, message));
        }
        match ended? {
            Err((panic, _payload)) => Some(finding(
                CheckProblem::Panics,
                format!("the workflow panicked in replay: {panic}"),
            )),
            // As `finish` decides: an input that no longer decodes first.
            Ok(WorkflowOutcome::Undecodable(message)) => {
                Some(finding(CheckProblem::Undecodable, message))
            }
            Ok(_) => {
                unreached_reason(&exec).map(|reason| finding(CheckProblem::Nondeterminism, reason))
            }
        }
    }
}

/// Whether the dry replay's future asked to be polled again.
#[derive(Default)]
struct Woken(AtomicBool);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}
