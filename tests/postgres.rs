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
    let recovered = db
        .count("SELECT count(*) FROM workflow_executions WHERE recovery_attempts > 0")
        .await;
    assert_eq!(recovered, 0, "a clean handoff counts no recovery");
    b.shutdown().await.expect("shutdown b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_listed_with_what_they_own() {
    let Some(db) = PgDb::new("workers").await else {
        return;
    };
    let a = db.builder().open().await.expect("worker a");
    let b = db.builder().open().await.expect("worker b");
    let (a_id, b_id) = (
        a.worker_id().expect("a's id"),
        b.worker_id().expect("b's id"),
    );
    nap::start(&a, "owned-by-a", 600_000).await.expect("start");
    wait_for_status(&a, "owned-by-a", ExecutionStatus::Sleeping).await;
    let info = b.status("owned-by-a").await.expect("status");
    assert_eq!(info.owner, Some(a_id), "a sleeper keeps its owner");

    let seen = b.workers().await.expect("workers");
    let of = |id: i64| seen.iter().find(|w| w.id == id).expect("listed").clone();
    let (wa, wb) = (of(a_id), of(b_id));
    assert!(wa.is_alive() && wb.is_alive());
    assert_eq!((wa.owned, wb.owned), (1, 0));
    assert!(
        wb.this_runtime && !wa.this_runtime,
        "b asked: b is this runtime"
    );
    assert_eq!(wa.pid, std::process::id());
    assert!(
        wa.workflows.iter().any(|w| w == "nap"),
        "{:?}",
        wa.workflows
    );
    assert!(wa.lease_until > wa.registered_at);

    a.shutdown().await.expect("shutdown a");
    let seen = b.workers().await.expect("workers");
    let wa = seen
        .iter()
        .find(|w| w.id == a_id)
        .expect("a dead worker stays listed");
    assert!(!wa.is_alive() && wa.dead_at.is_some());
    assert_eq!(wa.owned, 0, "a clean shutdown released its sleeper");
    assert_eq!(seen[0].id, b_id, "live workers come first");
    let info = b.status("owned-by-a").await.expect("status");
    assert_ne!(info.owner, Some(a_id));
    b.shutdown().await.expect("shutdown b");
}

/// The journal's writes find their execution by its key, not among all the
/// executions the worker owns: the writer prepares its statements on a new
/// schema's empty tables, where the planner once picked the by-owner index
/// for them and kept it as the table grew (a sleep entry then read every
/// sleeper of the worker). Counted by the server's index statistics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_writes_find_their_execution_by_its_key() {
    let Some(db) = PgDb::new("by_key").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    const SLEEPERS: usize = 200;
    for i in 0..SLEEPERS {
        nap::start(&rt, format!("key-{i}"), 600_000)
            .await
            .expect("start");
    }
    for i in 0..SLEEPERS {
        wait_for_status(&rt, &format!("key-{i}"), ExecutionStatus::Sleeping).await;
    }
    rt.shutdown().await.expect("shutdown");
    // A backend reports its counts when it ends, after its client is gone.
    let scans = |index: &'static str| {
        let db = &db;
        async move {
            db.count(&format!(
                "SELECT coalesce(sum(idx_scan), 0)::bigint FROM pg_stat_user_indexes
                 WHERE schemaname = '{}' AND indexrelname = '{index}'",
                db.schema
            ))
            .await
        }
    };
    within(async {
        while scans("workflow_executions_pkey").await < SLEEPERS as i64 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let by_owner = scans("workflow_executions_by_owner").await;
    // The sweeps' own queries (what a worker owns) use it: a few a second.
    assert!(
        by_owner < 50,
        "{by_owner} lookups through the by-owner index for {SLEEPERS} sleepers"
    );
}

/// The sweep's query of a worker's due sleepers goes through an index of
/// its own, which a worker's open builds (concurrently, in the background)
/// on a schema made without it, or with an invalid leftover of an
/// interrupted build, leaving the version as it is; an admin's open
/// writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_adds_the_index_of_due_sleepers_and_the_sweep_reads_it() {
    let Some(db) = PgDb::new("due_index").await else {
        return;
    };
    let valid_index = async || {
        db.count(&format!(
            "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = '{}' AND c.relname = 'workflow_executions_due' AND i.indisvalid",
            db.schema
        ))
        .await
    };
    let rt = db.builder().open().await.expect("open");
    rt.shutdown().await.expect("shutdown");
    assert_eq!(valid_index().await, 1, "a new schema has it");
    let client = db.client().await;
    client
        .batch_execute("DROP INDEX workflow_executions_due")
        .await
        .expect("drop the index");
    let admin = db.builder().admin().open().await.expect("admin open");
    admin.shutdown().await.expect("shutdown");
    assert_eq!(valid_index().await, 0, "an admin open adds nothing");
    // An index left invalid, as an interrupted concurrent build leaves it.
    client
        .batch_execute(
            "CREATE INDEX workflow_executions_due ON workflow_executions (owner, wake_at)
                 WHERE status IN ('sleeping', 'waiting');
             UPDATE pg_index SET indisvalid = false
             WHERE indexrelid = 'workflow_executions_due'::regclass",
        )
        .await
        .expect("leave an invalid index");
    assert_eq!(valid_index().await, 0);
    let rt = db.builder().open().await.expect("open");
    within(async {
        while valid_index().await == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(schema_version(&db).await, "3");
    const SLEEPERS: usize = 200;
    for i in 0..SLEEPERS {
        nap::start(&rt, format!("due-{i}"), 600_000)
            .await
            .expect("start");
    }
    for i in 0..SLEEPERS {
        wait_for_status(&rt, &format!("due-{i}"), ExecutionStatus::Sleeping).await;
    }
    // The query of `queries::due_sleepers`, planned on these rows.
    client
        .batch_execute("ANALYZE workflow_executions")
        .await
        .expect("analyze");
    let me = rt.worker_id().expect("a worker id");
    // Due now: none of them, as in most sweeps.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock")
        .as_millis() as i64;
    let plan: Vec<String> = client
        .query(
            "EXPLAIN SELECT id FROM workflow_executions
             WHERE owner = $1 AND status IN ('sleeping', 'waiting') AND wake_at <= $2
             ORDER BY wake_at LIMIT 1000",
            &[&me, &now],
        )
        .await
        .expect("explain")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        plan.iter().any(|l| l.contains("workflow_executions_due")),
        "{plan:#?}"
    );
    rt.shutdown().await.expect("shutdown");
    assert_shaped_as_new(&db, "due_index_new").await;
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
    let left = db
        .count("SELECT count(*) FROM step_executions WHERE execution_id = 'done-1'")
        .await;
    assert_eq!(left, 0);
    assert_eq!(
        rt.status("asleep-1").await.expect("status").status,
        ExecutionStatus::Sleeping
    );
    rt.shutdown().await.expect("shutdown");
}

static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn slow_add(a: u32, b: u32) -> Result<u32, AnyError> {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(a + b)
}

#[workflow]
async fn chain(_ctx: Context, n: u32) -> Result<u32, AnyError> {
    let mut sum = 0;
    for i in 0..n {
        sum = slow_add(sum, i).await?;
    }
    Ok(sum)
}

/// Every connection of the worker is killed by the server mid-run (as a
/// failover or an administrator would): executions stop where they are and
/// go on by replay once the worker reconnects; every handle completes with
/// the right output and no step is journaled twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn executions_go_on_after_the_server_drops_every_connection() {
    let Some(db) = PgDb::new("outage").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    let mut handles = Vec::new();
    for i in 0..20 {
        handles.push(
            chain::start(&rt, format!("chain-{i}"), 15)
                .await
                .expect("start"),
        );
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let admin = db.client().await;
    for _ in 0..2 {
        let killed: i64 = admin
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                 WHERE application_name = 'replayflow ' || $1 AND pid <> pg_backend_pid()",
                &[&db.schema],
            )
            .await
            .expect("terminate the worker's connections")
            .get(0);
        assert!(killed > 0, "the worker had connections to drop");
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    for h in &handles {
        let out = within(h.result())
            .await
            .expect("completes after the outage");
        assert_eq!(out, (0..15).sum::<u32>());
    }
    let duplicated: i64 = db
        .count(
            "SELECT count(*) FROM (SELECT execution_id, name, occurrence FROM step_executions
             GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
        )
        .await;
    assert_eq!(duplicated, 0);
    let steps: i64 = db
        .count("SELECT count(*) FROM step_executions WHERE status = 'completed'")
        .await;
    assert_eq!(steps, 20 * 15);
    // Re-runs are only of steps in flight when a connection dropped: one
    // per execution and drop, and again for a run whose commit found the
    // writer not yet reconnected (on a loaded machine, a few). Far fewer
    // than a run of the whole chains again (300 more).
    let runs = i64::from(SLOW_RUNS.load(Ordering::SeqCst));
    assert!(
        runs >= steps && runs <= steps + 2 * 20 * 3,
        "{runs} runs for {steps} steps"
    );
    rt.shutdown().await.expect("shutdown");
}

static SAME_RUNS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn once_per_id() -> Result<u32, AnyError> {
    if replayflow::StepContext::current().is_some_and(|s| s.execution_id().as_str() == "same-1") {
        SAME_RUNS.fetch_add(1, Ordering::SeqCst);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(7)
}

#[workflow]
async fn single(_ctx: Context) -> Result<u32, AnyError> {
    once_per_id().await
}

/// Two workers start the same id at the same moment: one row, one runner,
/// both handles see its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_starting_one_id_make_one_execution() {
    let Some(db) = PgDb::new("same").await else {
        return;
    };
    let a = db.builder().open().await.expect("worker a");
    let b = db.builder().open().await.expect("worker b");
    let (ha, hb) = tokio::join!(single::start(&a, "same-1"), single::start(&b, "same-1"));
    let (ha, hb) = (ha.expect("start on a"), hb.expect("start on b"));
    assert_eq!(within(ha.result()).await.expect("a's handle"), 7);
    assert_eq!(within(hb.result()).await.expect("b's handle"), 7);
    assert_eq!(SAME_RUNS.load(Ordering::SeqCst), 1, "one runner");
    let rows = db.count("SELECT count(*) FROM workflow_executions").await;
    assert_eq!(rows, 1);
    a.shutdown().await.expect("shutdown a");
    b.shutdown().await.expect("shutdown b");
}

/// A worker claims only executions of its own app version: a sleeper
/// handed back by a `v2` worker is left alone by a `v1` worker, and woken
/// by the next `v2` one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_leaves_executions_of_another_app_version_alone() {
    let Some(db) = PgDb::new("version").await else {
        return;
    };
    let v2 = db.builder().app_version("v2").open().await.expect("v2");
    nap::start(&v2, "versioned-1", 1_500).await.expect("start");
    wait_for_status(&v2, "versioned-1", ExecutionStatus::Sleeping).await;
    v2.shutdown().await.expect("shutdown v2");
    let v1 = db
        .builder()
        .app_version("v1")
        .accept_versions(["v1"])
        .open()
        .await
        .expect("v1");
    // Past its wake time, and over two of v1's sweeps.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT status, owner FROM workflow_executions WHERE id = 'versioned-1'",
            &[],
        )
        .await
        .expect("read");
    assert_eq!(row.get::<_, String>(0), "sleeping", "not claimed by v1");
    assert_eq!(row.get::<_, Option<i64>>(1), None);
    let again = db
        .builder()
        .app_version("v2")
        .open()
        .await
        .expect("v2 again");
    let out = within(again.handle::<nap>("versioned-1").result())
        .await
        .expect("woken by v2");
    assert_eq!(out, 2);
    v1.shutdown().await.expect("shutdown v1");
    again.shutdown().await.expect("shutdown v2 again");
}

/// A worker whose clock runs an hour ahead does not take over a live
/// worker's execution: leases follow the database's clock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_skewed_clock_takes_nothing_early() {
    let Some(db) = PgDb::new("skew").await else {
        return;
    };
    let a = db.builder().open().await.expect("worker a");
    let a_id = a.worker_id().expect("a's id");
    let handle = chain::start(&a, "skew-1", 25).await.expect("start");
    let ahead =
        replayflow::ManualClock::new(std::time::SystemTime::now() + Duration::from_secs(3_600));
    let b = db.builder().clock(ahead).open().await.expect("worker b");
    let client = db.client().await;
    let mut samples = 0;
    while !matches!(
        a.status("skew-1").await.expect("status").status,
        ExecutionStatus::Completed
    ) {
        let owner: Option<i64> = client
            .query_one(
                "SELECT owner FROM workflow_executions WHERE id = 'skew-1'",
                &[],
            )
            .await
            .expect("read")
            .get(0);
        assert!(
            owner.is_none() || owner == Some(a_id),
            "taken by worker {owner:?}, not {a_id}"
        );
        samples += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(samples > 5, "the run was observed while it ran");
    assert_eq!(
        within(handle.result()).await.expect("completes"),
        (0..25).sum::<u32>()
    );
    a.shutdown().await.expect("shutdown a");
    b.shutdown().await.expect("shutdown b");
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

static HANDOVER_RUNS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn long_step() -> Result<u32, AnyError> {
    HANDOVER_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(800)).await;
    Ok(1)
}

#[workflow]
async fn handover(_ctx: Context) -> Result<u32, AnyError> {
    let a = long_step().await?;
    add(a, 1).await
}

/// A clean shutdown lets the step in flight finish and commit before it
/// hands the execution over: the next worker replays it instead of running
/// it a second time beside the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_shutdown_hands_over_after_the_step_in_flight() {
    let Some(db) = PgDb::new("handover").await else {
        return;
    };
    let a = db.builder().open().await.expect("worker a");
    handover::start(&a, "hand-1").await.expect("start");
    within(async {
        while HANDOVER_RUNS.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    within(a.shutdown()).await.expect("shutdown a");
    let b = db.builder().open().await.expect("worker b");
    let out = within(b.handle::<handover>("hand-1").result())
        .await
        .expect("completes on b");
    assert_eq!(out, 2);
    assert_eq!(HANDOVER_RUNS.load(Ordering::SeqCst), 1, "the step ran once");
    b.shutdown().await.expect("shutdown b");
}

/// The fence against the reaper, at the protocol level: a transaction of a
/// worker whose lease ran out holds the fence, and the reaper waits for it
/// to end before it declares that worker dead; a transaction begun after
/// the worker was declared dead fails at its fence and commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_waits_for_a_fenced_batch_and_a_later_batch_is_refused() {
    let Some(db) = PgDb::new("fence").await else {
        return;
    };
    // The schema, made by a first worker.
    db.builder()
        .open()
        .await
        .expect("open")
        .shutdown()
        .await
        .expect("shutdown");
    let batch = db.client().await;
    let stale: i64 = batch
        .query_one(
            "INSERT INTO workers (id, host, pid, app_version, workflows, lease_until)
             VALUES (nextval('worker_ids'), 'elsewhere', 1, '', '{}', now() - interval '1 minute')
             RETURNING id",
            &[],
        )
        .await
        .expect("a worker whose lease ran out")
        .get(0);
    // A batch of that worker, held between its fence and its commit.
    batch.batch_execute("BEGIN").await.expect("begin");
    batch
        .execute("SELECT fence($1)", &[&stale])
        .await
        .expect("the fence passes while the worker is alive");
    let reaper = tokio::spawn({
        let builder = db.builder();
        async move { builder.open().await }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let watcher = db.client().await;
    let dead: bool = watcher
        .query_one(
            "SELECT dead_at IS NOT NULL FROM workers WHERE id = $1",
            &[&stale],
        )
        .await
        .expect("read")
        .get(0);
    assert!(
        !dead,
        "the reaper must wait for the batch that holds the fence"
    );
    batch
        .batch_execute("COMMIT")
        .await
        .expect("the held batch commits");
    let rt = within(reaper)
        .await
        .expect("join")
        .expect("the reaper's worker opens");
    within(async {
        loop {
            let dead: bool = watcher
                .query_one(
                    "SELECT dead_at IS NOT NULL FROM workers WHERE id = $1",
                    &[&stale],
                )
                .await
                .expect("read")
                .get(0);
            if dead {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    batch.batch_execute("BEGIN").await.expect("begin");
    let refused = batch
        .execute("SELECT fence($1)", &[&stale])
        .await
        .expect_err("a dead worker's batch is refused");
    assert_eq!(refused.code().map(|c| c.code()), Some("RF001"), "{refused}");
    batch.batch_execute("ROLLBACK").await.expect("rollback");
    rt.shutdown().await.expect("shutdown");
}

#[workflow]
async fn marked(ctx: Context) -> Result<bool, AnyError> {
    Ok(ctx.patched("after-migration").await)
}

/// A schema as version 2 left it: no messages or events, no status
/// `waiting`, no entries of kind `recv` or `event`.
async fn downgrade_to_v2(db: &PgDb) {
    let client = db.client().await;
    client
        .batch_execute(
            "ALTER TABLE workflow_executions DROP CONSTRAINT workflow_executions_status_check,
                 ADD CONSTRAINT workflow_executions_status_check
                 CHECK (status IN ('running', 'sleeping', 'completed', 'failed', 'panicked',
                                   'restarting', 'cancelled', 'paused'));
             ALTER TABLE step_executions DROP CONSTRAINT step_executions_status_check,
                 ADD CONSTRAINT step_executions_status_check
                 CHECK (status IN ('pending', 'running', 'completed', 'failed', 'sleeping', 'retrying')),
                 DROP CONSTRAINT step_executions_kind_check,
                 ADD CONSTRAINT step_executions_kind_check
                 CHECK (kind IN ('step', 'sleep', 'now', 'random', 'patch'));
             DROP INDEX workflow_executions_claimable;
             CREATE INDEX workflow_executions_claimable ON workflow_executions (created_at)
                 WHERE owner IS NULL AND status IN ('running', 'restarting', 'sleeping', 'panicked');
             DROP TABLE messages, events, stream_entries;
             ALTER TABLE workflow_executions DROP COLUMN deadline_at, DROP COLUMN parent_id;
             ALTER TABLE admin_requests DROP CONSTRAINT admin_requests_action_check,
                 ADD CONSTRAINT admin_requests_action_check
                 CHECK (action IN ('cancel', 'resume', 'restart')),
                 DROP COLUMN workflow_name, DROP COLUMN input;
             UPDATE meta SET value = '2' WHERE key = 'schema_version';",
        )
        .await
        .expect("downgrade to version 2");
}

/// A schema as the first release left it: version 1, whose journal refused
/// entries of kind `patch` and recorded no value types.
async fn downgrade_to_v1(db: &PgDb) {
    downgrade_to_v2(db).await;
    let client = db.client().await;
    client
        .batch_execute(
            "ALTER TABLE step_executions DROP CONSTRAINT step_executions_kind_check,
                 ADD CONSTRAINT step_executions_kind_check
                 CHECK (kind IN ('step', 'sleep', 'now', 'random')),
                 DROP COLUMN value_type;
             DROP TABLE value_types;
             ALTER TABLE workflow_executions DROP COLUMN input_type, DROP COLUMN output_type;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .await
        .expect("downgrade");
}

/// The columns, constraints and indexes of the test's schema, one line
/// each, sorted, without the schema's name: what a migration must leave
/// as a new database has it.
async fn schema_shape(db: &PgDb) -> Vec<String> {
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT format('column %s.%s %s %s %s', table_name, column_name, data_type, is_nullable,
                           coalesce(column_default, ''))
             FROM information_schema.columns WHERE table_schema = $1
             UNION ALL
             SELECT format('constraint %s.%s %s', t.relname, c.conname, pg_get_constraintdef(c.oid))
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = $1
             UNION ALL
             SELECT format('index %s', indexdef) FROM pg_indexes WHERE schemaname = $1
             ORDER BY 1",
            &[&db.schema],
        )
        .await
        .expect("read the schema's shape");
    rows.iter()
        .map(|r| {
            r.get::<_, String>(0)
                .replace(&format!("{}.", db.schema), "")
        })
        .collect()
}

/// Fails unless the migrated schema of `db` is the one a new database gets.
async fn assert_shaped_as_new(db: &PgDb, name: &str) {
    let Some(fresh) = PgDb::new(name).await else {
        return;
    };
    let rt = fresh.builder().open().await.expect("open a new schema");
    rt.shutdown().await.expect("shutdown");
    let (migrated, new) = (schema_shape(db).await, schema_shape(&fresh).await);
    assert!(
        new.iter().any(|l| l.contains("messages_untaken")),
        "{new:#?}"
    );
    let only = |a: &[String], b: &[String]| -> Vec<String> {
        a.iter().filter(|l| !b.contains(l)).cloned().collect()
    };
    assert!(
        migrated == new,
        "only in the migrated schema: {:#?}\nonly in a new one: {:#?}",
        only(&migrated, &new),
        only(&new, &migrated)
    );
}

async fn schema_version(db: &PgDb) -> String {
    let client = db.client().await;
    client
        .query_one("SELECT value FROM meta WHERE key = 'schema_version'", &[])
        .await
        .expect("version")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_release_schema_is_read_by_an_admin_and_migrated_by_a_worker() {
    let Some(db) = PgDb::new("migrate").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    let out = within(pay::start(&rt, "pay-old", 1, 2).await.unwrap().result()).await;
    assert_eq!(out.unwrap(), "charged 3");
    rt.shutdown().await.unwrap();
    drop(rt);
    downgrade_to_v1(&db).await;

    // An admin reads it and leaves it as it is.
    let admin = db.builder().admin().open().await.expect("admin open");
    assert_eq!(
        admin.status("pay-old").await.unwrap().status,
        ExecutionStatus::Completed
    );
    assert_eq!(admin.list(ListFilter::new()).await.unwrap().len(), 1);
    assert_eq!(admin.check().await.unwrap().checked, 0);
    drop(admin);
    assert_eq!(schema_version(&db).await, "1");

    // Workers opening at once migrate it once.
    let (a, b) = tokio::join!(db.builder().open(), db.builder().open());
    let (a, b) = (a.expect("worker a"), b.expect("worker b"));
    assert_eq!(schema_version(&db).await, "3");
    let handle = marked::start(&a, "marked-1").await.unwrap();
    assert!(within(handle.result()).await.unwrap());
    let steps = a.status("marked-1").await.unwrap().steps;
    assert_eq!(steps[0].kind, replayflow::EntryKind::Patch);
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    assert_shaped_as_new(&db, "migrate_new").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_schema_is_read_by_an_admin_and_migrated_by_a_worker() {
    let Some(db) = PgDb::new("migrate3").await else {
        return;
    };
    let rt = db
        .builder()
        .suspend_after(Duration::from_millis(50))
        .open()
        .await
        .expect("open");
    let out = within(pay::start(&rt, "pay-v2", 1, 2).await.unwrap().result()).await;
    assert_eq!(out.unwrap(), "charged 3");
    nap::start(&rt, "nap-v2", 1_500).await.unwrap();
    wait_for_status(&rt, "nap-v2", ExecutionStatus::Sleeping).await;
    rt.shutdown().await.unwrap();
    drop(rt);
    downgrade_to_v2(&db).await;

    // An admin reads it (no events anywhere), leaves it as it is, and
    // refuses to send: the message would reach no worker.
    let admin = db.builder().admin().open().await.expect("admin open");
    assert_eq!(
        admin.status("pay-v2").await.unwrap().status,
        ExecutionStatus::Completed
    );
    assert_eq!(admin.list(ListFilter::new()).await.unwrap().len(), 2);
    assert!(admin.events("pay-v2").await.unwrap().is_empty());
    assert_eq!(admin.get_event::<u32>("pay-v2", "k").await.unwrap(), None);
    match admin.send("nap-v2", "word", &"hi".to_owned()).await {
        Err(replayflow::Error::NotMigrated {
            found: 2,
            needed: 3,
            ..
        }) => {}
        other => panic!("a send on a version 2 schema must be refused: {other:?}"),
    }
    admin.prune(Duration::from_secs(3600)).await.expect("prune");
    drop(admin);
    assert_eq!(schema_version(&db).await, "2");

    let worker = db
        .builder()
        .suspend_after(Duration::from_millis(50))
        .open()
        .await
        .expect("worker");
    assert_eq!(schema_version(&db).await, "3");
    let info = worker.status("pay-v2").await.unwrap();
    assert_eq!(info.status, ExecutionStatus::Completed);
    assert_eq!(info.steps.len(), 3);
    assert_eq!(
        within(worker.handle::<nap>("nap-v2").result())
            .await
            .unwrap(),
        2
    );
    // The new statuses and kinds are allowed.
    let handle = await_word::start(&worker, "word-v3").await.unwrap();
    wait_for_status(&worker, "word-v3", ExecutionStatus::Waiting).await;
    handle.send("word", &"migrated".to_owned()).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "migrated");
    worker.shutdown().await.unwrap();
    assert_shaped_as_new(&db, "migrate3_new").await;
}

#[workflow]
async fn await_word(ctx: Context) -> Result<String, AnyError> {
    let word: String = ctx.recv("word").await;
    ctx.set_event("heard", &word).await;
    Ok(word)
}

#[workflow]
async fn await_briefly(ctx: Context, ms: u64) -> Result<Option<String>, AnyError> {
    Ok(ctx
        .recv_timeout::<String>("word", Duration::from_millis(ms))
        .await)
}

/// The row of execution `id`: its status, wake time and owner.
async fn execution_row(db: &PgDb, id: &str) -> (String, Option<i64>, Option<i64>) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, wake_at, owner FROM workflow_executions WHERE id = $1",
            &[&id],
        )
        .await
        .expect("the execution's row");
    (row.get(0), row.get(1), row.get(2))
}

/// Sends made at once are committed in one transaction, each with its own
/// outcome: in a group that commits, and in one the server refuses (a
/// topic with a NUL byte), whose sends then go one by one. A send to a row
/// another transaction holds leaves its group and waits alone: the group
/// commits meanwhile. (Every group the sender may have in flight is held
/// first, each at a row of its own, so that the others queue up.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_at_once_commit_together_each_with_its_own_outcome() {
    use replayflow::{Delivery, SendOptions};
    const WAITERS: usize = 12;
    const GROUPS_IN_FLIGHT: usize = 4;
    let Some(db) = PgDb::new("send_groups").await else {
        return;
    };
    let rt = db
        .builder()
        .suspend_after(Duration::from_millis(50))
        .open()
        .await
        .expect("open");
    let done = pay::start(&rt, "done", 1, 1).await.expect("start");
    within(done.result()).await.expect("completes");
    let watcher = db.client().await;
    for round in 0..2 {
        let waiters: Vec<String> = (0..WAITERS).map(|i| format!("w{round}-{i}")).collect();
        let holds: Vec<String> = (0..GROUPS_IN_FLIGHT)
            .map(|i| format!("h{round}-{i}"))
            .collect();
        let mut handles = Vec::new();
        for id in waiters.iter().chain(&holds) {
            handles.push(await_word::start(&rt, id.as_str()).await.expect("start"));
        }
        for id in waiters.iter().chain(&holds) {
            wait_for_status(&rt, id, ExecutionStatus::Waiting).await;
        }
        // Each held row has a transaction of its own, and a send waiting
        // for it.
        let mut holders = Vec::new();
        let mut held = Vec::new();
        for id in &holds {
            let holder = db.client().await;
            let pid: i32 = holder
                .query_one("SELECT pg_backend_pid()", &[])
                .await
                .expect("pid")
                .get(0);
            holder.batch_execute("BEGIN").await.expect("begin");
            holder
                .execute(
                    "SELECT 1 FROM workflow_executions WHERE id = $1 FOR UPDATE",
                    &[id],
                )
                .await
                .expect("hold the row");
            let (rt, id) = (rt.clone(), id.clone());
            held.push(tokio::spawn(async move {
                rt.send(id.as_str(), "word", &"held".to_owned()).await
            }));
            within(async {
                while blocked_by(&watcher, pid).await.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await;
            holders.push(holder);
        }
        // These queue up behind them, and go as one group.
        let key = || SendOptions::idempotency_key("k");
        let mut sends = tokio::task::JoinSet::new();
        for (i, id) in waiters.iter().enumerate() {
            for topic in ["word", "extra"] {
                let (rt, id) = (rt.clone(), id.clone());
                sends.spawn(async move {
                    let sent = rt.send(id.as_str(), topic, &format!("hello-{i}")).await;
                    (format!("{id} {topic}"), sent.map_err(|e| e.to_string()))
                });
            }
        }
        for n in 0..2 {
            let (rt, id) = (rt.clone(), waiters[0].clone());
            sends.spawn(async move {
                let sent = rt.send_with(id.as_str(), "other", &n, key()).await;
                ("keyed".to_owned(), sent.map_err(|e| e.to_string()))
            });
        }
        for id in ["nobody", "done"] {
            let rt = rt.clone();
            sends.spawn(async move {
                let sent = rt.send(id, "word", &"x".to_owned()).await;
                (id.to_owned(), sent.map_err(|e| e.to_string()))
            });
        }
        if round == 1 {
            let (rt, id) = (rt.clone(), waiters[1].clone());
            sends.spawn(async move {
                let sent = rt.send(id.as_str(), "bad\0topic", &1u32).await;
                ("nul".to_owned(), sent.map_err(|e| e.to_string()))
            });
        }
        // In the committing group, a send to a row still held.
        let late = (round == 0).then(|| {
            let (rt, id) = (rt.clone(), holds[1].clone());
            tokio::spawn(async move { rt.send(id.as_str(), "other", &"late".to_owned()).await })
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        // One group's slot frees: the queued sends go.
        holders
            .remove(0)
            .batch_execute("COMMIT")
            .await
            .expect("commit");
        let mut keyed = Vec::new();
        while let Some(sent) = within(sends.join_next()).await {
            let (what, sent) = sent.expect("join");
            match what.as_str() {
                "keyed" => keyed.push(sent.expect("a keyed send")),
                "nobody" => assert!(sent.is_err_and(|e| e.contains("nobody")), "{what}"),
                "done" => assert!(sent.is_err_and(|e| e.contains("completed")), "{what}"),
                "nul" => assert!(sent.is_err(), "{what}: {sent:?}"),
                _ => assert_eq!(sent, Ok(Delivery::Delivered), "{what}"),
            }
        }
        keyed.sort_by_key(|d| *d == Delivery::Duplicate);
        assert_eq!(keyed, [Delivery::Delivered, Delivery::Duplicate]);
        if let Some(late) = &late {
            assert!(!late.is_finished(), "a send to a held row waits");
        }
        for holder in holders {
            holder.batch_execute("COMMIT").await.expect("commit");
        }
        if let Some(late) = late {
            let sent = within(late).await.expect("join");
            assert_eq!(sent.expect("the late send"), Delivery::Delivered);
        }
        for h in held {
            let sent = within(h).await.expect("join");
            assert_eq!(sent.expect("a held send"), Delivery::Delivered);
        }
        for (i, h) in handles.into_iter().take(WAITERS).enumerate() {
            assert_eq!(
                within(h.result()).await.expect("completes"),
                format!("hello-{i}")
            );
        }
        // The messages on `extra` (which nothing takes, so their rows are
        // as the sends wrote them): of one transaction when their group
        // committed, of one each when it was refused.
        let row = watcher
            .query_one(
                "SELECT count(*) FILTER (WHERE topic = 'word'), count(*) FILTER (WHERE topic = 'other'),
                        count(DISTINCT xmin::text) FILTER (WHERE topic = 'extra')
                 FROM messages WHERE execution_id LIKE $1",
                &[&format!("w{round}-%")],
            )
            .await
            .expect("count the messages");
        let counts: (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            counts,
            (WAITERS as i64, 1),
            "messages on `word`, on `other`"
        );
        let transactions: i64 = row.get(2);
        let expected = if round == 0 { 1 } else { WAITERS as i64 };
        assert_eq!(transactions, expected, "round {round}");
    }
    rt.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_workflows_and_events_read_back() {
    let Some(db) = PgDb::new("messages").await else {
        return;
    };
    let rt = db
        .builder()
        .suspend_after(Duration::from_millis(50))
        .open()
        .await
        .expect("open");
    assert!(matches!(
        rt.send("nobody", "word", &"hi".to_owned()).await,
        Err(replayflow::Error::NotFound(_))
    ));

    // Taken by the wait in memory, or from the inbox if it came first.
    let early = await_word::start(&rt, "word-1").await.unwrap();
    early.send("word", &"hello".to_owned()).await.unwrap();
    assert_eq!(within(early.result()).await.unwrap(), "hello");
    assert_eq!(
        rt.get_event::<String>("word-1", "heard").await.unwrap(),
        Some("hello".to_owned())
    );
    let events = rt.events("word-1").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].key, "heard");
    assert_eq!(
        rt.get_event::<String>("word-1", "other").await.unwrap(),
        None
    );
    assert!(matches!(
        rt.send("word-1", "word", &"late".to_owned()).await,
        Err(replayflow::Error::Finished { .. })
    ));

    // Suspended: waiting, still owned, no wake time; a send wakes it, once
    // per idempotency key.
    let waiter = await_word::start(&rt, "word-2").await.unwrap();
    wait_for_status(&rt, "word-2", ExecutionStatus::Waiting).await;
    let (_, wake_at, owner) = execution_row(&db, "word-2").await;
    assert_eq!((wake_at, owner), (None, rt.worker_id()));
    let key = || replayflow::SendOptions::idempotency_key("k-1");
    let sent = rt
        .send_with("word-2", "word", &"again".to_owned(), key())
        .await;
    assert_eq!(sent.unwrap(), replayflow::Delivery::Delivered);
    let sent = rt
        .send_with("word-2", "word", &"twice".to_owned(), key())
        .await;
    assert_eq!(sent.unwrap(), replayflow::Delivery::Duplicate);
    assert_eq!(within(waiter.result()).await.unwrap(), "again");
    let taken = db
        .count(
            "SELECT count(*) FROM messages WHERE execution_id = 'word-2'
               AND taken_at IS NOT NULL AND payload IS NULL AND taken_position = 0",
        )
        .await;
    assert_eq!(taken, 1);
    let info = rt.status("word-2").await.unwrap();
    assert_eq!(info.steps[0].kind, replayflow::EntryKind::Recv);
    assert_eq!(info.steps[0].status, replayflow::StepStatus::Completed);
    assert_eq!(info.steps[1].kind, replayflow::EntryKind::Event);

    // A deadline passes: `None`, and the entry completes without a value.
    let brief = await_briefly::start(&rt, "brief-1", 100).await.unwrap();
    assert_eq!(within(brief.result()).await.unwrap(), None);
    let empty = db
        .count(
            "SELECT count(*) FROM step_executions WHERE execution_id = 'brief-1'
               AND kind = 'recv' AND status = 'completed' AND output IS NULL",
        )
        .await;
    assert_eq!(empty, 1);

    // Suspended with a deadline: its wake time; a send moves it to now.
    let long = await_briefly::start(&rt, "brief-2", 600_000).await.unwrap();
    wait_for_status(&rt, "brief-2", ExecutionStatus::Waiting).await;
    let (_, wake_at, _) = execution_row(&db, "brief-2").await;
    assert!(wake_at.is_some(), "the deadline is the wake time");
    long.send("word", &"in time".to_owned()).await.unwrap();
    assert_eq!(
        within(long.result()).await.unwrap().as_deref(),
        Some("in time")
    );

    // Sent by another process (an admin): the owner's sweep wakes it.
    let admin = db.builder().admin().open().await.expect("admin");
    let remote = await_word::start(&rt, "word-4").await.unwrap();
    wait_for_status(&rt, "word-4", ExecutionStatus::Waiting).await;
    admin
        .send("word-4", "word", &"from afar".to_owned())
        .await
        .unwrap();
    assert_eq!(within(remote.result()).await.unwrap(), "from afar");
    assert_eq!(
        admin.get_event::<String>("word-4", "heard").await.unwrap(),
        Some("from afar".to_owned())
    );
    drop(admin);

    // A cancel ends the waiting entry.
    await_word::start(&rt, "word-3").await.unwrap();
    wait_for_status(&rt, "word-3", ExecutionStatus::Waiting).await;
    rt.cancel("word-3").await.unwrap();
    let info = wait_for_status(&rt, "word-3", ExecutionStatus::Cancelled).await;
    assert_eq!(info.steps[0].status, replayflow::StepStatus::Failed);
    assert_eq!(
        info.steps[0].error.as_deref(),
        Some("cancelled while waiting for a message")
    );

    // Pruned with their executions.
    tokio::time::sleep(Duration::from_millis(20)).await;
    rt.prune(Duration::ZERO).await.expect("prune");
    assert_eq!(db.count("SELECT count(*) FROM messages").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM events").await, 0);
    rt.shutdown().await.expect("shutdown");
}

/// A waiter given back by a clean shutdown stays unclaimed (nothing is
/// due), until a message sent by an admin makes it due: another worker
/// claims it then, and it takes the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_left_by_a_clean_shutdown_is_claimed_once_a_message_arrives() {
    let Some(db) = PgDb::new("waiter").await else {
        return;
    };
    let suspending = || db.builder().suspend_after(Duration::from_millis(50));
    let a = suspending().open().await.expect("worker a");
    await_word::start(&a, "left-1").await.unwrap();
    wait_for_status(&a, "left-1", ExecutionStatus::Waiting).await;
    a.shutdown().await.expect("shutdown a");
    drop(a);
    let b = suspending().open().await.expect("worker b");
    // Two sweeps of b: a waiter without a message is not due.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (status, wake_at, owner) = execution_row(&db, "left-1").await;
    assert_eq!((status.as_str(), wake_at, owner), ("waiting", None, None));
    let admin = db.builder().admin().open().await.expect("admin");
    admin
        .send("left-1", "word", &"found".to_owned())
        .await
        .unwrap();
    let out = within(b.handle::<await_word>("left-1").result()).await;
    assert_eq!(out.unwrap(), "found");
    let (_, _, owner) = execution_row(&db, "left-1").await;
    assert_eq!(owner, None, "an end releases the execution");
    let recovered = db
        .count("SELECT count(*) FROM workflow_executions WHERE recovery_attempts > 0")
        .await;
    assert_eq!(recovered, 0);
    b.shutdown().await.expect("shutdown b");
}

/// Holds the `gated` workflows between their two steps.
/// Takes (`hold`) or lets go of worker `me`'s fence as the reaper takes it
/// (see the schema's `fence`): the worker's batches wait at their first
/// statement meanwhile.
async fn worker_fence(client: &tokio_postgres::Client, db: &PgDb, me: i64, hold: bool) {
    let call = if hold {
        "pg_advisory_lock"
    } else {
        "pg_advisory_unlock"
    };
    client
        .execute(
            &format!("SELECT {call}(hashtext($1), ($2::bigint % 2147483647)::int4)"),
            &[&db.schema, &me],
        )
        .await
        .unwrap_or_else(|e| panic!("{call} of the fence: {e}"));
}

/// The backends waiting for a lock that backend `pid` holds.
async fn blocked_by(watcher: &tokio_postgres::Client, pid: i32) -> Vec<i32> {
    watcher
        .query(
            "SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            &[&pid],
        )
        .await
        .expect("read the waiters")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// One gate per test that uses `gated`.
static GATE: [tokio::sync::Semaphore; 3] = [
    tokio::sync::Semaphore::const_new(0),
    tokio::sync::Semaphore::const_new(0),
    tokio::sync::Semaphore::const_new(0),
];
static AT_GATE: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];
static FINISHED: [AtomicU32; 3] = [AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)];

#[step]
async fn finish(gate: usize, n: u32) -> Result<u32, AnyError> {
    FINISHED[gate].fetch_add(1, Ordering::SeqCst);
    Ok(n * 2)
}

#[workflow]
async fn gated(_ctx: Context, gate: usize, i: u32) -> Result<u32, AnyError> {
    let n = add(i, 0).await?;
    AT_GATE[gate].fetch_add(1, Ordering::SeqCst);
    GATE[gate].acquire().await?.forget();
    finish(gate, n).await
}

/// Starts `n` `gated` workflows (`{prefix}-{i}`) at gate `gate`, and
/// waits until all are at it.
async fn start_gated(
    rt: &replayflow::Runtime,
    gate: usize,
    prefix: &str,
    n: u32,
) -> Vec<replayflow::Handle<gated>> {
    let mut handles = Vec::new();
    for i in 0..n {
        let h = gated::start(rt, format!("{prefix}-{i}"), gate, i)
            .await
            .expect("start");
        handles.push(h);
    }
    within(async {
        while AT_GATE[gate].load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    handles
}

/// Waits until every `finish` step of gate `gate` has run its body
/// (`n`), and a little more for their results to reach the writer.
async fn finished(gate: usize, n: u32) {
    within(async {
        while FINISHED[gate].load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Quick steps' results that reach the writer together go in one
/// statement; it writes those of the executions the worker owns, and tells
/// the others apart, one by one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_step_results_writes_only_those_of_owned_executions() {
    const N: u32 = 40;
    const TAKEN: [u32; 2] = [7, 23];
    let Some(db) = PgDb::new("group").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    let me = rt.worker_id().expect("a worker id");
    let handles = start_gated(&rt, 0, "g", N).await;
    // Two of the executions pass to another (live) worker.
    let client = db.client().await;
    let other: i64 = client
        .query_one(
            "INSERT INTO workers (id, host, pid, app_version, workflows, lease_until)
             VALUES (nextval('worker_ids'), 'elsewhere', 1, '', '{}', now() + interval '1 hour')
             RETURNING id",
            &[],
        )
        .await
        .expect("another worker")
        .get(0);
    let taken: Vec<String> = TAKEN.iter().map(|i| format!("g-{i}")).collect();
    client
        .execute(
            "UPDATE workflow_executions SET owner = $1 WHERE id = ANY($2)",
            &[&other, &taken],
        )
        .await
        .expect("hand two executions over");
    // The worker's batches wait at its fence (held as the reaper holds
    // it), so the second steps' results queue up and go in one batch.
    let fence = db.client().await;
    worker_fence(&fence, &db, me, true).await;
    GATE[0].add_permits(N as usize);
    finished(0, N).await;
    let entries = "SELECT count(*) FROM step_executions";
    assert_eq!(db.count(entries).await, i64::from(N), "held at the fence");
    worker_fence(&fence, &db, me, false).await;
    for (i, h) in (0..N).zip(handles) {
        if !TAKEN.contains(&i) {
            assert_eq!(within(h.result()).await.expect("completes"), i * 2);
        }
    }
    // The taken executions got no second entry, and are still the other
    // worker's.
    let rows = client
        .query(
            "SELECT e.id, e.owner, count(s.position) FROM workflow_executions e
             JOIN step_executions s ON s.execution_id = e.id
             GROUP BY e.id, e.owner",
            &[],
        )
        .await
        .expect("read the journal");
    assert_eq!(rows.len(), N as usize);
    for r in rows {
        let (id, owner, entries): (String, Option<i64>, i64) = (r.get(0), r.get(1), r.get(2));
        if taken.contains(&id) {
            assert_eq!((owner, entries), (Some(other), 1), "{id}");
        } else {
            assert_eq!(entries, 2, "{id}");
        }
    }
    // They went together: the rows one statement writes share its
    // transaction and command ids.
    let statements = db
        .count(
            "SELECT count(DISTINCT (xmin::text, cmin::text)) FROM step_executions
             WHERE position = 1",
        )
        .await;
    assert!(
        (1..=3).contains(&statements),
        "{statements} statements wrote {} results",
        N as usize - TAKEN.len()
    );
    rt.shutdown().await.expect("shutdown");
}

/// A batch whose connection is cut while its quick steps' results are
/// being written (together, as one statement) fails them as the server's
/// going away, not as refused writes: their executions stop, and go on
/// by replay once the writer has connected again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_results_cut_off_from_the_server_are_written_again() {
    const N: u32 = 30;
    let Some(db) = PgDb::new("group_cut").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    let handles = start_gated(&rt, 1, "c", N).await;
    // An open transaction writes the rows the results will write: their
    // statement waits for it.
    let mut holder = db.client().await;
    let holder_pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    let rows = holder.transaction().await.expect("begin");
    rows.execute(
        "INSERT INTO step_executions
             (execution_id, position, branch, local, kind, name, occurrence, status, attempts,
              started_at)
         SELECT id, 1, '', 1, 'step', 'held', 0, 'running', 1, 0 FROM workflow_executions",
        &[],
    )
    .await
    .expect("write the rows first");
    GATE[1].add_permits(N as usize);
    finished(1, N).await;
    // Cut every statement that waits for those rows, as long as one does:
    // the first batch, then the one that holds the rest of the results.
    let watcher = db.client().await;
    let mut cut = 0;
    loop {
        let waiting = tokio::time::timeout(Duration::from_secs(3), async {
            loop {
                if let Some(pid) = blocked_by(&watcher, holder_pid).await.first() {
                    return *pid;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        let Ok(pid) = waiting else { break };
        watcher
            .execute("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .expect("terminate the writer's connection");
        cut += 1;
    }
    assert!(cut >= 1, "no write waited for the held rows");
    rows.rollback().await.expect("let the rows go");
    // Their replays pass the gate again.
    GATE[1].add_permits(N as usize);
    for (i, h) in (0..N).zip(handles) {
        assert_eq!(within(h.result()).await.expect("completes"), i * 2);
    }
    rt.shutdown().await.expect("shutdown");
}

/// Starts that reach the writer together insert their executions in one
/// statement: each is created once, a second start of one id finds the
/// first, and an id taken by another workflow is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_that_reach_the_writer_together_insert_in_one_statement() {
    const N: u32 = 20;
    let Some(db) = PgDb::new("insert_group").await else {
        return;
    };
    let rt = db.builder().open().await.expect("open");
    let me = rt.worker_id().expect("a worker id");
    let taken = pay::start(&rt, "taken", 1, 1).await.expect("start");
    within(taken.result()).await.expect("completes");
    let fence = db.client().await;
    worker_fence(&fence, &db, me, true).await;
    let mut starts = tokio::task::JoinSet::new();
    let ids = (0..N)
        .map(|i| (format!("n-{i}"), i))
        .chain([("n-twice".to_owned(), N), ("n-twice".to_owned(), N)])
        .chain([("taken".to_owned(), N + 1)]);
    for (id, i) in ids {
        let rt = rt.clone();
        starts.spawn(async move {
            let started = gated::start(&rt, id.as_str(), 2, i).await;
            (
                id,
                started
                    .map(|h| h.id().to_string())
                    .map_err(|e| e.to_string()),
            )
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    worker_fence(&fence, &db, me, false).await;
    while let Some(started) = within(starts.join_next()).await {
        let (id, started) = started.expect("join");
        if id == "taken" {
            assert!(started.is_err_and(|e| e.contains("taken")), "{id}");
        } else {
            assert_eq!(started, Ok(id));
        }
    }
    within(async {
        while AT_GATE[2].load(Ordering::SeqCst) < N + 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // Each once, written by one statement (the rows, untouched since while
    // their workflows wait at the gate, keep the insert's transaction and
    // command ids).
    let row = fence
        .query_one(
            &format!(
                "SELECT count(*), count(DISTINCT (xmin::text, cmin::text))
                 FROM {}.workflow_executions WHERE id LIKE 'n-%'",
                db.schema
            ),
            &[],
        )
        .await
        .expect("count the executions");
    let (executions, statements): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!(executions, i64::from(N) + 1);
    assert!(
        (1..=3).contains(&statements),
        "{statements} statements inserted {executions}"
    );
    assert_eq!(
        AT_GATE[2].load(Ordering::SeqCst),
        N + 1,
        "one run per execution"
    );
    rt.shutdown().await.expect("shutdown");
}

/// TLS to the server (`cargo test --features postgres-tls --test postgres
/// tls::`); with the feature, every other test here runs over TLS too
/// (`sslmode=prefer`, the server offering it).
#[cfg(feature = "postgres-tls")]
mod tls {
    use super::*;
    use crate::support::pg::{test_ca, with_param};

    /// With `sslmode=require` and the CA of the server's certificate, every
    /// connection the runtime keeps (the pool that reads and writes, the lease
    /// thread's) is encrypted, as the server sees it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_connection_of_a_runtime_uses_tls_when_the_url_requires_it() {
        let Some(db) = PgDb::new("tls").await else {
            return;
        };
        let Some(ca) = test_ca() else {
            return;
        };
        let rt = db
            .builder()
            .postgres(with_param(&db.url, "sslmode=require"))
            .postgres_root_certificate(&ca)
            .open()
            .await
            .expect("open over TLS");
        let handle = pay::start(&rt, "pay-tls", 4, 5).await.expect("start");
        assert_eq!(
            within(handle.result()).await.expect("completes"),
            "charged 9"
        );
        let admin = db.client().await;
        let (total, encrypted, lease) = within(async {
            loop {
                let row = admin
                    .query_one(
                        "SELECT count(*), count(*) FILTER (WHERE s.ssl),
                                count(*) FILTER (WHERE a.query LIKE 'UPDATE workers SET lease_until%')
                         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                         WHERE a.application_name = 'replayflow ' || $1",
                        &[&db.schema],
                    )
                    .await
                    .expect("the runtime's connections");
                let counts: (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
                if counts.2 > 0 {
                    return counts;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert_eq!(lease, 1, "the lease thread's connection");
        assert!(total >= 2, "the lease thread's and the pool's: {total}");
        assert_eq!(encrypted, total, "every connection of the runtime uses TLS");
        rt.shutdown().await.expect("shutdown");
    }

    /// `sslmode=require` without a root certificate verifies against the
    /// system's: the tests' own CA is not one of them, so the open is refused,
    /// saying how to trust the server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn require_refuses_a_certificate_the_system_does_not_trust() {
        let Some(db) = PgDb::new("tls_untrusted").await else {
            return;
        };
        if test_ca().is_none() {
            return;
        }
        let e = db
            .builder()
            .postgres(with_param(&db.url, "sslmode=require"))
            .open()
            .await
            .err()
            .expect("an untrusted server is refused");
        assert!(matches!(e, replayflow::Error::Tls(_)), "{e:?}");
        assert!(e.to_string().contains("postgres_root_certificate"), "{e}");
    }

    /// A role the server authenticates by client certificate alone (`cert` in
    /// `pg_hba.conf`, set up by `.ci/pg-tls`): the runtime offers the
    /// certificate given to the builder, or named by the URL's libpq
    /// parameters, on every connection; without one the server refuses it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_certificate_authenticates_its_role() {
        let Some(db) = PgDb::new("tls_client_cert").await else {
            return;
        };
        let Some(ca) = test_ca() else {
            return;
        };
        let Some((cert, key, url)) = crate::support::pg::test_client_cert(&db.url) else {
            return;
        };
        let rt = db
            .builder()
            .postgres(with_param(&url, "sslmode=require"))
            .postgres_root_certificate(&ca)
            .postgres_client_certificate(&cert, &key)
            .open()
            .await
            .expect("open as the certificate's role");
        let handle = pay::start(&rt, "pay-cert", 2, 2).await.expect("start");
        assert_eq!(
            within(handle.result()).await.expect("completes"),
            "charged 4"
        );
        let admin = db.client().await;
        let row = admin
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE s.client_dn = '/CN=replayflow_cert'
                                                  AND a.usename = 'replayflow_cert')
                 FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                 WHERE a.application_name = 'replayflow ' || $1",
                &[&db.schema],
            )
            .await
            .expect("the runtime's connections");
        let (total, by_cert): (i64, i64) = (row.get(0), row.get(1));
        assert!(total >= 1 && by_cert == total, "{by_cert} of {total}");
        rt.shutdown().await.expect("shutdown");

        // libpq's parameters in the URL, percent-encoded.
        let encode = |p: &std::path::Path| p.display().to_string().replace('/', "%2F");
        let in_url = format!(
            "{url}?sslmode=require&sslrootcert={}&sslcert={}&sslkey={}",
            encode(&ca),
            encode(&cert),
            encode(&key)
        );
        let rt = db
            .builder()
            .postgres(in_url)
            .open()
            .await
            .expect("open by the URL's files");
        let handle = pay::start(&rt, "pay-cert-url", 3, 3).await.expect("start");
        assert_eq!(
            within(handle.result()).await.expect("completes"),
            "charged 6"
        );
        rt.shutdown().await.expect("shutdown");

        let refused = db
            .builder()
            .postgres(with_param(&url, "sslmode=require"))
            .postgres_root_certificate(&ca)
            .open()
            .await
            .err()
            .expect("no certificate, no connection");
        assert!(
            refused.to_string().contains("postgres_client_certificate"),
            "{refused}"
        );

        let half = db
            .builder()
            .postgres(format!("{url}?sslmode=require&sslcert={}", encode(&cert)))
            .open()
            .await
            .err()
            .expect("a certificate without its key");
        assert!(half.to_string().contains("sslkey"), "{half}");
    }

    /// A server that answers the TLS request with a no: `require` fails with a
    /// message saying so, instead of going on in clear.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn require_against_a_server_without_tls_fails_and_says_why() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            // The SSLRequest: length 8, code 80877103.
            let mut request = [0u8; 8];
            socket.read_exact(&mut request).await.expect("read");
            assert_eq!(request, [0, 0, 0, 8, 4, 210, 22, 47]);
            socket.write_all(b"N").await.expect("write");
            // Anything sent after the refusal would be in clear.
            let mut rest = Vec::new();
            let _ = socket.read_to_end(&mut rest).await;
            rest
        });
        let e = replayflow::Runtime::builder()
            .postgres(format!(
                "postgres://postgres@127.0.0.1:{port}/test?sslmode=require"
            ))
            .open()
            .await
            .err()
            .expect("refused");
        assert!(matches!(e, replayflow::Error::Tls(_)), "{e:?}");
        assert!(e.to_string().contains("does not accept TLS"), "{e}");
        let sent_in_clear = within(server).await.expect("the fake server");
        assert!(sent_in_clear.is_empty(), "{sent_in_clear:?}");
    }
}

/// Without the `postgres-tls` feature, `sslmode=require` refuses to open
/// (before connecting) and names the feature.
#[cfg(not(feature = "postgres-tls"))]
#[tokio::test]
async fn require_without_the_tls_feature_refuses_to_open_and_names_it() {
    let e = replayflow::Runtime::builder()
        .postgres("postgres://postgres@127.0.0.1:1/test?sslmode=require")
        .open()
        .await
        .err()
        .expect("refused");
    assert!(matches!(e, replayflow::Error::InvalidOption(_)), "{e:?}");
    assert!(
        e.to_string().contains("`postgres-tls` cargo feature"),
        "{e}"
    );
}
