//! The SQL of the execution lifecycle and of every read on PostgreSQL.
//! Lifecycle writes run on the writer's connection inside its batch
//! transaction, after the worker's fence; reads run on a pooled connection.

use std::collections::HashMap;

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{PgError, PgResult, int, parse};
use crate::codec::{Codec, Payload};
use crate::record::{
    AttemptRecord, ExecutionId, ExecutionInfo, ExecutionSummary, ListFilter, StepKey, StepRecord,
    SupersededStep, from_millis, to_millis,
};
use crate::status::{AdminAction, AttemptStatus, EntryKind, ExecutionStatus, StepStatus};
use crate::store::{
    ChildRow, Entry, ExecutionRow, Interner, Loaded, Request, RequestAction, START_ACTION,
    Transition, Unfinished, WorkflowRow,
};

type Client = ClientWrapper;

/// Runs a read through the connection's statement cache.
pub(super) async fn query(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Vec<Row>> {
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.query(&stmt, params).await?)
}

/// Runs a read of at most one row through the statement cache.
pub(super) async fn query_opt(
    client: &Client,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> PgResult<Option<Row>> {
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.query_opt(&stmt, params).await?)
}

async fn execute(client: &Client, sql: &str, params: &[&(dyn ToSql + Sync)]) -> PgResult<u64> {
    let stmt = client.prepare_cached(sql).await?;
    Ok(client.execute(&stmt, params).await?)
}

pub(super) const EXECUTION_COLUMNS: &str =
    "id, workflow_name, status, codec, input, output, error, error_message,
     options, restart_attempt, wake_at, created_at, updated_at, completed_at, app_version, input_type,
     output_type, owner, deadline_at, parent_id";

pub(super) fn execution_row(r: &Row) -> PgResult<ExecutionRow> {
    execution_row_at(r, 0)
}

/// An execution read as [`EXECUTION_COLUMNS`], from column `at` on.
pub(super) fn execution_row_at(r: &Row, at: usize) -> PgResult<ExecutionRow> {
    let codec = super::codec(r.try_get(at + 3)?)?;
    Ok(ExecutionRow {
        id: ExecutionId::new(r.try_get::<_, String>(at)?),
        workflow: r.try_get(at + 1)?,
        status: parse(r.try_get(at + 2)?)?,
        codec,
        input: r.try_get(at + 4)?,
        output: r.try_get(at + 5)?,
        error: r.try_get(at + 6)?,
        error_message: r.try_get(at + 7)?,
        options: r.try_get(at + 8)?,
        restart_attempt: int(r.try_get(at + 9)?)?,
        wake_at: r.try_get(at + 10)?,
        created_at: r.try_get(at + 11)?,
        updated_at: r.try_get(at + 12)?,
        completed_at: r.try_get(at + 13)?,
        app_version: r.try_get(at + 14)?,
        input_type: r.try_get(at + 15)?,
        output_type: r.try_get(at + 16)?,
        deadline_at: r.try_get(at + 18)?,
        parent_id: r
            .try_get::<_, Option<String>>(at + 19)?
            .map(ExecutionId::new),
        owner: r.try_get(at + 17)?,
    })
}

pub(super) async fn load_execution(
    client: &Client,
    id: &ExecutionId,
) -> PgResult<Option<ExecutionRow>> {
    query_opt(
        client,
        &format!("SELECT {EXECUTION_COLUMNS} FROM workflow_executions WHERE id = $1"),
        &[&id.as_str()],
    )
    .await?
    .as_ref()
    .map(execution_row)
    .transpose()
}

/// The whole journal of an execution, in one ordered query.
pub(super) async fn load_journal(client: &Client, id: &ExecutionId) -> PgResult<Vec<Entry>> {
    let rows = query(
        client,
        &format!(
            "SELECT {ENTRY_COLUMNS} FROM step_executions WHERE execution_id = $1 ORDER BY position"
        ),
        &[&id.as_str()],
    )
    .await?;
    let mut names = Interner::default();
    let mut branches = Interner::default();
    rows.iter()
        .map(|r| entry_row(r, 0, &mut names, &mut branches))
        .collect()
}

pub(super) const ENTRY_COLUMNS: &str =
    "position, kind, name, occurrence, status, attempts, output, error, error_message, wake_at,
     branch, local, value_type";

/// An entry read as [`ENTRY_COLUMNS`], from column `at` on.
pub(super) fn entry_row(
    r: &Row,
    at: usize,
    names: &mut Interner,
    branches: &mut Interner,
) -> PgResult<Entry> {
    Ok(Entry {
        position: int(r.try_get(at)?)?,
        kind: parse(r.try_get(at + 1)?)?,
        name: names.get(r.try_get(at + 2)?),
        occurrence: int(r.try_get(at + 3)?)?,
        status: parse(r.try_get(at + 4)?)?,
        attempts: int(r.try_get(at + 5)?)?,
        output: r.try_get(at + 6)?,
        error: r.try_get(at + 7)?,
        error_message: r.try_get(at + 8)?,
        wake_at: r.try_get(at + 9)?,
        branch: branches.get(r.try_get(at + 10)?),
        local: int(r.try_get(at + 11)?)?,
        value_type: r.try_get(at + 12)?,
    })
}

/// Up to `limit` unfinished executions with ids after `after`, in id
/// order, each with its journal (two queries): what the pre-deploy check
/// replays.
pub(super) async fn unfinished_page(
    client: &Client,
    after: &str,
    limit: u32,
) -> PgResult<Vec<Loaded>> {
    let rows = query(
        client,
        &format!(
            "SELECT {EXECUTION_COLUMNS} FROM workflow_executions
             WHERE id > $1 AND status NOT IN ('completed', 'failed', 'cancelled')
             ORDER BY id LIMIT $2"
        ),
        &[&after, &i64::from(limit)],
    )
    .await?;
    let mut page: Vec<Loaded> = rows
        .iter()
        .map(|r| {
            Ok(Loaded {
                row: execution_row(r)?,
                journal: Vec::new(),
            })
        })
        .collect::<PgResult<_>>()?;
    let ids: Vec<&str> = page.iter().map(|l| l.row.id.as_str()).collect();
    let entries = query(
        client,
        &format!(
            "SELECT execution_id, {ENTRY_COLUMNS} FROM step_executions
             WHERE execution_id = ANY($1) ORDER BY execution_id, position"
        ),
        &[&ids],
    )
    .await?;
    drop(ids);
    let mut names = Interner::default();
    let mut branches = Interner::default();
    let mut at = 0;
    for r in &entries {
        let id: &str = r.try_get(0)?;
        // Both lists are in id order (the same collation).
        while page.get(at).is_some_and(|l| l.row.id.as_str() != id) {
            at += 1;
        }
        let Some(loaded) = page.get_mut(at) else {
            break;
        };
        loaded
            .journal
            .push(entry_row(r, 1, &mut names, &mut branches)?);
    }
    Ok(page)
}

/// Sets an execution's status, unless it is finished or owned by another
/// worker. An end or a pause releases the execution; a sleep or a wait for
/// a message keeps it with its owner, whose timer or sweep wakes it.
/// A status change: never over a terminal status, nor of an execution
/// another worker owns; an end or a pause releases the execution. An end
/// ($9, the end time, set) also makes a waiting parent due now (its owner's
/// sweep wakes it), in the same statement. The parent is matched by id and
/// its status tested in the assignment, not the `WHERE`: the update then
/// waits for the parent's row lock and reads its committed status, so a
/// parent whose change to `waiting` (on another worker) commits meanwhile
/// is seen waiting; a `WHERE status = 'waiting'` would skip a row that was
/// not yet waiting in this statement's snapshot.
pub(super) const SET_STATUS: &str = "WITH parent AS (
         UPDATE workflow_executions
         SET wake_at = CASE WHEN status IN ('sleeping', 'waiting') AND (wake_at IS NULL OR wake_at > $8)
                            THEN $8 ELSE wake_at END
         WHERE $9::bigint IS NOT NULL
           AND id = (SELECT parent_id FROM workflow_executions
                     WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
                       AND (owner IS NULL OR owner = $11)))
     UPDATE workflow_executions
     SET status = $2, output = $3, error = $4, error_message = $5, pause_cause = $6, wake_at = $7,
         updated_at = $8, completed_at = $9, owner = CASE WHEN $10 THEN NULL ELSE owner END,
         output_type = $12
     WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
       AND (owner IS NULL OR owner = $11)";

pub(super) async fn set_status(
    client: &Client,
    id: &ExecutionId,
    status: ExecutionStatus,
    t: &Transition,
    me: Option<i64>,
    now: i64,
) -> PgResult<bool> {
    let completed_at = status.is_terminal().then_some(now);
    let release = status.is_terminal() || status == ExecutionStatus::Paused;
    let changed = execute(
        client,
        SET_STATUS,
        &[
            &id.as_str(),
            &status.as_str(),
            &t.output,
            &t.error,
            &t.message,
            &t.cause.map(|c| c.as_str()),
            &t.wake_at,
            &now,
            &completed_at,
            &release,
            &me.unwrap_or(-1),
            &t.value_type,
        ],
    )
    .await?;
    if changed == 1 && status == ExecutionStatus::Cancelled {
        end_waiting_entries(client, id, now).await?;
        // See the SQLite store: the children's cancel requests, in the
        // same transaction.
        execute(
            client,
            "INSERT INTO admin_requests (execution_id, action, requested_at)
             SELECT id, 'cancel', $2 FROM workflow_executions
             WHERE parent_id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')
               AND options NOT LIKE '%\"keep_on_parent_cancel\":true%'",
            &[&id.as_str(), &now],
        )
        .await?;
    }
    Ok(changed == 1)
}

/// Ends the entries of a cancelled execution that were still waiting (a
/// sleep, a backoff before the next attempt, a `recv`), in the transaction
/// of its status change: `failed`, with the cancellation as their message
/// and its time as their end, as the SQLite store does (see its
/// `end_waiting_entries`).
async fn end_waiting_entries(client: &Client, id: &ExecutionId, now: i64) -> PgResult<()> {
    execute(
        client,
        "UPDATE step_executions
         SET status = 'failed', completed_at = $2,
             error_message = CASE
                 WHEN status = 'sleeping' THEN 'cancelled while sleeping'
                 WHEN status = 'waiting' THEN 'cancelled while waiting for a message'
                 WHEN error_message IS NULL THEN 'cancelled before its next attempt'
                 ELSE 'cancelled before its next attempt; the last one failed: ' || error_message
             END
         WHERE execution_id = $1 AND (status = 'sleeping' OR status = 'retrying' OR status = 'waiting')",
        &[&id.as_str(), &now],
    )
    .await?;
    Ok(())
}

pub(super) async fn wake_now(client: &Client, id: &ExecutionId, now: i64) -> PgResult<()> {
    execute(
        client,
        "UPDATE step_executions SET wake_at = $2
         WHERE execution_id = $1 AND status IN ('sleeping', 'retrying') AND wake_at > $2",
        &[&id.as_str(), &now],
    )
    .await?;
    execute(
        client,
        "UPDATE workflow_executions SET wake_at = $2 WHERE id = $1 AND status = 'sleeping' AND wake_at > $2",
        &[&id.as_str(), &now],
    )
    .await?;
    Ok(())
}

/// Marks workers whose lease ran out as dead and releases their executions,
/// counting a recovery for each that was running (a sleeper or a waiter
/// is claimed again once due: see [`claim_orphans`]). Returns the dead
/// workers.
///
/// Each expired worker's fence is taken exclusively first: a batch of that
/// worker in flight ends (commits or not) before it is declared dead, and
/// a batch begun after finds it dead at its own fence.
pub(super) async fn reap(client: &Client) -> PgResult<Vec<i64>> {
    let expired: Vec<i64> = query(
        client,
        "SELECT id FROM workers WHERE dead_at IS NULL AND lease_until < now() ORDER BY id",
        &[],
    )
    .await?
    .iter()
    .map(|r| r.try_get(0).map_err(PgError::from))
    .collect::<PgResult<_>>()?;
    if expired.is_empty() {
        // The rows of workers dead for a day that own nothing go: one row
        // per worker start would otherwise pile up.
        execute(
            client,
            "DELETE FROM workers w WHERE dead_at < now() - interval '1 day'
             AND NOT EXISTS (SELECT 1 FROM workflow_executions e WHERE e.owner = w.id)",
            &[],
        )
        .await?;
        return Ok(expired);
    }
    for id in &expired {
        execute(
            client,
            "SELECT pg_advisory_xact_lock(hashtext(current_schema()), ($1::bigint % 2147483647)::int4)",
            &[id],
        )
        .await?;
    }
    // Renewed meanwhile: alive after all.
    let dead: Vec<i64> = query(
        client,
        "UPDATE workers SET dead_at = now()
         WHERE id = ANY($1) AND dead_at IS NULL AND lease_until < statement_timestamp()
         RETURNING id",
        &[&expired],
    )
    .await?
    .iter()
    .map(|r| r.try_get(0).map_err(PgError::from))
    .collect::<PgResult<_>>()?;
    if !dead.is_empty() {
        execute(
            client,
            "UPDATE workflow_executions
             SET owner = NULL,
                 recovery_attempts = recovery_attempts
                     + CASE WHEN status IN ('running', 'restarting') THEN 1 ELSE 0 END
             WHERE owner = ANY($1)",
            &[&dead],
        )
        .await?;
    }
    Ok(dead)
}

/// Claims up to `limit` executions nobody owns that worker `me` can run:
/// interrupted, restarting, panicked, and sleepers and waiters due by
/// `now` (a waiter is due at its deadline, or once a message was sent to
/// it). Each status named here is in the predicate of the partial index
/// `workflow_executions_claimable` (see the schema), so that the planner
/// can use that index.
pub(super) async fn claim_orphans(
    client: &Client,
    me: i64,
    workflows: &[String],
    versions: &[String],
    due_by: i64,
    limit: i64,
) -> PgResult<Vec<(Unfinished, u32)>> {
    let rows = query(
        client,
        "UPDATE workflow_executions SET owner = $1, claim_seq = claim_seq + 1
         WHERE id IN (
             SELECT id FROM workflow_executions
             WHERE owner IS NULL AND workflow_name = ANY($2)
               AND (cardinality($3::text[]) = 0 OR app_version = '' OR app_version = ANY($3))
               AND (status IN ('running', 'restarting', 'panicked')
                    OR (status IN ('sleeping', 'waiting') AND wake_at <= $4))
             ORDER BY created_at LIMIT $5
             FOR UPDATE SKIP LOCKED)
         RETURNING id, workflow_name, status, pause_cause, wake_at, restart_attempt, options, error_message,
                   recovery_attempts, app_version",
        &[&me, &workflows, &versions, &due_by, &limit],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                Unfinished {
                    id: ExecutionId::new(r.try_get::<_, String>(0)?),
                    workflow: r.try_get(1)?,
                    app_version: r.try_get(9)?,
                    status: parse(r.try_get(2)?)?,
                    cause: r.try_get::<_, Option<&str>>(3)?.map(parse).transpose()?,
                    wake_at: r.try_get(4)?,
                    restart_attempt: int(r.try_get(5)?)?,
                    options: r.try_get(6)?,
                    error_message: r.try_get(7)?,
                },
                int(r.try_get(8)?)?,
            ))
        })
        .collect()
}

/// Executions worker `me` owns in a status that needs a driver.
pub(super) async fn owned_running(client: &Client, me: i64) -> PgResult<Vec<ExecutionId>> {
    Ok(query(
        client,
        "SELECT id FROM workflow_executions WHERE owner = $1 AND status IN ('running', 'restarting')",
        &[&me],
    )
    .await?
    .iter()
    .filter_map(|r| r.try_get::<_, String>(0).ok().map(ExecutionId::new))
    .collect())
}

/// Gives back every execution worker `me` owns (a clean shutdown: no
/// recovery is counted) and ends its row.
pub(super) async fn release_worker(client: &Client, me: i64) -> PgResult<u64> {
    let released = execute(
        client,
        "UPDATE workflow_executions SET owner = NULL WHERE owner = $1",
        &[&me],
    )
    .await?;
    execute(
        client,
        "UPDATE workers SET dead_at = now() WHERE id = $1 AND dead_at IS NULL",
        &[&me],
    )
    .await?;
    Ok(released)
}

/// Moves a panicked, restarting or failed execution back to running with
/// one more restart counted, for worker `me`; false if it is in none of
/// those states or another worker owns it. See the SQLite store's
/// `begin_restart` for what a failed execution's restart sets aside.
pub(super) async fn begin_restart(
    client: &Client,
    id: &ExecutionId,
    me: Option<i64>,
    now: i64,
) -> PgResult<bool> {
    let Some(r) = query_opt(
        client,
        "SELECT status, owner FROM workflow_executions WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )
    .await?
    else {
        return Ok(false);
    };
    let status: ExecutionStatus = parse(r.try_get(0)?)?;
    let owner: Option<i64> = r.try_get(1)?;
    if owner.is_some_and(|o| Some(o) != me) {
        return Ok(false);
    }
    match status {
        ExecutionStatus::Panicked | ExecutionStatus::Restarting => {}
        ExecutionStatus::Failed => supersede_from_first_failure(client, id, now).await?,
        _ => return Ok(false),
    }
    execute(
        client,
        "UPDATE workflow_executions
         SET status = 'running', restart_attempt = restart_attempt + 1, output = NULL, error = NULL,
             error_message = NULL, pause_cause = NULL, wake_at = NULL, completed_at = NULL, updated_at = $2,
             owner = $3, claim_seq = claim_seq + 1
         WHERE id = $1",
        &[&id.as_str(), &now, &me],
    )
    .await?;
    Ok(true)
}

async fn supersede_from_first_failure(client: &Client, id: &ExecutionId, now: i64) -> PgResult<()> {
    let first: Option<i64> = query_opt(
        client,
        "SELECT min(position) FROM step_executions WHERE execution_id = $1 AND status = 'failed'",
        &[&id.as_str()],
    )
    .await?
    .and_then(|r| r.get(0));
    let Some(first) = first else {
        return Ok(());
    };
    execute(
        client,
        "INSERT INTO superseded_steps
         SELECT s.execution_id, s.position, s.branch, s.local, s.kind, s.name, s.occurrence, s.status, s.attempts,
                s.output, s.error, s.error_message, s.wake_at, s.started_at, s.completed_at, $3, e.restart_attempt
         FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
         WHERE s.execution_id = $1 AND s.position >= $2",
        &[&id.as_str(), &first, &now],
    )
    .await?;
    execute(
        client,
        "INSERT INTO superseded_attempts
         SELECT execution_id, position, attempt, status, started_at, ended_at, error_message, $3
         FROM step_attempts WHERE execution_id = $1 AND position >= $2",
        &[&id.as_str(), &first, &now],
    )
    .await?;
    // Messages the set-aside entries took go back to the inbox (see the
    // SQLite store).
    execute(
        client,
        "UPDATE messages m SET taken_at = NULL, taken_position = NULL, payload = s.output
         FROM step_executions s
         WHERE m.execution_id = $1 AND m.taken_position >= $2::bigint
           AND s.execution_id = m.execution_id AND s.position = m.taken_position",
        &[&id.as_str(), &first],
    )
    .await?;
    execute(
        client,
        "DELETE FROM step_attempts WHERE execution_id = $1 AND position >= $2",
        &[&id.as_str(), &first],
    )
    .await?;
    execute(
        client,
        "DELETE FROM step_executions WHERE execution_id = $1 AND position >= $2",
        &[&id.as_str(), &first],
    )
    .await?;
    Ok(())
}

/// Everything known of one execution, read in one snapshot.
pub(super) async fn load_info(
    client: &Client,
    id: &ExecutionId,
) -> PgResult<Option<ExecutionInfo>> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let info = load_info_unguarded(client, id).await;
    client.batch_execute("COMMIT").await?;
    info
}

async fn load_info_unguarded(client: &Client, id: &ExecutionId) -> PgResult<Option<ExecutionInfo>> {
    let Some(row) = load_execution(client, id).await? else {
        return Ok(None);
    };
    let codec = row.codec;
    let mut attempts_by_position: HashMap<u32, Vec<AttemptRecord>> = HashMap::new();
    for r in query(
        client,
        "SELECT position, attempt, status, started_at, ended_at, error_message
         FROM step_attempts WHERE execution_id = $1 ORDER BY position, attempt",
        &[&id.as_str()],
    )
    .await?
    {
        attempts_by_position
            .entry(int(r.try_get(0)?)?)
            .or_default()
            .push(AttemptRecord {
                attempt: int(r.try_get(1)?)?,
                status: parse(r.try_get(2)?)?,
                started_at: from_millis(r.try_get(3)?),
                ended_at: r.try_get::<_, Option<i64>>(4)?.map(from_millis),
                error: r.try_get(5)?,
            });
    }
    let mut steps = Vec::new();
    for r in query(
        client,
        "SELECT position, kind, name, occurrence, status, attempts, output, error_message, started_at,
                completed_at, branch, wake_at
         FROM step_executions WHERE execution_id = $1 ORDER BY position",
        &[&id.as_str()],
    )
    .await?
    {
        let position: u32 = int(r.try_get(0)?)?;
        let kind: EntryKind = parse(r.try_get(1)?)?;
        let status: StepStatus = parse(r.try_get(4)?)?;
        let started_at = from_millis(r.try_get(8)?);
        let completed_at = r.try_get::<_, Option<i64>>(9)?.map(from_millis);
        let mut attempt_log = attempts_by_position.remove(&position).unwrap_or_default();
        if attempt_log.is_empty() && kind == EntryKind::Step && status == StepStatus::Completed {
            attempt_log.push(AttemptRecord {
                attempt: 1,
                status: AttemptStatus::Completed,
                started_at,
                ended_at: completed_at,
                error: None,
            });
        }
        steps.push(StepRecord {
            position,
            kind,
            key: StepKey {
                name: r.try_get(2)?,
                occurrence: int(r.try_get(3)?)?,
            },
            status,
            attempts: int(r.try_get(5)?)?,
            output: r
                .try_get::<_, Option<Vec<u8>>>(6)?
                .map(|b| Payload::new(codec, b)),
            error: r.try_get(7)?,
            started_at,
            completed_at,
            attempt_log,
            branch: r.try_get(10)?,
            wake_at: r.try_get::<_, Option<i64>>(11)?.map(from_millis),
        });
    }
    let superseded = load_superseded(client, id, codec).await?;
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
        superseded,
    }))
}

async fn load_superseded(
    client: &Client,
    id: &ExecutionId,
    codec: Codec,
) -> PgResult<Vec<SupersededStep>> {
    let mut attempts: HashMap<(i64, u32), Vec<AttemptRecord>> = HashMap::new();
    for r in query(
        client,
        "SELECT superseded_at, position, attempt, status, started_at, ended_at, error_message
         FROM superseded_attempts WHERE execution_id = $1 ORDER BY superseded_at, position, attempt",
        &[&id.as_str()],
    )
    .await?
    {
        attempts
            .entry((r.try_get(0)?, int(r.try_get(1)?)?))
            .or_default()
            .push(AttemptRecord {
                attempt: int(r.try_get(2)?)?,
                status: parse(r.try_get(3)?)?,
                started_at: from_millis(r.try_get(4)?),
                ended_at: r.try_get::<_, Option<i64>>(5)?.map(from_millis),
                error: r.try_get(6)?,
            });
    }
    let mut out = Vec::new();
    for r in query(
        client,
        "SELECT superseded_at, restart_attempt, position, kind, name, occurrence, status, attempts, output,
                error_message, started_at, completed_at, branch, wake_at
         FROM superseded_steps WHERE execution_id = $1 ORDER BY superseded_at, position",
        &[&id.as_str()],
    )
    .await?
    {
        let superseded_at: i64 = r.try_get(0)?;
        let position: u32 = int(r.try_get(2)?)?;
        out.push(SupersededStep {
            run: int(r.try_get(1)?)?,
            superseded_at: from_millis(superseded_at),
            step: StepRecord {
                position,
                kind: parse(r.try_get(3)?)?,
                key: StepKey {
                    name: r.try_get(4)?,
                    occurrence: int(r.try_get(5)?)?,
                },
                status: parse(r.try_get(6)?)?,
                attempts: int(r.try_get(7)?)?,
                output: r
                    .try_get::<_, Option<Vec<u8>>>(8)?
                    .map(|b| Payload::new(codec, b)),
                error: r.try_get(9)?,
                started_at: from_millis(r.try_get(10)?),
                completed_at: r.try_get::<_, Option<i64>>(11)?.map(from_millis),
                attempt_log: attempts
                    .remove(&(superseded_at, position))
                    .unwrap_or_default(),
                branch: r.try_get(12)?,
                wake_at: r.try_get::<_, Option<i64>>(13)?.map(from_millis),
            },
        });
    }
    Ok(out)
}

/// Executions matching `filter`, newest first.
pub(super) async fn list(client: &Client, filter: &ListFilter) -> PgResult<Vec<ExecutionSummary>> {
    let status = filter.status.map(|s| s.as_str());
    let rows = query(
        client,
        "SELECT id, workflow_name, status, error_message, restart_attempt, created_at, updated_at,
                app_version
         FROM workflow_executions
         WHERE ($1::text IS NULL OR status = $1)
           AND ($2::text IS NULL OR workflow_name = $2)
           AND ($3::bigint IS NULL OR created_at >= $3)
           AND ($4::bigint IS NULL OR created_at < $4)
         ORDER BY created_at DESC, seq DESC
         LIMIT $5 OFFSET $6",
        &[
            &status,
            &filter.workflow,
            &filter.created_after.map(to_millis),
            &filter.created_before.map(to_millis),
            &i64::from(filter.limit.unwrap_or(100)),
            &i64::from(filter.offset.unwrap_or(0)),
        ],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ExecutionSummary {
                id: ExecutionId::new(r.try_get::<_, String>(0)?),
                workflow: r.try_get(1)?,
                status: parse(r.try_get(2)?)?,
                error_message: r.try_get(3)?,
                restart_attempt: int(r.try_get(4)?)?,
                created_at: from_millis(r.try_get(5)?),
                updated_at: from_millis(r.try_get(6)?),
                app_version: r.try_get(7)?,
            })
        })
        .collect()
}

pub(super) async fn count_by_status(
    client: &Client,
    filter: &ListFilter,
) -> PgResult<Vec<(ExecutionStatus, u64)>> {
    let rows = query(
        client,
        "SELECT status, count(*) FROM workflow_executions
         WHERE ($1::text IS NULL OR workflow_name = $1)
           AND ($2::bigint IS NULL OR created_at >= $2)
           AND ($3::bigint IS NULL OR created_at < $3)
         GROUP BY status",
        &[
            &filter.workflow,
            &filter.created_after.map(to_millis),
            &filter.created_before.map(to_millis),
        ],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                parse(r.try_get(0)?)?,
                u64::try_from(r.try_get::<_, i64>(1)?).unwrap_or(0),
            ))
        })
        .collect()
}

pub(super) async fn registered_workflows(client: &Client) -> PgResult<Vec<String>> {
    query(client, "SELECT name FROM workflows ORDER BY name", &[])
        .await?
        .iter()
        .map(|r| r.try_get(0).map_err(PgError::from))
        .collect()
}

pub(super) async fn register_workflows(
    client: &Client,
    workflows: &[WorkflowRow],
    now: i64,
) -> PgResult<()> {
    // In one order in every worker: workers opening at once upsert the
    // same rows, and in different orders they would deadlock.
    let mut sorted: Vec<&WorkflowRow> = workflows.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for w in sorted {
        execute(
            client,
            "INSERT INTO workflows (name, module_path, options, registered_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET module_path = excluded.module_path, options = excluded.options,
                                              registered_at = excluded.registered_at",
            &[&w.name, &w.module_path, &w.options, &now],
        )
        .await?;
    }
    Ok(())
}

pub(super) async fn insert_request(
    client: &Client,
    id: &ExecutionId,
    action: AdminAction,
    now: i64,
) -> PgResult<i64> {
    let row = query_opt(
        client,
        "INSERT INTO admin_requests (execution_id, action, requested_at) VALUES ($1, $2, $3) RETURNING id",
        &[&id.as_str(), &action.as_str(), &now],
    )
    .await?;
    Ok(row.map(|r| r.get(0)).unwrap_or(0))
}

pub(super) async fn request_outcome(
    client: &Client,
    request: i64,
) -> PgResult<Option<(Option<i64>, Option<String>)>> {
    query_opt(
        client,
        "SELECT applied_at, outcome FROM admin_requests WHERE id = $1",
        &[&request],
    )
    .await?
    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
    .transpose()
}

/// Requests not yet applied that worker `me` should apply: those of the
/// executions it owns and of those nobody owns.
/// Requests worker `me` applies: those of executions it owns or nobody
/// does, and requests to start one of `workflows` (the workers that
/// register it may all apply one: the start is idempotent).
pub(super) async fn pending_requests(
    client: &Client,
    me: i64,
    workflows: &[String],
) -> PgResult<Vec<Request>> {
    let rows = query(
        client,
        "SELECT r.id, r.execution_id, r.action, r.workflow_name, r.input
         FROM admin_requests r LEFT JOIN workflow_executions e ON e.id = r.execution_id
         WHERE r.applied_at IS NULL AND (e.owner IS NULL OR e.owner = $1)
           AND (r.action <> 'start' OR r.workflow_name = ANY($2))
         ORDER BY r.id LIMIT 1000",
        &[&me, &workflows],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let action: &str = r.try_get(2)?;
            let action = if action == START_ACTION {
                RequestAction::Start {
                    workflow: r.try_get::<_, Option<String>>(3)?.unwrap_or_default(),
                    input: r.try_get::<_, Option<Vec<u8>>>(4)?.unwrap_or_default(),
                }
            } else {
                RequestAction::Control(parse(action)?)
            };
            Ok(Request {
                id: r.try_get(0)?,
                execution: ExecutionId::new(r.try_get::<_, String>(1)?),
                action,
            })
        })
        .collect()
}

/// The executions started as children of `id`, oldest first.
pub(super) async fn children(client: &Client, id: &ExecutionId) -> PgResult<Vec<ChildRow>> {
    let rows = query(
        client,
        "SELECT id, workflow_name, status FROM workflow_executions
         WHERE parent_id = $1 ORDER BY created_at, id",
        &[&id.as_str()],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ChildRow {
                id: ExecutionId::new(r.try_get::<_, String>(0)?),
                workflow: r.try_get(1)?,
                status: parse(r.try_get(2)?)?,
            })
        })
        .collect()
}

/// Records a request to start execution `id` of `workflow`.
pub(super) async fn insert_start_request(
    client: &Client,
    id: &ExecutionId,
    workflow: &str,
    input: &[u8],
    now: i64,
) -> PgResult<i64> {
    let row = query_opt(
        client,
        "INSERT INTO admin_requests (execution_id, action, requested_at, workflow_name, input)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
        &[&id.as_str(), &START_ACTION, &now, &workflow, &input],
    )
    .await?;
    Ok(row.map(|r| r.get(0)).unwrap_or(0))
}

pub(super) async fn finish_request(
    client: &Client,
    request: i64,
    outcome: &str,
    now: i64,
) -> PgResult<()> {
    execute(
        client,
        "UPDATE admin_requests SET applied_at = $2, outcome = $3 WHERE id = $1 AND applied_at IS NULL",
        &[&request, &now, &outcome],
    )
    .await?;
    Ok(())
}

/// Suspended executions due by `now` that worker `me` owns (a sleep's
/// wake time, a wait's deadline, or a message sent to a waiter), for the
/// sweep.
pub(super) async fn due_sleepers(client: &Client, me: i64, now: i64) -> PgResult<Vec<ExecutionId>> {
    Ok(query(
        client,
        "SELECT id FROM workflow_executions
         WHERE owner = $1 AND status IN ('sleeping', 'waiting') AND wake_at <= $2
         ORDER BY wake_at LIMIT 1000",
        &[&me, &now],
    )
    .await?
    .iter()
    .filter_map(|r| r.try_get::<_, String>(0).ok().map(ExecutionId::new))
    .collect())
}

/// Deletes up to `limit` finished executions that ended before `cutoff`,
/// with everything keyed by their ids, in one statement; returns how many.
pub(super) async fn prune_batch(client: &Client, cutoff: i64, limit: u32) -> PgResult<u64> {
    execute(
        client,
        "WITH ids AS (
             SELECT id FROM workflow_executions
             WHERE status IN ('completed', 'failed', 'cancelled') AND created_at < $1 AND completed_at < $1
               AND (parent_id IS NULL OR NOT EXISTS (
                   SELECT 1 FROM workflow_executions p
                   WHERE p.id = workflow_executions.parent_id
                     AND p.status NOT IN ('completed', 'failed', 'cancelled')))
             LIMIT $2 FOR UPDATE SKIP LOCKED),
         a AS (DELETE FROM step_attempts WHERE execution_id IN (SELECT id FROM ids)),
         s AS (DELETE FROM step_executions WHERE execution_id IN (SELECT id FROM ids)),
         sa AS (DELETE FROM superseded_attempts WHERE execution_id IN (SELECT id FROM ids)),
         ss AS (DELETE FROM superseded_steps WHERE execution_id IN (SELECT id FROM ids)),
         r AS (DELETE FROM admin_requests WHERE execution_id IN (SELECT id FROM ids)),
         m AS (DELETE FROM messages WHERE execution_id IN (SELECT id FROM ids)),
         ev AS (DELETE FROM events WHERE execution_id IN (SELECT id FROM ids)),
         st AS (DELETE FROM stream_entries WHERE execution_id IN (SELECT id FROM ids))
         DELETE FROM workflow_executions WHERE id IN (SELECT id FROM ids)",
        &[&cutoff, &i64::from(limit)],
    )
    .await
}

/// The size on disk of the tables of the current schema, indexes included.
pub(super) async fn schema_bytes(client: &Client) -> PgResult<u64> {
    let row = query_opt(
        client,
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND c.relkind = 'r'",
        &[],
    )
    .await?;
    Ok(row
        .and_then(|r| r.try_get::<_, i64>(0).ok())
        .map_or(0, |b| u64::try_from(b).unwrap_or(0)))
}

/// The live worker that owns `id`, if it is not `me` (a worker declared
/// dead owns nothing: the reaper releases its executions).
pub(super) async fn owner_elsewhere(
    client: &Client,
    id: &ExecutionId,
    me: Option<i64>,
) -> PgResult<Option<i64>> {
    Ok(query_opt(
        client,
        "SELECT e.owner FROM workflow_executions e JOIN workers w ON w.id = e.owner
         WHERE e.id = $1 AND w.dead_at IS NULL AND e.owner <> $2",
        &[&id.as_str(), &me.unwrap_or(-1)],
    )
    .await?
    .and_then(|r| r.get(0)))
}

/// The workers of the schema: the live ones, then the most recent dead
/// ones (at most 200 in all), each with the unfinished executions it owns.
pub(super) async fn workers(
    client: &Client,
    me: Option<i64>,
) -> PgResult<Vec<crate::record::WorkerInfo>> {
    let rows = query(
        client,
        "SELECT w.id, w.host, w.pid, w.app_version, w.workflows,
                (extract(epoch FROM w.registered_at) * 1000)::bigint,
                (extract(epoch FROM w.lease_until) * 1000)::bigint,
                (extract(epoch FROM w.dead_at) * 1000)::bigint,
                (SELECT count(*) FROM workflow_executions e WHERE e.owner = w.id)
         FROM workers w
         ORDER BY w.dead_at IS NULL DESC, w.id DESC
         LIMIT 200",
        &[],
    )
    .await?;
    rows.iter()
        .map(|r| {
            let id: i64 = r.try_get(0)?;
            Ok(crate::record::WorkerInfo {
                id,
                host: r.try_get(1)?,
                pid: u32::try_from(r.try_get::<_, i64>(2)?).unwrap_or(u32::MAX),
                app_version: r.try_get(3)?,
                workflows: r.try_get(4)?,
                registered_at: from_millis(r.try_get(5)?),
                lease_until: from_millis(r.try_get(6)?),
                dead_at: r.try_get::<_, Option<i64>>(7)?.map(from_millis),
                owned: u64::try_from(r.try_get::<_, i64>(8)?).unwrap_or(0),
                this_runtime: me == Some(id),
            })
        })
        .collect()
}
