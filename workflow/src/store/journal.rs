//! The journal's vocabulary: what the execution layer writes (typed
//! operations, as data) and what it reads back (rows and entries). No
//! backend type appears here.

use std::sync::Arc;

use crate::codec::Codec;
use crate::record::ExecutionId;
use crate::status::{EntryKind, ExecutionStatus, PauseCause, StepStatus};

/// Where a journal entry sits and what it is.
#[derive(Debug, Clone)]
pub(crate) struct EntryAt {
    pub execution: ExecutionId,
    pub position: u32,
    pub branch: Arc<str>,
    pub local: u32,
    pub kind: EntryKind,
    pub name: Arc<str>,
    pub occurrence: u32,
}

/// One journal entry as replay reads it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub position: u32,
    pub kind: EntryKind,
    pub name: Arc<str>,
    pub occurrence: u32,
    pub status: StepStatus,
    pub attempts: u32,
    pub output: Option<Vec<u8>>,
    pub error: Option<Vec<u8>>,
    pub error_message: Option<String>,
    pub wake_at: Option<i64>,
    pub branch: Arc<str>,
    pub local: u32,
    /// Which type wrote the entry's value ([`TypeTag::hash`]); `None` for
    /// entries without one, and those written before it was recorded.
    pub value_type: Option<i32>,
}

/// Which Rust type wrote a journaled value: a 32-bit hash ([`fingerprint`]) of its
/// [`std::any::type_name`], stored with the value, and the name, kept once
/// per database (`value_types`) so that a mismatch names both types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeTag {
    pub hash: i32,
    pub name: &'static str,
}

impl TypeTag {
    pub(crate) fn of<T: ?Sized>() -> TypeTag {
        TypeTag::named(std::any::type_name::<T>())
    }

    pub(crate) fn named(name: &'static str) -> TypeTag {
        TypeTag {
            hash: fingerprint(name),
            name,
        }
    }
}

/// A 32-bit hash of a type's name: the same in every build that names the
/// type the same. Defined here, word by word (FxHash's mixing, then a
/// final avalanche), not by `std`'s `Hasher`, whose output may change:
/// the hashes are stored. `a_type_name_hashes_as_it_always_did` pins it.
pub(crate) fn fingerprint(name: &str) -> i32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let bytes = name.as_bytes();
    let mut hash = 0x9e37_79b9_7f4a_7c15 ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let word = <[u8; 8]>::try_from(word).unwrap_or_default();
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let rest = words.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    hash = (hash.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    hash ^= hash >> 31;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 32;
    i32::from_le_bytes(hash.to_le_bytes()[..4].try_into().unwrap_or_default())
}

/// The types whose names this process has recorded in the database: a
/// few slots read without a lock (a step asks on every value it
/// journals), then the whole set.
#[derive(Debug, Default)]
pub(crate) struct KnownTypes {
    recent: [std::sync::atomic::AtomicI32; 32],
    all: std::sync::Mutex<std::collections::HashSet<i32>>,
}

impl KnownTypes {
    fn slot(&self, hash: i32) -> &std::sync::atomic::AtomicI32 {
        &self.recent[hash.unsigned_abs() as usize % self.recent.len()]
    }

    pub(crate) fn contains(&self, hash: i32) -> bool {
        use std::sync::atomic::Ordering;
        // An empty slot holds 0: a type hashing to 0 takes the set's path.
        if hash != 0 && self.slot(hash).load(Ordering::Relaxed) == hash {
            return true;
        }
        // The slot is written under the set's lock, here and in `insert`,
        // so that `remove` (under it too) clears it after, not before.
        let all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let known = all.contains(&hash);
        if known {
            self.slot(hash).store(hash, Ordering::Relaxed);
        }
        known
    }

    /// Adds `hash`; whether it is new.
    pub(crate) fn insert(&self, hash: i32) -> bool {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        let new = all.insert(hash);
        self.slot(hash)
            .store(hash, std::sync::atomic::Ordering::Relaxed);
        new
    }

    pub(crate) fn remove(&self, hash: i32) {
        let mut all = self.all.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(&hash);
        let _ = self.slot(hash).compare_exchange(
            hash,
            0,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_name_hashes_as_it_always_did() {
        // Stored in every journal: these must never change.
        let pinned: Vec<i32> = ["u32", "alloc::string::String", "(u32, my_app::Order)", ""]
            .iter()
            .map(|n| fingerprint(n))
            .collect();
        assert_eq!(pinned, PINNED);
        assert_ne!(fingerprint("u32"), fingerprint("u64"));
    }

    const PINNED: [i32; 4] = [-1_324_411_597, 151_828_095, 1_767_003_659, -1_838_603_135];

    #[test]
    fn known_types_are_found_through_their_slot_and_the_set() {
        let known = KnownTypes::default();
        assert!(!known.contains(7));
        known.insert(7);
        known.insert(7 + 32);
        assert!(
            known.contains(7) && known.contains(7 + 32),
            "two types in one slot"
        );
        known.insert(0);
        assert!(known.contains(0));
        assert!(!known.contains(8));
        assert!(!known.insert(7), "a second insert is not new");
        known.remove(7);
        assert!(!known.contains(7), "removed from the slot and the set");
        assert!(known.contains(7 + 32));
        assert!(known.insert(7), "new again");
    }
}

/// Shares one `Arc<str>` among equal strings read one after another: most
/// entries of a journal share a few names and branches, so replay makes one
/// allocation each.
#[derive(Default)]
pub(crate) struct Interner {
    recent: Vec<Arc<str>>,
}

impl Interner {
    /// How many distinct strings it keeps; a journal has few names.
    const KEEP: usize = 16;

    pub(crate) fn get(&mut self, text: &str) -> Arc<str> {
        if let Some(found) = self.recent.iter().find(|s| ***s == *text) {
            return Arc::clone(found);
        }
        let new: Arc<str> = Arc::from(text);
        if self.recent.len() == Self::KEEP {
            self.recent.remove(0);
        }
        self.recent.push(Arc::clone(&new));
        new
    }
}

/// How a failed attempt leaves its entry.
#[derive(Debug)]
pub(crate) enum AttemptEnd {
    /// The step waits to run again at this time (Unix ms): `retrying`.
    RetryAt(i64),
    /// The attempt ended without a value the journal can replay (a panic, or
    /// a failure the step's error type cannot hold): `retrying` with no wake
    /// time, so a later replay runs the step again, its attempts counting on.
    Interrupted,
    /// The step failed for good; replay returns this encoded error, of the
    /// type of this hash ([`TypeTag::hash`]): `failed`.
    Failed(Vec<u8>, i32),
}

/// A write to one execution's journal. The store decides how each is
/// committed (one statement, or several under a savepoint); the caller
/// decides whether it waits for the commit ([`Store::commit`]) or lets it
/// ride with the next waited one ([`Store::queue`]).
///
/// [`Store::commit`]: super::Store::commit
/// [`Store::queue`]: super::Store::queue
#[derive(Debug)]
pub(crate) enum JournalOp {
    /// Attempt `attempt` of a step began at `started`.
    BeginAttempt {
        at: EntryAt,
        attempt: u32,
        started: i64,
    },
    /// A step's result. With `log_attempt` false (a first attempt whose start
    /// was never recorded: a quick step, the usual case) this is one row,
    /// which holds the attempt itself (`attempts` 1, its start and end).
    CompleteStep {
        at: EntryAt,
        attempt: u32,
        started: i64,
        output: Vec<u8>,
        now: i64,
        log_attempt: bool,
        /// [`TypeTag::hash`] of the output's type.
        value_type: i32,
    },
    /// A failed attempt, with what becomes of its entry.
    FailAttempt {
        at: EntryAt,
        attempt: u32,
        started: i64,
        message: String,
        end: AttemptEnd,
        now: i64,
    },
    /// A helper value (`now`, random) as a completed entry.
    RecordValue {
        at: EntryAt,
        output: Vec<u8>,
        now: i64,
    },
    /// A durable sleep's wake time.
    RecordSleep { at: EntryAt, wake_at: i64, now: i64 },
    /// A sleep entry woke.
    CompleteSleep { at: EntryAt, now: i64 },
    /// A `recv` began to wait for a message on its topic (`at.name`),
    /// until `deadline` if it has one: a `waiting` entry.
    RecordWait {
        at: EntryAt,
        deadline: Option<i64>,
        now: i64,
    },
    /// A `recv` whose deadline passed: completed without a value.
    TimeOut { at: EntryAt, now: i64 },
    /// `Context::set_event`: the entry, completed with the value, and the
    /// execution's latest value of the key (`at.name`), in one write.
    SetEvent {
        at: EntryAt,
        value: Vec<u8>,
        /// [`TypeTag::hash`] of the value's type.
        value_type: i32,
        now: i64,
    },
    /// `Context::write_stream` (a value) or `Context::close_stream` (none):
    /// the entry, and the stream's next row, in one write.
    WriteStream {
        at: EntryAt,
        value: Option<Vec<u8>>,
        /// [`TypeTag::hash`] of the value's type.
        value_type: Option<i32>,
        now: i64,
    },
    /// Progress after a recovery: the recovery count starts over.
    ResetRecovery { id: ExecutionId },
}

impl JournalOp {
    /// The execution whose journal the op writes.
    pub(crate) fn owner(&self) -> &ExecutionId {
        match self {
            JournalOp::BeginAttempt { at, .. }
            | JournalOp::CompleteStep { at, .. }
            | JournalOp::FailAttempt { at, .. }
            | JournalOp::RecordValue { at, .. }
            | JournalOp::RecordSleep { at, .. }
            | JournalOp::CompleteSleep { at, .. }
            | JournalOp::RecordWait { at, .. }
            | JournalOp::TimeOut { at, .. }
            | JournalOp::SetEvent { at, .. }
            | JournalOp::WriteStream { at, .. } => &at.execution,
            JournalOp::ResetRecovery { id } => id,
        }
    }

    /// Whether the op changes more than one row, and so needs a savepoint
    /// of its own to be undone alone when it fails.
    pub(crate) fn is_compound(&self) -> bool {
        match self {
            JournalOp::BeginAttempt { .. }
            | JournalOp::FailAttempt { .. }
            | JournalOp::SetEvent { .. }
            | JournalOp::WriteStream { .. } => true,
            JournalOp::CompleteStep { log_attempt, .. } => *log_attempt,
            JournalOp::RecordValue { .. }
            | JournalOp::RecordSleep { .. }
            | JournalOp::CompleteSleep { .. }
            | JournalOp::RecordWait { .. }
            | JournalOp::TimeOut { .. }
            | JournalOp::ResetRecovery { .. } => false,
        }
    }
}

/// A new execution's row.
pub(crate) struct NewExecution {
    pub id: ExecutionId,
    pub workflow: &'static str,
    /// The version of the code that starts it.
    pub app_version: String,
    /// [`TypeTag::hash`] of the tuple of the workflow's argument types.
    pub input_type: i32,
    pub codec: Codec,
    pub input: Vec<u8>,
    pub options: String,
    pub now: i64,
    /// When the execution must end by (Unix ms): its start plus its timeout.
    pub deadline_at: Option<i64>,
    /// The execution that started it as a child workflow.
    pub parent_id: Option<ExecutionId>,
}

/// What inserting an execution found.
pub(crate) enum Inserted {
    Created,
    /// Another execution has the id: its workflow and its parent.
    Existing {
        workflow: String,
        parent: Option<ExecutionId>,
    },
}

/// An execution's row, as replay and `Handle::result` need it.
#[derive(Debug, Clone)]
pub(crate) struct ExecutionRow {
    pub id: ExecutionId,
    pub workflow: String,
    pub status: ExecutionStatus,
    pub codec: Codec,
    pub input: Vec<u8>,
    pub output: Option<Vec<u8>>,
    pub error: Option<Vec<u8>>,
    pub error_message: Option<String>,
    pub options: String,
    pub restart_attempt: u32,
    pub wake_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub completed_at: Option<i64>,
    /// The version of the code that started it (`""`: unknown).
    pub app_version: String,
    /// Which types the input was written as ([`TypeTag::hash`] of the
    /// tuple of the argument types); `None` before it was recorded.
    pub input_type: Option<i32>,
    /// Which type the output or error was written as; `None` when there is
    /// none, or it was not recorded.
    pub output_type: Option<i32>,
    /// When it must end by (Unix ms), if it has a timeout.
    pub deadline_at: Option<i64>,
    /// The execution that started it as a child workflow.
    pub parent_id: Option<ExecutionId>,
    /// The worker that owns it (PostgreSQL; none on SQLite).
    pub owner: Option<i64>,
}

/// An execution loaded to be driven: its row and its whole journal.
pub(crate) struct Loaded {
    pub row: ExecutionRow,
    pub journal: Vec<Entry>,
}

/// What [`Store::claim_for_replay`](super::Store::claim_for_replay) found.
// Returned once per replay and matched at once: boxing the loaded row would
// cost an allocation for no gain.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Claimed {
    /// Moved to `running` (if it was not) and loaded.
    Loaded(Loaded),
    /// No such execution.
    Missing,
    /// Finished, or of a workflow this process does not register: left as it is.
    Untouched,
}

/// An unfinished execution, as recovery sees it.
#[derive(Debug, Clone)]
pub(crate) struct Unfinished {
    pub id: ExecutionId,
    pub workflow: String,
    pub app_version: String,
    pub status: ExecutionStatus,
    pub cause: Option<PauseCause>,
    pub wake_at: Option<i64>,
    pub restart_attempt: u32,
    pub options: String,
    pub error_message: Option<String>,
}

/// A status change of an execution: what goes with the new status.
#[derive(Debug, Default)]
pub(crate) struct Transition {
    pub output: Option<Vec<u8>>,
    pub error: Option<Vec<u8>>,
    /// [`TypeTag::hash`] of the type of `output` or `error`.
    pub value_type: Option<i32>,
    pub message: Option<String>,
    pub cause: Option<PauseCause>,
    pub wake_at: Option<i64>,
    /// A cancel because the execution's deadline passed (not stored: the
    /// row tells it by its deadline; this tells the waiters of its end).
    pub deadline_passed: bool,
}

impl Transition {
    /// Nothing but the status.
    pub(crate) fn bare() -> Transition {
        Transition::default()
    }

    /// Paused for `cause`, with the reason shown to operators.
    pub(crate) fn paused(cause: PauseCause, reason: String) -> Transition {
        Transition {
            message: Some(reason),
            cause: Some(cause),
            ..Transition::default()
        }
    }

    /// With a reason only: a failure the workflow's error type cannot hold,
    /// or a panic's message.
    pub(crate) fn because(reason: String) -> Transition {
        Transition {
            message: Some(reason),
            ..Transition::default()
        }
    }

    /// Suspended until `wake_at` (Unix ms).
    pub(crate) fn sleeping(wake_at: i64) -> Transition {
        Transition {
            wake_at: Some(wake_at),
            ..Transition::default()
        }
    }

    /// Suspended until a message arrives, or until `deadline` (Unix ms);
    /// `reason` names the topic for operators.
    pub(crate) fn waiting(deadline: Option<i64>, reason: String) -> Transition {
        Transition {
            wake_at: deadline,
            message: Some(reason),
            ..Transition::default()
        }
    }

    /// Completed with its encoded output, of the type of hash `value_type`.
    pub(crate) fn completed(output: Vec<u8>, value_type: i32) -> Transition {
        Transition {
            output: Some(output),
            value_type: Some(value_type),
            ..Transition::default()
        }
    }

    /// Failed with the workflow's own encoded error (of the type of hash
    /// `value_type`) and its readable message.
    pub(crate) fn failed_with(error: Vec<u8>, value_type: i32, message: String) -> Transition {
        Transition {
            error: Some(error),
            value_type: Some(value_type),
            message: Some(message),
            ..Transition::default()
        }
    }
}

/// A message on its way to an execution (`Runtime::send`).
#[derive(Debug)]
pub(crate) struct NewMessage {
    pub execution: ExecutionId,
    pub topic: String,
    /// Encoded with `codec`, which must be the execution's.
    pub payload: Vec<u8>,
    pub codec: Codec,
    /// [`TypeTag::hash`] of the type it was sent as; `None` when it was
    /// sent without one (as JSON from the CLI or the HTTP API). Only named
    /// when the message does not decode: a `recv` decodes by shape, since
    /// sender and workflow may well use different types for one message.
    pub value_type: Option<i32>,
    /// Delivers the message once per key and execution.
    pub idempotency_key: Option<String>,
    pub now: i64,
}

/// What sending a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Committed to the execution's inbox; `suspended`: the execution was
    /// suspended (waiting, or sleeping while a branch may wait for it): its
    /// wake time is now `now`, so the sweep wakes it if nothing sooner does.
    Delivered { suspended: bool },
    /// A message with the same idempotency key was delivered before:
    /// nothing was written.
    Duplicate,
    /// No execution has the id.
    Missing,
    /// The execution has ended: nothing was written.
    Finished(ExecutionStatus),
    /// The execution records its payloads with another codec than the
    /// message was encoded with: nothing was written.
    OtherCodec(Codec),
}

/// A message taken from an inbox by a `recv`, as its journal entry now
/// holds it.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub payload: Vec<u8>,
    /// The type the message was sent as ([`TypeTag::hash`]), when known;
    /// named when the message does not decode.
    pub value_type: Option<i32>,
}

/// An execution's latest value of one event key.
#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub key: String,
    /// The execution's codec, which encoded the value.
    pub codec: Codec,
    pub value: Vec<u8>,
    pub value_type: Option<i32>,
    pub updated_at: i64,
}

/// A child workflow's execution, as its parent's status shows it.
#[derive(Debug, Clone)]
pub(crate) struct ChildRow {
    pub id: ExecutionId,
    pub workflow: String,
    pub status: ExecutionStatus,
}

/// One row of a stream: a value, or its end (`value` `None`).
#[derive(Debug, Clone)]
pub(crate) struct StreamRow {
    /// Its place in the stream, from 0.
    pub seq: i64,
    pub value: Option<Vec<u8>>,
}

/// What a reader of a stream finds: the execution's status (read before
/// the rows: a finished execution wrote all it ever will), its codec, and
/// the rows from the offset asked.
#[derive(Debug, Clone)]
pub(crate) struct StreamRead {
    pub status: ExecutionStatus,
    pub codec: Codec,
    pub rows: Vec<StreamRow>,
}

/// A request an admin recorded for the worker.
#[derive(Debug)]
pub(crate) struct Request {
    pub id: i64,
    pub execution: ExecutionId,
    pub action: RequestAction,
}

/// What a request asks of the worker.
#[derive(Debug)]
pub(crate) enum RequestAction {
    /// Cancel, resume or restart an execution.
    Control(crate::status::AdminAction),
    /// Start the execution: its workflow and its input (JSON text, an
    /// object keyed by parameter name). Stored as the action `start`.
    Start { workflow: String, input: Vec<u8> },
}

/// The `action` text of a start request in `admin_requests`.
pub(crate) const START_ACTION: &str = "start";

/// A registered workflow as the `workflows` table records it.
#[derive(Debug)]
pub(crate) struct WorkflowRow {
    pub name: String,
    pub module_path: String,
    pub options: String,
}

/// What a runtime takes on: executions of the workflows it registers,
/// started by a version of the code it accepts.
#[derive(Debug, Default)]
pub(crate) struct Claimable {
    pub workflows: std::collections::HashSet<&'static str>,
    /// `None`: every version.
    pub versions: Option<std::collections::HashSet<String>>,
}

impl Claimable {
    /// Whether an execution of `workflow` started by version `version`
    /// (`""`: unknown, accepted by all) is one to run here.
    pub(crate) fn takes(&self, workflow: &str, version: &str) -> bool {
        self.workflows.contains(workflow) && self.accepts(version)
    }

    /// Whether executions started by version `version` are run here.
    pub(crate) fn accepts(&self, version: &str) -> bool {
        version.is_empty() || self.versions.as_ref().is_none_or(|v| v.contains(version))
    }

    /// The accepted versions, empty for all.
    #[cfg(feature = "postgres")]
    pub(crate) fn version_list(&self) -> Vec<String> {
        self.versions
            .as_ref()
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default()
    }
}
