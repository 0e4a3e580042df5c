//! Cancellation: a sleeping execution is cancelled at once; a running one at
//! its next step boundary, without tearing down the step in flight.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{
    AnyError, Context, ExecutionStatus, RunError, Runtime, StepStatus, step, workflow,
};
use support::{wait_for_status, within};

static WOKE: AtomicU32 = AtomicU32::new(0);

#[step]
async fn after_wake() -> Result<(), AnyError> {
    WOKE.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

#[workflow]
async fn long_wait(ctx: Context) -> Result<(), AnyError> {
    ctx.sleep(Duration::from_secs(3600)).await;
    after_wake().await
}

#[tokio::test]
async fn cancelling_a_sleeping_execution_takes_effect_at_once() {
    let rt = Runtime::in_memory().await.unwrap();
    let handle = long_wait::start(&rt, "wait-1").await.unwrap();
    wait_for_status(&rt, "wait-1", ExecutionStatus::Sleeping).await;
    rt.cancel("wait-1").await.unwrap();
    assert_eq!(
        rt.status("wait-1").await.unwrap().status,
        ExecutionStatus::Cancelled
    );
    assert!(matches!(
        within(handle.result()).await,
        Err(RunError::Cancelled)
    ));
    // Waking it now finds it cancelled: the step after the sleep never runs.
    rt.resume("wait-1").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(WOKE.load(Ordering::SeqCst), 0);
    assert_eq!(
        rt.status("wait-1").await.unwrap().status,
        ExecutionStatus::Cancelled
    );
}

static IN_STEP: AtomicBool = AtomicBool::new(false);
static LET_GO: AtomicBool = AtomicBool::new(false);
static STEP_FINISHED: AtomicBool = AtomicBool::new(false);
static NEXT_RAN: AtomicBool = AtomicBool::new(false);

#[step]
async fn slow_work() -> Result<u32, AnyError> {
    IN_STEP.store(true, Ordering::SeqCst);
    while !LET_GO.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    STEP_FINISHED.store(true, Ordering::SeqCst);
    Ok(1)
}

#[step]
async fn next_work() -> Result<u32, AnyError> {
    NEXT_RAN.store(true, Ordering::SeqCst);
    Ok(2)
}

#[workflow]
async fn busy(_ctx: Context) -> Result<u32, AnyError> {
    let a = slow_work().await?;
    let b = next_work().await?;
    Ok(a + b)
}

#[tokio::test]
async fn cancelling_a_running_execution_stops_it_at_the_next_step_boundary() {
    let rt = Runtime::in_memory().await.unwrap();
    let handle = busy::start(&rt, "busy-1").await.unwrap();
    within(async {
        while !IN_STEP.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    rt.cancel("busy-1").await.unwrap();
    // The step in flight is not torn down: it runs to its end.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        rt.status("busy-1").await.unwrap().status,
        ExecutionStatus::Running
    );
    LET_GO.store(true, Ordering::SeqCst);

    assert!(matches!(
        within(handle.result()).await,
        Err(RunError::Cancelled)
    ));
    assert!(STEP_FINISHED.load(Ordering::SeqCst));
    assert!(
        !NEXT_RAN.load(Ordering::SeqCst),
        "a step ran after the cancel"
    );
    let info = rt.status("busy-1").await.unwrap();
    assert_eq!(info.steps.len(), 1);
    assert_eq!(
        info.steps[0].status,
        StepStatus::Completed,
        "the finished step's result is kept"
    );
}

#[tokio::test]
async fn cancelling_unknown_or_finished_executions() {
    let rt = Runtime::in_memory().await.unwrap();
    assert!(matches!(
        rt.cancel("nope").await,
        Err(replayflow::Error::NotFound(_))
    ));
    let handle = long_wait::start(&rt, "wait-2").await.unwrap();
    wait_for_status(&rt, "wait-2", ExecutionStatus::Sleeping).await;
    rt.cancel("wait-2").await.unwrap();
    rt.cancel("wait-2").await.unwrap();
    assert!(matches!(
        within(handle.result()).await,
        Err(RunError::Cancelled)
    ));
}
