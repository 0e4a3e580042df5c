//! The SQL of the journal's typed operations: one function applies any
//! [`JournalOp`] on the writer's connection.

use rusqlite::{Connection, named_params, params};

use crate::status::StepStatus;
use crate::store::{AttemptEnd, EntryAt, JournalOp};

/// Applies one journal operation inside the writer's transaction.
pub(super) fn apply(conn: &Connection, op: &JournalOp) -> rusqlite::Result<()> {
    match op {
        JournalOp::BeginAttempt {
            at,
            attempt,
            started,
        } => begin_attempt(conn, at, *attempt, *started),
        JournalOp::CompleteStep {
            at,
            attempt,
            started,
            output,
            now,
            log_attempt,
            value_type,
        } => complete_step(
            conn,
            at,
            *attempt,
            *started,
            output,
            *now,
            *log_attempt,
            *value_type,
        ),
        JournalOp::FailAttempt {
            at,
            attempt,
            started,
            message,
            end,
            now,
        } => fail_attempt(conn, at, *attempt, *started, message, end, *now),
        JournalOp::RecordValue { at, output, now } => record_value(conn, at, output, *now),
        JournalOp::RecordSleep { at, wake_at, now } => record_sleep(conn, at, *wake_at, *now),
        JournalOp::CompleteSleep { at, now } => {
            conn.prepare_cached(
                "UPDATE step_executions SET status = 'completed', completed_at = :now
                 WHERE execution_id = :execution AND position = :position",
            )?
            .execute(named_params! {
                ":execution": at.execution.as_str(),
                ":position": at.position,
                ":now": now,
            })?;
            Ok(())
        }
        JournalOp::RecordWait { at, deadline, now } => record_wait(conn, at, *deadline, *now),
        JournalOp::TimeOut { at, now } => {
            conn.prepare_cached(
                "UPDATE step_executions SET status = 'completed', completed_at = :now
                 WHERE execution_id = :execution AND position = :position",
            )?
            .execute(named_params! {
                ":execution": at.execution.as_str(),
                ":position": at.position,
                ":now": now,
            })?;
            Ok(())
        }
        JournalOp::SetEvent {
            at,
            value,
            value_type,
            now,
        } => set_event(conn, at, value, *value_type, *now),
        JournalOp::WriteStream {
            at,
            value,
            value_type,
            now,
        } => write_stream(conn, at, value.as_deref(), *value_type, *now),
        JournalOp::ResetRecovery { id } => {
            conn.prepare_cached(
                "UPDATE workflow_executions SET recovery_attempts = 0 WHERE id = :id",
            )?
            .execute(named_params! { ":id": id.as_str() })?;
            Ok(())
        }
    }
}

fn begin_attempt(conn: &Connection, at: &EntryAt, attempt: u32, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, started_at)
         VALUES (:execution, :position, :branch, :local, :kind, :name, :occurrence, 'running', :attempt, :now)
         ON CONFLICT (execution_id, position)
         DO UPDATE SET status = 'running', attempts = excluded.attempts",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":branch": at.branch.as_ref(),
        ":local": at.local,
        ":kind": at.kind,
        ":name": at.name.as_ref(),
        ":occurrence": at.occurrence,
        ":attempt": attempt,
        ":now": now,
    })?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO step_attempts (execution_id, position, attempt, status, started_at)
         VALUES (:execution, :position, :attempt, 'running', :now)",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":attempt": attempt,
        ":now": now,
    })?;
    Ok(())
}

/// The entry is created if its start was never recorded. Without
/// `log_attempt` the attempt is not written to `step_attempts`: the entry
/// holds it, and `load_info` shows it as attempt 1.
#[allow(clippy::too_many_arguments)]
fn complete_step(
    conn: &Connection,
    at: &EntryAt,
    attempt: u32,
    started: i64,
    output: &[u8],
    now: i64,
    log_attempt: bool,
    value_type: i32,
) -> rusqlite::Result<()> {
    // The hottest statement: bound by position (a named bind looks each
    // name up), in the order the names first appear, which a debug build
    // checks.
    let mut insert = conn.prepare_cached(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
              started_at, completed_at, value_type)
         VALUES (:execution, :position, :branch, :local, :kind, :name, :occurrence, 'completed', :attempt, :output,
                 :started, :now, :value_type)
         ON CONFLICT (execution_id, position)
         DO UPDATE SET status = 'completed', attempts = excluded.attempts, output = excluded.output,
                       error = NULL, completed_at = excluded.completed_at,
                       value_type = excluded.value_type",
    )?;
    debug_assert_names(
        &insert,
        &[
            ":execution",
            ":position",
            ":branch",
            ":local",
            ":kind",
            ":name",
            ":occurrence",
            ":attempt",
            ":output",
            ":started",
            ":now",
            ":value_type",
        ],
    );
    insert.execute(params![
        at.execution.as_str(),
        at.position,
        at.branch.as_ref(),
        at.local,
        at.kind,
        at.name.as_ref(),
        at.occurrence,
        attempt,
        output,
        started,
        now,
        value_type,
    ])?;
    if log_attempt {
        conn.prepare_cached(
            "INSERT INTO step_attempts (execution_id, position, attempt, status, started_at, ended_at)
             VALUES (:execution, :position, :attempt, 'completed', :started, :now)
             ON CONFLICT (execution_id, position, attempt)
             DO UPDATE SET status = 'completed', ended_at = excluded.ended_at",
        )?
        .execute(named_params! {
            ":execution": at.execution.as_str(),
            ":position": at.position,
            ":attempt": attempt,
            ":started": started,
            ":now": now,
        })?;
    }
    Ok(())
}

/// Checks, in debug builds, that a statement's parameters are `names` in
/// this order, so a positional bind matches the names in its SQL.
fn debug_assert_names(stmt: &rusqlite::Statement<'_>, names: &[&str]) {
    if cfg!(debug_assertions) {
        let found: Vec<Option<&str>> = (1..=stmt.parameter_count())
            .map(|i| stmt.parameter_name(i))
            .collect();
        let expected: Vec<Option<&str>> = names.iter().map(|n| Some(*n)).collect();
        debug_assert_eq!(found, expected, "parameters bound out of order");
    }
}

fn fail_attempt(
    conn: &Connection,
    at: &EntryAt,
    attempt: u32,
    started: i64,
    message: &str,
    end: &AttemptEnd,
    now: i64,
) -> rusqlite::Result<()> {
    let (status, error, completed_at, wake_at, value_type) = match end {
        AttemptEnd::RetryAt(retry_at) => (StepStatus::Retrying, None, None, Some(*retry_at), None),
        AttemptEnd::Interrupted => (StepStatus::Retrying, None, None, None, None),
        AttemptEnd::Failed(error, value_type) => (
            StepStatus::Failed,
            Some(error.as_slice()),
            Some(now),
            None,
            Some(*value_type),
        ),
    };
    conn.prepare_cached(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, error,
              error_message, started_at, completed_at, wake_at, value_type)
         VALUES (:execution, :position, :branch, :local, :kind, :name, :occurrence, :status, :attempt, :error,
                 :message, :started, :completed_at, :wake_at, :value_type)
         ON CONFLICT (execution_id, position)
         DO UPDATE SET status = excluded.status, attempts = excluded.attempts, error = excluded.error,
                       error_message = excluded.error_message, completed_at = excluded.completed_at,
                       wake_at = excluded.wake_at, value_type = excluded.value_type",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":branch": at.branch.as_ref(),
        ":local": at.local,
        ":kind": at.kind,
        ":name": at.name.as_ref(),
        ":occurrence": at.occurrence,
        ":status": status,
        ":attempt": attempt,
        ":error": error,
        ":message": message,
        ":started": started,
        ":completed_at": completed_at,
        ":wake_at": wake_at,
        ":value_type": value_type,
    })?;
    conn.prepare_cached(
        "INSERT INTO step_attempts
             (execution_id, position, attempt, status, started_at, ended_at, error_message)
         VALUES (:execution, :position, :attempt, 'failed', :started, :now, :message)
         ON CONFLICT (execution_id, position, attempt)
         DO UPDATE SET status = 'failed', ended_at = excluded.ended_at, error_message = excluded.error_message",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":attempt": attempt,
        ":started": started,
        ":now": now,
        ":message": message,
    })?;
    Ok(())
}

fn record_value(conn: &Connection, at: &EntryAt, output: &[u8], now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
              started_at, completed_at)
         VALUES (:execution, :position, :branch, :local, :kind, :name, :occurrence, 'completed', 1, :output,
                 :now, :now)",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":branch": at.branch.as_ref(),
        ":local": at.local,
        ":kind": at.kind,
        ":name": at.name.as_ref(),
        ":occurrence": at.occurrence,
        ":output": output,
        ":now": now,
    })?;
    Ok(())
}

fn record_sleep(conn: &Connection, at: &EntryAt, wake_at: i64, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, wake_at, started_at)
         VALUES (:execution, :position, :branch, :local, :kind, :name, :occurrence, 'sleeping', 1, :wake_at, :now)",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":branch": at.branch.as_ref(),
        ":local": at.local,
        ":kind": at.kind,
        ":name": at.name.as_ref(),
        ":occurrence": at.occurrence,
        ":wake_at": wake_at,
        ":now": now,
    })?;
    Ok(())
}

fn record_wait(
    conn: &Connection,
    at: &EntryAt,
    deadline: Option<i64>,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, wake_at, started_at)
         VALUES (:execution, :position, :branch, :local, :kind, :name, :occurrence, 'waiting', 1, :wake_at, :now)",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":branch": at.branch.as_ref(),
        ":local": at.local,
        ":kind": at.kind,
        ":name": at.name.as_ref(),
        ":occurrence": at.occurrence,
        ":wake_at": deadline,
        ":now": now,
    })?;
    Ok(())
}

/// The `event` entry and the key's latest value, under the op's savepoint.
fn set_event(
    conn: &Connection,
    at: &EntryAt,
    value: &[u8],
    value_type: i32,
    now: i64,
) -> rusqlite::Result<()> {
    completed_entry(conn, at, Some(value), Some(value_type), now)?;
    conn.prepare_cached(
        "INSERT INTO events (execution_id, key, value, value_type, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (execution_id, key) DO UPDATE
         SET value = excluded.value, value_type = excluded.value_type, updated_at = excluded.updated_at",
    )?
    .execute(params![
        at.execution.as_str(),
        at.name.as_ref(),
        value,
        value_type,
        now
    ])?;
    Ok(())
}

/// The `stream` entry and the stream's next row (a value, or its end),
/// under the op's savepoint.
fn write_stream(
    conn: &Connection,
    at: &EntryAt,
    value: Option<&[u8]>,
    value_type: Option<i32>,
    now: i64,
) -> rusqlite::Result<()> {
    completed_entry(conn, at, value, value_type, now)?;
    conn.prepare_cached(
        "INSERT INTO stream_entries (execution_id, key, seq, value, value_type, written_at)
         SELECT ?1, ?2, coalesce(max(seq) + 1, 0), ?3, ?4, ?5
         FROM stream_entries WHERE execution_id = ?1 AND key = ?2",
    )?
    .execute(params![
        at.execution.as_str(),
        at.name.as_ref(),
        value,
        value_type,
        now
    ])?;
    Ok(())
}

/// The entry at `at`, completed with `output` (of the type of hash
/// `value_type`): created, or completed if it was waiting (a `recv`). The
/// entries of messages, events and streams.
pub(super) fn completed_entry(
    conn: &Connection,
    at: &EntryAt,
    output: Option<&[u8]>,
    value_type: Option<i32>,
    now: i64,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
              started_at, completed_at, value_type)
         VALUES (:execution, :position, :branch, :local, :kind, :name, :occurrence, 'completed', 1, :output,
                 :now, :now, :value_type)
         ON CONFLICT (execution_id, position) DO UPDATE
         SET status = 'completed', output = excluded.output, completed_at = excluded.completed_at,
             value_type = excluded.value_type",
    )?
    .execute(named_params! {
        ":execution": at.execution.as_str(),
        ":position": at.position,
        ":branch": at.branch.as_ref(),
        ":local": at.local,
        ":kind": at.kind,
        ":name": at.name.as_ref(),
        ":occurrence": at.occurrence,
        ":output": output,
        ":now": now,
        ":value_type": value_type,
    })?;
    Ok(())
}
