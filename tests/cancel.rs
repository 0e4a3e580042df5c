//! Cancellation: a sleeping execution is cancelled at once; a running one at
//! its next step boundary, without tearing down the step in flight.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{
    AnyError, Context, ExecutionStatus, RunError, Runtime, StepStatus, step, workflow,
};
use support::{applied, both_stores, wait_for_status, within};

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

both_stores!(
    cancelling_a_sleeping_execution_takes_effect_at_once,
    |db| async move {
        WOKE.store(0, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = long_wait::start(&rt, "wait-1").await.unwrap();
        wait_for_status(&rt, "wait-1", ExecutionStatus::Sleeping).await;
        rt.cancel("wait-1").await.unwrap();
        applied(&db, &rt, "wait-1", ExecutionStatus::Cancelled).await;
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
);

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

both_stores!(
    cancelling_a_running_execution_stops_it_at_the_next_step_boundary,
    |db| async move {
        IN_STEP.store(false, Ordering::SeqCst);
        LET_GO.store(false, Ordering::SeqCst);
        STEP_FINISHED.store(false, Ordering::SeqCst);
        NEXT_RAN.store(false, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
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
);

both_stores!(cancelling_unknown_or_finished_executions, |db| async move {
    let rt = db.builder().open().await.unwrap();
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
});

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);

#[step(max_attempts = 5, backoff = "1h")]
async fn always_fails() -> Result<(), AnyError> {
    FLAKY_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(AnyError::msg("the service is down"))
}

#[workflow]
async fn backs_off(_ctx: Context) -> Result<(), AnyError> {
    always_fails().await
}

/// The entries of `id` still waiting for something that will never come.
async fn waiting_entries(rt: &Runtime, id: &str) -> Vec<StepStatus> {
    rt.status(id)
        .await
        .unwrap()
        .steps
        .iter()
        .map(|s| s.status)
        .filter(|s| matches!(s, StepStatus::Sleeping | StepStatus::Retrying))
        .collect()
}

both_stores!(
    a_cancel_ends_the_sleep_and_the_backoff_it_cut_short,
    |db| async move {
        FLAKY_CALLS.store(0, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        long_wait::start(&rt, "cut-sleep").await.unwrap();
        backs_off::start(&rt, "cut-backoff").await.unwrap();
        wait_for_status(&rt, "cut-sleep", ExecutionStatus::Sleeping).await;
        let before = wait_for_status(&rt, "cut-backoff", ExecutionStatus::Sleeping).await;
        assert_eq!(before.steps[0].status, StepStatus::Retrying);
        let last_error = before.steps[0].error.clone().unwrap();

        rt.cancel("cut-sleep").await.unwrap();
        rt.cancel("cut-backoff").await.unwrap();

        for id in ["cut-sleep", "cut-backoff"] {
            let info = applied(&db, &rt, id, ExecutionStatus::Cancelled).await;
            assert_eq!(waiting_entries(&rt, id).await, [], "{id}: {:?}", info.steps);
            assert!(
                info.steps[0].completed_at.is_some(),
                "{id}: the entry ended"
            );
        }
        let sleep = &rt.status("cut-sleep").await.unwrap().steps[0];
        assert_eq!(sleep.status, StepStatus::Failed);
        assert_eq!(sleep.error.as_deref(), Some("cancelled while sleeping"));
        let step = &rt.status("cut-backoff").await.unwrap().steps[0];
        assert_eq!(step.status, StepStatus::Failed);
        assert_eq!(step.attempts, 1);
        let message = step.error.as_deref().unwrap();
        assert!(
            message.starts_with("cancelled before its next attempt")
                && message.ends_with(&last_error),
            "{message}"
        );
        assert_eq!(FLAKY_CALLS.load(Ordering::SeqCst), 1);
    }
);

both_stores!(a_cancel_ends_a_sleep_waited_in_memory, |db| async move {
    // The sleep is shorter than the suspend threshold: the execution stays
    // running, its entry sleeping, and the cancel reaches it at that wait.
    let rt = db
        .builder()
        .suspend_after(Duration::from_secs(7200))
        .open()
        .await
        .unwrap();
    let handle = long_wait::start(&rt, "cut-in-memory").await.unwrap();
    within(async {
        while waiting_entries(&rt, "cut-in-memory").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    rt.cancel("cut-in-memory").await.unwrap();
    assert!(matches!(
        within(handle.result()).await,
        Err(RunError::Cancelled)
    ));
    assert_eq!(waiting_entries(&rt, "cut-in-memory").await, []);
});
