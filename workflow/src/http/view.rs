//! The JSON shapes of the API (and of the CLI's `--json`): executions,
//! journal entries and attempts, with times in RFC 3339 and payloads decoded
//! when their codec is JSON.

use std::time::SystemTime;

use serde::Serialize;

use super::time::{format_time, millis_between};
use crate::codec::Payload;
use crate::record::{AttemptRecord, ExecutionInfo, ExecutionSummary, StepRecord};
use crate::status::{AdminAction, AttemptStatus, EntryKind, ExecutionStatus, StepStatus};

/// One line of a list of executions.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SummaryView {
    /// The id.
    pub id: String,
    /// The registered workflow name.
    pub workflow: String,
    /// The version of the code that started it (empty when unknown).
    pub app_version: String,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// A readable reason, for failed, panicked and paused ones.
    pub error_message: Option<String>,
    /// Restarts so far.
    pub restart_attempt: u32,
    /// When it was started (RFC 3339).
    pub created_at: String,
    /// When its row last changed (RFC 3339).
    pub updated_at: String,
}

impl From<&ExecutionSummary> for SummaryView {
    fn from(e: &ExecutionSummary) -> Self {
        SummaryView {
            id: e.id.to_string(),
            workflow: e.workflow.clone(),
            app_version: e.app_version.clone(),
            status: e.status,
            error_message: e.error_message.clone(),
            restart_attempt: e.restart_attempt,
            created_at: format_time(e.created_at),
            updated_at: format_time(e.updated_at),
        }
    }
}

/// One execution with its journal.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ExecutionView {
    /// The id.
    pub id: String,
    /// The registered workflow name.
    pub workflow: String,
    /// The version of the code that started it (empty when unknown).
    pub app_version: String,
    /// The code changes (`Context::patched`) it ran with, in call order.
    pub patches: Vec<String>,
    /// The execution that started it as a child workflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The PostgreSQL worker that owns it (see `GET /api/workers`); absent
    /// when none does, and always on SQLite. A string: worker ids are
    /// 64-bit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The child workflows it started: `{"id", "workflow", "status"}`.
    pub children: Vec<serde_json::Value>,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// The actions that apply to it now (`cancel`, `resume`, `restart`).
    pub actions: Vec<AdminAction>,
    /// The codec of its payloads (`json`, `bincode`).
    pub codec: &'static str,
    /// The input, an object keyed by parameter name (`null` when the codec
    /// is not JSON).
    pub input: Option<serde_json::Value>,
    /// The output, once completed (absent before).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The workflow's error value, when it returned `Err` (absent otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// A readable reason: the error's message, a panic message, why it is paused.
    pub error_message: Option<String>,
    /// Restarts so far (0 on the first run).
    pub restart_attempt: u32,
    /// When a sleeping execution wakes (or a waiting one gives up).
    pub wake_at: Option<String>,
    /// When it must end by, if it has a timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
    /// When it was started.
    pub created_at: String,
    /// When its row last changed.
    pub updated_at: String,
    /// When it reached a terminal status.
    pub completed_at: Option<String>,
    /// From start to end (or to now, while unfinished), in milliseconds.
    pub duration_ms: u64,
    /// The server's time when this was read, to draw unfinished entries up
    /// to it without trusting the viewer's clock.
    pub now: String,
    /// Its journal, in position order.
    pub steps: Vec<StepView>,
    /// Entries set aside by restarts of the failed execution, oldest first.
    pub superseded: Vec<SupersededView>,
}

/// An entry a restart set aside: the run it belonged to, and the entry.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SupersededView {
    /// The run (`restart_attempt`) it belonged to.
    pub run: u32,
    /// When the restart set it aside.
    pub superseded_at: String,
    /// The entry as it stood.
    pub step: StepView,
}

impl ExecutionView {
    /// The view of `info` as read at `now`.
    pub fn new(info: &ExecutionInfo, now: SystemTime) -> Self {
        ExecutionView {
            id: info.id.to_string(),
            workflow: info.workflow.clone(),
            app_version: info.app_version.clone(),
            patches: info.patches().into_iter().map(str::to_owned).collect(),
            parent: info.parent.as_ref().map(|p| p.as_str().to_owned()),
            owner: info.owner.map(|w| w.to_string()),
            children: info
                .children
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "id": c.id.as_str(),
                        "workflow": c.workflow,
                        "status": c.status,
                    })
                })
                .collect(),
            status: info.status,
            actions: AdminAction::allowed_for(info.status),
            codec: info.input.codec().as_str(),
            input: info.input.to_json(),
            output: info.output.as_ref().map(payload_json),
            error: info.error.as_ref().map(payload_json),
            error_message: info.error_message.clone(),
            restart_attempt: info.restart_attempt,
            wake_at: info.wake_at.map(format_time),
            deadline: info.deadline.map(format_time),
            created_at: format_time(info.created_at),
            updated_at: format_time(info.updated_at),
            completed_at: info.completed_at.map(format_time),
            duration_ms: millis_between(info.created_at, info.completed_at.unwrap_or(now)),
            now: format_time(now),
            steps: info.steps.iter().map(|s| StepView::new(s, now)).collect(),
            superseded: info
                .superseded
                .iter()
                .map(|s| SupersededView {
                    run: s.run,
                    superseded_at: format_time(s.superseded_at),
                    step: StepView::new(&s.step, now),
                })
                .collect(),
        }
    }
}

/// A payload as JSON; `null` for one that JSON cannot show.
fn payload_json(p: &Payload) -> serde_json::Value {
    p.to_json().unwrap_or(serde_json::Value::Null)
}

/// One journal entry: a step call, a sleep, or a helper value.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct StepView {
    /// Position in call order, from 0.
    pub position: u32,
    /// What the entry records.
    pub kind: EntryKind,
    /// The step's name.
    pub name: String,
    /// Earlier calls of the same name in this execution.
    pub occurrence: u32,
    /// `name#occurrence`.
    pub key: String,
    /// Where it stands.
    pub status: StepStatus,
    /// Attempts begun so far.
    pub attempts: u32,
    /// The result, once completed (absent before; `null` when the codec is
    /// not JSON).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<serde_json::Value>,
    /// The last error's message.
    pub error: Option<String>,
    /// When the first attempt began.
    pub started_at: String,
    /// When it completed or failed for good.
    pub completed_at: Option<String>,
    /// From start to end (or to now, while unfinished), in milliseconds.
    pub duration_ms: u64,
    /// Every attempt, in order.
    pub attempt_log: Vec<AttemptView>,
    /// The [`Context::branch`](crate::Context::branch) it was called in,
    /// `""` for the workflow body (two branches may hold the same key).
    pub branch: String,
}

impl StepView {
    /// The view of `step` as read at `now`.
    pub fn new(step: &StepRecord, now: SystemTime) -> Self {
        StepView {
            position: step.position,
            kind: step.kind,
            name: step.key.name.clone(),
            occurrence: step.key.occurrence,
            key: step.key.to_string(),
            status: step.status,
            attempts: step.attempts,
            output: step.output.as_ref().map(payload_json),
            error: step.error.clone(),
            started_at: format_time(step.started_at),
            completed_at: step.completed_at.map(format_time),
            duration_ms: millis_between(step.started_at, step.completed_at.unwrap_or(now)),
            attempt_log: step
                .attempt_log
                .iter()
                .map(|a| AttemptView::new(a, now))
                .collect(),
            branch: step.branch.clone(),
        }
    }
}

/// One attempt of a step.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AttemptView {
    /// The attempt number, from 1.
    pub attempt: u32,
    /// How it ended.
    pub status: AttemptStatus,
    /// When it began.
    pub started_at: String,
    /// When it ended.
    pub ended_at: Option<String>,
    /// From start to end (or to now, while in flight), in milliseconds.
    pub duration_ms: u64,
    /// Its error, if it failed.
    pub error: Option<String>,
}

impl AttemptView {
    /// The view of `attempt` as read at `now`.
    pub fn new(attempt: &AttemptRecord, now: SystemTime) -> Self {
        AttemptView {
            attempt: attempt.attempt,
            status: attempt.status,
            started_at: format_time(attempt.started_at),
            ended_at: attempt.ended_at.map(format_time),
            duration_ms: millis_between(attempt.started_at, attempt.ended_at.unwrap_or(now)),
            error: attempt.error.clone(),
        }
    }
}

/// How many executions are in each status; serialized as
/// `{"counts": {"running": 2, ...}, "total": 7}`, statuses in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Counts {
    /// Every status, with 0 for the absent ones.
    #[serde(serialize_with = "status_map")]
    pub counts: Vec<(ExecutionStatus, u64)>,
    /// The sum.
    pub total: u64,
}

fn status_map<S: serde::Serializer>(
    counts: &[(ExecutionStatus, u64)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = serializer.serialize_map(Some(counts.len()))?;
    for (status, n) in counts {
        map.serialize_entry(status.as_str(), n)?;
    }
    map.end()
}

impl Default for Counts {
    fn default() -> Self {
        Counts::new()
    }
}

impl Counts {
    /// All statuses at 0.
    pub fn new() -> Self {
        Counts {
            counts: ExecutionStatus::ALL.iter().map(|s| (*s, 0)).collect(),
            total: 0,
        }
    }

    /// Counts one execution in `status`.
    pub fn add(&mut self, status: ExecutionStatus) {
        self.add_many(status, 1);
    }

    /// Counts `n` more executions in `status`.
    pub fn add_many(&mut self, status: ExecutionStatus, n: u64) {
        match self.counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, count)) => *count += n,
            None => self.counts.push((status, n)),
        }
        self.total += n;
    }

    /// The count of `status`.
    pub fn get(&self, status: ExecutionStatus) -> u64 {
        self.counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }
}

/// A worker process of a PostgreSQL database, for `GET /api/workers`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct WorkerView {
    /// Its id (a string: ids are 64-bit).
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// The version of the application's code it runs.
    pub app_version: String,
    /// The workflows it registers.
    pub workflows: Vec<String>,
    /// `alive`, or `dead` once declared so.
    pub state: &'static str,
    /// When it registered.
    pub registered_at: String,
    /// Until when its lease holds.
    pub lease_until: String,
    /// When it was declared dead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dead_at: Option<String>,
    /// The unfinished executions it owns.
    pub owned: u64,
    /// Whether it is the worker of the process answering.
    pub this_process: bool,
}

impl WorkerView {
    /// The view of `w`.
    pub fn new(w: &crate::record::WorkerInfo) -> Self {
        WorkerView {
            id: w.id.to_string(),
            host: w.host.clone(),
            pid: w.pid,
            app_version: w.app_version.clone(),
            workflows: w.workflows.clone(),
            state: if w.is_alive() { "alive" } else { "dead" },
            registered_at: format_time(w.registered_at),
            lease_until: format_time(w.lease_until),
            dead_at: w.dead_at.map(format_time),
            owned: w.owned,
            this_process: w.this_runtime,
        }
    }
}
