//! The SQL of the journal's typed operations on PostgreSQL: each op is one
//! statement (several tables through data-modifying CTEs), so a batch sends
//! them all at once and the server runs them in order; quick steps'
//! results also go many to a statement ([`COMPLETE_STEPS`]). Every
//! statement writes only if the worker owns the execution: zero rows means
//! it lost it.

use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use super::inbox::{self, Took};
use super::{PgError, PgResult, n, queries};
use crate::record::ExecutionId;
use crate::status::ExecutionStatus;
use crate::status::StepStatus;
use crate::store::Transition;
use crate::store::{
    AttemptEnd, Claimed, EntryAt, Inserted, Interner, JournalOp, Loaded, NewExecution,
};

/// The prepared statements of the journal ops, one per kind.
pub(super) struct Statements {
    begin_attempt: Statement,
    /// A quick step's result: its first attempt, whose start was never
    /// journaled, so the entry is new. A plain insert (an upsert writes a
    /// second WAL record per row to confirm its speculative insertion).
    complete_step: Statement,
    /// Quick steps' results, many in one statement (see [`COMPLETE_STEPS`]).
    complete_steps: Statement,
    complete_step_logged: Statement,
    fail_attempt: Statement,
    record_value: Statement,
    record_sleep: Statement,
    complete_sleep: Statement,
    /// A `recv` begins to wait: a `waiting` entry.
    record_wait: Statement,
    /// A `recv`'s deadline passed: its entry completes without a value.
    time_out: Statement,
    /// The `event` entry and the key's latest value (two tables, one
    /// statement).
    set_event: Statement,
    /// The `stream` entry and the stream's next row (two tables, one
    /// statement).
    write_stream: Statement,
    reset_recovery: Statement,
    /// `SELECT fence($1)`: see the schema.
    pub fence: Statement,
    /// An execution's status change (not a cancel, which ends its waiting
    /// entries too: see `queries::set_status`).
    set_status: Statement,
    /// A new execution (see [`insert_execution`]).
    insert_execution: Statement,
    /// New executions, many in one statement ([`INSERT_EXECUTIONS`]).
    insert_executions: Statement,
    /// A `recv` takes a message (`inbox::TAKE_MESSAGE`).
    take_message: Statement,
    /// An execution claimed to be driven ([`CLAIM`]), and its journal
    /// ([`CLAIMED_JOURNAL`]).
    claim: Statement,
    claimed_journal: Statement,
}

/// What a statement of the batch's pipeline gives back.
pub(super) enum Piped {
    /// The rows it wrote (journal ops, status changes).
    Rows(u64),
    Took(Took),
    Inserted(Inserted),
    /// Boxed: a loaded execution is much larger than the others.
    Claimed(Box<Claimed>),
    /// A group's statement ([`complete_steps`]): the places in the group
    /// (from 0) of the ops it did not write, their executions not owned.
    Refused(Vec<usize>),
    /// A group of new executions ([`insert_executions`]): what each found,
    /// in order.
    InsertedAll(Vec<Inserted>),
}

/// The results of quick steps (see `complete_step`), one row per element
/// of the arrays `$1` and `$3` to `$13` for worker `$2`: one statement, one
/// round of the server's executor and one reply for the whole group
/// instead of one each. Gives the places (from 1) of the rows not written
/// because `$2` does not own their execution.
///
/// The ownership test is a scalar subquery on the key, which the planner
/// runs per row through the primary key: a join could be planned as a scan
/// of every execution, as the generic plan of a statement prepared on an
/// empty table may be (see [`OWNED`]).
const COMPLETE_STEPS: &str = "WITH u AS MATERIALIZED (
         SELECT * FROM unnest($1::text[], $3::int8[], $4::text[], $5::int8[], $6::text[], $7::text[],
                              $8::int8[], $9::int8[], $10::bytea[], $11::int8[], $12::int8[], $13::int4[])
             WITH ORDINALITY AS u(id, position, branch, local, kind, name, occurrence, attempts, output,
                                  started_at, completed_at, value_type, i)),
     mine AS MATERIALIZED (
         SELECT * FROM u WHERE (SELECT e.owner FROM workflow_executions e WHERE e.id = u.id) = $2),
     ins AS (
         INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
              started_at, completed_at, value_type)
         SELECT id, position, branch, local, kind, name, occurrence, 'completed', attempts, output,
                started_at, completed_at, value_type
         FROM mine)
     SELECT ARRAY(SELECT i FROM u EXCEPT ALL SELECT i FROM mine)";

/// Takes execution `$1` for worker `$2` at `$3`, moving it to `running`:
/// unless it is finished, of a workflow (`$5`) or a version (`$6`, empty:
/// all) this worker does not run, owned by another worker, or (a wake-up,
/// `$4`) no longer sleeping or waiting. The row as claimed, and whether
/// there is one at all. The update locks the row and reads its latest
/// version, so two claims of one execution are in one order.
const CLAIM: &str = "WITH found AS (SELECT 1 FROM workflow_executions WHERE id = $1),
     claimed AS (
         UPDATE workflow_executions
         SET status = 'running', owner = $2,
             claim_seq = claim_seq + CASE WHEN owner = $2 THEN 0 ELSE 1 END,
             pause_cause = CASE WHEN status = 'running' THEN pause_cause END,
             updated_at = CASE WHEN status = 'running' THEN updated_at ELSE $3 END
         WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
           AND workflow_name = ANY($5)
           AND (cardinality($6::text[]) = 0 OR app_version = '' OR app_version = ANY($6))
           AND (owner IS NULL OR owner = $2)
           AND (NOT $4 OR status IN ('sleeping', 'waiting'))
         RETURNING {COLUMNS})
     SELECT EXISTS (SELECT 1 FROM found), claimed.* FROM (SELECT 1) AS one LEFT JOIN claimed ON true";

/// The journal of execution `$1` if worker `$2` has it running: sent right
/// after [`CLAIM`] in the pipeline, it sees what the claim did.
const CLAIMED_JOURNAL: &str = "SELECT {COLUMNS} FROM step_executions
     WHERE execution_id = $1
       AND EXISTS (SELECT 1 FROM workflow_executions WHERE id = $1 AND owner + 0 = $2 AND status = 'running')
     ORDER BY position";

/// A new execution, owned by `$7`, unless the id is taken; then the
/// existing one's workflow and parent (none when the row that took it was
/// committed after the statement's snapshot: see `PgStore::insert_execution`).
const INSERT_EXECUTION: &str = "WITH ins AS (
         INSERT INTO workflow_executions
             (id, workflow_name, status, codec, input, options, created_at, updated_at, owner, claim_seq,
              app_version, input_type, deadline_at, parent_id)
         VALUES ($1, $2, 'running', $3, $4, $5, $6, $6, $7, 1, $8, $9, $10, $11)
         ON CONFLICT (id) DO NOTHING
         RETURNING 1)
     SELECT EXISTS (SELECT 1 FROM ins), e.workflow_name, e.parent_id
     FROM (SELECT 1) AS one LEFT JOIN workflow_executions e ON e.id = $1";

/// [`INSERT_EXECUTION`] for many new executions (of different ids), one
/// per element of the arrays, owned by `$7`: for each, in the arrays'
/// order, whether it was created, and else the existing one's workflow and
/// parent (each found by a scalar subquery on the key).
const INSERT_EXECUTIONS: &str = "WITH u AS MATERIALIZED (
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::text[], $6::int8[],
                              $8::text[], $9::int4[], $10::int8[], $11::text[])
             WITH ORDINALITY AS u(id, workflow_name, codec, input, options, now, app_version,
                                  input_type, deadline_at, parent_id, i)),
     ins AS (
         INSERT INTO workflow_executions
             (id, workflow_name, status, codec, input, options, created_at, updated_at, owner, claim_seq,
              app_version, input_type, deadline_at, parent_id)
         SELECT id, workflow_name, 'running', codec, input, options, now, now, $7, 1, app_version,
                input_type, deadline_at, parent_id
         FROM u
         ON CONFLICT (id) DO NOTHING
         RETURNING id)
     SELECT ins.id IS NOT NULL,
            (SELECT e.workflow_name FROM workflow_executions e WHERE e.id = u.id),
            (SELECT e.parent_id FROM workflow_executions e WHERE e.id = u.id)
     FROM u LEFT JOIN ins ON ins.id = u.id
     ORDER BY u.i";

/// The completed entry of an event or a stream value, if `own` has a row:
/// `$1` to `$8` its place (`Place`), `$9` the value, `$10` its type, `$11`
/// the time. Written as `s`, one row per entry written.
const VALUE_ENTRY: &str = "s AS (INSERT INTO step_executions
         (execution_id, position, branch, local, kind, name, occurrence, status, attempts,
          output, started_at, completed_at, value_type)
     SELECT $1, $3, $4, $5, $6, $7, $8, 'completed', 1, $9, $11, $11, $10 FROM own
     RETURNING 1)";

/// Rows of the execution `$1` owned by worker `$2`: the guard of every op.
///
/// `owner + 0`, here and wherever an execution is found by id and owner: the
/// statements are prepared when the writer connects, and on a new schema's
/// empty table the planner rates the by-owner index as good as the key, so
/// a generic plan could look the row up among all the worker's executions
/// (10,000 sleepers: 3 ms per journal write instead of 0.03). An
/// expression is not the indexed column: the key is the only way in.
const OWNED: &str = "own AS (SELECT 1 FROM workflow_executions WHERE id = $1 AND owner + 0 = $2)";

impl Statements {
    pub(super) async fn prepare(
        client: &ClientWrapper,
    ) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            begin_attempt: client
                .prepare(&format!(
                    "WITH {OWNED},
                     s AS (INSERT INTO step_executions
                               (execution_id, position, branch, local, kind, name, occurrence, status, attempts,
                                started_at)
                           SELECT $1, $3, $4, $5, $6, $7, $8, 'running', $9, $10 FROM own
                           ON CONFLICT (execution_id, position)
                           DO UPDATE SET status = 'running', attempts = excluded.attempts
                           RETURNING 1)
                     INSERT INTO step_attempts (execution_id, position, attempt, status, started_at)
                     SELECT $1, $3, $9, 'running', $10 FROM s
                     ON CONFLICT (execution_id, position, attempt)
                     DO UPDATE SET status = 'running', started_at = excluded.started_at, ended_at = NULL,
                                   error_message = NULL"
                ))
                .await?,
            complete_step: client
                .prepare(&format!(
                    "WITH {OWNED}
                     INSERT INTO step_executions
                         (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
                          started_at, completed_at, value_type)
                     SELECT $1, $3, $4, $5, $6, $7, $8, 'completed', $9, $10, $11, $12, $13 FROM own"
                ))
                .await?,
            complete_steps: client.prepare(COMPLETE_STEPS).await?,
            complete_step_logged: client
                .prepare(&format!(
                    "WITH {OWNED},
                     s AS (INSERT INTO step_executions
                               (execution_id, position, branch, local, kind, name, occurrence, status, attempts,
                                output, started_at, completed_at, value_type)
                           SELECT $1, $3, $4, $5, $6, $7, $8, 'completed', $9, $10, $11, $12, $13 FROM own
                           ON CONFLICT (execution_id, position)
                           DO UPDATE SET status = 'completed', attempts = excluded.attempts,
                                         output = excluded.output, error = NULL,
                                         completed_at = excluded.completed_at,
                                         value_type = excluded.value_type
                           RETURNING 1)
                     INSERT INTO step_attempts (execution_id, position, attempt, status, started_at, ended_at)
                     SELECT $1, $3, $9, 'completed', $11, $12 FROM s
                     ON CONFLICT (execution_id, position, attempt)
                     DO UPDATE SET status = 'completed', ended_at = excluded.ended_at"
                ))
                .await?,
            fail_attempt: client
                .prepare(&format!(
                    "WITH {OWNED},
                     s AS (INSERT INTO step_executions
                               (execution_id, position, branch, local, kind, name, occurrence, status, attempts,
                                error, error_message, started_at, completed_at, wake_at, value_type)
                           SELECT $1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $17 FROM own
                           ON CONFLICT (execution_id, position)
                           DO UPDATE SET status = excluded.status, attempts = excluded.attempts,
                                         error = excluded.error, error_message = excluded.error_message,
                                         completed_at = excluded.completed_at, wake_at = excluded.wake_at,
                                         value_type = excluded.value_type
                           RETURNING 1)
                     INSERT INTO step_attempts
                         (execution_id, position, attempt, status, started_at, ended_at, error_message)
                     SELECT $1, $3, $10, 'failed', $13, $16, $12 FROM s
                     ON CONFLICT (execution_id, position, attempt)
                     DO UPDATE SET status = 'failed', ended_at = excluded.ended_at,
                                   error_message = excluded.error_message"
                ))
                .await?,
            record_value: client
                .prepare(&format!(
                    "WITH {OWNED}
                     INSERT INTO step_executions
                         (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
                          started_at, completed_at)
                     SELECT $1, $3, $4, $5, $6, $7, $8, 'completed', 1, $9, $10, $10 FROM own"
                ))
                .await?,
            record_sleep: client
                .prepare(&format!(
                    "WITH {OWNED}
                     INSERT INTO step_executions
                         (execution_id, position, branch, local, kind, name, occurrence, status, attempts, wake_at,
                          started_at)
                     SELECT $1, $3, $4, $5, $6, $7, $8, 'sleeping', 1, $9, $10 FROM own"
                ))
                .await?,
            complete_sleep: client
                .prepare(
                    "UPDATE step_executions SET status = 'completed', completed_at = $4
                     WHERE execution_id = $1 AND position = $3
                       AND EXISTS (SELECT 1 FROM workflow_executions WHERE id = $1 AND owner + 0 = $2)",
                )
                .await?,
            record_wait: client
                .prepare(&format!(
                    "WITH {OWNED}
                     INSERT INTO step_executions
                         (execution_id, position, branch, local, kind, name, occurrence, status, attempts, wake_at,
                          started_at)
                     SELECT $1, $3, $4, $5, $6, $7, $8, 'waiting', 1, $9, $10 FROM own"
                ))
                .await?,
            time_out: client
                .prepare(
                    "UPDATE step_executions SET status = 'completed', completed_at = $4
                     WHERE execution_id = $1 AND position = $3
                       AND EXISTS (SELECT 1 FROM workflow_executions WHERE id = $1 AND owner + 0 = $2)",
                )
                .await?,
            // The key is the entry's name ($7).
            set_event: client
                .prepare(&format!(
                    "WITH {OWNED}, {VALUE_ENTRY}
                     INSERT INTO events (execution_id, key, value, value_type, updated_at)
                     SELECT $1, $7, $9, $10, $11 FROM s
                     ON CONFLICT (execution_id, key)
                     DO UPDATE SET value = excluded.value, value_type = excluded.value_type,
                                   updated_at = excluded.updated_at"
                ))
                .await?,
            // The key is the entry's name ($7); no value ($9 NULL) ends the stream.
            write_stream: client
                .prepare(&format!(
                    "WITH {OWNED}, {VALUE_ENTRY}
                     INSERT INTO stream_entries (execution_id, key, seq, value, value_type, written_at)
                     SELECT $1, $7,
                            coalesce((SELECT max(seq) + 1 FROM stream_entries
                                      WHERE execution_id = $1 AND key = $7), 0),
                            $9, $10, $11
                     FROM s"
                ))
                .await?,
            reset_recovery: client
                .prepare(
                    "UPDATE workflow_executions SET recovery_attempts = 0 WHERE id = $1 AND owner + 0 = $2",
                )
                .await?,
            fence: client.prepare("SELECT fence($1)").await?,
            set_status: client.prepare(queries::SET_STATUS).await?,
            insert_execution: client.prepare(INSERT_EXECUTION).await?,
            insert_executions: client.prepare(INSERT_EXECUTIONS).await?,
            take_message: client.prepare(inbox::TAKE_MESSAGE).await?,
            claim: client
                .prepare(&CLAIM.replace("{COLUMNS}", queries::EXECUTION_COLUMNS))
                .await?,
            claimed_journal: client
                .prepare(&CLAIMED_JOURNAL.replace("{COLUMNS}", queries::ENTRY_COLUMNS))
                .await?,
        })
    }
}

/// A running statement of the batch.
pub(super) type Pending<'a> = Pin<Box<dyn Future<Output = PgResult<Piped>> + Send + 'a>>;

/// Sends `op` for worker `me` (the statement goes out when the future is
/// first polled). Zero rows written means the worker does not own the
/// execution.
pub(super) fn apply<'a>(
    client: &'a ClientWrapper,
    st: &'a Statements,
    op: &'a JournalOp,
    me: &'a i64,
) -> Pending<'a> {
    Box::pin(async move {
        send(client, st, op, me)
            .await
            .map(Piped::Rows)
            .map_err(PgError::from)
    })
}

/// Whether `op` may go in a group of [`complete_steps`], and the bytes of
/// its value.
pub(super) fn quick_step(op: &JournalOp) -> Option<usize> {
    match op {
        JournalOp::CompleteStep {
            log_attempt: false,
            output,
            ..
        } => Some(output.len()),
        _ => None,
    }
}

/// Sends quick steps' results (ops for which [`quick_step`] is `Some`) for
/// worker `me` as one statement ([`COMPLETE_STEPS`]).
pub(super) fn complete_steps<'a>(
    client: &'a ClientWrapper,
    st: &'a Statements,
    ops: Vec<&'a JournalOp>,
    me: &'a i64,
) -> Pending<'a> {
    Box::pin(async move {
        let len = ops.len();
        let mut ids = Vec::with_capacity(len);
        let mut positions = Vec::with_capacity(len);
        let mut branches = Vec::with_capacity(len);
        let mut locals = Vec::with_capacity(len);
        let mut kinds = Vec::with_capacity(len);
        let mut names = Vec::with_capacity(len);
        let mut occurrences = Vec::with_capacity(len);
        let mut attempts = Vec::with_capacity(len);
        let mut outputs = Vec::with_capacity(len);
        let mut starts = Vec::with_capacity(len);
        let mut ends = Vec::with_capacity(len);
        let mut types = Vec::with_capacity(len);
        for op in &ops {
            let JournalOp::CompleteStep {
                at,
                attempt,
                started,
                output,
                now,
                value_type,
                ..
            } = op
            else {
                return Err(PgError::Decode(
                    "a group of quick steps holds another journal op".into(),
                ));
            };
            ids.push(at.execution.as_str());
            positions.push(n(at.position));
            branches.push(at.branch.as_ref());
            locals.push(n(at.local));
            kinds.push(at.kind.as_str());
            names.push(at.name.as_ref());
            occurrences.push(n(at.occurrence));
            attempts.push(n(*attempt));
            outputs.push(output.as_slice());
            starts.push(*started);
            ends.push(*now);
            types.push(*value_type);
        }
        let params: [Param<'_>; 13] = [
            &ids,
            me,
            &positions,
            &branches,
            &locals,
            &kinds,
            &names,
            &occurrences,
            &attempts,
            &outputs,
            &starts,
            &ends,
            &types,
        ];
        let row = client.query_one(&st.complete_steps, &params).await?;
        let refused = row
            .try_get::<_, Vec<i64>>(0)?
            .into_iter()
            .map(|i| usize::try_from(i - 1))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| PgError::Decode("a group's refused place is out of range".into()))?;
        Ok(Piped::Refused(refused))
    })
}

/// Sends the insert of a new execution owned by `owner` in the batch's
/// pipeline.
pub(super) fn insert_execution<'a>(
    client: &'a ClientWrapper,
    st: &'a Statements,
    e: &'a NewExecution,
    owner: i64,
) -> Pending<'a> {
    Box::pin(async move {
        let row = client
            .query_one(
                &st.insert_execution,
                &[
                    &e.id.as_str(),
                    &e.workflow,
                    &e.codec.as_str(),
                    &e.input,
                    &e.options,
                    &e.now,
                    &owner,
                    &e.app_version,
                    &e.input_type,
                    &e.deadline_at,
                    &e.parent_id.as_ref().map(ExecutionId::as_str),
                ],
            )
            .await?;
        let inserted = if row.try_get::<_, bool>(0)? {
            Inserted::Created
        } else {
            Inserted::Existing {
                workflow: row.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
                parent: row.try_get::<_, Option<String>>(2)?.map(ExecutionId::new),
            }
        };
        Ok(Piped::Inserted(inserted))
    })
}

/// Sends the inserts of new executions (of different ids) owned by
/// `owner` as one statement ([`INSERT_EXECUTIONS`]).
pub(super) fn insert_executions<'a>(
    client: &'a ClientWrapper,
    st: &'a Statements,
    new: Vec<&'a NewExecution>,
    owner: i64,
) -> Pending<'a> {
    Box::pin(async move {
        let len = new.len();
        let mut ids = Vec::with_capacity(len);
        let mut workflows = Vec::with_capacity(len);
        let mut codecs = Vec::with_capacity(len);
        let mut inputs = Vec::with_capacity(len);
        let mut options = Vec::with_capacity(len);
        let mut nows = Vec::with_capacity(len);
        let mut versions = Vec::with_capacity(len);
        let mut types = Vec::with_capacity(len);
        let mut deadlines = Vec::with_capacity(len);
        let mut parents = Vec::with_capacity(len);
        for e in &new {
            ids.push(e.id.as_str());
            workflows.push(e.workflow);
            codecs.push(e.codec.as_str());
            inputs.push(e.input.as_slice());
            options.push(e.options.as_str());
            nows.push(e.now);
            versions.push(e.app_version.as_str());
            types.push(e.input_type);
            deadlines.push(e.deadline_at);
            parents.push(e.parent_id.as_ref().map(ExecutionId::as_str));
        }
        let params: [Param<'_>; 11] = [
            &ids, &workflows, &codecs, &inputs, &options, &nows, &owner, &versions, &types,
            &deadlines, &parents,
        ];
        let rows = client.query(&st.insert_executions, &params).await?;
        if rows.len() != len {
            return Err(PgError::Decode(format!(
                "a group of {len} new executions gave {} rows",
                rows.len()
            )));
        }
        rows.iter()
            .map(|row| {
                Ok(if row.try_get::<_, bool>(0)? {
                    Inserted::Created
                } else {
                    Inserted::Existing {
                        workflow: row.try_get::<_, Option<String>>(1)?.unwrap_or_default(),
                        parent: row.try_get::<_, Option<String>>(2)?.map(ExecutionId::new),
                    }
                })
            })
            .collect::<PgResult<Vec<_>>>()
            .map(Piped::InsertedAll)
    })
}

/// Sends the claim of an execution and the read of its journal in the
/// batch's pipeline (see [`CLAIM`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn claim<'a>(
    client: &'a ClientWrapper,
    st: &'a Statements,
    id: &'a ExecutionId,
    me: i64,
    now: i64,
    woken: bool,
    workflows: &'a [String],
    versions: &'a [String],
) -> Pending<'a> {
    Box::pin(async move {
        let id = id.as_str();
        let claim_params: [Param<'_>; 6] = [&id, &me, &now, &woken, &workflows, &versions];
        let journal_params: [Param<'_>; 2] = [&id, &me];
        let claim = client.query_one(&st.claim, &claim_params);
        let journal = client.query(&st.claimed_journal, &journal_params);
        // Both go out at the first poll, in this order.
        let (claimed, journal) = futures_util::future::join(claim, journal).await;
        let (claimed, journal) = (claimed?, journal?);
        if !claimed.try_get::<_, bool>(0)? {
            return Ok(Piped::Claimed(Box::new(Claimed::Missing)));
        }
        // The claimed row's columns follow the flag; none when untouched.
        if claimed.try_get::<_, Option<String>>(1)?.is_none() {
            return Ok(Piped::Claimed(Box::new(Claimed::Untouched)));
        }
        let row = queries::execution_row_at(&claimed, 1)?;
        let mut names = Interner::default();
        let mut branches = Interner::default();
        let journal = journal
            .iter()
            .map(|r| queries::entry_row(r, 0, &mut names, &mut branches))
            .collect::<PgResult<Vec<_>>>()?;
        Ok(Piped::Claimed(Box::new(Claimed::Loaded(Loaded {
            row,
            journal,
        }))))
    })
}

/// Sends a `recv`'s take of a message in the batch's pipeline (see
/// `inbox::TAKE_MESSAGE`).
pub(super) fn take_message<'a>(
    client: &'a ClientWrapper,
    st: &'a Statements,
    at: &'a EntryAt,
    entry_type: i32,
    sent_by: Option<i64>,
    me: i64,
    now: i64,
) -> Pending<'a> {
    Box::pin(async move {
        inbox::take_message(client, &st.take_message, at, entry_type, sent_by, me, now)
            .await
            .map(Piped::Took)
    })
}

/// Sends a status change for worker `me` in the batch's pipeline; one row
/// written means it changed (see `queries::set_status`).
pub(super) fn set_status<'a>(
    client: &'a ClientWrapper,
    st: &'a Statements,
    id: &'a ExecutionId,
    status: ExecutionStatus,
    t: &'a Transition,
    me: i64,
    now: i64,
) -> Pending<'a> {
    Box::pin(async move {
        let completed_at = status.is_terminal().then_some(now);
        let release = status.is_terminal() || status == ExecutionStatus::Paused;
        let cause = t.cause.map(|c| c.as_str());
        client
            .execute(
                &st.set_status,
                &[
                    &id.as_str(),
                    &status.as_str(),
                    &t.output,
                    &t.error,
                    &t.message,
                    &cause,
                    &t.wake_at,
                    &now,
                    &completed_at,
                    &release,
                    &me,
                    &t.value_type,
                ],
            )
            .await
            .map(Piped::Rows)
            .map_err(PgError::from)
    })
}

/// Where an entry sits: `$1` and `$3` to `$8` of every statement that
/// writes one (`$2` is the worker).
struct Place<'a> {
    execution: &'a str,
    position: i64,
    branch: &'a str,
    local: i64,
    kind: &'static str,
    name: &'a str,
    occurrence: i64,
}

type Param<'a> = &'a (dyn ToSql + Sync);

impl<'a> Place<'a> {
    fn of(at: &'a EntryAt) -> Place<'a> {
        Place {
            execution: at.execution.as_str(),
            position: n(at.position),
            branch: at.branch.as_ref(),
            local: n(at.local),
            kind: at.kind.as_str(),
            name: at.name.as_ref(),
            occurrence: n(at.occurrence),
        }
    }

    /// `$1` to `$8`, followed by `rest` from `$9` on.
    fn with<'b>(&'b self, me: &'b i64, rest: &[Param<'b>]) -> Vec<Param<'b>> {
        let mut params: Vec<Param<'b>> = vec![
            &self.execution,
            me,
            &self.position,
            &self.branch,
            &self.local,
            &self.kind,
            &self.name,
            &self.occurrence,
        ];
        params.extend_from_slice(rest);
        params
    }
}

async fn send(
    client: &ClientWrapper,
    st: &Statements,
    op: &JournalOp,
    me: &i64,
) -> Result<u64, tokio_postgres::Error> {
    match op {
        JournalOp::BeginAttempt {
            at,
            attempt,
            started,
        } => {
            let (place, attempt) = (Place::of(at), n(*attempt));
            let params = place.with(me, &[&attempt, started]);
            client.execute(&st.begin_attempt, &params).await
        }
        JournalOp::CompleteStep {
            at,
            attempt,
            started,
            output,
            now,
            log_attempt,
            value_type,
        } => {
            let stmt = if *log_attempt {
                &st.complete_step_logged
            } else {
                &st.complete_step
            };
            let (place, attempt) = (Place::of(at), n(*attempt));
            let params = place.with(me, &[&attempt, output, started, now, value_type]);
            client.execute(stmt, &params).await
        }
        JournalOp::FailAttempt {
            at,
            attempt,
            started,
            message,
            end,
            now,
        } => {
            let (status, error, completed_at, wake_at, value_type) = match end {
                AttemptEnd::RetryAt(retry_at) => {
                    (StepStatus::Retrying, None, None, Some(*retry_at), None)
                }
                AttemptEnd::Interrupted => (StepStatus::Retrying, None, None, None, None),
                AttemptEnd::Failed(error, value_type) => (
                    StepStatus::Failed,
                    Some(error.as_slice()),
                    Some(*now),
                    None,
                    Some(*value_type),
                ),
            };
            let (place, attempt) = (Place::of(at), n(*attempt));
            let status = status.as_str();
            let params = place.with(
                me,
                &[
                    &status,
                    &attempt,
                    &error,
                    message,
                    started,
                    &completed_at,
                    &wake_at,
                    now,
                    &value_type,
                ],
            );
            client.execute(&st.fail_attempt, &params).await
        }
        JournalOp::RecordValue { at, output, now } => {
            let place = Place::of(at);
            let params = place.with(me, &[output, now]);
            client.execute(&st.record_value, &params).await
        }
        JournalOp::RecordSleep { at, wake_at, now } => {
            let place = Place::of(at);
            let params = place.with(me, &[wake_at, now]);
            client.execute(&st.record_sleep, &params).await
        }
        JournalOp::CompleteSleep { at, now } => {
            client
                .execute(
                    &st.complete_sleep,
                    &[&at.execution.as_str(), me, &n(at.position), now],
                )
                .await
        }
        JournalOp::RecordWait { at, deadline, now } => {
            let place = Place::of(at);
            let params = place.with(me, &[deadline, now]);
            client.execute(&st.record_wait, &params).await
        }
        JournalOp::TimeOut { at, now } => {
            client
                .execute(
                    &st.time_out,
                    &[&at.execution.as_str(), me, &n(at.position), now],
                )
                .await
        }
        JournalOp::SetEvent {
            at,
            value,
            value_type,
            now,
        } => {
            let place = Place::of(at);
            let params = place.with(me, &[value, value_type, now]);
            client.execute(&st.set_event, &params).await
        }
        JournalOp::WriteStream {
            at,
            value,
            value_type,
            now,
        } => {
            let place = Place::of(at);
            let params = place.with(me, &[value, value_type, now]);
            client.execute(&st.write_stream, &params).await
        }
        JournalOp::ResetRecovery { id } => {
            client
                .execute(&st.reset_recovery, &[&id.as_str(), me])
                .await
        }
    }
}
