//! Identifiers and the records the journal holds, as the public API shows them.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::codec::Payload;
use crate::status::{AttemptStatus, EntryKind, ExecutionStatus, StepStatus};

/// The id of one execution, chosen by the caller of `start` (an order number,
/// a request id): starting twice with one id attaches to the same execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(Arc<str>);

impl ExecutionId {
    /// Wraps an id.
    pub fn new(id: impl Into<String>) -> Self {
        ExecutionId(Arc::from(id.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ExecutionId {
    fn from(id: &str) -> Self {
        ExecutionId(Arc::from(id))
    }
}

impl From<String> for ExecutionId {
    fn from(id: String) -> Self {
        ExecutionId(Arc::from(id))
    }
}

impl From<&String> for ExecutionId {
    fn from(id: &String) -> Self {
        ExecutionId(Arc::from(id.as_str()))
    }
}

impl From<&ExecutionId> for ExecutionId {
    fn from(id: &ExecutionId) -> Self {
        id.clone()
    }
}

/// A step's key inside its execution: its name and how many calls of that
/// name came before it (`charge#0`, `charge#1`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepKey {
    /// The step's name.
    pub name: String,
    /// Earlier calls of the same name in this execution.
    pub occurrence: u32,
}

impl fmt::Display for StepKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.occurrence)
    }
}

/// Everything the journal knows of one execution, from
/// [`Runtime::status`](crate::Runtime::status).
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use replayflow::{step, workflow, AnyError, AttemptStatus, Context, ExecutionStatus, Runtime};
///
/// static FAILED_ONCE: AtomicBool = AtomicBool::new(false);
///
/// #[step(max_attempts = 3, backoff = "10ms")]
/// async fn look_up(user: u32) -> Result<String, AnyError> {
///     if !FAILED_ONCE.swap(true, Ordering::SeqCst) {
///         return Err(AnyError::msg("directory unavailable"));
///     }
///     Ok(format!("user {user}"))
/// }
///
/// #[workflow]
/// async fn greet_user(ctx: Context, user: u32) -> Result<String, AnyError> {
///     let name = look_up(user).await?;
///     Ok(format!("hello, {name}"))
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// greet_user::start(&rt, "greet-7", 7).await?.result().await?;
///
/// let info = rt.status("greet-7").await?;
/// assert_eq!(info.status, ExecutionStatus::Completed);
/// assert_eq!(info.input.to_json(), Some(serde_json::json!({ "user": 7 })));
/// assert_eq!(info.output.as_ref().unwrap().decode::<String>()?, "hello, user 7");
///
/// for step in &info.steps {
///     println!("{} {}: {} after {} attempt(s)", step.position, step.key, step.status, step.attempts);
///     for attempt in &step.attempt_log {
///         println!("  attempt {}: {} {:?}", attempt.attempt, attempt.status, attempt.error);
///     }
/// }
/// let step = &info.steps[0];
/// assert_eq!(step.key.to_string(), "look_up#0");
/// assert_eq!(step.attempts, 2);
/// assert_eq!(step.attempt_log[0].status, AttemptStatus::Failed);
/// assert_eq!(step.attempt_log[0].error.as_deref(), Some("directory unavailable"));
/// assert_eq!(step.attempt_log[1].status, AttemptStatus::Completed);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExecutionInfo {
    /// The id.
    pub id: ExecutionId,
    /// The registered workflow name.
    pub workflow: String,
    /// The version of the code that started it
    /// ([`RuntimeBuilder::app_version`](crate::RuntimeBuilder::app_version));
    /// empty when unknown (started before versions were recorded).
    pub app_version: String,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// The input, an object keyed by parameter name.
    pub input: Payload,
    /// The output, once completed.
    pub output: Option<Payload>,
    /// The workflow's error value, when it returned `Err`.
    pub error: Option<Payload>,
    /// A readable reason: the error's message, a panic message, why it is paused.
    pub error_message: Option<String>,
    /// Restarts so far (0 on the first run).
    pub restart_attempt: u32,
    /// When a sleeping execution wakes (or a waiting one gives up).
    pub wake_at: Option<SystemTime>,
    /// The execution that started it as a child workflow.
    pub parent: Option<ExecutionId>,
    /// The worker that owns it, on PostgreSQL (see
    /// [`Runtime::workers`](crate::Runtime::workers)): the one running it,
    /// or keeping it while it sleeps or waits. `None` when no worker owns
    /// it (finished, paused, released), and always on SQLite, where the
    /// process holding the file's lock runs everything.
    pub owner: Option<i64>,
    /// The child workflows it started, oldest first.
    pub children: Vec<ChildSummary>,
    /// When it must end by, if it was started with a timeout
    /// ([`StartOptions::timeout`](crate::StartOptions::timeout),
    /// `#[workflow(timeout = "...")]`).
    pub deadline: Option<SystemTime>,
    /// When it was started.
    pub created_at: SystemTime,
    /// When its row last changed.
    pub updated_at: SystemTime,
    /// When it reached a terminal status.
    pub completed_at: Option<SystemTime>,
    /// Its journal, in position order.
    pub steps: Vec<StepRecord>,
    /// Entries set aside when the execution was restarted after failing (the
    /// failed step and what came after it), oldest first: why it failed
    /// stays on record.
    pub superseded: Vec<SupersededStep>,
}

impl ExecutionInfo {
    /// The code changes this execution ran with: the ids of the
    /// [`Context::patched`](crate::Context::patched) markers in its journal,
    /// in call order.
    pub fn patches(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter(|s| s.kind == EntryKind::Patch)
            .map(|s| s.key.name.as_str())
            .collect()
    }
}

/// One journal entry: a step call, a sleep, or a helper value.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StepRecord {
    /// Position in call order, from 0.
    pub position: u32,
    /// What the entry records.
    pub kind: EntryKind,
    /// The step's key.
    pub key: StepKey,
    /// Where it stands.
    pub status: StepStatus,
    /// Attempts begun so far (from 1).
    pub attempts: u32,
    /// The result, once completed.
    pub output: Option<Payload>,
    /// The last error's message.
    pub error: Option<String>,
    /// When the first attempt began.
    pub started_at: SystemTime,
    /// When it completed or failed for good.
    pub completed_at: Option<SystemTime>,
    /// Every attempt, in order.
    pub attempt_log: Vec<AttemptRecord>,
    /// The [`Context::branch`](crate::Context::branch) it was called in
    /// (`""` for the workflow body).
    pub branch: String,
    /// When a sleep wakes (or a step waiting out a backoff retries, or a
    /// `recv` gives up waiting).
    pub wake_at: Option<SystemTime>,
}

/// A child workflow of an execution ([`ExecutionInfo::children`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChildSummary {
    /// Its id.
    pub id: ExecutionId,
    /// Its registered workflow name.
    pub workflow: String,
    /// Where it stands.
    pub status: crate::status::ExecutionStatus,
}

/// A worker process of a PostgreSQL database ([`Runtime::workers`](crate::Runtime::workers)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerInfo {
    /// Its id, from a sequence of the database: never reused. A worker
    /// that lost its lease registers again under a new one.
    pub id: i64,
    /// The machine it runs on (its host name).
    pub host: String,
    /// Its process id on that machine.
    pub pid: u32,
    /// The version of the application's code it runs.
    pub app_version: String,
    /// The workflows it registers (those it claims).
    pub workflows: Vec<String>,
    /// When it registered.
    pub registered_at: SystemTime,
    /// Until when its lease holds; renewed every third of the lease.
    pub lease_until: SystemTime,
    /// When it was declared dead (its lease ran out, or it shut down):
    /// it writes nothing more, and its executions were released.
    pub dead_at: Option<SystemTime>,
    /// The unfinished executions it owns now.
    pub owned: u64,
    /// Whether it is the worker of the runtime that asked.
    pub this_runtime: bool,
}

impl WorkerInfo {
    /// Whether it is alive: not declared dead. (A worker whose lease ran
    /// out is alive until another worker's reaper declares it dead, within
    /// a second.)
    pub fn is_alive(&self) -> bool {
        self.dead_at.is_none()
    }
}

/// A journal entry set aside by [`Runtime::restart`](crate::Runtime::restart)
/// of a failed execution.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupersededStep {
    /// The run it belonged to (its `restart_attempt`, 0 for the first run).
    pub run: u32,
    /// When the restart set it aside.
    pub superseded_at: SystemTime,
    /// The entry as it stood, with its attempts.
    pub step: StepRecord,
}

/// One attempt of a step.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AttemptRecord {
    /// The attempt number, from 1.
    pub attempt: u32,
    /// How it ended.
    pub status: AttemptStatus,
    /// When it began.
    pub started_at: SystemTime,
    /// When it ended.
    pub ended_at: Option<SystemTime>,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// An admin request recorded for the worker by
/// [`Runtime::request`](crate::Runtime::request): its number in the
/// database, to follow with
/// [`Runtime::request_state`](crate::Runtime::request_state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub(crate) i64);

/// What became of an admin request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestState {
    /// Not yet taken by a worker (none is running, or its next sweep, at
    /// most a second away, has not come).
    Pending,
    /// The worker applied it. A cancel of a running execution takes effect
    /// at its next step boundary; the request is applied once asked.
    Applied,
    /// The worker refused it, for this reason (the execution had moved on
    /// to a status the action does not apply to).
    Refused(String),
}

/// What [`Runtime::prune`](crate::Runtime::prune) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Finished executions deleted, each with its journal, attempts,
    /// superseded entries and admin requests.
    pub executions: u64,
    /// The writes they were deleted in (a bounded number per write, so
    /// that step commits go on between them).
    pub batches: u32,
    /// Bytes given back to the file system: the database is that much
    /// smaller (the file itself shrinks when the write-ahead log is next
    /// copied into it). Zero for a file created before this build, which
    /// keeps freed pages for reuse instead.
    pub bytes_freed: u64,
    /// Free space left inside the database, which later writes reuse.
    pub bytes_free: u64,
    /// The database's size after the prune, free space included.
    pub database_bytes: u64,
}

/// One line of [`Runtime::list`](crate::Runtime::list).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExecutionSummary {
    /// The id.
    pub id: ExecutionId,
    /// The registered workflow name.
    pub workflow: String,
    /// The version of the code that started it; empty when unknown.
    pub app_version: String,
    /// Where it stands.
    pub status: ExecutionStatus,
    /// A readable reason, for failed, panicked and paused ones.
    pub error_message: Option<String>,
    /// Restarts so far.
    pub restart_attempt: u32,
    /// When it was started.
    pub created_at: SystemTime,
    /// When its row last changed.
    pub updated_at: SystemTime,
}

/// Which executions [`Runtime::list`](crate::Runtime::list) returns, newest first.
///
/// ```
/// use replayflow::{workflow, AnyError, Context, ExecutionStatus, ListFilter, Runtime};
///
/// #[workflow]
/// async fn nightly_export(ctx: Context, day: u32) -> Result<u32, AnyError> {
///     Ok(day)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// for day in 1..=3 {
///     nightly_export::start(&rt, format!("export-{day}"), day).await?.result().await?;
/// }
///
/// let filter = ListFilter::new()
///     .workflow(nightly_export::NAME) // the registered name, "nightly_export"
///     .status(ExecutionStatus::Completed)
///     .limit(50);
/// let done = rt.list(filter).await?;
/// let ids: Vec<&str> = done.iter().map(|e| e.id.as_str()).collect();
/// assert_eq!(ids, ["export-3", "export-2", "export-1"]);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ListFilter {
    /// Only this status.
    pub status: Option<ExecutionStatus>,
    /// Only this workflow.
    pub workflow: Option<String>,
    /// Only executions started at or after this time.
    pub created_after: Option<SystemTime>,
    /// Only executions started before this time.
    pub created_before: Option<SystemTime>,
    /// At most this many (default 100).
    pub limit: Option<u32>,
    /// Skip this many.
    pub offset: Option<u32>,
}

impl ListFilter {
    /// Every execution (up to the default limit).
    pub fn new() -> Self {
        ListFilter::default()
    }

    /// Only executions in `status`.
    pub fn status(mut self, status: ExecutionStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only executions of `workflow`.
    pub fn workflow(mut self, workflow: impl Into<String>) -> Self {
        self.workflow = Some(workflow.into());
        self
    }

    /// At most `limit` executions.
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Only executions started at or after `time`.
    pub fn created_after(mut self, time: SystemTime) -> Self {
        self.created_after = Some(time);
        self
    }

    /// Only executions started before `time`.
    pub fn created_before(mut self, time: SystemTime) -> Self {
        self.created_before = Some(time);
        self
    }

    /// Skips the first `offset` executions (for paging, with [`ListFilter::limit`]).
    pub fn offset(mut self, offset: u32) -> Self {
        self.offset = Some(offset);
        self
    }
}

/// Unix milliseconds, the journal's time unit.
pub(crate) fn to_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

pub(crate) fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Unix milliseconds as RFC 3339 in UTC with milliseconds
/// (`2025-11-25T18:48:03.120Z`), for messages; years outside 0 to 9999
/// are clamped to them.
pub(crate) fn format_millis(ms: i64) -> String {
    const MAX: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    const MIN: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00.000Z
    let ms = ms.clamp(MIN, MAX);
    let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn millis_format_as_rfc_3339() {
        use super::format_millis;
        assert_eq!(format_millis(1_764_096_483_120), "2025-11-25T18:48:03.120Z");
        assert_eq!(format_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
