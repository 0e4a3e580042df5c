//! Panics never take the runtime down: the execution becomes `panicked`,
//! restarts by replay, and fails once its restart budget is spent.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{AnyError, Context, ExecutionStatus, RunError, StepStatus, step, workflow};
use support::{both_stores, within};

static BEFORE: AtomicU32 = AtomicU32::new(0);
static EXPLODING: AtomicU32 = AtomicU32::new(0);

#[step]
async fn before() -> Result<u32, AnyError> {
    BEFORE.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[step(max_attempts = 5, backoff = "1ms")]
async fn explodes_once() -> Result<u32, AnyError> {
    if EXPLODING.fetch_add(1, Ordering::SeqCst) == 0 {
        panic!("the step blew up");
    }
    Ok(2)
}

#[workflow]
async fn step_panics(ctx: Context) -> Result<(u32, u32), AnyError> {
    let a = before().await?;
    let b = explodes_once().await?;
    Ok((a + b, ctx.restart_attempt()))
}

both_stores!(
    a_panicking_step_restarts_the_execution_by_replay,
    |db| async move {
        BEFORE.store(0, Ordering::SeqCst);
        EXPLODING.store(0, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = step_panics::start(&rt, "step-panic").await.unwrap();
        assert_eq!(within(handle.result()).await.unwrap(), (3, 1));
        assert_eq!(
            BEFORE.load(Ordering::SeqCst),
            1,
            "a completed step ran again after the restart"
        );
        assert_eq!(
            EXPLODING.load(Ordering::SeqCst),
            2,
            "not retried by its policy, re-run once by the restart"
        );

        let info = rt.status("step-panic").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Completed);
        assert_eq!(info.restart_attempt, 1);
        let step = &info.steps[1];
        assert_eq!(step.status, StepStatus::Completed);
        assert_eq!(
            step.attempts, 2,
            "the attempt count goes on across the restart"
        );
        let first = step.attempt_log[0].error.as_deref().unwrap_or_default();
        assert!(first.contains("the step blew up"), "{first}");
        assert!(
            first.contains("tests/panic.rs"),
            "the location is recorded: {first}"
        );
    }
);

#[step]
async fn setup() -> Result<u32, AnyError> {
    Ok(0)
}

#[workflow(max_restarts = 2, restart_delay = "10ms")]
async fn always_panics(ctx: Context) -> Result<(), AnyError> {
    setup().await?;
    panic!("body panic on run {}", ctx.restart_attempt());
}

both_stores!(a_spent_restart_budget_ends_failed, |db| async move {
    let rt = db.builder().open().await.unwrap();
    let handle = always_panics::start(&rt, "budget").await.unwrap();
    let err = within(handle.result()).await.unwrap_err();
    let RunError::Failed(reason) = err else {
        panic!("expected failed, got {err:?}");
    };
    assert!(reason.contains("body panic on run 2"), "{reason}");
    assert!(reason.contains("restart budget of 2"), "{reason}");
    let info = rt.status("budget").await.unwrap();
    assert_eq!(info.status, ExecutionStatus::Failed);
    assert_eq!(
        info.restart_attempt, 2,
        "max_restarts = 2 allows 2 restarts (3 runs)"
    );
});

#[workflow]
async fn panics_once(ctx: Context) -> Result<u32, AnyError> {
    if ctx.restart_attempt() == 0 {
        panic!("first run panics");
    }
    Ok(ctx.restart_attempt())
}

both_stores!(
    without_auto_restart_a_panicked_execution_waits,
    |db| async move {
        let rt = db.builder().auto_restart(false).open().await.unwrap();
        panics_once::start(&rt, "manual").await.unwrap();
        within(async {
            while rt.status("manual").await.unwrap().status != ExecutionStatus::Panicked {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        // Well past the 20 ms restart delay of the test builder.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let info = rt.status("manual").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Panicked);
        assert_eq!(info.restart_attempt, 0);
        assert!(info.error_message.unwrap().contains("first run panics"));
    }
);
