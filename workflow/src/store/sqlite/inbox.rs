//! Messages and events: sending to an execution's inbox, taking a message
//! into the journal, and the latest values of its events.

use rusqlite::{Connection, OptionalExtension, params};

use crate::codec::Codec;
use crate::record::ExecutionId;
use crate::status::ExecutionStatus;
use crate::store::{EntryAt, EventRow, NewMessage, Sent, StreamRead, StreamRow, Taken};

/// Commits a message to an execution's inbox, unless the execution is
/// missing or finished, or a message with its idempotency key was
/// delivered before. A suspended execution's wake time becomes now, in the
/// same transaction: whoever wakes it (this process, or the sweep of the
/// worker when an admin sent it) finds the message. Writes name `main`: on
/// an admin connection, temporary tables of the same names may shadow the
/// file's (`read_as_current`).
pub(super) fn send_message(conn: &Connection, m: &NewMessage) -> rusqlite::Result<Sent> {
    let found: Option<(ExecutionStatus, Codec)> = conn
        .prepare_cached("SELECT status, codec FROM workflow_executions WHERE id = ?1")?
        .query_row([m.execution.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    if found.is_some()
        && let Some(key) = &m.idempotency_key
    {
        // A retried webhook whose message was delivered is a duplicate,
        // also once the execution has ended.
        let delivered: bool = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE execution_id = ?1 AND idempotency_key = ?2)",
            )?
            .query_row(params![m.execution.as_str(), key], |r| r.get(0))?;
        if delivered {
            return Ok(Sent::Duplicate);
        }
    }
    let status = match found {
        None => return Ok(Sent::Missing),
        Some((s, _)) if s.is_terminal() => return Ok(Sent::Finished(s)),
        Some((_, codec)) if codec != m.codec => return Ok(Sent::OtherCodec(codec)),
        Some((s, _)) => s,
    };
    let inserted = conn
        .prepare_cached(
            "INSERT INTO main.messages (execution_id, topic, payload, value_type, idempotency_key, sent_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (execution_id, idempotency_key) DO NOTHING",
        )?
        .execute(params![
            m.execution.as_str(),
            m.topic,
            m.payload,
            m.value_type,
            m.idempotency_key,
            m.now
        ])?;
    if inserted == 0 {
        return Ok(Sent::Duplicate);
    }
    // A sleeping one too: one of its branches may wait for this message
    // while another sleeps (a replay sleeps again, its wake time kept).
    let suspended = status.is_suspended();
    if suspended {
        conn.prepare_cached(
            "UPDATE main.workflow_executions SET wake_at = ?2
             WHERE id = ?1 AND (status = 'sleeping' OR status = 'waiting')
               AND (wake_at IS NULL OR wake_at > ?2)",
        )?
        .execute(params![m.execution.as_str(), m.now])?;
    }
    Ok(Sent::Delivered { suspended })
}

/// Takes the oldest message of the topic `at.name` into the `recv` entry
/// at `at` (created, or completed if it was waiting), in one transaction:
/// the message leaves the inbox exactly when the journal holds it. The
/// entry records `entry_type`, the type the workflow reads it as.
pub(super) fn take_message(
    conn: &Connection,
    at: &EntryAt,
    entry_type: i32,
    sent_by: Option<i64>,
    now: i64,
) -> rusqlite::Result<Option<Taken>> {
    let found: Option<(i64, Option<Vec<u8>>, Option<i32>)> = conn
        .prepare_cached(
            "SELECT id, payload, value_type FROM messages
             WHERE execution_id = ?1 AND topic = ?2 AND taken_at IS NULL
               AND (?3 IS NULL OR sent_at <= ?3)
             ORDER BY id LIMIT 1",
        )?
        .query_row(
            params![at.execution.as_str(), at.name.as_ref(), sent_by],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((id, payload, value_type)) = found else {
        return Ok(None);
    };
    let payload = payload.unwrap_or_default();
    conn.prepare_cached(
        "UPDATE messages SET taken_at = ?2, taken_position = ?3, payload = NULL WHERE id = ?1",
    )?
    .execute(params![id, now, at.position])?;
    super::ops::completed_entry(conn, at, Some(&payload), Some(entry_type), now)?;
    Ok(Some(Taken {
        payload,
        value_type,
    }))
}

/// Whether a message on `topic` waits in `id`'s inbox.
pub(super) fn has_message(
    conn: &Connection,
    id: &ExecutionId,
    topic: &str,
) -> rusqlite::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM messages
                        WHERE execution_id = ?1 AND topic = ?2 AND taken_at IS NULL)",
    )?
    .query_row(params![id.as_str(), topic], |r| r.get(0))
}

/// The latest value of every event key of `id` (or of `key` alone), by
/// key; `None` when there is no such execution.
pub(super) fn events(
    conn: &Connection,
    id: &ExecutionId,
    key: Option<&str>,
) -> rusqlite::Result<Option<Vec<EventRow>>> {
    let codec: Option<Codec> = conn
        .prepare_cached("SELECT codec FROM workflow_executions WHERE id = ?1")?
        .query_row([id.as_str()], |r| r.get(0))
        .optional()?;
    let Some(codec) = codec else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, value_type, updated_at FROM events
         WHERE execution_id = ?1 AND (?2 IS NULL OR key = ?2) ORDER BY key",
    )?;
    let rows = stmt.query_map(params![id.as_str(), key], |r| {
        Ok(EventRow {
            key: r.get(0)?,
            codec,
            value: r.get(1)?,
            value_type: r.get(2)?,
            updated_at: r.get(3)?,
        })
    })?;
    rows.collect::<rusqlite::Result<_>>().map(Some)
}

/// The schema version of the file itself (`main`): an admin open of a file
/// older than messages reads it through temporary tables, where a message
/// would never reach the worker.
pub(super) fn file_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(Some("main"), "user_version", |r| r.get(0))
}

/// Rows of stream `key` of `id` from `from` on, the execution's status
/// read first; `None` when there is no such execution.
pub(super) fn stream_rows(
    conn: &Connection,
    id: &ExecutionId,
    key: &str,
    from: i64,
    limit: u32,
) -> rusqlite::Result<Option<StreamRead>> {
    let found: Option<(ExecutionStatus, Codec)> = conn
        .prepare_cached("SELECT status, codec FROM workflow_executions WHERE id = ?1")?
        .query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((status, codec)) = found else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT seq, value FROM stream_entries
         WHERE execution_id = ?1 AND key = ?2 AND seq >= ?3 ORDER BY seq LIMIT ?4",
    )?;
    let rows = stmt
        .query_map(params![id.as_str(), key, from, limit], |r| {
            Ok(StreamRow {
                seq: r.get(0)?,
                value: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some(StreamRead {
        status,
        codec,
        rows,
    }))
}
