//! The SQL of the execution lifecycle and of every read. Every function
//! takes a connection and blocks; the store runs them on the writer thread
//! or a blocking thread.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, Row, Statement, named_params, params};

use crate::codec::{Codec, Payload};
use crate::record::{
    AttemptRecord, ExecutionId, ExecutionInfo, ExecutionSummary, ListFilter, StepKey, StepRecord,
    SupersededStep, from_millis, to_millis,
};
use crate::status::{AdminAction, AttemptStatus, EntryKind, ExecutionStatus, StepStatus};
use crate::store::{
    ChildRow, Entry, ExecutionRow, Inserted, Interner, Loaded, NewExecution, Request,
    RequestAction, START_ACTION, Transition, Unfinished, WorkflowRow,
};

pub(super) fn insert_execution(conn: &Connection, e: &NewExecution) -> rusqlite::Result<Inserted> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO workflow_executions
                 (id, workflow_name, status, codec, input, options, created_at, updated_at, app_version,
                  input_type, deadline_at, parent_id)
             VALUES (:id, :workflow, 'running', :codec, :input, :options, :now, :now, :app_version,
                     :input_type, :deadline_at, :parent_id)
             ON CONFLICT (id) DO NOTHING",
        )?
        .execute(named_params! {
            ":id": e.id.as_str(),
            ":workflow": e.workflow,
            ":codec": e.codec.as_str(),
            ":input": e.input,
            ":options": e.options,
            ":now": e.now,
            ":app_version": e.app_version,
            ":input_type": e.input_type,
            ":deadline_at": e.deadline_at,
            ":parent_id": e.parent_id.as_ref().map(ExecutionId::as_str),
        })?;
    if inserted == 1 {
        return Ok(Inserted::Created);
    }
    let (workflow, parent) = conn
        .prepare_cached("SELECT workflow_name, parent_id FROM workflow_executions WHERE id = ?1")?
        .query_row([e.id.as_str()], |r| {
            Ok((r.get(0)?, r.get::<_, Option<String>>(1)?))
        })?;
    Ok(Inserted::Existing {
        workflow,
        parent: parent.map(ExecutionId::new),
    })
}

const EXECUTION_COLUMNS: &str =
    "id, workflow_name, status, codec, input, output, error, error_message,
     options, restart_attempt, wake_at, created_at, updated_at, completed_at, app_version,
     input_type, output_type, deadline_at, parent_id";

fn execution_row(r: &Row<'_>) -> rusqlite::Result<ExecutionRow> {
    let codec_name: String = r.get(3)?;
    let codec = Codec::from_name(&codec_name).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            3,
            rusqlite::types::Type::Text,
            format!("unknown codec `{codec_name}` (built without its cargo feature?)").into(),
        )
    })?;
    Ok(ExecutionRow {
        id: ExecutionId::new(r.get::<_, String>(0)?),
        workflow: r.get(1)?,
        status: r.get(2)?,
        codec,
        input: r.get(4)?,
        output: r.get(5)?,
        error: r.get(6)?,
        error_message: r.get(7)?,
        options: r.get(8)?,
        restart_attempt: r.get(9)?,
        wake_at: r.get(10)?,
        created_at: r.get(11)?,
        updated_at: r.get(12)?,
        completed_at: r.get(13)?,
        app_version: r.get(14)?,
        input_type: r.get(15)?,
        output_type: r.get(16)?,
        deadline_at: r.get(17)?,
        parent_id: r.get::<_, Option<String>>(18)?.map(ExecutionId::new),
        owner: None,
    })
}

pub(super) fn load_execution(
    conn: &Connection,
    id: &ExecutionId,
) -> rusqlite::Result<Option<ExecutionRow>> {
    conn.prepare_cached(&format!(
        "SELECT {EXECUTION_COLUMNS} FROM workflow_executions WHERE id = ?1"
    ))?
    .query_row([id.as_str()], execution_row)
    .optional()
}

/// The journal query of [`load_journal`] and [`unfinished_page`].
const JOURNAL: &str =
    "SELECT position, kind, name, occurrence, status, attempts, output, error, error_message, wake_at,
            branch, local, value_type
     FROM step_executions WHERE execution_id = ?1 ORDER BY position";

/// The whole journal of an execution, in one query, ordered by position.
pub(super) fn load_journal(conn: &Connection, id: &ExecutionId) -> rusqlite::Result<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(JOURNAL)?;
    journal_of(&mut stmt, id)
}

/// The journal of `id` through `stmt`, a statement of [`JOURNAL`].
fn journal_of(stmt: &mut Statement<'_>, id: &ExecutionId) -> rusqlite::Result<Vec<Entry>> {
    let mut rows = stmt.query([id.as_str()])?;
    let mut entries = Vec::new();
    // Most entries share a few names and branches: one allocation each.
    let mut names = Interner::default();
    let mut branches = Interner::default();
    while let Some(r) = rows.next()? {
        entries.push(Entry {
            position: r.get(0)?,
            kind: r.get(1)?,
            name: names.get(r.get_ref(2)?.as_str()?),
            occurrence: r.get(3)?,
            status: r.get(4)?,
            attempts: r.get(5)?,
            output: r.get(6)?,
            error: r.get(7)?,
            error_message: r.get(8)?,
            wake_at: r.get(9)?,
            branch: branches.get(r.get_ref(10)?.as_str()?),
            local: r.get(11)?,
            value_type: r.get(12)?,
        });
    }
    Ok(entries)
}

/// Up to `limit` unfinished executions with ids after `after`, in id
/// order, each with its journal: what the pre-deploy check replays.
///
/// One journal statement serves the whole page. A statement taken from the
/// cache again for each execution would be compiled again each time:
/// SQLite (3.54) marks `execution_id = ?1` as worth re-planning when its
/// value changes to or from 0 or 1, and `sqlite3_clear_bindings`, which
/// the statement cache calls when a statement comes back, expires a
/// statement so marked. Rebinding a held statement to another id does not.
pub(super) fn unfinished_page(
    conn: &Connection,
    after: &str,
    limit: u32,
) -> rusqlite::Result<Vec<Loaded>> {
    let rows = conn
        .prepare_cached(&format!(
            "SELECT {EXECUTION_COLUMNS} FROM workflow_executions
             WHERE id > ?1 AND status NOT IN ('completed', 'failed', 'cancelled')
             ORDER BY id LIMIT ?2"
        ))?
        .query_map(params![after, limit], execution_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut journal = conn.prepare_cached(JOURNAL)?;
    rows.into_iter()
        .map(|row| {
            let journal = journal_of(&mut journal, &row.id)?;
            Ok(Loaded { row, journal })
        })
        .collect()
}

/// Sets an execution's status, with its output, error, reason or wake time.
/// A terminal status is final: it is never overwritten.
pub(super) fn set_status(
    conn: &Connection,
    id: &ExecutionId,
    status: ExecutionStatus,
    t: &Transition,
    now: i64,
) -> rusqlite::Result<bool> {
    let completed_at = status.is_terminal().then_some(now);
    let changed = conn
        .prepare_cached(
            "UPDATE workflow_executions
             SET status = :status, output = :output, error = :error, error_message = :message,
                 pause_cause = :cause, wake_at = :wake_at, updated_at = :now, completed_at = :completed_at,
                 output_type = :output_type
             WHERE id = :id AND status NOT IN ('completed', 'failed', 'cancelled')",
        )?
        .execute(named_params! {
            ":id": id.as_str(),
            ":status": status,
            ":output": t.output,
            ":error": t.error,
            ":message": t.message,
            ":cause": t.cause,
            ":wake_at": t.wake_at,
            ":now": now,
            ":completed_at": completed_at,
            ":output_type": t.value_type,
        })?;
    if changed == 1 && status == ExecutionStatus::Cancelled {
        end_waiting_entries(conn, id, now)?;
        request_children_cancel(conn, id, now)?;
    }
    if changed == 1 && status.is_terminal() {
        wake_parent(conn, id, now)?;
    }
    Ok(changed == 1)
}

/// The executions started as children of `id`, oldest first.
pub(super) fn children(conn: &Connection, id: &ExecutionId) -> rusqlite::Result<Vec<ChildRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, workflow_name, status FROM workflow_executions
         WHERE parent_id = ?1 ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([id.as_str()], |r| {
        Ok(ChildRow {
            id: ExecutionId::new(r.get::<_, String>(0)?),
            workflow: r.get(1)?,
            status: r.get(2)?,
        })
    })?;
    rows.collect()
}

/// A cancelled execution's unfinished children (but those started to
/// outlive it) get a cancel request, in the same write as its cancel: the
/// worker applies them at its next sweep, and each cascades in turn.
fn request_children_cancel(conn: &Connection, id: &ExecutionId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO admin_requests (execution_id, action, requested_at)
         SELECT id, 'cancel', ?2 FROM workflow_executions
         WHERE parent_id = ?1 AND status NOT IN ('completed', 'failed', 'cancelled')
           AND options NOT LIKE '%\"keep_on_parent_cancel\":true%'",
    )?
    .execute(params![id.as_str(), now])?;
    Ok(())
}

/// A child workflow ended: its parent, if it waits suspended, is due now
/// (the sweep wakes it if nothing sooner does).
fn wake_parent(conn: &Connection, child: &ExecutionId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE workflow_executions SET wake_at = ?2
         WHERE id = (SELECT parent_id FROM workflow_executions WHERE id = ?1)
           AND (status = 'sleeping' OR status = 'waiting') AND (wake_at IS NULL OR wake_at > ?2)",
    )?
    .execute(params![child.as_str(), now])?;
    Ok(())
}

/// Ends the entries of a cancelled execution that were still waiting (a
/// sleep, a backoff before the next attempt): they will never wake, and
/// left `sleeping` or `retrying` they would read as pending forever.
///
/// They become `failed`, with the cancellation as their message and the
/// time of it as their end. A status of their own (`cancelled`) would be
/// more exact, but the CHECK constraint of `step_executions.status` in
/// every existing file names the six statuses there are: adding one is a
/// table rebuild, and a file holding it would be refused by every older
/// build. `failed` is true of both (the entry ended without its result)
/// and nothing replays it: a cancelled execution is never resumed or
/// restarted. The planned wake time stays, as a record of the plan.
fn end_waiting_entries(conn: &Connection, id: &ExecutionId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE step_executions
         SET status = 'failed', completed_at = :now,
             error_message = CASE
                 WHEN status = 'sleeping' THEN 'cancelled while sleeping'
                 WHEN status = 'waiting' THEN 'cancelled while waiting for a message'
                 WHEN error_message IS NULL THEN 'cancelled before its next attempt'
                 ELSE 'cancelled before its next attempt; the last one failed: ' || error_message
             END
         WHERE execution_id = :id AND (status = 'sleeping' OR status = 'retrying' OR status = 'waiting')",
    )?
    .execute(named_params! { ":id": id.as_str(), ":now": now })?;
    Ok(())
}

/// Brings every pending wake time of an execution (sleeps, backoffs) forward
/// to `now`: `resume` wakes a sleeping execution early.
pub(super) fn wake_now(conn: &Connection, id: &ExecutionId, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "UPDATE step_executions SET wake_at = ?2
         WHERE execution_id = ?1 AND status IN ('sleeping', 'retrying') AND wake_at > ?2",
    )?
    .execute(params![id.as_str(), now])?;
    Ok(())
}

pub(super) fn load_unfinished(conn: &Connection) -> rusqlite::Result<Vec<Unfinished>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, workflow_name, status, pause_cause, wake_at, restart_attempt, options, error_message,
                app_version
         FROM workflow_executions
         WHERE status IN ('running', 'restarting', 'sleeping', 'waiting', 'panicked', 'paused')
         ORDER BY created_at",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Unfinished {
            id: ExecutionId::new(r.get::<_, String>(0)?),
            workflow: r.get(1)?,
            status: r.get(2)?,
            cause: r.get(3)?,
            wake_at: r.get(4)?,
            restart_attempt: r.get(5)?,
            options: r.get(6)?,
            error_message: r.get(7)?,
            app_version: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Counts a claim of an execution after an unclean end; returns the count.
pub(super) fn count_recovery(conn: &Connection, id: &ExecutionId) -> rusqlite::Result<u32> {
    conn.prepare_cached(
        "UPDATE workflow_executions SET recovery_attempts = recovery_attempts + 1
         WHERE id = ?1 RETURNING recovery_attempts",
    )?
    .query_row([id.as_str()], |r| r.get(0))
}

/// Suspended executions due by `now` (a sleep's wake time, a wait's
/// deadline, or a message sent to a waiter), for the periodic sweep. The
/// condition on the status is the one of the partial index
/// `workflow_executions_by_wake`, word for word, so that SQLite uses it.
pub(super) fn due_sleepers(conn: &Connection, now: i64) -> rusqlite::Result<Vec<ExecutionId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM workflow_executions
         WHERE (status = 'sleeping' OR status = 'waiting') AND wake_at <= ?1
         ORDER BY wake_at LIMIT 1000",
    )?;
    let rows = stmt.query_map([now], |r| Ok(ExecutionId::new(r.get::<_, String>(0)?)))?;
    rows.collect()
}

/// Moves a panicked, restarting or failed execution back to running with one
/// more restart counted; false if it is in none of those states. A failed
/// execution's journal from its first failed entry on is set aside (kept in
/// the `superseded_*` tables), so the failed step really runs again, its
/// attempts counted from 1.
pub(super) fn begin_restart(
    conn: &Connection,
    id: &ExecutionId,
    now: i64,
) -> rusqlite::Result<bool> {
    let status: Option<ExecutionStatus> = conn
        .prepare_cached("SELECT status FROM workflow_executions WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    match status {
        Some(ExecutionStatus::Panicked | ExecutionStatus::Restarting) => {}
        Some(ExecutionStatus::Failed) => supersede_from_first_failure(conn, id, now)?,
        _ => return Ok(false),
    }
    conn.prepare_cached(
        "UPDATE workflow_executions
         SET status = 'running', restart_attempt = restart_attempt + 1, output = NULL, error = NULL,
             error_message = NULL, pause_cause = NULL, wake_at = NULL, completed_at = NULL, updated_at = ?2
         WHERE id = ?1",
    )?
    .execute(params![id.as_str(), now])?;
    Ok(true)
}

fn supersede_from_first_failure(
    conn: &Connection,
    id: &ExecutionId,
    now: i64,
) -> rusqlite::Result<()> {
    let first: Option<u32> = conn
        .prepare_cached("SELECT min(position) FROM step_executions WHERE execution_id = ?1 AND status = 'failed'")?
        .query_row([id.as_str()], |r| r.get(0))?;
    let Some(first) = first else {
        // The workflow itself returned the error: replay runs it again.
        return Ok(());
    };
    conn.prepare_cached(
        "INSERT INTO superseded_steps
         SELECT s.execution_id, s.position, s.branch, s.local, s.kind, s.name, s.occurrence, s.status, s.attempts,
                s.output, s.error,
                s.error_message, s.wake_at, s.started_at, s.completed_at, ?3, e.restart_attempt
         FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
         WHERE s.execution_id = ?1 AND s.position >= ?2",
    )?
    .execute(params![id.as_str(), first, now])?;
    conn.prepare_cached(
        "INSERT INTO superseded_attempts
         SELECT execution_id, position, attempt, status, started_at, ended_at, error_message, ?3
         FROM step_attempts WHERE execution_id = ?1 AND position >= ?2",
    )?
    .execute(params![id.as_str(), first, now])?;
    // Messages the set-aside entries took go back to the inbox, as they
    // were sent: the new run takes them again (their idempotency keys
    // still refuse a second copy).
    conn.prepare_cached(
        "UPDATE messages SET taken_at = NULL, taken_position = NULL,
             payload = (SELECT s.output FROM step_executions s
                        WHERE s.execution_id = messages.execution_id
                          AND s.position = messages.taken_position)
         WHERE execution_id = ?1 AND taken_position >= ?2",
    )?
    .execute(params![id.as_str(), first])?;
    conn.prepare_cached("DELETE FROM step_attempts WHERE execution_id = ?1 AND position >= ?2")?
        .execute(params![id.as_str(), first])?;
    conn.prepare_cached("DELETE FROM step_executions WHERE execution_id = ?1 AND position >= ?2")?
        .execute(params![id.as_str(), first])?;
    Ok(())
}

/// Everything known of one execution, for `Runtime::status`, read in one snapshot.
pub(super) fn load_info(
    conn: &Connection,
    id: &ExecutionId,
) -> rusqlite::Result<Option<ExecutionInfo>> {
    // A savepoint opens a read transaction on the reader connection and nests
    // inside the writer's batch transaction on an in-memory store.
    conn.execute_batch("SAVEPOINT snapshot")?;
    let info = load_info_unguarded(conn, id);
    conn.execute_batch("RELEASE snapshot")?;
    info
}

fn load_info_unguarded(
    conn: &Connection,
    id: &ExecutionId,
) -> rusqlite::Result<Option<ExecutionInfo>> {
    let Some(row) = load_execution(conn, id)? else {
        return Ok(None);
    };
    let codec = row.codec;
    let mut attempts_by_position = load_attempts(conn, id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT position, kind, name, occurrence, status, attempts, output, error_message, started_at, completed_at,
                branch, wake_at
         FROM step_executions WHERE execution_id = ?1 ORDER BY position",
    )?;
    let steps = stmt
        .query_map([id.as_str()], |r| {
            let position: u32 = r.get(0)?;
            let kind: EntryKind = r.get(1)?;
            let status: StepStatus = r.get(4)?;
            let started_at = from_millis(r.get(8)?);
            let completed_at = r.get::<_, Option<i64>>(9)?.map(from_millis);
            let mut attempt_log = attempts_by_position.remove(&position).unwrap_or_default();
            if attempt_log.is_empty() && kind == EntryKind::Step && status == StepStatus::Completed
            {
                // A first attempt that completed before its start was
                // recorded lives in the entry alone (see `complete_step`).
                attempt_log.push(AttemptRecord {
                    attempt: 1,
                    status: AttemptStatus::Completed,
                    started_at,
                    ended_at: completed_at,
                    error: None,
                });
            }
            Ok(StepRecord {
                position,
                kind,
                key: StepKey {
                    name: r.get(2)?,
                    occurrence: r.get(3)?,
                },
                status,
                attempts: r.get(5)?,
                output: r
                    .get::<_, Option<Vec<u8>>>(6)?
                    .map(|b| Payload::new(codec, b)),
                error: r.get(7)?,
                started_at,
                completed_at,
                attempt_log,
                branch: r.get(10)?,
                wake_at: r.get::<_, Option<i64>>(11)?.map(from_millis),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(ExecutionInfo {
        id: row.id,
        workflow: row.workflow,
        app_version: row.app_version,
        status: row.status,
        input: Payload::new(codec, row.input),
        output: row.output.map(|b| Payload::new(codec, b)),
        error: row.error.map(|b| Payload::new(codec, b)),
        error_message: row.error_message,
        restart_attempt: row.restart_attempt,
        wake_at: row.wake_at.map(from_millis),
        deadline: row.deadline_at.map(from_millis),
        parent: row.parent_id,
        owner: row.owner,
        children: Vec::new(),
        created_at: from_millis(row.created_at),
        updated_at: from_millis(row.updated_at),
        completed_at: row.completed_at.map(from_millis),
        steps,
        superseded: load_superseded(conn, id, codec)?,
    }))
}

/// The entries a restart set aside, oldest first, each with its attempts.
fn load_superseded(
    conn: &Connection,
    id: &ExecutionId,
    codec: Codec,
) -> rusqlite::Result<Vec<SupersededStep>> {
    let mut attempts: HashMap<(i64, u32), Vec<AttemptRecord>> = HashMap::new();
    {
        let mut stmt = conn.prepare_cached(
            "SELECT superseded_at, position, attempt, status, started_at, ended_at, error_message
             FROM superseded_attempts WHERE execution_id = ?1 ORDER BY superseded_at, position, attempt",
        )?;
        let rows = stmt.query_map([id.as_str()], |r| {
            Ok((
                (r.get::<_, i64>(0)?, r.get::<_, u32>(1)?),
                AttemptRecord {
                    attempt: r.get(2)?,
                    status: r.get(3)?,
                    started_at: from_millis(r.get(4)?),
                    ended_at: r.get::<_, Option<i64>>(5)?.map(from_millis),
                    error: r.get(6)?,
                },
            ))
        })?;
        for row in rows {
            let (at, attempt) = row?;
            attempts.entry(at).or_default().push(attempt);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT superseded_at, restart_attempt, position, kind, name, occurrence, status, attempts, output,
                error_message, started_at, completed_at, branch, wake_at
         FROM superseded_steps WHERE execution_id = ?1 ORDER BY superseded_at, position",
    )?;
    let rows = stmt.query_map([id.as_str()], |r| {
        let superseded_at: i64 = r.get(0)?;
        let position: u32 = r.get(2)?;
        Ok(SupersededStep {
            run: r.get(1)?,
            superseded_at: from_millis(superseded_at),
            step: StepRecord {
                position,
                kind: r.get(3)?,
                key: StepKey {
                    name: r.get(4)?,
                    occurrence: r.get(5)?,
                },
                status: r.get(6)?,
                attempts: r.get(7)?,
                output: r
                    .get::<_, Option<Vec<u8>>>(8)?
                    .map(|b| Payload::new(codec, b)),
                error: r.get(9)?,
                started_at: from_millis(r.get(10)?),
                completed_at: r.get::<_, Option<i64>>(11)?.map(from_millis),
                attempt_log: attempts
                    .remove(&(superseded_at, position))
                    .unwrap_or_default(),
                branch: r.get(12)?,
                wake_at: r.get::<_, Option<i64>>(13)?.map(from_millis),
            },
        })
    })?;
    rows.collect()
}

/// The attempt log of an execution, by position.
fn load_attempts(
    conn: &Connection,
    id: &ExecutionId,
) -> rusqlite::Result<HashMap<u32, Vec<AttemptRecord>>> {
    let mut attempts_by_position: HashMap<u32, Vec<AttemptRecord>> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT position, attempt, status, started_at, ended_at, error_message
             FROM step_attempts WHERE execution_id = ?1 ORDER BY position, attempt",
    )?;
    let rows = stmt.query_map([id.as_str()], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            AttemptRecord {
                attempt: r.get(1)?,
                status: r.get::<_, AttemptStatus>(2)?,
                started_at: from_millis(r.get(3)?),
                ended_at: r.get::<_, Option<i64>>(4)?.map(from_millis),
                error: r.get(5)?,
            },
        ))
    })?;
    for row in rows {
        let (position, attempt) = row?;
        attempts_by_position
            .entry(position)
            .or_default()
            .push(attempt);
    }
    Ok(attempts_by_position)
}

/// Executions matching `filter`, newest first (in the order they were started
/// when they share a millisecond).
pub(super) fn list(
    conn: &Connection,
    filter: &ListFilter,
) -> rusqlite::Result<Vec<ExecutionSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, workflow_name, status, error_message, restart_attempt, created_at, updated_at,
                app_version
         FROM workflow_executions
         WHERE (?1 IS NULL OR status = ?1)
           AND (?2 IS NULL OR workflow_name = ?2)
           AND (?3 IS NULL OR created_at >= ?3)
           AND (?4 IS NULL OR created_at < ?4)
         ORDER BY created_at DESC, rowid DESC
         LIMIT ?5 OFFSET ?6",
    )?;
    let rows = stmt.query_map(
        params![
            filter.status,
            filter.workflow,
            filter.created_after.map(to_millis),
            filter.created_before.map(to_millis),
            filter.limit.unwrap_or(100),
            filter.offset.unwrap_or(0)
        ],
        |r| {
            Ok(ExecutionSummary {
                id: ExecutionId::new(r.get::<_, String>(0)?),
                workflow: r.get(1)?,
                status: r.get(2)?,
                error_message: r.get(3)?,
                restart_attempt: r.get(4)?,
                created_at: from_millis(r.get(5)?),
                updated_at: from_millis(r.get(6)?),
                app_version: r.get(7)?,
            })
        },
    )?;
    rows.collect()
}

/// Executions matching `filter`'s workflow and time bounds, counted per status.
pub(super) fn count_by_status(
    conn: &Connection,
    filter: &ListFilter,
) -> rusqlite::Result<Vec<(ExecutionStatus, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, count(*) FROM workflow_executions
         WHERE (?1 IS NULL OR workflow_name = ?1)
           AND (?2 IS NULL OR created_at >= ?2)
           AND (?3 IS NULL OR created_at < ?3)
         GROUP BY status",
    )?;
    let rows = stmt.query_map(
        params![
            filter.workflow,
            filter.created_after.map(to_millis),
            filter.created_before.map(to_millis)
        ],
        |r| Ok((r.get(0)?, u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0))),
    )?;
    rows.collect()
}

/// The names of the workflows some worker registered in this database.
pub(super) fn registered_workflows(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT name FROM workflows ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    rows.collect()
}

/// Records the registered workflows with their options.
pub(super) fn register_workflows(
    conn: &Connection,
    workflows: &[WorkflowRow],
    now: i64,
) -> rusqlite::Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO workflows (name, module_path, options, registered_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET module_path = excluded.module_path, options = excluded.options,
                                          registered_at = excluded.registered_at",
    )?;
    for w in workflows {
        stmt.execute(params![w.name, w.module_path, w.options, now])?;
    }
    Ok(())
}

/// Records an admin's request for the worker; returns its row id.
pub(super) fn insert_request(
    conn: &Connection,
    id: &ExecutionId,
    action: AdminAction,
    now: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO admin_requests (execution_id, action, requested_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id.as_str(), action, now])?;
    Ok(conn.last_insert_rowid())
}

/// Whether request `request` was applied, and its outcome; `None` when no
/// such request exists.
pub(super) fn request_outcome(
    conn: &Connection,
    request: i64,
) -> rusqlite::Result<Option<(Option<i64>, Option<String>)>> {
    conn.prepare_cached("SELECT applied_at, outcome FROM admin_requests WHERE id = ?1")?
        .query_row([request], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
}

/// Requests not yet applied, oldest first.
pub(super) fn pending_requests(conn: &Connection) -> rusqlite::Result<Vec<Request>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, execution_id, action, workflow_name, input FROM admin_requests
         WHERE applied_at IS NULL ORDER BY id LIMIT 1000",
    )?;
    let rows = stmt.query_map([], |r| {
        let action: String = r.get(2)?;
        let action = if action == START_ACTION {
            RequestAction::Start {
                workflow: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                input: r.get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default(),
            }
        } else {
            RequestAction::Control(r.get(2)?)
        };
        Ok(Request {
            id: r.get(0)?,
            execution: ExecutionId::new(r.get::<_, String>(1)?),
            action,
        })
    })?;
    rows.collect()
}

/// Records a request to start execution `id` of `workflow`.
pub(super) fn insert_start_request(
    conn: &Connection,
    id: &ExecutionId,
    workflow: &str,
    input: &[u8],
    now: i64,
) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO main.admin_requests (execution_id, action, requested_at, workflow_name, input)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id.as_str(), START_ACTION, now, workflow, input])?;
    Ok(conn.last_insert_rowid())
}

/// Marks a request as applied, with what came of it.
pub(super) fn finish_request(
    conn: &Connection,
    request: i64,
    outcome: &str,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached("UPDATE admin_requests SET applied_at = ?2, outcome = ?3 WHERE id = ?1")?
        .execute(params![request, now, outcome])?;
    Ok(())
}
