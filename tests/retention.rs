//! Retention: `Runtime::prune` and the builder's `retention` delete old
//! finished executions with everything they own, in batches, and never
//! touch an unfinished one.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use replayflow::{
    AnyError, Context, Error, ExecutionInfo, ExecutionStatus, ManualClock, permanent, step,
    workflow,
};
use support::{TempDb, TestDb, applied, both_stores, wait_for_status, within};

const DAY: Duration = Duration::from_secs(86_400);

#[step]
async fn double(n: u32) -> Result<u32, AnyError> {
    Ok(n * 2)
}

#[workflow]
async fn quick(_ctx: Context, n: u32) -> Result<u32, AnyError> {
    double(n).await
}

#[step]
async fn refuse() -> Result<(), AnyError> {
    Err(permanent(AnyError::msg("no such customer")))
}

#[workflow]
async fn doomed(_ctx: Context) -> Result<(), AnyError> {
    refuse().await
}

/// One step, a month's sleep, one step.
#[workflow]
async fn dozy(ctx: Context) -> Result<u32, AnyError> {
    let a = double(1).await?;
    ctx.sleep(30 * DAY).await;
    let b = double(a).await?;
    Ok(b)
}

static RELEASE: AtomicBool = AtomicBool::new(false);

#[step]
async fn hold() -> Result<u32, AnyError> {
    while !RELEASE.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(7)
}

#[workflow]
async fn held(_ctx: Context) -> Result<u32, AnyError> {
    hold().await
}

#[workflow]
async fn bang(ctx: Context) -> Result<(), AnyError> {
    double(1).await?;
    if ctx.restart_attempt() == 0 {
        panic!("the fuse was lit");
    }
    Ok(())
}

static DIVERGE: AtomicBool = AtomicBool::new(false);

#[step]
async fn one_way() -> Result<(), AnyError> {
    Ok(())
}

#[step]
async fn other_way() -> Result<(), AnyError> {
    Ok(())
}

/// Calls another step on replay once `DIVERGE` is set: parked as paused.
#[workflow]
async fn fickle(ctx: Context) -> Result<(), AnyError> {
    if DIVERGE.load(Ordering::SeqCst) {
        other_way().await?;
    } else {
        one_way().await?;
    }
    ctx.sleep(30 * DAY).await;
    Ok(())
}

/// What must not change in an execution a prune keeps.
fn journal(info: &ExecutionInfo) -> Vec<(String, String, u32)> {
    info.steps
        .iter()
        .map(|s| (s.key.to_string(), s.status.to_string(), s.attempts))
        .collect()
}

fn is_gone(result: Result<ExecutionInfo, Error>) -> bool {
    matches!(result, Err(Error::NotFound(_)))
}

/// The tables whose rows belong to an execution, on either store.
async fn execution_tables(db: &TestDb) -> Vec<String> {
    if let Some(pg) = db.postgres() {
        let client = pg.client().await;
        return client
            .query(
                "SELECT DISTINCT table_name::text FROM information_schema.columns
                 WHERE table_schema = $1 AND (column_name = 'execution_id'
                   OR table_name = 'workflow_executions')",
                &[&pg.schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
    }
    let conn = rusqlite::Connection::open(db.sqlite().unwrap().path()).unwrap();
    // `workflows` and `value_types` name workflows and types, not executions.
    conn.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table'
         AND name NOT IN ('workflows', 'value_types')",
    )
    .unwrap()
    .query_map([], |r| r.get(0))
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The one number `sql` selects, on either store.
async fn count(db: &TestDb, sql: &str) -> i64 {
    if let Some(pg) = db.postgres() {
        return pg.client().await.query_one(sql, &[]).await.unwrap().get(0);
    }
    let conn = rusqlite::Connection::open(db.sqlite().unwrap().path()).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

both_stores!(
    prune_removes_exactly_the_old_finished_executions,
    |db| async move {
        RELEASE.store(false, Ordering::SeqCst);
        DIVERGE.store(false, Ordering::SeqCst);
        let clock = ManualClock::new(SystemTime::now());
        let rt = db
            .builder()
            .clock(clock.clone())
            .auto_restart(false)
            .open()
            .await
            .unwrap();

        // Ten days ago: one execution in every status.
        quick::start(&rt, "old-done", 1).await.unwrap();
        doomed::start(&rt, "old-failed").await.unwrap();
        dozy::start(&rt, "old-cancelled").await.unwrap();
        dozy::start(&rt, "old-sleeping").await.unwrap();
        held::start(&rt, "old-running").await.unwrap();
        bang::start(&rt, "old-panicked").await.unwrap();
        fickle::start(&rt, "old-paused").await.unwrap();
        wait_for_status(&rt, "old-done", ExecutionStatus::Completed).await;
        wait_for_status(&rt, "old-failed", ExecutionStatus::Failed).await;
        wait_for_status(&rt, "old-cancelled", ExecutionStatus::Sleeping).await;
        rt.cancel("old-cancelled").await.unwrap();
        applied(&db, &rt, "old-cancelled", ExecutionStatus::Cancelled).await;
        wait_for_status(&rt, "old-sleeping", ExecutionStatus::Sleeping).await;
        wait_for_status(&rt, "old-panicked", ExecutionStatus::Panicked).await;
        wait_for_status(&rt, "old-paused", ExecutionStatus::Sleeping).await;
        DIVERGE.store(true, Ordering::SeqCst);
        rt.resume("old-paused").await.unwrap();
        wait_for_status(&rt, "old-paused", ExecutionStatus::Paused).await;

        // Now: finished ones that are recent.
        clock.advance(10 * DAY);
        quick::start(&rt, "new-done", 2).await.unwrap();
        doomed::start(&rt, "new-failed").await.unwrap();
        dozy::start(&rt, "new-cancelled").await.unwrap();
        wait_for_status(&rt, "new-done", ExecutionStatus::Completed).await;
        wait_for_status(&rt, "new-failed", ExecutionStatus::Failed).await;
        wait_for_status(&rt, "new-cancelled", ExecutionStatus::Sleeping).await;
        rt.cancel("new-cancelled").await.unwrap();
        applied(&db, &rt, "new-cancelled", ExecutionStatus::Cancelled).await;

        let kept = [
            "old-sleeping",
            "old-panicked",
            "old-paused",
            "new-done",
            "new-failed",
            "new-cancelled",
        ];
        let mut before = Vec::new();
        for id in kept {
            before.push(rt.status(id).await.unwrap());
        }
        assert_eq!(
            rt.status("old-running").await.unwrap().status,
            ExecutionStatus::Running
        );

        let report = rt.prune(7 * DAY).await.unwrap();
        assert_eq!(report.executions, 3, "{report:?}");
        assert_eq!(report.batches, 1, "{report:?}");
        for gone in ["old-done", "old-failed", "old-cancelled"] {
            assert!(is_gone(rt.status(gone).await), "{gone} is still there");
        }
        for (id, was) in kept.iter().zip(&before) {
            let now = rt.status(*id).await.unwrap();
            assert_eq!(now.status, was.status, "{id}");
            assert_eq!(journal(&now), journal(was), "{id}");
            assert!(!now.steps.is_empty(), "{id}");
        }
        assert_eq!(
            rt.status("old-running").await.unwrap().status,
            ExecutionStatus::Running
        );
        let again = rt.prune(7 * DAY).await.unwrap();
        assert_eq!((again.executions, again.batches), (0, 0));

        // The unfinished ones go on as if nothing happened.
        RELEASE.store(true, Ordering::SeqCst);
        let running = rt.handle::<held>("old-running");
        assert_eq!(within(running.result()).await.unwrap(), 7);
        rt.resume("old-sleeping").await.unwrap();
        let sleeping = rt.handle::<dozy>("old-sleeping");
        assert_eq!(within(sleeping.result()).await.unwrap(), 4);
        rt.restart("old-panicked").await.unwrap();
        wait_for_status(&rt, "old-panicked", ExecutionStatus::Completed).await;
        rt.shutdown().await.unwrap();

        // Nothing of the pruned executions is left in any table.
        let tables = execution_tables(&db).await;
        assert!(tables.len() >= 5, "{tables:?}");
        for table in tables {
            let column = if table == "workflow_executions" {
                "id"
            } else {
                "execution_id"
            };
            let left = count(&db, &format!("SELECT count(*) FROM {table} WHERE {column} LIKE 'old-%' AND {column} NOT IN ('old-sleeping', 'old-running', 'old-panicked', 'old-paused')")).await;
            assert_eq!(left, 0, "{table}");
        }
    }
);

both_stores!(
    retention_prunes_at_open_and_keeps_what_is_unfinished,
    |db| async move {
        let clock = ManualClock::new(SystemTime::now());
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        for i in 0..3 {
            quick::start(&rt, format!("done-{i}"), i).await.unwrap();
            wait_for_status(&rt, &format!("done-{i}"), ExecutionStatus::Completed).await;
        }
        dozy::start(&rt, "sleeper").await.unwrap();
        wait_for_status(&rt, "sleeper", ExecutionStatus::Sleeping).await;
        rt.shutdown().await.unwrap();

        clock.advance(2 * DAY);
        let rt = db
            .builder()
            .clock(clock.clone())
            .retention(DAY)
            .open()
            .await
            .unwrap();
        quick::start(&rt, "fresh", 5).await.unwrap();
        wait_for_status(&rt, "fresh", ExecutionStatus::Completed).await;
        within(async {
            while !is_gone(rt.status("done-2").await) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        for i in 0..3 {
            assert!(is_gone(rt.status(format!("done-{i}")).await));
        }
        assert_eq!(
            rt.status("sleeper").await.unwrap().status,
            ExecutionStatus::Sleeping
        );
        assert_eq!(
            rt.status("fresh").await.unwrap().status,
            ExecutionStatus::Completed
        );
        rt.shutdown().await.unwrap();
    }
);

#[workflow]
async fn counter(_ctx: Context, steps: u32) -> Result<u32, AnyError> {
    let mut total = 0;
    for i in 0..steps {
        total += double(i).await?;
    }
    Ok(total)
}

/// Writes `n` finished executions that ended 40 days ago, each with three
/// journal entries, an attempt, a superseded entry and an admin request,
/// straight into the file (as a long-lived application would have).
fn backlog(db: &TempDb, n: u32) {
    let mut conn = rusqlite::Connection::open(db.path()).unwrap();
    let long_ago = replayflow_millis(SystemTime::now() - 40 * DAY);
    let tx = conn.transaction().unwrap();
    {
        let mut execution = tx
            .prepare(
                "INSERT INTO workflow_executions
                     (id, workflow_name, status, codec, input, output, options, created_at, updated_at, completed_at)
                 VALUES (?1, 'counter', 'completed', 'json', x'33', x'36', '{}', ?2, ?2, ?2)",
            )
            .unwrap();
        let mut entry = tx
            .prepare(
                "INSERT INTO step_executions
                     (execution_id, position, local, kind, name, occurrence, status, attempts, output, started_at, completed_at)
                 VALUES (?1, ?2, ?2, 'step', 'double', ?2, 'completed', 1, x'32', ?3, ?3)",
            )
            .unwrap();
        let mut attempt = tx
            .prepare(
                "INSERT INTO step_attempts (execution_id, position, attempt, status, started_at, ended_at)
                 VALUES (?1, 0, 1, 'completed', ?2, ?2)",
            )
            .unwrap();
        let mut superseded = tx
            .prepare(
                "INSERT INTO superseded_steps
                     (execution_id, position, branch, local, kind, name, occurrence, status, attempts,
                      started_at, superseded_at, restart_attempt)
                 VALUES (?1, 0, '', 0, 'step', 'double', 0, 'failed', 3, ?2, ?2, 0)",
            )
            .unwrap();
        let mut request = tx
            .prepare(
                "INSERT INTO admin_requests (execution_id, action, requested_at, applied_at, outcome)
                 VALUES (?1, 'resume', ?2, ?2, 'applied')",
            )
            .unwrap();
        for i in 0..n {
            let id = format!("backlog-{i}");
            execution.execute(rusqlite::params![id, long_ago]).unwrap();
            for position in 0..3 {
                entry
                    .execute(rusqlite::params![id, position, long_ago])
                    .unwrap();
            }
            attempt.execute(rusqlite::params![id, long_ago]).unwrap();
            superseded.execute(rusqlite::params![id, long_ago]).unwrap();
            request.execute(rusqlite::params![id, long_ago]).unwrap();
        }
    }
    tx.commit().unwrap();
}

fn replayflow_millis(t: SystemTime) -> i64 {
    i64::try_from(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_large_prune_goes_in_batches_while_workflows_run() {
    const BACKLOG: u32 = 20_000;
    const WORKFLOWS: u32 = 50;
    const STEPS: u32 = 20;
    let db = TempDb::new();
    db.builder().open().await.unwrap().shutdown().await.unwrap();
    backlog(&db, BACKLOG);

    let rt = db.builder().open().await.unwrap();
    let mut handles = Vec::new();
    for i in 0..WORKFLOWS {
        handles.push(
            counter::start(&rt, format!("live-{i}"), STEPS)
                .await
                .unwrap(),
        );
    }
    let results = async {
        let mut totals = Vec::new();
        for handle in handles {
            totals.push(handle.result().await.unwrap());
        }
        totals
    };
    let (report, totals) = within(async { tokio::join!(rt.prune(30 * DAY), results) }).await;
    let report = report.unwrap();

    // Every live workflow ran every step, and none of them was touched.
    assert_eq!(
        totals,
        vec![(0..STEPS).map(|i| i * 2).sum::<u32>(); WORKFLOWS as usize]
    );
    for i in 0..WORKFLOWS {
        let info = rt.status(format!("live-{i}")).await.unwrap();
        assert_eq!(info.steps.len(), STEPS as usize);
    }
    assert_eq!(report.executions, u64::from(BACKLOG), "{report:?}");
    assert_eq!(report.batches, BACKLOG / 500, "{report:?}");
    assert!(report.bytes_freed > 0, "{report:?}");
    assert_eq!(report.bytes_free, 0, "{report:?}");
    let left = rt
        .count(replayflow::ListFilter::new())
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum::<u64>();
    assert_eq!(left, u64::from(WORKFLOWS));
    rt.shutdown().await.unwrap();
}
