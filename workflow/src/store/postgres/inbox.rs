//! Messages and events on PostgreSQL: sending to an execution's inbox (any
//! process, unfenced), taking a message into the journal (the owner only,
//! in the writer's batch), and the latest values of its events.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::Statement;

use super::queries::{query, query_opt};
use super::{PgResult, codec, n, parse};
use crate::record::ExecutionId;
use crate::status::ExecutionStatus;
use crate::store::{EntryAt, EventRow, NewMessage, Sent, StreamRead, StreamRow, Taken};

type Client = ClientWrapper;

/// Commits a message to an execution's inbox, unless the execution is
/// missing or finished, records its payloads with another codec, or a
/// message with the same idempotency key was delivered before. A
/// suspended waiter's wake time becomes now, in the same statement:
/// whoever wakes it (this process, or the sweep of its owner) finds the
/// message. One statement, so one round trip and its own transaction.
///
/// The execution's row is locked first (`e`): a waiter's change to
/// `waiting` and this send are then in one order. Either the send sees
/// `waiting` and sets the wake time, or the waiter's change commits after
/// the message, and its look at the inbox after suspending finds it.
/// Under the lock `e` reads the row's latest version, and so does the
/// update of `wake`.
///
/// `$1` the execution, `$2` the topic, `$3` the payload, `$4` its type,
/// `$5` the idempotency key, `$6` the time, `$7` the codec of the payload.
pub(super) const SEND_MESSAGE: &str = "WITH e AS (SELECT status, codec FROM workflow_executions WHERE id = $1 FOR NO KEY UPDATE),
     dup AS (SELECT 1 FROM messages WHERE $5::text IS NOT NULL AND execution_id = $1 AND idempotency_key = $5),
     ins AS (INSERT INTO messages (execution_id, topic, payload, value_type, idempotency_key, sent_at)
             SELECT $1, $2, $3, $4, $5, $6 FROM e
             WHERE NOT EXISTS (SELECT 1 FROM dup)
               AND e.status NOT IN ('completed', 'failed', 'cancelled') AND e.codec = $7
             ON CONFLICT (execution_id, idempotency_key) DO NOTHING
             RETURNING 1),
     wake AS (UPDATE workflow_executions SET wake_at = $6
              WHERE id = $1 AND EXISTS (SELECT 1 FROM ins) AND status IN ('sleeping', 'waiting')
                AND (wake_at IS NULL OR wake_at > $6)
              RETURNING 1)
     SELECT e.status, e.codec, EXISTS (SELECT 1 FROM dup), EXISTS (SELECT 1 FROM ins)
     FROM (SELECT 1) AS one LEFT JOIN e ON true";

/// See [`SEND_MESSAGE`]: one send, in a transaction of its own.
pub(super) async fn send_message(client: &Client, m: &NewMessage) -> PgResult<Sent> {
    let stmt = client.prepare_cached(SEND_MESSAGE).await?;
    send_prepared(client, &stmt, m).await
}

/// Runs [`SEND_MESSAGE`], prepared as `stmt`, for `m` (in the caller's
/// transaction, if one is open).
pub(super) async fn send_prepared(
    client: &Client,
    stmt: &Statement,
    m: &NewMessage,
) -> PgResult<Sent> {
    let row = client
        .query_opt(
            stmt,
            &[
                &m.execution.as_str(),
                &m.topic,
                &m.payload,
                &m.value_type,
                &m.idempotency_key,
                &m.now,
                &m.codec.as_str(),
            ],
        )
        .await?;
    let Some(row) = row else {
        // The statement's final SELECT always gives one row.
        return Ok(Sent::Missing);
    };
    let Some(status) = row.try_get::<_, Option<String>>(0)? else {
        return Ok(Sent::Missing);
    };
    let status: ExecutionStatus = parse(&status)?;
    // A retried webhook whose message was delivered is a duplicate, also
    // once the execution has ended.
    if row.try_get::<_, bool>(2)? {
        return Ok(Sent::Duplicate);
    }
    if status.is_terminal() {
        return Ok(Sent::Finished(status));
    }
    let found_codec = codec(row.try_get(1)?)?;
    if found_codec != m.codec {
        return Ok(Sent::OtherCodec(found_codec));
    }
    if !row.try_get::<_, bool>(3)? {
        // The same key, sent at the same moment by another process.
        return Ok(Sent::Duplicate);
    }
    // A sleeping one too: see the SQLite store.
    Ok(Sent::Delivered {
        suspended: status.is_suspended(),
    })
}

/// What [`take_message`] found.
#[derive(Debug)]
pub(super) enum Took {
    /// The message taken into the entry, or `None` when none waits.
    Taken(Option<Taken>),
    /// The worker does not own the execution: nothing was taken.
    NotOwned,
}

/// Takes the oldest untaken message of the topic `at.name` into the `recv`
/// entry at `at` (created, or completed if it was waiting), for worker
/// `me`, in one statement of the writer's batch: the message leaves the
/// inbox exactly when the journal holds it, and only while `me` owns the
/// execution.
///
/// `$1` to `$8` are the entry's place as the journal ops have it
/// (`ops::Place`), `$9` the time, `$10` the type the workflow reads the
/// message as (the entry's `value_type`; the message's own is the type it
/// was sent as, returned to name it if it does not decode), `$11` the
/// latest time the message may have been sent (none: any).
pub(super) const TAKE_MESSAGE: &str = "WITH own AS (SELECT 1 FROM workflow_executions WHERE id = $1 AND owner + 0 = $2),
     m AS (SELECT id, coalesce(payload, ''::bytea) AS payload, value_type FROM messages
           WHERE execution_id = $1 AND topic = $7 AND taken_at IS NULL AND EXISTS (SELECT 1 FROM own)
             AND ($11::bigint IS NULL OR sent_at <= $11)
           ORDER BY id LIMIT 1),
     t AS (UPDATE messages u SET taken_at = $9, taken_position = $3::bigint, payload = NULL
           FROM m WHERE u.id = m.id AND u.taken_at IS NULL
           RETURNING m.payload, m.value_type),
     s AS (INSERT INTO step_executions
               (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
                started_at, completed_at, value_type)
           SELECT $1, $3, $4, $5, $6, $7, $8, 'completed', 1, t.payload, $9, $9, $10 FROM t
           ON CONFLICT (execution_id, position)
           DO UPDATE SET status = 'completed', output = excluded.output,
                         completed_at = excluded.completed_at, value_type = excluded.value_type)
     SELECT EXISTS (SELECT 1 FROM own), t.payload, t.value_type FROM (SELECT 1) AS one LEFT JOIN t ON true";

/// See [`TAKE_MESSAGE`]: the statement goes out when the future is first
/// polled, in the writer's pipeline.
pub(super) async fn take_message(
    client: &Client,
    statement: &Statement,
    at: &EntryAt,
    entry_type: i32,
    sent_by: Option<i64>,
    me: i64,
    now: i64,
) -> PgResult<Took> {
    let (position, local, occurrence) = (n(at.position), n(at.local), n(at.occurrence));
    let row = client
        .query_opt(
            statement,
            &[
                &at.execution.as_str(),
                &me,
                &position,
                &at.branch.as_ref(),
                &local,
                &at.kind.as_str(),
                &at.name.as_ref(),
                &occurrence,
                &now,
                &entry_type,
                &sent_by,
            ],
        )
        .await?;
    let Some(row) = row else {
        // The statement's final SELECT always gives one row.
        return Ok(Took::NotOwned);
    };
    if !row.try_get::<_, bool>(0)? {
        return Ok(Took::NotOwned);
    }
    let payload: Option<Vec<u8>> = row.try_get(1)?;
    let value_type: Option<i32> = row.try_get(2)?;
    Ok(Took::Taken(payload.map(|payload| Taken {
        payload,
        value_type,
    })))
}

/// Whether a message on `topic` waits in `id`'s inbox.
pub(super) async fn has_message(client: &Client, id: &ExecutionId, topic: &str) -> PgResult<bool> {
    let row = query_opt(
        client,
        "SELECT EXISTS (SELECT 1 FROM messages
                        WHERE execution_id = $1 AND topic = $2 AND taken_at IS NULL)",
        &[&id.as_str(), &topic],
    )
    .await?;
    Ok(match row {
        Some(r) => r.try_get(0)?,
        None => false,
    })
}

/// The latest value of every event key of `id` (or of `key` alone), by
/// key in byte order (as the SQLite store gives them, whatever the
/// database's collation); `None` when there is no such execution.
pub(super) async fn events(
    client: &Client,
    id: &ExecutionId,
    key: Option<&str>,
) -> PgResult<Option<Vec<EventRow>>> {
    // One row with NULL event columns: an execution without events.
    let rows = query(
        client,
        "SELECT e.codec, v.key, v.value, v.value_type, v.updated_at
         FROM workflow_executions e
         LEFT JOIN events v ON v.execution_id = e.id AND ($2::text IS NULL OR v.key = $2)
         WHERE e.id = $1
         ORDER BY v.key COLLATE \"C\"",
        &[&id.as_str(), &key],
    )
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let codec = codec(first.try_get(0)?)?;
    let mut events = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(key) = r.try_get::<_, Option<String>>(1)? else {
            continue;
        };
        events.push(EventRow {
            key,
            codec,
            value: r.try_get(2)?,
            value_type: r.try_get(3)?,
            updated_at: r.try_get(4)?,
        });
    }
    Ok(Some(events))
}

/// Rows of stream `key` of `id` from `from` on, with the execution's status
/// in the same snapshot; `None` when there is no such execution.
pub(super) async fn stream_rows(
    client: &Client,
    id: &ExecutionId,
    key: &str,
    from: i64,
    limit: u32,
) -> PgResult<Option<StreamRead>> {
    // One row with NULL stream columns: nothing from `from` on.
    let rows = query(
        client,
        "SELECT e.status, e.codec, s.seq, s.value
         FROM workflow_executions e
         LEFT JOIN stream_entries s ON s.execution_id = e.id AND s.key = $2 AND s.seq >= $3
         WHERE e.id = $1
         ORDER BY s.seq LIMIT $4",
        &[&id.as_str(), &key, &from, &i64::from(limit)],
    )
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let status: ExecutionStatus = parse(first.try_get(0)?)?;
    let codec = codec(first.try_get(1)?)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let Some(seq) = r.try_get::<_, Option<i64>>(2)? else {
            continue;
        };
        out.push(StreamRow {
            seq,
            value: r.try_get(3)?,
        });
    }
    Ok(Some(StreamRead {
        status,
        codec,
        rows: out,
    }))
}
