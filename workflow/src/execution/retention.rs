//! Retention: deleting the finished executions that ended longer ago than
//! a bound, a bounded batch per write, then giving the freed space back to
//! the file system.
//!
//! Every write goes through the store's writer like a step's commit: a
//! batch is one op among the commits queued with it, never a transaction
//! that holds them all back for the whole prune. The scheduler prunes in
//! the background when the builder set a retention; `Runtime::prune` does
//! it on demand.

use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::engine::Engine;
use crate::error::{Error, Result};
use crate::record::PruneReport;

/// Executions deleted per write. A batch shares its transaction with the
/// step commits queued beside it, and they wait for it: 500 executions of
/// a few entries each take milliseconds, and a backlog of a million takes
/// 2,000 writes.
const PRUNE_BATCH: u32 = 500;

/// Free pages given back to the file system per write (2 MiB with the
/// 2 KiB pages of new files).
const RECLAIM_PAGES: u32 = 1024;

/// The longest a background prune rests between two writes.
const MAX_REST: Duration = Duration::from_millis(100);

/// How a prune spaces its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pace {
    /// Asked for (`Runtime::prune`): the next write as soon as the last one
    /// committed, after letting the tasks it woke run.
    Eager,
    /// In the background: after each write, rest as long as it took (up to
    /// [`MAX_REST`]), so that the writer is free at least half the time.
    Background,
}

/// Deletes every finished execution (completed, failed, cancelled) that
/// ended more than `older_than` ago, with everything it owns, then gives
/// the freed pages back where the file allows it. Holds the engine only for
/// each write, so a prune never keeps a dropped runtime's database open;
/// stops at a shutdown.
pub(crate) async fn prune(
    engine: &Weak<Engine>,
    older_than: Duration,
    pace: Pace,
) -> Result<PruneReport> {
    let cutoff = {
        let engine = live(engine)?;
        let back = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
        engine.now_millis().saturating_sub(back)
    };
    let mut report = PruneReport::default();
    loop {
        let began = Instant::now();
        let deleted = live(engine)?.store.prune_batch(cutoff, PRUNE_BATCH).await?;
        if deleted > 0 {
            report.executions += deleted;
            report.batches += 1;
        }
        if deleted < u64::from(PRUNE_BATCH) {
            break;
        }
        rest(pace, began).await;
    }
    let mut space = live(engine)?.store.file_space().await?;
    while space.incremental && space.free_bytes > 0 {
        let began = Instant::now();
        let (released, after) = live(engine)?.store.reclaim_space(RECLAIM_PAGES).await?;
        report.bytes_freed += released;
        space = after;
        if released == 0 {
            break;
        }
        rest(pace, began).await;
    }
    report.bytes_free = space.free_bytes;
    report.database_bytes = space.bytes;
    if report.executions > 0 {
        tracing::info!(
            executions = report.executions,
            batches = report.batches,
            bytes_freed = report.bytes_freed,
            "pruned finished executions"
        );
    }
    Ok(report)
}

/// The engine, unless it was dropped or is shutting down.
fn live(engine: &Weak<Engine>) -> Result<Arc<Engine>> {
    match engine.upgrade() {
        Some(engine) if !engine.is_shutting_down() => Ok(engine),
        _ => Err(Error::Shutdown),
    }
}

async fn rest(pace: Pace, began: Instant) {
    match pace {
        Pace::Eager => tokio::task::yield_now().await,
        Pace::Background => tokio::time::sleep(began.elapsed().min(MAX_REST)).await,
    }
}

/// Starts a background prune unless the last one is still going.
pub(crate) fn prune_in_background(
    engine: Weak<Engine>,
    retention: Duration,
    running: &Arc<AtomicBool>,
) {
    if running.swap(true, Ordering::AcqRel) {
        return;
    }
    let running = Arc::clone(running);
    tokio::spawn(async move {
        match prune(&engine, retention, Pace::Background).await {
            Ok(_) | Err(Error::Shutdown) => {}
            Err(e) => tracing::warn!(error = %e, "could not prune finished executions"),
        }
        running.store(false, Ordering::Release);
    });
}
