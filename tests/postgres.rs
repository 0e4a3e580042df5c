//! The PostgreSQL store: the same workflows on a database that many worker
//! processes share, with leases and fencing.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{AnyError, Context, ExecutionStatus, ListFilter, step, workflow};
use support::pg::PgDb;
use support::{wait_for_status, within};

static CHARGES: AtomicU32 = AtomicU32::new(0);

#[step]
async fn add(a: u32, b: u32) -> Result<u32, AnyError> {
    Ok(a + b)
}

#[step]
async fn charge(amount: u32) -> Result<String, AnyError> {
    CHARGES.fetch_add(1, Ordering::SeqCst);
    Ok(format!("charged {amount}"))
}

#[workflow]
async fn pay(ctx: Context, a: u32, b: u32) -> Result<String, AnyError> {
    let total = add(a, b).await?;
    let now = ctx.now().await;
    let _ = now;
    let receipt = charge(total).await?;
    Ok(receipt)
}

#[workflow]
async fn nap(ctx: Context, ms: u64) -> Result<u32, AnyError> {
    let one = add(1, 0).await?;
    ctx.sleep(Duration::from_millis(ms)).await;
    add(one, 1).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_runs_and_its_journal_reads_back() {
    let Some(db) = PgDb::new("runs").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open on postgres");
    assert!(rt.worker_id().is_some());
    let handle = pay::start(&rt, "pay-1", 2, 3).await.expect("start");
    let out = within(handle.result()).await.expect("completes");
    assert_eq!(out, "charged 5");
    let info = rt.status("pay-1").await.expect("status");
    assert_eq!(info.status, ExecutionStatus::Completed);
    assert_eq!(info.steps.len(), 3, "{:?}", info.steps);
    assert!(info.steps.iter().all(|s| s.attempts == 1));
    let listed = rt.list(ListFilter::new()).await.expect("list");
    assert_eq!(listed.len(), 1);
    // Starting the same id again attaches to it: nothing runs twice.
    let before = CHARGES.load(Ordering::SeqCst);
    let again = pay::start(&rt, "pay-1", 2, 3).await.expect("start again");
    assert_eq!(within(again.result()).await.expect("result"), "charged 5");
    assert_eq!(CHARGES.load(Ordering::SeqCst), before);
    rt.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeper_left_by_a_clean_shutdown_is_woken_by_another_worker() {
    let Some(db) = PgDb::new("handoff").await else {
        return;
    };
    let a = db.builder().open().await.expect("worker a");
    for i in 0..20 {
        nap::start(&a, format!("nap-{i}"), 1500)
            .await
            .expect("start");
    }
    for i in 0..20 {
        wait_for_status(&a, &format!("nap-{i}"), ExecutionStatus::Sleeping).await;
    }
    let a_id = a.worker_id();
    a.shutdown().await.expect("shutdown a");
    let b = db.builder().open().await.expect("worker b");
    assert_ne!(b.worker_id(), a_id);
    for i in 0..20 {
        let out = within(b.handle::<nap>(format!("nap-{i}")).result())
            .await
            .expect("completes on b");
        assert_eq!(out, 2);
    }
    let client = db.client().await;
    let recovered: i64 = client
        .query_one(
            "SELECT count(*) FROM workflow_executions WHERE recovery_attempts > 0",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(recovered, 0, "a clean handoff counts no recovery");
    b.shutdown().await.expect("shutdown b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_declared_dead_writes_nothing_more_and_registers_anew() {
    let Some(db) = PgDb::new("fenced").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    let first = rt.worker_id().expect("a worker id");
    let client = db.client().await;
    client
        .execute(
            "UPDATE workers SET dead_at = now() WHERE id = $1",
            &[&first],
        )
        .await
        .expect("declare the worker dead");
    // The next batch is fenced; the worker registers under a new id.
    let started = pay::start(&rt, "pay-fenced", 1, 1).await;
    assert!(started.is_err(), "a dead worker's start must be refused");
    within(async {
        while rt.worker_id() == Some(first) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let handle = pay::start(&rt, "pay-after", 1, 1)
        .await
        .expect("start under the new id");
    assert_eq!(
        within(handle.result()).await.expect("completes"),
        "charged 2"
    );
    rt.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_finished_executions_and_leaves_the_rest() {
    let Some(db) = PgDb::new("prune").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    let done = pay::start(&rt, "done-1", 1, 2).await.expect("start");
    within(done.result()).await.expect("completes");
    nap::start(&rt, "asleep-1", 60_000).await.expect("start");
    wait_for_status(&rt, "asleep-1", ExecutionStatus::Sleeping).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let report = rt.prune(Duration::ZERO).await.expect("prune");
    assert_eq!(report.executions, 1);
    assert!(matches!(
        rt.status("done-1").await,
        Err(replayflow::Error::NotFound(_))
    ));
    let client = db.client().await;
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM step_executions WHERE execution_id = 'done-1'",
            &[],
        )
        .await
        .expect("count")
        .get(0);
    assert_eq!(left, 0);
    assert_eq!(
        rt.status("asleep-1").await.expect("status").status,
        ExecutionStatus::Sleeping
    );
    rt.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_opening_at_once_do_not_deadlock() {
    let Some(db) = PgDb::new("opens").await else {
        return;
    };
    // The schema exists first: the workers then race on registering the
    // same workflow rows, each from its own registry (a hash map, whose
    // order differs from one to the next).
    let first = db.builder().open().await.expect("open the first worker");
    for _ in 0..5 {
        let opens = (0..6).map(|_| db.builder().open());
        let runtimes = futures_util::future::join_all(opens).await;
        for rt in runtimes {
            let rt = rt.expect("open a worker beside the others");
            rt.shutdown().await.expect("shutdown");
        }
    }
    first.shutdown().await.expect("shutdown");
}
