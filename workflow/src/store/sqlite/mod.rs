//! The SQLite backend: the only code that names rusqlite. A writer thread
//! owns the write connection and commits in groups ([`writer`]); reads go
//! through a reader connection on a blocking thread.

mod inbox;
mod lock;
mod ops;
mod prune;
mod queries;
mod schema;
mod snapshot;
mod sql;
mod wal;
mod writer;

pub(crate) use writer::SqliteStore;

use crate::error::{Error, Result};
use crate::record::{ExecutionId, ExecutionInfo, ExecutionSummary, ListFilter};
use crate::status::{AdminAction, ExecutionStatus};
use crate::store::{
    Claimed, Entry, EntryAt, EventRow, ExecutionRow, Inserted, JournalOp, Loaded, NewExecution,
    NewMessage, Registered, Request, Sent, StreamRead, Taken, Transition, TypeTag, Unfinished,
    WorkflowRow,
};

impl SqliteStore {
    pub(crate) async fn commit(&self, op: JournalOp) -> Result<()> {
        if op.is_compound() {
            self.write(move |conn| ops::apply(conn, &op)).await
        } else {
            self.write_one(move |conn| ops::apply(conn, &op)).await
        }
    }

    pub(crate) fn queue(&self, op: JournalOp) {
        self.enqueue(Some(op.owner().clone()), move |conn| ops::apply(conn, &op));
    }

    pub(crate) async fn insert_execution(&self, new: NewExecution) -> Result<Inserted> {
        self.write(move |conn| queries::insert_execution(conn, &new))
            .await
    }

    pub(crate) async fn claim_for_replay(
        &self,
        id: &ExecutionId,
        registered: Registered,
        now: i64,
        woken: bool,
    ) -> Result<Claimed> {
        let id = id.clone();
        self.write(move |conn| {
            let Some(mut row) = queries::load_execution(conn, &id)? else {
                return Ok(Claimed::Missing);
            };
            if row.status.is_terminal()
                || !registered.takes(&row.workflow, &row.app_version)
                || (woken && !row.status.is_suspended())
            {
                return Ok(Claimed::Untouched);
            }
            if row.status != ExecutionStatus::Running {
                queries::set_status(
                    conn,
                    &id,
                    ExecutionStatus::Running,
                    &Transition::bare(),
                    now,
                )?;
                row.status = ExecutionStatus::Running;
            }
            let journal = queries::load_journal(conn, &id)?;
            Ok(Claimed::Loaded(Loaded { row, journal }))
        })
        .await
    }

    pub(crate) async fn begin_restart(&self, id: &ExecutionId, now: i64) -> Result<Option<Loaded>> {
        let id = id.clone();
        self.write(move |conn| {
            if !queries::begin_restart(conn, &id, now)? {
                return Ok(None);
            }
            let Some(row) = queries::load_execution(conn, &id)? else {
                return Ok(None);
            };
            let journal = queries::load_journal(conn, &id)?;
            Ok(Some(Loaded { row, journal }))
        })
        .await
    }

    pub(crate) async fn set_status(
        &self,
        id: &ExecutionId,
        status: ExecutionStatus,
        transition: Transition,
        now: i64,
    ) -> Result<(bool, Transition)> {
        let id = id.clone();
        let op = move |conn: &rusqlite::Connection| {
            queries::set_status(conn, &id, status, &transition, now)
                .map(|changed| (changed, transition))
        };
        // A cancel also ends the execution's waiting entries, and an end
        // wakes a waiting parent: statements that must commit or fail
        // together.
        if status.is_terminal() {
            self.write(op).await
        } else {
            self.write_one(op).await
        }
    }

    pub(crate) async fn wake_now(&self, id: &ExecutionId, now: i64) -> Result<()> {
        let id = id.clone();
        self.write(move |conn| queries::wake_now(conn, &id, now))
            .await
    }

    pub(crate) async fn load_unfinished(&self) -> Result<Vec<Unfinished>> {
        self.write(queries::load_unfinished).await
    }

    pub(crate) async fn count_recoveries(&self, ids: Vec<ExecutionId>) -> Result<Vec<u32>> {
        self.write(move |conn| {
            ids.iter()
                .map(|id| queries::count_recovery(conn, id))
                .collect::<rusqlite::Result<Vec<u32>>>()
        })
        .await
    }

    pub(crate) async fn register_workflows(&self, rows: Vec<WorkflowRow>, now: i64) -> Result<()> {
        self.write(move |conn| queries::register_workflows(conn, &rows, now))
            .await
    }

    pub(crate) async fn insert_request(
        &self,
        id: &ExecutionId,
        action: AdminAction,
        now: i64,
    ) -> Result<i64> {
        let id = id.clone();
        self.write(move |conn| queries::insert_request(conn, &id, action, now))
            .await
    }

    pub(crate) async fn insert_start_request(
        &self,
        id: &ExecutionId,
        workflow: &str,
        input: Vec<u8>,
        now: i64,
    ) -> Result<i64> {
        let (id, workflow) = (id.clone(), workflow.to_owned());
        let inserted = self
            .write(move |conn| match inbox::file_version(conn)? {
                // See `send_message`.
                version if version < 3 => Ok(Err(version)),
                _ => queries::insert_start_request(conn, &id, &workflow, &input, now).map(Ok),
            })
            .await?;
        inserted.map_err(|found| self.not_migrated(found, "a request to start a workflow"))
    }

    pub(crate) async fn request_outcome(
        &self,
        request: i64,
    ) -> Result<Option<(Option<i64>, Option<String>)>> {
        self.read(move |conn| queries::request_outcome(conn, request))
            .await
    }

    pub(crate) async fn finish_request(
        &self,
        request: i64,
        outcome: String,
        now: i64,
    ) -> Result<()> {
        self.write(move |conn| queries::finish_request(conn, request, &outcome, now))
            .await
    }

    pub(crate) async fn load_execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRow>> {
        let id = id.clone();
        self.read(move |conn| queries::load_execution(conn, &id))
            .await
    }

    /// Queued, not waited: the name rides with the write of the first
    /// value of its type (a batch that fails loses it, and a mismatch with
    /// such a value is reported by its fingerprint alone).
    pub(crate) async fn insert_type(&self, tag: TypeTag) -> Result<()> {
        self.enqueue(None, move |conn| {
            conn.prepare_cached("INSERT OR IGNORE INTO value_types (hash, name) VALUES (?1, ?2)")?
                .execute(rusqlite::params![tag.hash, tag.name])
                .map(drop)
        });
        Ok(())
    }

    pub(crate) async fn type_name(&self, hash: i32) -> Result<Option<String>> {
        self.read(move |conn| {
            use rusqlite::OptionalExtension;
            conn.prepare_cached("SELECT name FROM value_types WHERE hash = ?1")?
                .query_row([hash], |r| r.get(0))
                .optional()
        })
        .await
    }

    pub(crate) async fn type_names(&self) -> Result<std::collections::HashMap<i32, String>> {
        self.read(|conn| {
            conn.prepare_cached("SELECT hash, name FROM value_types")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect()
        })
        .await
    }

    pub(crate) async fn load_journal(&self, id: &ExecutionId) -> Result<Vec<Entry>> {
        let id = id.clone();
        self.read(move |conn| queries::load_journal(conn, &id))
            .await
    }

    pub(crate) async fn unfinished_page(&self, after: String, limit: u32) -> Result<Vec<Loaded>> {
        self.read(move |conn| queries::unfinished_page(conn, &after, limit))
            .await
    }

    pub(crate) async fn load_info(&self, id: &ExecutionId) -> Result<Option<ExecutionInfo>> {
        let id = id.clone();
        self.read(move |conn| queries::load_info(conn, &id)).await
    }

    pub(crate) async fn list(&self, filter: ListFilter) -> Result<Vec<ExecutionSummary>> {
        self.read(move |conn| queries::list(conn, &filter)).await
    }

    pub(crate) async fn count_by_status(
        &self,
        filter: ListFilter,
    ) -> Result<Vec<(ExecutionStatus, u64)>> {
        self.read(move |conn| queries::count_by_status(conn, &filter))
            .await
    }

    pub(crate) async fn registered_workflows(&self) -> Result<Vec<String>> {
        self.read(queries::registered_workflows).await
    }

    pub(crate) async fn due_sleepers(&self, now: i64) -> Result<Vec<ExecutionId>> {
        self.read(move |conn| queries::due_sleepers(conn, now))
            .await
    }

    pub(crate) async fn pending_requests(&self) -> Result<Vec<Request>> {
        self.read(queries::pending_requests).await
    }

    pub(crate) async fn send_message(&self, message: NewMessage) -> Result<Sent> {
        let sent = self
            .write(move |conn| match inbox::file_version(conn)? {
                // Checked in the write's transaction: a worker may migrate
                // the file while an admin has it open.
                version if version < 3 => Ok(Err(version)),
                _ => inbox::send_message(conn, &message).map(Ok),
            })
            .await?;
        sent.map_err(|found| self.not_migrated(found, "sending a message"))
    }

    /// What an admin open of a file older than messages cannot do.
    fn not_migrated(&self, found: i64, what: &'static str) -> Error {
        Error::NotMigrated {
            path: self
                .path()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            found,
            needed: 3,
            what,
        }
    }

    pub(crate) async fn take_message(
        &self,
        at: EntryAt,
        value_type: i32,
        sent_by: Option<i64>,
        now: i64,
    ) -> Result<Option<Taken>> {
        self.write(move |conn| inbox::take_message(conn, &at, value_type, sent_by, now))
            .await
    }

    pub(crate) async fn has_message(&self, id: &ExecutionId, topic: &str) -> Result<bool> {
        let (id, topic) = (id.clone(), topic.to_owned());
        self.read(move |conn| inbox::has_message(conn, &id, &topic))
            .await
    }

    pub(crate) async fn children(&self, id: &ExecutionId) -> Result<Vec<crate::store::ChildRow>> {
        let id = id.clone();
        self.read(move |conn| queries::children(conn, &id)).await
    }

    pub(crate) async fn stream_rows(
        &self,
        id: &ExecutionId,
        key: &str,
        from: i64,
        limit: u32,
    ) -> Result<Option<StreamRead>> {
        let (id, key) = (id.clone(), key.to_owned());
        self.read(move |conn| inbox::stream_rows(conn, &id, &key, from, limit))
            .await
    }

    pub(crate) async fn events(
        &self,
        id: &ExecutionId,
        key: Option<String>,
    ) -> Result<Option<Vec<EventRow>>> {
        let id = id.clone();
        self.read(move |conn| inbox::events(conn, &id, key.as_deref()))
            .await
    }
}
