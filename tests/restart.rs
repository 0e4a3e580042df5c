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
