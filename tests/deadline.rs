//! Deadlines: `#[workflow(timeout = "...")]` and `StartOptions::timeout`
//! give an execution an absolute deadline, journaled at its start. Past
//! it the execution ends at its next boundary as cancelled, with
//! `RunError::DeadlineExceeded`: while it sleeps, while it waits for a
//! message, after the step in flight (never in its middle), and across
//! restarts. Every test runs on both stores.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replayflow::{
    AnyError, Clock, Context, EntryKind, ExecutionStatus, ManualClock, RunError, StartOptions,
    StepStatus, step, workflow,
};
use support::{both_stores, wait_for_status, within};

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

const HOUR: Duration = Duration::from_secs(3600);

/// Runs of `prepare_sleep` for execution `overslept` (the tests run at
/// once, and another starts the same workflow).
static PREPARED: AtomicU32 = AtomicU32::new(0);
/// Runs of `after`, which no execution reaches before its deadline.
static AFTER: AtomicU32 = AtomicU32::new(0);

#[step]
async fn prepare() -> Result<(), AnyError> {
    Ok(())
}

#[step]
async fn prepare_sleep() -> Result<(), AnyError> {
    let step = replayflow::StepContext::current();
    if step.is_some_and(|s| s.execution_id().as_str() == "overslept") {
        PREPARED.fetch_add(1, Ordering::SeqCst);
    }
    Ok(())
}

#[step]
async fn after() -> Result<(), AnyError> {
    AFTER.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Sleeps two hours, past its one-hour deadline.
#[workflow(timeout = "1h")]
async fn overslept(ctx: Context) -> Result<(), AnyError> {
    prepare_sleep().await?;
    ctx.sleep(2 * HOUR).await;
    after().await
}

/// Waits for a message that never comes.
#[workflow]
async fn unanswered(ctx: Context) -> Result<(), AnyError> {
    prepare().await?;
    ctx.recv::<String>("answer").await;
    after().await
}

fn deadline_reason(result: Result<(), RunError<AnyError>>) -> String {
    match result {
        Err(RunError::DeadlineExceeded(reason)) => reason,
        other => panic!("expected DeadlineExceeded, got {other:?}"),
    }
}

both_stores!(
    a_deadline_ends_a_sleep_at_the_deadline_not_the_wake_time,
    |db| async move {
        let (prepared, after_runs) = (
            PREPARED.load(Ordering::SeqCst),
            AFTER.load(Ordering::SeqCst),
        );
        let clock = clock();
        let start = clock.now();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let handle = overslept::start(&rt, "overslept").await.unwrap();
        let info = wait_for_status(&rt, "overslept", ExecutionStatus::Sleeping).await;
        assert_eq!(info.deadline, Some(start + HOUR), "journaled at the start");
        assert_eq!(info.wake_at, Some(start + HOUR), "woken for the deadline");
        assert_eq!(
            info.steps[1].wake_at,
            Some(start + 2 * HOUR),
            "the sleep keeps its own"
        );

        clock.advance(HOUR);
        let reason = deadline_reason(within(handle.result()).await);
        assert_eq!(
            reason,
            "deadline exceeded: the execution had to end by 2027-01-15T09:00:00.000Z"
        );
        let info = rt.status("overslept").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Cancelled);
        assert_eq!(info.error_message.as_deref(), Some(reason.as_str()));
        assert_eq!(
            PREPARED.load(Ordering::SeqCst),
            prepared + 1,
            "replayed, not run again"
        );
        assert_eq!(
            AFTER.load(Ordering::SeqCst),
            after_runs,
            "nothing ran past the deadline"
        );
        rt.shutdown().await.unwrap();
    }
);

both_stores!(a_deadline_ends_a_wait_for_a_message, |db| async move {
    let clock = clock();
    let start = clock.now();
    let rt = db
        .builder()
        .clock(clock.clone())
        .suspend_after(Duration::ZERO)
        .open()
        .await
        .unwrap();
    let handle = unanswered::start_with(&rt, "unanswered", StartOptions::new().timeout(HOUR))
        .await
        .unwrap();
    let info = wait_for_status(&rt, "unanswered", ExecutionStatus::Waiting).await;
    assert_eq!(info.wake_at, Some(start + HOUR));
    clock.advance(HOUR + Duration::from_secs(1));
    deadline_reason(within(handle.result()).await);
    let info = rt.status("unanswered").await.unwrap();
    let wait = info.steps.last().unwrap();
    assert_eq!(
        (wait.kind, wait.status),
        (EntryKind::Recv, StepStatus::Failed)
    );
    // The execution is over: a message now is refused.
    assert!(rt.send("unanswered", "answer", "late").await.is_err());
    rt.shutdown().await.unwrap();
});

static IN_STEP: AtomicBool = AtomicBool::new(false);
static RELEASE: AtomicBool = AtomicBool::new(false);

#[step]
async fn long_call() -> Result<u32, AnyError> {
    IN_STEP.store(true, Ordering::SeqCst);
    while !RELEASE.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(7)
}

#[workflow(timeout = "1h")]
async fn busy(_ctx: Context) -> Result<(), AnyError> {
    long_call().await?;
    after().await
}

both_stores!(
    a_step_in_flight_at_the_deadline_finishes_and_the_next_boundary_ends_it,
    |db| async move {
        IN_STEP.store(false, Ordering::SeqCst);
        RELEASE.store(false, Ordering::SeqCst);
        let after_runs = AFTER.load(Ordering::SeqCst);
        let clock = clock();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let handle = busy::start(&rt, "busy").await.unwrap();
        within(async {
            while !IN_STEP.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        clock.advance(2 * HOUR);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            rt.status("busy").await.unwrap().status,
            ExecutionStatus::Running,
            "not torn down mid-step"
        );
        RELEASE.store(true, Ordering::SeqCst);
        deadline_reason(within(handle.result()).await);
        let info = rt.status("busy").await.unwrap();
        let call = &info.steps[0];
        assert_eq!(
            call.status,
            StepStatus::Completed,
            "its result is journaled"
        );
        assert_eq!(call.output.as_ref().unwrap().decode::<u32>().unwrap(), 7);
        assert_eq!(info.steps.len(), 1);
        assert_eq!(AFTER.load(Ordering::SeqCst), after_runs);
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    a_deadline_that_passed_while_no_worker_ran_ends_the_execution_on_open,
    |db| async move {
        let clock = clock();
        let start: SystemTime = clock.now();
        let open = || async { db.builder().clock(clock.clone()).open().await.unwrap() };
        let rt = open().await;
        // The start option overrides the attribute's hour.
        overslept::start_with(&rt, "restarted", StartOptions::new().timeout(HOUR / 2))
            .await
            .unwrap();
        let info = wait_for_status(&rt, "restarted", ExecutionStatus::Sleeping).await;
        assert_eq!(info.deadline, Some(start + HOUR / 2));
        rt.shutdown().await.unwrap();
        drop(rt);

        clock.advance(3 * HOUR);
        let rt = open().await;
        let info = within(wait_for_status(
            &rt,
            "restarted",
            ExecutionStatus::Cancelled,
        ))
        .await;
        assert_eq!(
            info.deadline,
            Some(start + HOUR / 2),
            "the deadline it was given"
        );
        let result = within(rt.handle::<overslept>("restarted").result()).await;
        deadline_reason(result);
        rt.shutdown().await.unwrap();
    }
);

#[workflow]
async fn quick(_ctx: Context) -> Result<u32, AnyError> {
    Ok(1)
}

both_stores!(
    an_execution_that_ends_in_time_is_unaffected_and_a_plain_cancel_stays_a_cancel,
    |db| async move {
        let clock = clock();
        let rt = db
            .builder()
            .clock(clock.clone())
            .suspend_after(Duration::ZERO)
            .open()
            .await
            .unwrap();
        let handle = quick::start_with(&rt, "in-time", StartOptions::new().timeout(HOUR))
            .await
            .unwrap();
        assert_eq!(within(handle.result()).await.unwrap(), 1);
        let handle = unanswered::start_with(&rt, "cancelled", StartOptions::new().timeout(HOUR))
            .await
            .unwrap();
        wait_for_status(&rt, "cancelled", ExecutionStatus::Waiting).await;
        rt.cancel("cancelled").await.unwrap();
        assert!(matches!(
            within(handle.result()).await,
            Err(RunError::Cancelled)
        ));
        rt.shutdown().await.unwrap();
    }
);
