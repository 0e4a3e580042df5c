//! Restarting by request: a panicked execution keeps its journal; a failed
//! one has its journal from the first failed entry on set aside, so the
//! failed step really runs again. Both add one to `restart_attempt`.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use replayflow::{AnyError, Context, Error, ExecutionStatus, RunError, StepStatus, step, workflow};
use support::{both_stores, wait_until, within};

static PREPARED: AtomicU32 = AtomicU32::new(0);
static SERVICE_UP: AtomicBool = AtomicBool::new(false);
static CALLS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn prepare() -> Result<u32, AnyError> {
    PREPARED.fetch_add(1, Ordering::SeqCst);
    Ok(5)
}

#[step(max_attempts = 2, backoff = "1ms")]
async fn call_service(x: u32) -> Result<u32, AnyError> {
    CALLS.fetch_add(1, Ordering::SeqCst);
    if SERVICE_UP.load(Ordering::SeqCst) {
        Ok(x * 2)
    } else {
        Err(AnyError::msg("service down"))
    }
}

#[workflow]
async fn fragile(ctx: Context) -> Result<(u32, u32), AnyError> {
    let x = prepare().await?;
    let y = call_service(x).await?;
    Ok((y, ctx.restart_attempt()))
}

both_stores!(
    restarting_a_failed_execution_reruns_the_failed_step,
    |db| async move {
        PREPARED.store(0, Ordering::SeqCst);
        SERVICE_UP.store(false, Ordering::SeqCst);
        CALLS.store(0, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = fragile::start(&rt, "fragile-1").await.unwrap();
        assert!(matches!(
            within(handle.result()).await,
            Err(RunError::Workflow(_))
        ));
        assert_eq!(CALLS.load(Ordering::SeqCst), 2);

        SERVICE_UP.store(true, Ordering::SeqCst);
        rt.restart("fragile-1").await.unwrap();
        if db.is_postgres() {
            // No worker drives a failed execution: on PostgreSQL the restart
            // is a request that the sweep applies within about a second, and
            // until then the handle reads the failure again.
            wait_until(&rt, "fragile-1", |info| info.restart_attempt == 1).await;
        }
        assert_eq!(within(handle.result()).await.unwrap(), (10, 1));
        assert_eq!(
            PREPARED.load(Ordering::SeqCst),
            1,
            "the completed step before the failure ran again"
        );
        assert_eq!(CALLS.load(Ordering::SeqCst), 3);

        let info = rt.status("fragile-1").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Completed);
        assert_eq!(info.restart_attempt, 1);
        let call = &info.steps[1];
        assert_eq!(call.status, StepStatus::Completed);
        assert_eq!(call.attempts, 1, "the failed step's attempts start over");

        // Why it failed stays visible: the failed entry, set aside by the restart.
        assert_eq!(info.superseded.len(), 1, "{:?}", info.superseded);
        let failed = &info.superseded[0];
        assert_eq!(failed.run, 0);
        assert_eq!(failed.step.key.name, call.key.name);
        assert_eq!(failed.step.status, StepStatus::Failed);
        assert_eq!(failed.step.attempts, 2);
        assert!(failed.step.error.is_some(), "{:?}", failed.step);
        assert_eq!(
            failed.step.attempt_log.len(),
            2,
            "{:?}",
            failed.step.attempt_log
        );
    }
);

both_stores!(
    only_panicked_and_failed_executions_restart,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let handle = simple::start(&rt, "simple-1").await.unwrap();
        within(handle.result()).await.unwrap();
        let err = rt.restart("simple-1").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotRestartable {
                    status: ExecutionStatus::Completed,
                    ..
                }
            ),
            "{err}"
        );
    }
);

#[workflow]
async fn simple(_ctx: Context) -> Result<(), AnyError> {
    Ok(())
}

static BLOWN: AtomicBool = AtomicBool::new(false);

#[step]
async fn setup() -> Result<u32, AnyError> {
    Ok(5)
}

#[workflow]
async fn blows_up(ctx: Context) -> Result<u32, AnyError> {
    let x = setup().await?;
    if !BLOWN.swap(true, Ordering::SeqCst) {
        panic!("blown");
    }
    Ok(x + ctx.restart_attempt())
}

both_stores!(restarting_a_panicked_execution_by_hand, |db| async move {
    BLOWN.store(false, Ordering::SeqCst);
    let rt = db.builder().auto_restart(false).open().await.unwrap();
    let handle = blows_up::start(&rt, "blown-1").await.unwrap();
    within(async {
        while rt.status("blown-1").await.unwrap().status != ExecutionStatus::Panicked {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    rt.restart("blown-1").await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 6);
});

/// Runs of `first_run_panics`, by execution id and restart attempt.
static RACE_RUNS: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(Vec::new());

#[workflow(max_restarts = 0)]
async fn first_run_panics(ctx: Context) -> Result<u32, AnyError> {
    RACE_RUNS
        .lock()
        .unwrap()
        .push((ctx.execution_id().to_string(), ctx.restart_attempt()));
    if ctx.restart_attempt() == 0 {
        panic!("the first run panics");
    }
    Ok(ctx.restart_attempt())
}

/// The status of `id` once it ended after its restart, or after 20 s when no
/// restart took effect (a restart of a failed execution by request on
/// PostgreSQL is applied by the sweep within about a second).
async fn restarted_or_not(rt: &replayflow::Runtime, id: &str) -> replayflow::ExecutionInfo {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let info = rt.status(id).await.unwrap();
        let ended = info.status.is_terminal() && info.restart_attempt == 1;
        if ended || std::time::Instant::now() > deadline {
            return info;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

// With no restart budget, the driver of a panicked execution writes `failed`
// right after `panicked`. A `restart()` issued in between (the status reads
// `panicked`, or already `failed` while the driver still holds the execution)
// must either take effect (the execution runs again, once) or be refused with
// an error; it must never return `Ok` and leave the execution `failed`.
both_stores!(
    a_restart_racing_a_spent_budget_is_not_lost,
    threads = 2,
    |db| async move {
        RACE_RUNS.lock().unwrap().clear();
        let rt = db.builder().open().await.unwrap();
        let mut refused = 0;
        for i in 0..50 {
            let id = format!("race-{i}");
            let handle = first_run_panics::start(&rt, id.as_str()).await.unwrap();
            // Issued again and again while the first run is still `running`,
            // so the first restart that is not refused for that lands as
            // close as it can to the moment the budget is spent.
            let outcome = within(async {
                loop {
                    match rt.restart(id.as_str()).await {
                        Err(Error::NotRestartable {
                            status: ExecutionStatus::Running,
                            ..
                        }) => tokio::task::yield_now().await,
                        other => return other,
                    }
                }
            })
            .await;
            match outcome {
                Ok(()) => {
                    // On PostgreSQL a restart of a failed execution that no
                    // task drives may go by request: wait for it.
                    let info = restarted_or_not(&rt, &id).await;
                    assert_eq!(
                        info.status,
                        ExecutionStatus::Completed,
                        "{id}: restart() returned Ok but the execution ended {} ({:?})",
                        info.status,
                        info.error_message
                    );
                    assert_eq!(within(handle.result()).await.unwrap(), 1);
                }
                Err(e) => {
                    // A refusal must say why, and the execution stays failed
                    // by its spent budget.
                    refused += 1;
                    let info = wait_until(&rt, &id, |info| info.status.is_terminal()).await;
                    assert_eq!(
                        info.status,
                        ExecutionStatus::Failed,
                        "{id}: refused with {e}"
                    );
                    assert_eq!(
                        info.restart_attempt, 0,
                        "{id}: refused with {e}, yet restarted"
                    );
                    assert!(!e.to_string().is_empty());
                }
            }
        }
        // Well past any restart that could still be pending (20 ms delay).
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let runs = RACE_RUNS.lock().unwrap().clone();
        for i in 0..50 {
            let id = format!("race-{i}");
            let info = rt.status(id.as_str()).await.unwrap();
            let of = |attempt: u32| {
                runs.iter()
                    .filter(|(run_id, a)| *run_id == id && *a == attempt)
                    .count()
            };
            assert_eq!(of(0), 1, "{id}: the first run ran {} times", of(0));
            let restarted = usize::from(info.status == ExecutionStatus::Completed);
            assert_eq!(
                of(1),
                restarted,
                "{id}: {} runs after the restart, status {}",
                of(1),
                info.status
            );
            assert!(runs.iter().all(|(run_id, a)| *run_id != id || *a <= 1));
        }
        eprintln!("{refused} of 50 restarts refused");
    }
);
