//! Where the journal lives. Everything above this module speaks the typed
//! operations of [`journal`] and the methods of [`Store`]; only the backends
//! below it name a database client.
//!
//! The backend is an enum, dispatched statically: a step's write is on the
//! hot path, and each backend's methods are plain `async fn`s.

mod journal;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use journal::*;
#[cfg(feature = "postgres")]
pub(crate) use postgres::PgOptions;

#[cfg(not(feature = "sqlite"))]
use crate::error::Error;
use crate::error::Result;
use crate::record::{ExecutionId, ExecutionInfo, ExecutionSummary, ListFilter};
use crate::status::{AdminAction, ExecutionStatus};

/// How hard each commit pushes data to the disk.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), replayflow::Error> {
/// use replayflow::{Durability, Runtime};
///
/// // Commits survive a crash of the process; a power loss may take the last ones.
/// let rt = Runtime::builder()
///     .in_memory() // an application gives `.path("app.db")`
///     .durability(Durability::Normal)
///     .open()
///     .await?;
/// # drop(rt);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous = FULL`: every commit is fsynced before a step returns. The default.
    #[default]
    Full,
    /// `synchronous = NORMAL`: in WAL mode a commit survives a process crash,
    /// but an OS crash or power loss can lose the last commits.
    Normal,
    /// `synchronous = OFF`: for tests and benchmarks.
    Off,
}

/// When opening a database file reads all of it to check its integrity
/// (`PRAGMA integrity_check`: every page, and every index against its
/// table) before anything writes to it.
///
/// The check is about linear in the file's size (roughly 10 to 20 ms per MB). Every
/// open reads the header and the schema, which a damaged or foreign file
/// rarely passes; a damaged page deeper in the file is otherwise found when
/// SQLite reads it, and the write or read that needed it fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IntegrityCheck {
    /// On every open.
    Always,
    /// When the last worker on the file did not shut down cleanly (it was
    /// killed, or its machine stopped), or it is not known how it ended. The
    /// default.
    #[default]
    AfterUncleanEnd,
    /// Never: the header and schema checks only.
    Never,
}

/// How a worker opens its database file.
#[derive(Debug, Clone)]
pub(crate) struct FileOptions {
    pub durability: Durability,
    pub busy_timeout: Duration,
    /// The largest the file may grow (`PRAGMA max_page_count`), in bytes.
    pub max_size: Option<u64>,
    pub integrity_check: IntegrityCheck,
}

/// The names of the workflows a process registers: replay loads only
/// executions it can run.
pub(crate) type Registered = Arc<Claimable>;

/// The journal store of one runtime.
pub(crate) enum Store {
    /// An embedded SQLite file, or a private in-memory database.
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteStore),
    /// A PostgreSQL database shared by many worker processes.
    #[cfg(feature = "postgres")]
    Postgres(postgres::PgStore),
}

/// Runs `$body` with `$s` bound to the backend. With no backend compiled in,
/// `Store` has no values and the match has no arms.
macro_rules! backend {
    ($self:expr, $s:ident => $body:expr) => {
        match *$self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(ref $s) => $body,
            #[cfg(feature = "postgres")]
            Store::Postgres(ref $s) => $body,
        }
    };
}

/// What one process does with the file it owns, asked of a shared database.
#[cfg(feature = "postgres")]
fn shared_only(what: &str) -> crate::error::Error {
    crate::error::Error::InvalidOption(format!(
        "{what} belongs to a store one process owns; on a shared database executions are claimed"
    ))
}

#[cfg(not(feature = "sqlite"))]
fn no_backend() -> Error {
    Error::InvalidOption(
        "this build has no SQLite store: enable the `sqlite` cargo feature of replayflow".into(),
    )
}

impl Store {
    /// Opens (creating if needed) a database file for a worker. Blocking:
    /// call from `spawn_blocking`.
    #[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
    pub(crate) fn open_file(path: &Path, options: &FileOptions) -> Result<Store> {
        #[cfg(feature = "sqlite")]
        return sqlite::SqliteStore::open_file(path, options).map(Store::Sqlite);
        #[cfg(not(feature = "sqlite"))]
        Err(no_backend())
    }

    /// Opens an existing database file as an admin (no lock). Blocking.
    #[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
    pub(crate) fn open_admin(path: &Path, busy_timeout: Duration) -> Result<Store> {
        #[cfg(feature = "sqlite")]
        return sqlite::SqliteStore::open_admin(path, busy_timeout).map(Store::Sqlite);
        #[cfg(not(feature = "sqlite"))]
        Err(no_backend())
    }

    /// Opens an existing database file read-only as it is on disk, for a
    /// directory where SQLite cannot create its `-wal` and `-shm` files (no
    /// lock, every write refused). Blocking.
    #[cfg_attr(not(feature = "sqlite"), allow(unused_variables))]
    pub(crate) fn open_snapshot(path: &Path, busy_timeout: Duration) -> Result<Store> {
        #[cfg(feature = "sqlite")]
        return sqlite::SqliteStore::open_snapshot(path, busy_timeout).map(Store::Sqlite);
        #[cfg(not(feature = "sqlite"))]
        Err(no_backend())
    }

    /// A private in-memory database. Blocking.
    pub(crate) fn open_in_memory() -> Result<Store> {
        #[cfg(feature = "sqlite")]
        return sqlite::SqliteStore::open_in_memory().map(Store::Sqlite);
        #[cfg(not(feature = "sqlite"))]
        Err(no_backend())
    }

    /// Connects to a PostgreSQL database shared with other workers; with
    /// `admin`, without registering a worker.
    #[cfg(feature = "postgres")]
    pub(crate) async fn open_postgres(
        options: PgOptions,
        registered: &Registered,
        admin: bool,
    ) -> Result<Store> {
        postgres::PgStore::open(options, registered, admin)
            .await
            .map(Store::Postgres)
    }

    /// The shared database's store, when many workers share it.
    #[cfg(feature = "postgres")]
    pub(crate) fn shared(&self) -> Option<&postgres::PgStore> {
        match *self {
            Store::Postgres(ref s) => Some(s),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Whether many workers share this database (their executions are
    /// claimed, not all this process's).
    pub(crate) fn is_shared(&self) -> bool {
        #[cfg(feature = "postgres")]
        return self.shared().is_some();
        #[cfg(not(feature = "postgres"))]
        false
    }

    /// Whether this process must stop driving `id` at once, writing
    /// nothing: another worker owns it now, or this worker lost its lease.
    pub(crate) fn disowned(&self, id: &ExecutionId) -> bool {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.shared() {
            return pg.disowned(id);
        }
        let _ = id;
        false
    }

    /// How long a shutdown waits for the executions driven here to stop
    /// before it hands them to other workers: the lease on a shared
    /// database (after it, a step body still running counts as cut off);
    /// none on SQLite, where the next open resumes them.
    pub(crate) fn handover_wait(&self) -> Option<Duration> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.shared() {
            return pg.lease();
        }
        None
    }

    /// Whether another live worker drives `id` (on a shared database).
    pub(crate) async fn owned_elsewhere(&self, id: &ExecutionId) -> Result<bool> {
        #[cfg(feature = "postgres")]
        if let Some(pg) = self.shared() {
            return pg.owned_elsewhere(id).await;
        }
        let _ = id;
        Ok(false)
    }

    /// The database file, unless in memory or on a server.
    pub(crate) fn path(&self) -> Option<&Path> {
        match *self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(ref s) => s.path(),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => None,
        }
    }

    /// Whether the previous worker on this database ended with a clean
    /// shutdown (true for in-memory stores and new files, and on a shared
    /// database, where the reaper counts interrupted executions).
    pub(crate) fn previous_end_clean(&self) -> bool {
        match *self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(ref s) => s.previous_end_clean(),
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => true,
        }
    }

    /// Commits everything queued, closes every connection and releases the
    /// database, recording a clean end. Blocking.
    pub(crate) fn close_and_wait(&self) {
        backend!(self, s => s.close_and_wait())
    }

    /// Tells the store to close once it has committed what is queued,
    /// without waiting (callable from `Drop` on a runtime thread).
    pub(crate) fn close(&self) {
        backend!(self, s => s.close())
    }

    // ---- journal writes ----

    /// Commits `op` and waits until it is durable.
    pub(crate) async fn commit(&self, op: JournalOp) -> Result<()> {
        backend!(self, s => s.commit(op).await)
    }

    /// Queues `op` without waiting: it commits with the next waited write,
    /// before anything written after it. A failure is logged.
    pub(crate) fn queue(&self, op: JournalOp) {
        backend!(self, s => s.queue(op))
    }

    /// Whether a queued write of `id` failed or was rolled back since the
    /// last call: the execution must stop before it relies on it.
    pub(crate) fn lost_write(&self, id: &ExecutionId) -> bool {
        match *self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(ref s) => s.lost_write(id),
            // A lost queued write disowns the execution: see `disowned`.
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => false,
        }
    }

    // ---- execution lifecycle (waited writes) ----

    /// Inserts a new execution, or finds the one that has the id.
    pub(crate) async fn insert_execution(&self, new: NewExecution) -> Result<Inserted> {
        backend!(self, s => s.insert_execution(new).await)
    }

    /// Loads an execution to drive it, moving it to `running`: one commit,
    /// which also makes every write already queued for it visible.
    pub(crate) async fn claim_for_replay(
        &self,
        id: &ExecutionId,
        registered: Registered,
        now: i64,
        woken: bool,
    ) -> Result<Claimed> {
        backend!(self, s => s.claim_for_replay(id, registered, now, woken).await)
    }

    /// Moves a panicked, restarting or failed execution back to `running`
    /// with one more restart counted, and loads it; `None` if it is in none
    /// of those states. A failed execution's journal from its first failed
    /// entry on is set aside first, so the failed step really runs again.
    pub(crate) async fn begin_restart(&self, id: &ExecutionId, now: i64) -> Result<Option<Loaded>> {
        backend!(self, s => s.begin_restart(id, now).await)
    }

    /// Sets an execution's status with what goes with it; a terminal status
    /// is never overwritten (false then). One statement, and one more for
    /// a cancel, which ends the entries still sleeping or retrying. The
    /// transition is handed back for the waiters of the execution's end.
    pub(crate) async fn set_status(
        &self,
        id: &ExecutionId,
        status: ExecutionStatus,
        transition: Transition,
        now: i64,
    ) -> Result<(bool, Transition)> {
        backend!(self, s => s.set_status(id, status, transition, now).await)
    }

    /// Brings every pending wake time of an execution (sleeps, backoffs)
    /// forward to `now`.
    pub(crate) async fn wake_now(&self, id: &ExecutionId, now: i64) -> Result<()> {
        backend!(self, s => s.wake_now(id, now).await)
    }

    /// Every unfinished execution, oldest first, seeing every queued write:
    /// what one process recovers when it opens its file. On a shared
    /// database nothing is all one process's; executions are claimed
    /// ([`Engine::take_over`](crate::execution::Engine)) instead.
    pub(crate) async fn load_unfinished(&self) -> Result<Vec<Unfinished>> {
        match *self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(ref s) => s.load_unfinished().await,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => Err(shared_only("loading every unfinished execution")),
        }
    }

    /// Counts a claim of each execution after an unclean end, in one
    /// commit; returns the counts in order. On a shared database the
    /// reaper counts them when it releases a dead worker's executions.
    pub(crate) async fn count_recoveries(&self, ids: Vec<ExecutionId>) -> Result<Vec<u32>> {
        match *self {
            #[cfg(feature = "sqlite")]
            Store::Sqlite(ref s) => s.count_recoveries(ids).await,
            #[cfg(feature = "postgres")]
            Store::Postgres(_) => {
                let _ = ids;
                Err(shared_only("counting recoveries at open"))
            }
        }
    }

    /// Records the workflows this process registers.
    pub(crate) async fn register_workflows(&self, rows: Vec<WorkflowRow>, now: i64) -> Result<()> {
        backend!(self, s => s.register_workflows(rows, now).await)
    }

    /// Records an admin's request for the worker; returns its number.
    pub(crate) async fn insert_request(
        &self,
        id: &ExecutionId,
        action: AdminAction,
        now: i64,
    ) -> Result<i64> {
        backend!(self, s => s.insert_request(id, action, now).await)
    }

    /// Records a request to start execution `id` of `workflow` with
    /// `input` (JSON text); returns its number. Any worker that registers
    /// the workflow may apply it.
    pub(crate) async fn insert_start_request(
        &self,
        id: &ExecutionId,
        workflow: &str,
        input: Vec<u8>,
        now: i64,
    ) -> Result<i64> {
        backend!(self, s => s.insert_start_request(id, workflow, input, now).await)
    }

    /// Whether request `request` was applied (its time) and what came of
    /// it; `None` when there is no such request.
    pub(crate) async fn request_outcome(
        &self,
        request: i64,
    ) -> Result<Option<(Option<i64>, Option<String>)>> {
        backend!(self, s => s.request_outcome(request).await)
    }

    /// Marks a request as applied, with what came of it.
    pub(crate) async fn finish_request(
        &self,
        request: i64,
        outcome: String,
        now: i64,
    ) -> Result<()> {
        backend!(self, s => s.finish_request(request, outcome, now).await)
    }

    // ---- reads (they do not see writes still queued) ----

    pub(crate) async fn load_execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRow>> {
        backend!(self, s => s.load_execution(id).await)
    }

    /// Records the name of a type whose values the journal holds (once per
    /// type and database; a name already there stays).
    pub(crate) async fn insert_type(&self, tag: TypeTag) -> Result<()> {
        backend!(self, s => s.insert_type(tag).await)
    }

    /// The name of the type of hash `hash`, if the database has it.
    pub(crate) async fn type_name(&self, hash: i32) -> Result<Option<String>> {
        backend!(self, s => s.type_name(hash).await)
    }

    /// Every type name the database holds, by hash.
    pub(crate) async fn type_names(&self) -> Result<HashMap<i32, String>> {
        backend!(self, s => s.type_names().await)
    }

    /// The journal of one execution, as replay reads it.
    pub(crate) async fn load_journal(&self, id: &ExecutionId) -> Result<Vec<Entry>> {
        backend!(self, s => s.load_journal(id).await)
    }

    /// Up to `limit` unfinished executions with ids after `after` (`""`
    /// for the first page), in id order, each with its journal.
    pub(crate) async fn unfinished_page(&self, after: String, limit: u32) -> Result<Vec<Loaded>> {
        backend!(self, s => s.unfinished_page(after, limit).await)
    }

    /// Everything known of one execution, read in one snapshot.
    pub(crate) async fn load_info(&self, id: &ExecutionId) -> Result<Option<ExecutionInfo>> {
        backend!(self, s => s.load_info(id).await)
    }

    pub(crate) async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionSummary>> {
        backend!(self, s => s.list(filter).await)
    }

    pub(crate) async fn count_by_status(
        &self,
        filter: ListFilter,
    ) -> Result<Vec<(ExecutionStatus, u64)>> {
        backend!(self, s => s.count_by_status(filter).await)
    }

    pub(crate) async fn registered_workflows(&self) -> Result<Vec<String>> {
        backend!(self, s => s.registered_workflows().await)
    }

    /// Sleeping executions due by `now`, for the periodic sweep.
    pub(crate) async fn due_sleepers(&self, now: i64) -> Result<Vec<ExecutionId>> {
        backend!(self, s => s.due_sleepers(now).await)
    }

    /// Admin requests not yet applied, oldest first.
    pub(crate) async fn pending_requests(&self) -> Result<Vec<Request>> {
        backend!(self, s => s.pending_requests().await)
    }

    // ---- messages and events ----

    /// Commits a message to an execution's inbox (see [`Sent`]); any
    /// process may send, a worker or an admin.
    pub(crate) async fn send_message(&self, message: NewMessage) -> Result<Sent> {
        backend!(self, s => s.send_message(message).await)
    }

    /// Takes the oldest message of topic `at.name` from the inbox into the
    /// `recv` entry at `at`, in one commit; `None` when there is none. The
    /// entry records `value_type` ([`TypeTag::hash`] of the type the
    /// workflow reads it as): a sender's type may differ (a `&str` read as
    /// a `String`, a struct of another crate of the same shape), and the
    /// journal keeps what the workflow saw. With `sent_by`, only a message
    /// sent by then (a `recv_timeout`'s deadline) is taken.
    pub(crate) async fn take_message(
        &self,
        at: EntryAt,
        value_type: i32,
        sent_by: Option<i64>,
        now: i64,
    ) -> Result<Option<Taken>> {
        backend!(self, s => s.take_message(at, value_type, sent_by, now).await)
    }

    /// Whether a message on `topic` waits in `id`'s inbox.
    pub(crate) async fn has_message(&self, id: &ExecutionId, topic: &str) -> Result<bool> {
        backend!(self, s => s.has_message(id, topic).await)
    }

    /// The latest value of each event key of `id` (of `key` alone, if
    /// given), by key; `None` when there is no such execution.
    pub(crate) async fn events(
        &self,
        id: &ExecutionId,
        key: Option<String>,
    ) -> Result<Option<Vec<EventRow>>> {
        backend!(self, s => s.events(id, key).await)
    }

    /// Rows of stream `key` of `id` from `from` on (at most `limit`), with
    /// the execution's status read first; `None` when there is no such
    /// execution.
    pub(crate) async fn stream_rows(
        &self,
        id: &ExecutionId,
        key: &str,
        from: i64,
        limit: u32,
    ) -> Result<Option<StreamRead>> {
        backend!(self, s => s.stream_rows(id, key, from, limit).await)
    }

    /// The worker processes of a shared database, live ones first; none on
    /// SQLite, where the process holding the file's lock runs everything.
    pub(crate) async fn workers(&self) -> Result<Vec<crate::record::WorkerInfo>> {
        #[cfg(feature = "postgres")]
        if let Some(s) = self.shared() {
            return s.workers().await;
        }
        Ok(Vec::new())
    }

    /// The executions started as children of `id`, oldest first.
    pub(crate) async fn children(&self, id: &ExecutionId) -> Result<Vec<ChildRow>> {
        backend!(self, s => s.children(id).await)
    }

    // ---- retention ----

    /// Deletes up to `limit` finished executions that ended before `cutoff`
    /// (Unix ms), with everything keyed by their ids, in one write; returns
    /// how many it deleted. Unfinished executions are never touched.
    pub(crate) async fn prune_batch(&self, cutoff: i64, limit: u32) -> Result<u64> {
        backend!(self, s => s.prune_batch(cutoff, limit).await)
    }

    /// The database's size and the free space inside it.
    pub(crate) async fn file_space(&self) -> Result<FileSpace> {
        backend!(self, s => s.file_space().await)
    }

    /// Gives up to `pages` free pages back to the file system, in one
    /// write, where the file allows it ([`FileSpace::incremental`]);
    /// returns the bytes given back and the space after.
    pub(crate) async fn reclaim_space(&self, pages: u32) -> Result<(u64, FileSpace)> {
        backend!(self, s => s.reclaim_space(pages).await)
    }
}

/// The size of a database and the free space inside it, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileSpace {
    pub bytes: u64,
    /// Free pages: reused by later writes, and given back to the file
    /// system by [`Store::reclaim_space`] when `incremental`.
    pub free_bytes: u64,
    /// Whether free pages can be given back without rewriting the file.
    pub incremental: bool,
}
