//! The writer thread that owns the write connection and commits every
//! queued op of a batch in one transaction (group commit), and the reader
//! connection used off the async executor.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::lock::WorkerLock;
use super::schema;
use super::sql::copy_error;
use super::wal::{self, SharedMarker};
use crate::error::{Error, Result};
use crate::record::ExecutionId;
use crate::store::FileOptions;

/// One unit of work for the writer thread: it runs inside the batch's
/// transaction, then learns whether that transaction committed. One
/// allocation per op, made by the caller.
trait Job: Send {
    /// Runs the op (it gets the error instead of a connection when the
    /// transaction could not begin); returns whether it succeeded (a failed
    /// op is rolled back alone).
    fn run(&mut self, conn: std::result::Result<&Connection, &rusqlite::Error>) -> bool;
    /// Called once the batch is done, with the commit's outcome.
    fn finish(self: Box<Self>, committed: std::result::Result<(), &rusqlite::Error>);
    /// Whether someone waits for it (`finish` answers them).
    fn waited(&self) -> bool;
}

/// Tells every op of a batch the commit's outcome: the queued ones first, so
/// that whoever a waited op wakes finds every write its batch lost already
/// marked in [`LostWrites`].
fn finish_all(jobs: &mut Vec<Box<dyn Job>>, committed: std::result::Result<(), &rusqlite::Error>) {
    for job in jobs.extract_if(.., |job| !job.waited()) {
        job.finish(committed);
    }
    for job in jobs.drain(..) {
        job.finish(committed);
    }
}

/// An op someone waits for: the outcome goes back on a oneshot.
struct Waited<F, R> {
    op: Option<F>,
    result: Option<Result<R>>,
    reply: oneshot::Sender<Result<R>>,
}

impl<F, R> Job for Waited<F, R>
where
    F: FnOnce(&Connection) -> rusqlite::Result<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: std::result::Result<&Connection, &rusqlite::Error>) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        let result = conn.map_err(copy_error).and_then(op).map_err(Error::from);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), &rusqlite::Error>) {
        let outcome = match (self.result, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(_)), Err(e)) => Err(Error::from(copy_error(e))),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Err(e)) => Err(Error::from(copy_error(e))),
            (None, Ok(())) => Err(Error::Shutdown),
        };
        let _ = self.reply.send(outcome);
    }

    fn waited(&self) -> bool {
        true
    }
}

/// An op nobody waits for: a failure is logged, and its execution is told
/// through [`LostWrites`] at its next boundary.
struct Unwaited<F> {
    op: Option<F>,
    failed: bool,
    owner: Option<ExecutionId>,
    lost: Arc<LostWrites>,
}

/// Executions whose queued writes failed or were rolled back: they must not
/// go on as if those writes (a step's start, a helper value, a sleep's end)
/// were journaled. Read at each boundary, so the common case (none) is one
/// relaxed load.
#[derive(Default)]
pub(crate) struct LostWrites {
    any: AtomicBool,
    ids: Mutex<HashSet<ExecutionId>>,
}

impl LostWrites {
    fn mark(&self, owner: Option<&ExecutionId>) {
        if let Some(id) = owner {
            self.ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone());
            self.any.store(true, Ordering::Release);
        }
    }

    /// Whether `id` lost a queued write since the last call (and forgets it).
    pub(crate) fn take(&self, id: &ExecutionId) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        let found = ids.remove(id);
        if ids.is_empty() {
            self.any.store(false, Ordering::Release);
        }
        found
    }
}

impl<F> Job for Unwaited<F>
where
    F: FnOnce(&Connection) -> rusqlite::Result<()> + Send,
{
    fn run(&mut self, conn: std::result::Result<&Connection, &rusqlite::Error>) -> bool {
        let Some(op) = self.op.take() else {
            return false;
        };
        match conn.map_err(copy_error).and_then(op) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(error = %e, "queued journal write failed");
                self.failed = true;
                self.lost.mark(self.owner.as_ref());
                false
            }
        }
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), &rusqlite::Error>) {
        if let (false, Err(e)) = (self.failed, committed) {
            tracing::error!(error = %e, "queued journal write was not committed");
            self.lost.mark(self.owner.as_ref());
        }
    }

    fn waited(&self) -> bool {
        false
    }
}

/// An op queued for the writer.
struct Queued {
    job: Box<dyn Job>,
    /// Someone waits for its commit: the writer commits without lingering.
    waited: bool,
    /// It may run several statements, so it runs under a savepoint that a
    /// failure rolls back. An op of one statement needs none: SQLite undoes
    /// a failed statement by itself.
    savepoint: bool,
}

enum Command {
    Op(Queued),
    /// Commit what came before, then stop.
    Close,
}

/// Tries to begin a write transaction before its batch fails as busy.
const BEGIN_TRIES: usize = 3;

/// Most ops committed in one transaction. Bounds a batch's latency while
/// still sharing each fsync among many workflows.
const MAX_BATCH: usize = 4096;

pub(crate) struct SqliteStore {
    ops: mpsc::Sender<Command>,
    /// `None` for an in-memory store; holds `None` once the store is closed.
    reader: Option<Arc<Mutex<Option<Connection>>>>,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
    path: Option<PathBuf>,
    /// The worker lock of a file database, held until the store is closed.
    lock: Mutex<Option<WorkerLock>>,
    lost: Arc<LostWrites>,
}

impl SqliteStore {
    /// Opens (creating if needed) a database file. Blocking: call from
    /// `spawn_blocking`.
    pub(crate) fn open_file(path: &Path, options: &FileOptions) -> Result<SqliteStore> {
        let opened = schema::open_file(path, options)?;
        let store = SqliteStore::start(
            opened.writer,
            Some(opened.reader),
            Some(path.to_owned()),
            Some(opened.marker),
        )?;
        *store.lock.lock().unwrap_or_else(|p| p.into_inner()) = Some(opened.lock);
        Ok(store)
    }

    /// Opens an existing database file as an admin (no lock). Blocking.
    pub(crate) fn open_admin(path: &Path, busy_timeout: Duration) -> Result<SqliteStore> {
        let (writer, reader) = schema::open_admin(path, busy_timeout)?;
        SqliteStore::start(writer, Some(reader), Some(path.to_owned()), None)
    }

    /// Opens an existing database file read-only, as it is on disk (see
    /// [`snapshot`](super::snapshot)): every write fails. Blocking.
    pub(crate) fn open_snapshot(path: &Path, busy_timeout: Duration) -> Result<SqliteStore> {
        let (writer, reader) = super::snapshot::open(path, busy_timeout)?;
        SqliteStore::start(writer, Some(reader), Some(path.to_owned()), None)
    }

    /// A private in-memory database; reads go through the writer's connection.
    pub(crate) fn open_in_memory() -> Result<SqliteStore> {
        let writer = schema::open_in_memory()?;
        SqliteStore::start(writer, None, None, None)
    }

    fn start(
        conn: Connection,
        reader: Option<Connection>,
        path: Option<PathBuf>,
        marker: Option<SharedMarker>,
    ) -> Result<SqliteStore> {
        let (tx, rx) = mpsc::channel::<Command>();
        let handle = thread::Builder::new()
            .name("workflow-journal-writer".into())
            .spawn(move || writer_loop(conn, rx, marker))
            .map_err(|source| Error::Io {
                path: "writer thread".into(),
                source,
            })?;
        Ok(SqliteStore {
            ops: tx,
            reader: reader.map(|r| Arc::new(Mutex::new(Some(r)))),
            writer: Mutex::new(Some(handle)),
            path,
            lock: Mutex::new(None),
            lost: Arc::new(LostWrites::default()),
        })
    }

    /// Whether a queued write of `id` failed or was rolled back since the
    /// last call.
    pub(crate) fn lost_write(&self, id: &ExecutionId) -> bool {
        self.lost.take(id)
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `op` in the writer's next transaction and waits for its commit.
    pub(super) async fn write<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        self.send_waited(op, true).await
    }

    /// Like [`SqliteStore::write`], for an op that runs at most one statement that
    /// changes anything: it runs without a savepoint of its own.
    pub(super) async fn write_one<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        self.send_waited(op, false).await
    }

    async fn send_waited<R, F>(&self, op: F, savepoint: bool) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<R>>();
        let queued = Queued {
            job: Box::new(Waited {
                op: Some(op),
                result: None,
                reply: tx,
            }),
            waited: true,
            savepoint,
        };
        self.ops
            .send(Command::Op(queued))
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// Queues `op` for the writer's next transaction without waiting: it
    /// commits with the next waited write. A failure is logged and recorded
    /// against `owner` (see [`SqliteStore::lost_write`]).
    pub(super) fn enqueue<F>(&self, owner: Option<ExecutionId>, op: F)
    where
        F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
    {
        let queued = Queued {
            job: Box::new(Unwaited {
                op: Some(op),
                failed: false,
                owner,
                lost: Arc::clone(&self.lost),
            }),
            waited: false,
            savepoint: true,
        };
        if self.ops.send(Command::Op(queued)).is_err() {
            tracing::warn!("journal write dropped: the runtime is shut down");
        }
    }

    /// Reads with the reader connection on a blocking thread, or through the
    /// writer for an in-memory store. Does not see writes still queued.
    pub(super) async fn read<R, F>(&self, op: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    {
        match &self.reader {
            None => self.write(op).await,
            Some(reader) => {
                let reader = Arc::clone(reader);
                tokio::task::spawn_blocking(move || {
                    // A poisoned lock means a read panicked; the connection itself is fine.
                    let conn = reader.lock().unwrap_or_else(|p| p.into_inner());
                    let conn = conn.as_ref().ok_or(Error::Shutdown)?;
                    op(conn).map_err(Error::from)
                })
                .await
                .map_err(|_| Error::Shutdown)?
            }
        }
    }

    /// Closes the reader, stops the writer after it has committed everything
    /// queued before this call and waits for it, then records the clean end
    /// and releases the worker lock: no connection to the file is left open,
    /// nor a WAL unless another process has the file open. Blocking.
    pub(crate) fn close_and_wait(&self) {
        if let Some(reader) = &self.reader {
            // Waits for a read in progress. Closed first, so that the
            // writer's connection is the last one and its close folds the
            // WAL into the file (a read-only connection cannot).
            drop(reader.lock().unwrap_or_else(|p| p.into_inner()).take());
        }
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = self.ops.send(Command::Close);
            let _ = handle.join();
        }
        if let Some(mut lock) = self.lock.lock().unwrap_or_else(|p| p.into_inner()).take() {
            lock.mark_clean_end();
        }
    }

    /// Whether the previous worker on this file ended with a clean shutdown
    /// (true for in-memory stores and new files).
    pub(crate) fn previous_end_clean(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_none_or(|l| l.previous_end_clean)
    }

    /// Tells the writer to stop once it has committed everything queued
    /// before this call. Does not wait (it may be called from a runtime
    /// thread, in `Drop`); the thread ends on its own.
    pub(crate) fn close(&self) {
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if handle.is_some() {
            let _ = self.ops.send(Command::Close);
        }
    }
}

/// How long queued (unwaited) writes may wait for a waited one to share its
/// commit. A step's start record is queued; when the step finishes within this
/// window its start and result cost one fsync instead of two, and a longer
/// step's start still becomes durable promptly.
const QUEUED_LINGER: Duration = Duration::from_millis(10);

fn writer_loop(conn: Connection, commands: mpsc::Receiver<Command>, marker: Option<SharedMarker>) {
    let mut batch: Vec<Queued> = Vec::with_capacity(64);
    let mut done: Vec<Box<dyn Job>> = Vec::with_capacity(64);
    let mut open = true;
    while open {
        let mut waited = match commands.recv() {
            Ok(Command::Op(queued)) => {
                let waited = queued.waited;
                batch.push(queued);
                waited
            }
            Ok(Command::Close) | Err(_) => break,
        };
        let mut linger_until = None;
        while batch.len() < MAX_BATCH {
            let next = if waited {
                commands.try_recv().map_err(|_| ())
            } else {
                // Only queued writes so far: linger briefly for a waited one.
                let until = *linger_until.get_or_insert_with(|| Instant::now() + QUEUED_LINGER);
                let left = until.saturating_duration_since(Instant::now());
                commands.recv_timeout(left).map_err(|_| ())
            };
            match next {
                Ok(Command::Op(queued)) => {
                    waited |= queued.waited;
                    batch.push(queued);
                }
                Ok(Command::Close) => {
                    open = false;
                    break;
                }
                Err(()) => break,
            }
        }
        run_batch(&conn, &mut batch, &mut done);
    }
    if let Some(marker) = &marker {
        wal::backfill_all(&conn, marker);
    }
    tracing::debug!("journal writer stopped");
}

/// SQLite rolled the whole transaction back in the middle of a batch (a
/// full disk, an I/O error, no memory), not just the failing statement:
/// everything the batch ran is undone, and the ops after it must not run in
/// autocommit as if the batch went on. Every op learns that it failed; the
/// owners of queued ones are told at their next boundary.
fn rolled_back(rest: &mut dyn Iterator<Item = Queued>, done: &mut Vec<Box<dyn Job>>) {
    let lost = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some("SQLite rolled back the journal's transaction after an error (a full disk, an I/O error or no memory); nothing of the batch was written".into()),
    );
    tracing::error!(error = %lost, "a journal batch was rolled back");
    for queued in rest {
        let mut job = queued.job;
        job.run(Err(&lost));
        done.push(job);
    }
    finish_all(done, Err(&lost));
}

/// Runs one statement of the writer's own (transaction control), prepared once.
fn control(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs one batch in one transaction, each op that needs it under its own
/// savepoint so a failing op is rolled back alone, then tells every op the
/// commit's outcome.
fn run_batch(conn: &Connection, batch: &mut Vec<Queued>, done: &mut Vec<Box<dyn Job>>) {
    // Each try waits up to the busy timeout for another connection's lock.
    let mut begun = control(conn, "BEGIN IMMEDIATE");
    for _ in 1..BEGIN_TRIES {
        match &begun {
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                tracing::warn!(error = %e, "the database is locked by another connection; trying again");
                begun = control(conn, "BEGIN IMMEDIATE");
            }
            _ => break,
        }
    }
    if let Err(e) = begun {
        tracing::error!(error = %e, "cannot begin a journal transaction");
        for queued in batch.drain(..) {
            // Run nothing; each op learns of the failure as a failed commit.
            let mut job = queued.job;
            job.run(Err(&e));
            done.push(job);
        }
        finish_all(done, Err(&e));
        return;
    }
    let mut queue = batch.drain(..);
    while let Some(queued) = queue.next() {
        let mut job = queued.job;
        if !queued.savepoint {
            job.run(Ok(conn));
            done.push(job);
            if conn.is_autocommit() {
                return rolled_back(&mut queue, done);
            }
            continue;
        }
        if let Err(e) = control(conn, "SAVEPOINT op") {
            tracing::error!(error = %e, "cannot open a savepoint");
            job.run(Err(&e));
            job.finish(Err(&e));
            continue;
        }
        let ok = job.run(Ok(conn));
        if conn.is_autocommit() {
            done.push(job);
            return rolled_back(&mut queue, done);
        }
        if !ok && let Err(e) = control(conn, "ROLLBACK TO op") {
            tracing::error!(error = %e, "cannot roll back a failed journal write");
        }
        if let Err(e) = control(conn, "RELEASE op") {
            tracing::error!(error = %e, "cannot release a savepoint");
        }
        done.push(job);
    }
    drop(queue);
    let committed = control(conn, "COMMIT");
    if committed.is_err() && !conn.is_autocommit() {
        let _ = control(conn, "ROLLBACK");
    }
    finish_all(done, committed.as_ref().map(|_| ()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Durability, IntegrityCheck};

    fn small_store(dir: &Path) -> SqliteStore {
        let options = FileOptions {
            durability: Durability::Off,
            busy_timeout: Duration::from_secs(5),
            max_size: Some(256 * 1024),
            integrity_check: IntegrityCheck::Never,
        };
        SqliteStore::open_file(&dir.join("full.db"), &options).unwrap()
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_rolled_back_by_sqlite_fails_every_op_and_flags_queued_owners() {
        let dir = std::env::temp_dir().join(format!("replayflow-batch-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = small_store(&dir);
        store
            .write(|c| c.execute_batch("CREATE TABLE scratch (x BLOB)"))
            .await
            .unwrap();
        let before: ExecutionId = "queued-before".into();
        let after: ExecutionId = "queued-after".into();
        let insert = |c: &Connection| {
            c.execute("INSERT INTO scratch VALUES (x'00')", [])
                .map(drop)
        };
        // Hold the writer inside a batch while the next one is queued, so
        // that batch is exactly: a queued op, a waited op that fills the file
        // (SQLite then rolls the whole transaction back), a queued op.
        let store = Arc::new(store);
        let (started_tx, started) = mpsc::channel::<()>();
        let (release, gate) = mpsc::channel::<()>();
        let holding = {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .write(move |_| {
                        let _ = started_tx.send(());
                        let _ = gate.recv();
                        Ok(())
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        started.recv().unwrap();
        store.enqueue(Some(before.clone()), insert);
        let filling = store.write(|c| {
            c.execute("INSERT INTO scratch VALUES (zeroblob(1048576))", [])
                .map(drop)
        });
        tokio::pin!(filling);
        // Polled once, so the waited op is sent before the last queued one;
        // the writer is held, so it cannot have answered.
        tokio::select! {
            biased;
            _ = &mut filling => panic!("the writer answered while held"),
            () = std::future::ready(()) => {}
        }
        store.enqueue(Some(after.clone()), insert);
        release.send(()).unwrap();
        holding.await.unwrap().unwrap();
        let err = filling.await.unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");

        let rows: i64 = store
            .read(|c| c.query_row("SELECT count(*) FROM scratch", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(rows, 0, "nothing of the rolled-back batch is in the file");
        assert!(
            store.lost_write(&before),
            "the queued op before the failure was lost"
        );
        assert!(
            store.lost_write(&after),
            "the queued op after it did not run"
        );
        assert!(!store.lost_write(&before), "a loss is reported once");
        store.close_and_wait();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
