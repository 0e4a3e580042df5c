//! Sends committed in groups. A send returns once its message is
//! committed, and many senders at once (webhooks, a fan-out) would each pay
//! a commit of their own. The sender task takes every send queued at that
//! moment and commits them in one transaction on a pooled connection: two
//! round trips (`BEGIN` with the lock of the group's rows, then the sends,
//! `inbox::SEND_MESSAGE`, one statement each in the order of their
//! executions, with `COMMIT`) and one flush of the log for the group. A
//! few groups may be in flight at once.
//!
//! Each send locks its execution's row (see `SEND_MESSAGE`), and a group
//! keeps those locks until its commit. A group first locks the rows of its
//! executions that no other transaction holds (`FOR NO KEY UPDATE SKIP
//! LOCKED`), and sends together only to those: holding every row it
//! writes, it waits for no other transaction, so it cannot deadlock with a
//! worker's batch or another group. A send whose row was taken (or that
//! has no row) goes alone after the group, waiting for the row as a single
//! send does. A group the server refused sends its messages again one by
//! one, each in a transaction of its own, so that a failure is its send's
//! alone.

use std::collections::HashSet;
use std::sync::Arc;

use deadpool_postgres::{Object, Pool};
use futures_util::future::join_all;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::inbox;
use super::{Failure, PgError, PgResult, pg};
use crate::error::Result;
use crate::store::{NewMessage, Sent};

/// Most sends committed in one transaction.
const MAX_GROUP: usize = 256;

/// Groups in flight at once.
const IN_FLIGHT: usize = 4;

/// A send and where its outcome goes.
pub(super) struct Send {
    pub message: NewMessage,
    pub reply: oneshot::Sender<Result<Sent>>,
}

/// The sender task: takes groups from `rx` until every sender is gone.
pub(super) async fn run(pool: Pool, mut rx: mpsc::UnboundedReceiver<Send>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // Wait for a free slot first: sends queue meanwhile, and the group
        // taken then is the larger.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else { return };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(s) => group.push(s),
                Err(_) => break,
            }
        }
        tracing::trace!(sends = group.len(), "a group of sends");
        let pool = pool.clone();
        tokio::spawn(async move {
            match pool.get().await {
                Ok(client) => commit(&pool, &client, group).await,
                Err(e) => {
                    let f = Failure::Unavailable(e.to_string().into());
                    for send in group {
                        let _ = send.reply.send(Err(f.to_error()));
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Locks, for a group, the rows of its executions that no other
/// transaction holds, without waiting for those that one does.
const LOCK_FREE_ROWS: &str =
    "SELECT id FROM workflow_executions WHERE id = ANY($1) FOR NO KEY UPDATE SKIP LOCKED";

/// Commits a group's sends and answers each: those whose execution's row
/// was free together in one transaction, answered at its commit; the
/// others (a row another transaction holds, or no row at all) one by one
/// after it, each on a connection of its own (one may wait for its row).
async fn commit(pool: &Pool, client: &Object, mut group: Vec<Send>) {
    if group.len() == 1 {
        for send in group {
            let outcome = inbox::send_message(client, &send.message).await;
            let _ = send.reply.send(outcome.map_err(pg));
        }
        return;
    }
    // Stable: sends to one execution keep the order they came in.
    group.sort_by(|a, b| a.message.execution.cmp(&b.message.execution));
    let together = together(client, &group).await;
    let mut group: Vec<Option<Send>> = group.into_iter().map(Some).collect();
    for (i, outcome) in together {
        if let Some(send) = group[i].take() {
            let _ = send.reply.send(outcome);
        }
    }
    let alone: Vec<Send> = group.into_iter().flatten().collect();
    if !alone.is_empty() {
        tracing::debug!(sends = alone.len(), "sends of a group sent one by one");
    }
    join_all(alone.into_iter().map(|send| async move {
        let outcome = match pool.get().await {
            Ok(client) => inbox::send_message(&client, &send.message)
                .await
                .map_err(pg),
            Err(e) => Err(Failure::Unavailable(e.to_string().into()).to_error()),
        };
        let _ = send.reply.send(outcome);
    }))
    .await;
}

/// Sends in one transaction those of `group` whose execution's row it can
/// lock at once ([`LOCK_FREE_ROWS`]): having all its rows, the transaction
/// waits for no other, so it can neither deadlock nor hold up the group.
/// Their places in the group and outcomes; none when the server refused
/// the transaction (its sends then go one by one, so that a failure is its
/// send's alone).
async fn together(client: &Object, group: &[Send]) -> Vec<(usize, Result<Sent>)> {
    let (Ok(lock), Ok(send)) = futures_util::future::join(
        client.prepare_cached(LOCK_FREE_ROWS),
        client.prepare_cached(inbox::SEND_MESSAGE),
    )
    .await
    else {
        return Vec::new();
    };
    let mut ids: Vec<&str> = group.iter().map(|s| s.message.execution.as_str()).collect();
    ids.dedup();
    // Requests go out in the order they are first polled.
    let begin = client.batch_execute("BEGIN");
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&ids];
    let locked = client.query(&lock, &params);
    let (begun, locked) = futures_util::future::join(begin, locked).await;
    if begun.is_err() {
        // No transaction: whatever the lock took, it let go at once.
        return Vec::new();
    }
    let Ok(locked) = locked else {
        let _ = client.batch_execute("ROLLBACK").await;
        return Vec::new();
    };
    let locked: HashSet<String> = locked.iter().filter_map(|r| r.try_get(0).ok()).collect();
    let members: Vec<usize> = (0..group.len())
        .filter(|&i| locked.contains(group[i].message.execution.as_str()))
        .collect();
    if members.is_empty() {
        let _ = client.batch_execute("COMMIT").await;
        return Vec::new();
    }
    let sends = join_all(
        members
            .iter()
            .map(|&i| inbox::send_prepared(client, &send, &group[i].message)),
    );
    let end = client.batch_execute("COMMIT");
    let (sent, ended) = futures_util::future::join(sends, end).await;
    let refused = |r: &PgResult<Sent>| matches!(r, Err(PgError::Pg(e)) if e.as_db_error().is_some() || e.is_closed());
    if ended.is_ok() && !sent.iter().any(refused) {
        // Committed; a send the client could not encode was never sent.
        return members
            .into_iter()
            .zip(sent)
            .map(|(i, r)| (i, r.map_err(pg)))
            .collect();
    }
    if client.is_closed() {
        // Whether the group committed is unknown, as for one send whose
        // connection drops: each sender hears of the failure.
        let f = Failure::Unavailable("the connection closed while sending".into());
        return members
            .into_iter()
            .map(|i| (i, Err(f.to_error())))
            .collect();
    }
    // The server refused a statement, and so rolled the group back at
    // `COMMIT` (or refused the `COMMIT`).
    let _ = client.batch_execute("ROLLBACK").await;
    Vec::new()
}
