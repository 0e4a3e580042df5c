//! Sends committed in groups. A send returns once its message is
//! committed, and many senders at once (webhooks, a fan-out) would each pay
//! a commit of their own. The sender task takes every send queued at that
//! moment and commits them in one transaction on a pooled connection:
//! `BEGIN`, the sends (`inbox::SEND_MESSAGE`, one statement each, in the
//! order of their executions) and `COMMIT` go out together, one round trip
//! and one flush of the log for the group. A few groups may be in flight
//! at once, so that one held up by a row lock does not hold up the rest.
//!
//! Each send locks its execution's row (see `SEND_MESSAGE`), and a group
//! keeps those locks until its commit: groups lock rows in one order (by
//! id), so two groups never wait for each other in a cycle. A worker's
//! batch locks its executions in its own order; should it and a group
//! deadlock, PostgreSQL aborts one of them, and a group the server refused
//! (for that or any reason) sends its messages again one by one, each in a
//! transaction of its own, so that a failure is its send's alone.

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
        let pool = pool.clone();
        tokio::spawn(async move {
            let outcomes = match pool.get().await {
                Ok(client) => commit(&client, &mut group).await,
                Err(e) => {
                    let f = Failure::Unavailable(e.to_string().into());
                    group.iter().map(|_| Err(f.to_error())).collect()
                }
            };
            for (send, outcome) in group.into_iter().zip(outcomes) {
                let _ = send.reply.send(outcome);
            }
            drop(slot);
        });
    }
}

/// Commits a group's sends (sorted by execution first); their outcomes,
/// in the group's order.
async fn commit(client: &Object, group: &mut [Send]) -> Vec<Result<Sent>> {
    if let [one] = group {
        return vec![inbox::send_message(client, &one.message).await.map_err(pg)];
    }
    // Stable: sends to one execution keep the order they came in.
    group.sort_by(|a, b| a.message.execution.cmp(&b.message.execution));
    let stmt = match client.prepare_cached(inbox::SEND_MESSAGE).await {
        Ok(stmt) => stmt,
        Err(e) => {
            let f = Failure::pg(&e);
            return group.iter().map(|_| Err(f.to_error())).collect();
        }
    };
    let begin = client.batch_execute("BEGIN");
    let sends = join_all(
        group
            .iter()
            .map(|s| inbox::send_prepared(client, &stmt, &s.message)),
    );
    let end = client.batch_execute("COMMIT");
    // Requests go out in the order they are first polled.
    let (begun, sent, ended) = futures_util::future::join3(begin, sends, end).await;
    if begun.is_err() {
        // No transaction: each statement ran, or failed, on its own.
        return sent.into_iter().map(|r| r.map_err(pg)).collect();
    }
    let refused = |r: &PgResult<Sent>| matches!(r, Err(PgError::Pg(e)) if e.as_db_error().is_some() || e.is_closed());
    if ended.is_ok() && !sent.iter().any(refused) {
        // Committed; a send the client could not encode was never sent.
        return sent.into_iter().map(|r| r.map_err(pg)).collect();
    }
    if client.is_closed() {
        // Whether the group committed is unknown, as for one send whose
        // connection drops: each sender hears of the failure.
        let f = Failure::Unavailable("the connection closed while sending".into());
        return group.iter().map(|_| Err(f.to_error())).collect();
    }
    // The server refused a statement, and so rolled the group back at
    // `COMMIT` (or refused the `COMMIT`): each send again, alone.
    tracing::debug!(
        sends = group.len(),
        "a group of sends was refused; sending them one by one"
    );
    let _ = client.batch_execute("ROLLBACK").await;
    let mut outcomes = Vec::with_capacity(group.len());
    for send in group.iter() {
        outcomes.push(inbox::send_message(client, &send.message).await.map_err(pg));
    }
    outcomes
}
