//! The writer task: one connection commits every queued op of a batch in
//! one transaction (group commit), after the worker's fence. Journal ops
//! (and the other works that are one prepared statement) are pipelined,
//! the first run of them with `BEGIN` and the fence, and with `COMMIT`
//! when nothing else is in the batch: the usual batch costs one round
//! trip, whatever its size. Consecutive quick steps' results, and
//! consecutive new executions, go as one multi-row statement (see
//! [`groups`]).

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use deadpool_postgres::{Object, Pool};
use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use super::inbox::Took;
use super::ops::{self, Piped, Statements};
use super::queries;
use super::worker::WorkerState;
use super::{Failure, PgError, PgResult};
use crate::error::{Error, Result};
use crate::record::ExecutionId;
use crate::status::ExecutionStatus;
use crate::store::{
    Claimed, EntryAt, Inserted, JournalOp, Loaded, NewExecution, Transition, Unfinished,
    WorkflowRow,
};

/// Most works committed in one transaction.
const MAX_BATCH: usize = 1024;

/// A result to hand back once the batch's commit is known.
pub(super) struct Deferred<T> {
    reply: oneshot::Sender<Result<T>>,
    result: Option<PgResult<T>>,
}

impl<T> Deferred<T> {
    pub(super) fn new() -> (Deferred<T>, oneshot::Receiver<Result<T>>) {
        let (reply, rx) = oneshot::channel();
        (
            Deferred {
                reply,
                result: None,
            },
            rx,
        )
    }

    fn finish(self, committed: &Committed) {
        let _ = self.reply.send(outcome(self.result, committed));
    }
}

/// Whether a batch's transaction committed.
pub(super) type Committed = std::result::Result<(), Failure>;

/// A work's outcome from its own result and its batch's commit.
fn outcome<T>(result: Option<PgResult<T>>, committed: &Committed) -> Result<T> {
    match (result, committed) {
        (Some(Err(e)), _) => Err(Failure::of(&e).to_error()),
        (Some(Ok(_)) | None, Err(f)) => Err(f.to_error()),
        (Some(Ok(v)), Ok(())) => Ok(v),
        (None, Ok(())) => Err(Error::Shutdown),
    }
}

/// A lifecycle write: its statements run in order inside the batch.
pub(super) enum Life {
    Insert(NewExecution, Deferred<Inserted>),
    /// An execution to drive (see `ops::CLAIM`).
    Claim {
        id: ExecutionId,
        now: i64,
        /// A wake-up, which takes only a suspended execution.
        woken: bool,
        /// The workflows and app versions (empty: all) this worker runs.
        workflows: Arc<Vec<String>>,
        versions: Arc<Vec<String>>,
        out: Deferred<Claimed>,
    },
    BeginRestart(ExecutionId, i64, Deferred<Option<Loaded>>),
    SetStatus {
        id: ExecutionId,
        status: ExecutionStatus,
        transition: Transition,
        now: i64,
        result: Option<PgResult<bool>>,
        reply: oneshot::Sender<Result<(bool, Transition)>>,
    },
    WakeNow(ExecutionId, i64, Deferred<()>),
    Register(Vec<WorkflowRow>, i64, Deferred<()>),
    ClaimOrphans {
        workflows: Arc<Vec<String>>,
        /// The app versions claimed (empty: all).
        versions: Arc<Vec<String>>,
        /// Sleeping and waiting executions due by then are claimed.
        due_by: i64,
        limit: i64,
        out: Deferred<Vec<(Unfinished, u32)>>,
    },
    Reap(Deferred<Vec<i64>>),
    FinishRequest(i64, String, i64, Deferred<()>),
    /// A `recv` takes the oldest message of its topic at this time.
    /// The entry's place, the type the workflow reads it as, the latest
    /// time the message may have been sent, the time.
    TakeMessage(EntryAt, i32, Option<i64>, i64, Deferred<Took>),
}

/// What the writer is sent; each carries the worker id it was made under.
pub(super) enum Work {
    Op {
        op: JournalOp,
        me: Option<i64>,
        reply: Option<oneshot::Sender<Result<()>>>,
        result: Option<PgResult<u64>>,
    },
    Life(Life, Option<i64>),
    /// Commit what came before, release the worker's executions, stop.
    Close(oneshot::Sender<()>),
}

/// What the writer shares with the store.
pub(super) struct Shared {
    pub pool: Pool,
    pub worker: Option<Arc<WorkerState>>,
    pub disowned: Disowned,
}

impl Shared {
    fn disown(&self, id: &ExecutionId) {
        self.disowned.mark(id);
    }
}

/// Executions this process must no longer write: lost to another worker,
/// or owned under an id this worker no longer has. Asked before every
/// journal write and at every boundary, so the usual case (none) is one
/// relaxed load.
#[derive(Default)]
pub(super) struct Disowned {
    any: AtomicBool,
    ids: Mutex<HashSet<ExecutionId>>,
}

impl Disowned {
    pub(super) fn mark(&self, id: &ExecutionId) {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.insert(id.clone());
        self.any.store(true, Ordering::Release);
    }

    pub(super) fn contains(&self, id: &ExecutionId) -> bool {
        if !self.any.load(Ordering::Acquire) {
            return false;
        }
        let ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.contains(id)
    }

    /// `id` was claimed anew: this process drives it again.
    pub(super) fn clear(&self, id: &ExecutionId) {
        if !self.any.load(Ordering::Acquire) {
            return;
        }
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        ids.remove(id);
        if ids.is_empty() {
            self.any.store(false, Ordering::Release);
        }
    }
}

struct Conn {
    client: Object,
    statements: Statements,
}

async fn connect(shared: &Shared) -> std::result::Result<Conn, Failure> {
    let client = shared
        .pool
        .get()
        .await
        .map_err(|e| Failure::Unavailable(e.to_string().into()))?;
    let statements = Statements::prepare(&client)
        .await
        .map_err(|e| Failure::pg(&e))?;
    Ok(Conn { client, statements })
}

/// The writer task: takes batches from `rx` until closed.
pub(super) async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Work>) {
    let mut conn: Option<Conn> = None;
    let mut closing: Option<oneshot::Sender<()>> = None;
    while closing.is_none() {
        let Some(first) = rx.recv().await else { break };
        let mut works = vec![first];
        while works.len() < MAX_BATCH && !matches!(works.last(), Some(Work::Close(_))) {
            match rx.try_recv() {
                Ok(w) => works.push(w),
                Err(_) => break,
            }
        }
        if let Some(Work::Close(done)) = works.pop_if(|w| matches!(w, Work::Close(_))) {
            closing = Some(done);
        }
        if works.is_empty() {
            continue;
        }
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = match connect(&shared).await {
                Ok(c) => Some(c),
                Err(f) => {
                    tracing::error!(error = %f, "the journal writer cannot connect");
                    finish_all(&shared, works, &Err(f));
                    continue;
                }
            };
        }
        if let Some(c) = conn.as_ref() {
            run_batch(&shared, c, works).await;
        }
    }
    if let Some(worker) = &shared.worker {
        if conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            conn = connect(&shared).await.ok();
        }
        if let Some(c) = conn.as_ref() {
            match queries::release_worker(&c.client, worker.id()).await {
                Ok(released) => {
                    tracing::info!(
                        worker = worker.id(),
                        released,
                        "worker released its executions"
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot release this worker's executions; its lease will run out")
                }
            }
        }
        worker.stop();
    }
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

async fn run_batch(shared: &Shared, conn: &Conn, mut works: Vec<Work>) {
    let me = shared.worker.as_ref().map(|w| w.id());
    // Made under a worker id this process no longer has: its executions
    // may belong to another worker now.
    let stale: Vec<Work> = works
        .extract_if(.., |w| match w {
            Work::Op { me: made, .. } | Work::Life(_, made) => *made != me,
            Work::Close(_) => false,
        })
        .collect();
    if !stale.is_empty() {
        let worker = stale_worker(&stale);
        finish_all(shared, stale, &Err(Failure::Fenced(worker)));
    }
    if works.is_empty() {
        return;
    }
    match transaction(conn, &mut works, me).await {
        Ok(Ended::Committed) => finish_all(shared, works, &Ok(())),
        Ok(Ended::Open) => {
            let committed = commit(conn).await;
            finish_all(shared, works, &committed);
        }
        Err(f @ Failure::Fenced(_)) => {
            let _ = conn.client.batch_execute("ROLLBACK").await;
            if let Some(worker) = &shared.worker {
                worker.fence();
            }
            finish_all(shared, works, &Err(f));
        }
        Err(f) if conn.client.is_closed() => {
            tracing::error!(error = %f, "the journal writer lost its connection");
            finish_all(shared, works, &Err(f));
        }
        Err(f) => {
            // One work failed and PostgreSQL aborted the transaction: each
            // runs again in a transaction of its own, so that the failure
            // is its work's alone.
            tracing::debug!(error = %f, "batch failed; committing its works one by one");
            let _ = conn.client.batch_execute("ROLLBACK").await;
            for mut work in works {
                work.reset();
                let mut one = vec![work];
                let committed = match transaction(conn, &mut one, me).await {
                    Ok(Ended::Committed) => Ok(()),
                    Ok(Ended::Open) => commit(conn).await,
                    Err(f) => {
                        let _ = conn.client.batch_execute("ROLLBACK").await;
                        Err(f)
                    }
                };
                finish_all(shared, one, &committed);
            }
        }
    }
}

async fn commit(conn: &Conn) -> Committed {
    conn.client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| Failure::pg(&e))
}

fn stale_worker(stale: &[Work]) -> i64 {
    stale
        .iter()
        .find_map(|w| match w {
            Work::Op { me, .. } | Work::Life(_, me) => *me,
            Work::Close(_) => None,
        })
        .unwrap_or(-1)
}

impl Work {
    /// Whether the work is one statement prepared at connect, sent in the
    /// batch's pipeline without waiting for the one before: journal ops,
    /// and status changes other than a cancel.
    fn pipelined(&self) -> bool {
        match self {
            Work::Op { .. }
            | Work::Life(Life::Insert(..) | Life::TakeMessage(..) | Life::Claim { .. }, _) => true,
            Work::Life(Life::SetStatus { status, .. }, _) => *status != ExecutionStatus::Cancelled,
            _ => false,
        }
    }

    /// Sends a pipelined work's statement (when the future is first
    /// polled); `None` for the others.
    fn send<'a>(&'a self, conn: &'a Conn, owner: &'a i64) -> Option<ops::Pending<'a>> {
        // Which works go in the pipeline is `pipelined`'s to say alone.
        if !self.pipelined() {
            return None;
        }
        let (client, st) = (&conn.client, &conn.statements);
        Some(match self {
            Work::Op { op, .. } => ops::apply(client, st, op, owner),
            Work::Life(
                Life::SetStatus {
                    id,
                    status,
                    transition,
                    now,
                    ..
                },
                _,
            ) => ops::set_status(client, st, id, *status, transition, *owner, *now),
            Work::Life(Life::Insert(new, _), _) => ops::insert_execution(client, st, new, *owner),
            Work::Life(
                Life::Claim {
                    id,
                    now,
                    woken,
                    workflows,
                    versions,
                    ..
                },
                _,
            ) => ops::claim(client, st, id, *owner, *now, *woken, workflows, versions),
            Work::Life(Life::TakeMessage(at, entry_type, sent_by, now, _), _) => {
                ops::take_message(client, st, at, *entry_type, *sent_by, *owner, *now)
            }
            _ => return None,
        })
    }

    /// Keeps a pipelined work's result for the batch's end.
    fn keep(&mut self, r: PgResult<Piped>) {
        fn take<T>(
            slot: &mut Option<PgResult<T>>,
            r: PgResult<Piped>,
            f: impl FnOnce(Piped) -> Option<T>,
        ) {
            *slot = Some(r.and_then(|piped| {
                f(piped).ok_or_else(|| {
                    PgError::Decode(
                        "a statement of the pipeline gave another kind of result".into(),
                    )
                })
            }));
        }
        match self {
            Work::Op { result, .. } => take(result, r, |p| match p {
                Piped::Rows(n) => Some(n),
                _ => None,
            }),
            Work::Life(Life::SetStatus { result, .. }, _) => take(result, r, |p| match p {
                Piped::Rows(n) => Some(n == 1),
                _ => None,
            }),
            Work::Life(Life::Insert(_, out), _) => take(&mut out.result, r, |p| match p {
                Piped::Inserted(i) => Some(i),
                _ => None,
            }),
            Work::Life(Life::TakeMessage(.., out), _) => take(&mut out.result, r, |p| match p {
                Piped::Took(t) => Some(t),
                _ => None,
            }),
            Work::Life(Life::Claim { out, .. }, _) => take(&mut out.result, r, |p| match p {
                Piped::Claimed(c) => Some(*c),
                _ => None,
            }),
            _ => {}
        }
    }

    /// Forgets a result, to run the work again.
    fn reset(&mut self) {
        match self {
            Work::Op { result, .. } => *result = None,
            Work::Life(life, _) => life.reset(),
            Work::Close(_) => {}
        }
    }
}

/// Begins a transaction, fences, and runs every work in order: runs of
/// journal ops pipelined (the first run goes out with `BEGIN` and the
/// fence), a lifecycle write's statements one after another. Stops at the
/// first failure (PostgreSQL has then aborted the transaction, and every
/// statement sent after the failed one fails too).
async fn transaction(
    conn: &Conn,
    works: &mut [Work],
    me: Option<i64>,
) -> std::result::Result<Ended, Failure> {
    let client = &conn.client;
    let owner = me.unwrap_or(-1);
    // A batch of pipelined works only (the usual one: steps' results and
    // ends) sends its COMMIT with them: one round trip in all.
    let whole = works.iter().all(Work::pipelined);
    let mut i = 0;
    let mut first = true;
    while i < works.len() {
        let start = i;
        while i < works.len() && works[i].pipelined() {
            i += 1;
        }
        let run = &works[start..i];
        let groups = groups(run);
        let ops = join_all(
            groups
                .iter()
                .filter_map(|g| send_group(&run[g.clone()], conn, &owner)),
        );
        let results = if first {
            // Requests go out in the order they are first polled: BEGIN,
            // the fence, then the ops, in one round trip.
            first = false;
            let begin = client.batch_execute("BEGIN");
            let fence = async {
                match me {
                    Some(me) => {
                        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&me];
                        client
                            .execute(&conn.statements.fence, &params)
                            .await
                            .map(|_| ())
                    }
                    None => Ok(()),
                }
            };
            if whole {
                let commit = client.batch_execute("COMMIT");
                let (b, f, results, c) =
                    futures_util::future::join4(begin, fence, ops, commit).await;
                b.map_err(|e| Failure::pg(&e))?;
                f.map_err(|e| Failure::pg(&e))?;
                return settle(works, &groups, results, c);
            }
            let (b, f, results) = futures_util::future::join3(begin, fence, ops).await;
            b.map_err(|e| Failure::pg(&e))?;
            f.map_err(|e| Failure::pg(&e))?;
            results
        } else {
            ops.await
        };
        if let Some(f) = keep_all(&mut works[start..i], &groups, results).failed {
            return Err(f);
        }
        if let Some(Work::Life(life, _)) = works.get_mut(i) {
            life.run(client, me).await?;
            i += 1;
        }
    }
    Ok(Ended::Open)
}

/// How a batch's transaction was left by [`transaction`].
enum Ended {
    /// Its COMMIT went with its statements, and the server committed.
    Committed,
    /// Still open: the caller commits it.
    Open,
}

/// The results of a batch whose COMMIT was pipelined with its works. A
/// statement the server refused aborted the transaction, so its COMMIT
/// rolled back: the batch failed, to be run again work by work. A statement
/// the client could not encode was never sent: it alone failed, and the
/// server committed the others.
fn settle(
    works: &mut [Work],
    groups: &[Range<usize>],
    results: Vec<PgResult<Piped>>,
    commit: std::result::Result<(), tokio_postgres::Error>,
) -> std::result::Result<Ended, Failure> {
    if let Some(f) = keep_all(works, groups, results).refused {
        return Err(f);
    }
    commit.map_err(|e| Failure::pg(&e))?;
    Ok(Ended::Committed)
}

/// Most bytes of values in one group of quick steps' results: a group is
/// one message, which PostgreSQL bounds at 1 GiB.
const GROUP_BYTES: usize = 1 << 20;

/// Splits a run of pipelined works into the statements that send them:
/// consecutive quick steps' results (`ops::quick_step`) go as one, and so
/// do consecutive inserts of new executions of different ids, each group
/// up to [`GROUP_BYTES`] of values; every other work goes alone. A group
/// keeps the order of the journal: ops of one execution never cross
/// another op.
fn groups(run: &[Work]) -> Vec<Range<usize>> {
    fn quick(w: &Work) -> Option<usize> {
        match w {
            Work::Op { op, .. } => ops::quick_step(op),
            Work::Life(..) | Work::Close(_) => None,
        }
    }
    fn insert(w: &Work) -> Option<&NewExecution> {
        match w {
            Work::Life(Life::Insert(new, _), _) => Some(new),
            _ => None,
        }
    }
    let mut groups = Vec::new();
    let mut k = 0;
    while k < run.len() {
        let begin = k;
        k += 1;
        if let Some(mut bytes) = quick(&run[begin]) {
            while let Some(len) = run.get(k).and_then(quick)
                && bytes + len <= GROUP_BYTES
            {
                bytes += len;
                k += 1;
            }
        } else if let Some(first) = insert(&run[begin]) {
            // Two inserts of one id in one statement would both see the
            // row the first wrote as theirs.
            let mut ids = HashSet::from([&first.id]);
            let mut bytes = first.input.len();
            while let Some(new) = run.get(k).and_then(insert)
                && bytes + new.input.len() <= GROUP_BYTES
                && ids.insert(&new.id)
            {
                bytes += new.input.len();
                k += 1;
            }
        }
        groups.push(begin..k);
    }
    groups
}

/// Sends the statement of a group of works (see [`groups`]).
fn send_group<'a>(group: &'a [Work], conn: &'a Conn, owner: &'a i64) -> Option<ops::Pending<'a>> {
    if let [one] = group {
        return one.send(conn, owner);
    }
    if let Some(Work::Life(Life::Insert(..), _)) = group.first() {
        let new = group
            .iter()
            .filter_map(|w| match w {
                Work::Life(Life::Insert(new, _), _) => Some(new),
                _ => None,
            })
            .collect();
        return Some(ops::insert_executions(
            &conn.client,
            &conn.statements,
            new,
            *owner,
        ));
    }
    let ops = group
        .iter()
        .filter_map(|w| match w {
            Work::Op { op, .. } => Some(op),
            Work::Life(..) | Work::Close(_) => None,
        })
        .collect();
    Some(ops::complete_steps(
        &conn.client,
        &conn.statements,
        ops,
        owner,
    ))
}

/// How the statements of a run of works ended (see [`keep_all`]).
struct Kept {
    /// The first failure.
    failed: Option<Failure>,
    /// The first failure that aborted the transaction: the server refused
    /// the statement (a group's too: its ops then run again one by one,
    /// so that a failure is its op's alone), or the connection closed. A
    /// statement the client could not encode was never sent, and fails
    /// its works alone (every op of a group).
    refused: Option<Failure>,
}

/// Hands each work of a run the result of its statement (`groups` and
/// `results` in the same order).
fn keep_all(run: &mut [Work], groups: &[Range<usize>], results: Vec<PgResult<Piped>>) -> Kept {
    let mut kept = Kept {
        failed: None,
        refused: None,
    };
    for (g, r) in groups.iter().zip(results) {
        let works = &mut run[g.clone()];
        if let Err(e) = &r {
            let refused = matches!(e, PgError::Pg(e) if e.as_db_error().is_some() || e.is_closed());
            kept.failed.get_or_insert_with(|| Failure::of(e));
            if refused {
                kept.refused.get_or_insert_with(|| Failure::of(e));
            }
        }
        match (works, r) {
            ([one], r) => one.keep(r),
            (many, Ok(Piped::Refused(refused))) => {
                for (k, w) in many.iter_mut().enumerate() {
                    let written = u64::from(!refused.contains(&k));
                    w.keep(Ok(Piped::Rows(written)));
                }
            }
            (many, Ok(Piped::InsertedAll(found))) if found.len() == many.len() => {
                for (w, found) in many.iter_mut().zip(found) {
                    w.keep(Ok(Piped::Inserted(found)));
                }
            }
            (many, r) => {
                // Each work fails as the group's statement did (a lost
                // connection stays `Unavailable`, and so on).
                let failure = match r {
                    Err(e) => Failure::of(&e),
                    Ok(_) => Failure::of(&PgError::Decode(
                        "a group's statement gave another kind of result".into(),
                    )),
                };
                for w in many {
                    w.keep(Err(PgError::Failed(failure.clone())));
                }
            }
        }
    }
    kept
}

fn finish_all(shared: &Shared, works: Vec<Work>, committed: &Committed) {
    for work in works {
        match work {
            Work::Op {
                op, reply, result, ..
            } => {
                let outcome = match (result, committed) {
                    (Some(Ok(0)), Ok(())) => {
                        shared.disown(op.owner());
                        Err(Error::Disowned(op.owner().clone()))
                    }
                    (result, committed) => outcome(result, committed).map(|_| ()),
                };
                match (reply, outcome) {
                    (Some(reply), outcome) => {
                        let _ = reply.send(outcome);
                    }
                    (None, Ok(())) => {}
                    (None, Err(e)) => {
                        tracing::error!(execution = %op.owner(), error = %e, "queued journal write was not committed");
                        shared.disown(op.owner());
                    }
                }
            }
            Work::Life(life, _) => life.finish(committed),
            Work::Close(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl Life {
    fn reset(&mut self) {
        match self {
            Life::Insert(_, out) => out.result = None,
            Life::Claim { out, .. } => out.result = None,
            Life::BeginRestart(_, _, out) => out.result = None,
            Life::SetStatus { result, .. } => *result = None,
            Life::WakeNow(_, _, out) => out.result = None,
            Life::Register(_, _, out) => out.result = None,
            Life::ClaimOrphans { out, .. } => out.result = None,
            Life::Reap(out) => out.result = None,
            Life::FinishRequest(_, _, _, out) => out.result = None,
            Life::TakeMessage(_, _, _, _, out) => out.result = None,
        }
    }

    /// Runs the write; its result waits in the work for the commit.
    async fn run(&mut self, client: &Object, me: Option<i64>) -> std::result::Result<(), Failure> {
        fn keep<T>(
            slot: &mut Option<PgResult<T>>,
            r: PgResult<T>,
        ) -> std::result::Result<(), Failure> {
            let failed = r.as_ref().err().map(Failure::of);
            *slot = Some(r);
            failed.map_or(Ok(()), Err)
        }
        let owner = me.unwrap_or(-1);
        match self {
            // Sent in the pipeline (`Work::send`): never run here.
            Life::Insert(..) | Life::TakeMessage(..) | Life::Claim { .. } => Ok(()),
            Life::BeginRestart(id, now, out) => {
                let r = async {
                    if !queries::begin_restart(client, id, me, *now).await? {
                        return Ok(None);
                    }
                    let Some(row) = queries::load_execution(client, id).await? else {
                        return Ok(None);
                    };
                    let journal = queries::load_journal(client, id).await?;
                    Ok(Some(Loaded { row, journal }))
                }
                .await;
                keep(&mut out.result, r)
            }
            Life::SetStatus {
                id,
                status,
                transition,
                now,
                result,
                ..
            } => keep(
                result,
                queries::set_status(client, id, *status, transition, me, *now).await,
            ),
            Life::WakeNow(id, now, out) => {
                keep(&mut out.result, queries::wake_now(client, id, *now).await)
            }
            Life::Register(rows, now, out) => keep(
                &mut out.result,
                queries::register_workflows(client, rows, *now).await,
            ),
            Life::ClaimOrphans {
                workflows,
                versions,
                due_by,
                limit,
                out,
            } => keep(
                &mut out.result,
                queries::claim_orphans(client, owner, workflows, versions, *due_by, *limit).await,
            ),
            Life::Reap(out) => keep(&mut out.result, queries::reap(client).await),
            Life::FinishRequest(request, outcome, now, out) => keep(
                &mut out.result,
                queries::finish_request(client, *request, outcome, *now).await,
            ),
        }
    }

    fn finish(self, committed: &Committed) {
        match self {
            Life::Insert(_, out) => out.finish(committed),
            Life::Claim { out, .. } => out.finish(committed),
            Life::BeginRestart(_, _, out) => out.finish(committed),
            Life::SetStatus {
                transition,
                result,
                reply,
                ..
            } => {
                let _ = reply.send(outcome(result, committed).map(|changed| (changed, transition)));
            }
            Life::WakeNow(_, _, out) => out.finish(committed),
            Life::Register(_, _, out) => out.finish(committed),
            Life::ClaimOrphans { out, .. } => out.finish(committed),
            Life::Reap(out) => out.finish(committed),
            Life::FinishRequest(_, _, _, out) => out.finish(committed),
            Life::TakeMessage(_, _, _, _, out) => out.finish(committed),
        }
    }
}
