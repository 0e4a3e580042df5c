//! Retries: attempts are counted and journaled, permanent errors are not
//! retried, the last error reaches the workflow, runtime failures (timeouts)
//! reach it as the step's error.

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{
    AnyError, AttemptStatus, Context, RetryPolicy, StartOptions, StepContext, StepStatus,
    permanent, step, workflow,
};
use serde::{Deserialize, Serialize};
use support::{both_stores, within};

static FLAKY_CALLS: AtomicU32 = AtomicU32::new(0);
static SEEN_KEYS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

#[step(max_attempts = 4, backoff = "5ms", exponential = false)]
async fn flaky(fail_times: u32) -> Result<String, AnyError> {
    let info = StepContext::current().expect("inside a workflow step");
    SEEN_KEYS
        .lock()
        .unwrap()
        .push((info.attempt(), info.idempotency_key()));
    let n = FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if n <= fail_times {
        return Err(AnyError::msg(format!("transient failure {n}")));
    }
    Ok(format!("ok after {n}"))
}

#[workflow]
async fn retrying(_ctx: Context, fail_times: u32) -> Result<String, AnyError> {
    flaky(fail_times).await
}

both_stores!(retries_until_success_and_counts_attempts, |db| async move {
    FLAKY_CALLS.store(0, Ordering::SeqCst);
    SEEN_KEYS.lock().unwrap().clear();
    let rt = db.builder().open().await.unwrap();
    let out = within(retrying::start(&rt, "retry-1", 2).await.unwrap().result())
        .await
        .unwrap();
    assert_eq!(out, "ok after 3");

    let info = rt.status("retry-1").await.unwrap();
    let step = &info.steps[0];
    assert_eq!(step.status, StepStatus::Completed);
    assert_eq!(step.attempts, 3);
    let statuses: Vec<AttemptStatus> = step.attempt_log.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            AttemptStatus::Failed,
            AttemptStatus::Failed,
            AttemptStatus::Completed
        ]
    );
    assert_eq!(
        step.attempt_log[0].error.as_deref(),
        Some("transient failure 1")
    );

    let keys = SEEN_KEYS.lock().unwrap().clone();
    let attempts: Vec<u32> = keys.iter().map(|k| k.0).collect();
    assert_eq!(attempts, [1, 2, 3]);
    assert!(keys.iter().all(|k| k.1 == "retry-1/flaky#0"), "{keys:?}");
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ShipError {
    BadAddress,
    CarrierDown(u32),
}

static SHIP_CALLS: AtomicU32 = AtomicU32::new(0);

#[step(max_attempts = 5, backoff = "1ms")]
async fn ship(permanent_failure: bool) -> Result<(), ShipError> {
    let n = SHIP_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    if permanent_failure {
        Err(permanent(ShipError::BadAddress))
    } else {
        Err(ShipError::CarrierDown(n))
    }
}

#[workflow]
async fn shipping(_ctx: Context, permanent_failure: bool) -> Result<(), ShipError> {
    ship(permanent_failure).await
}

both_stores!(
    permanent_errors_are_not_retried_and_exhausted_ones_reach_the_workflow,
    |db| async move {
        SHIP_CALLS.store(0, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();

        let err = within(
            shipping::start(&rt, "ship-permanent", true)
                .await
                .unwrap()
                .result(),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, replayflow::RunError::Workflow(ShipError::BadAddress)),
            "{err:?}"
        );
        assert_eq!(SHIP_CALLS.swap(0, Ordering::SeqCst), 1);
        let info = rt.status("ship-permanent").await.unwrap();
        assert_eq!(info.steps[0].attempts, 1);
        assert_eq!(info.steps[0].status, StepStatus::Failed);

        let err = within(
            shipping::start(&rt, "ship-transient", false)
                .await
                .unwrap()
                .result(),
        )
        .await
        .unwrap_err();
        // The last attempt's error, exactly as the step returned it.
        assert!(
            matches!(
                err,
                replayflow::RunError::Workflow(ShipError::CarrierDown(5))
            ),
            "{err:?}"
        );
        assert_eq!(SHIP_CALLS.load(Ordering::SeqCst), 5);
        let info = rt.status("ship-transient").await.unwrap();
        assert_eq!(info.steps[0].attempts, 5);
        assert_eq!(info.steps[0].attempt_log.len(), 5);
    }
);

static DEFAULTS_CALLS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn uses_defaults() -> Result<(), AnyError> {
    DEFAULTS_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(AnyError::msg("always"))
}

#[workflow]
async fn defaults(_ctx: Context) -> Result<(), AnyError> {
    uses_defaults().await
}

both_stores!(
    unset_options_fall_through_to_execution_and_runtime_defaults,
    |db| async move {
        DEFAULTS_CALLS.store(0, Ordering::SeqCst);
        let rt = db
            .builder()
            .retry(
                RetryPolicy::default()
                    .max_attempts(2)
                    .backoff(Duration::from_millis(1)),
            )
            .open()
            .await
            .unwrap();
        let _ = within(defaults::start(&rt, "defaults-1").await.unwrap().result()).await;
        assert_eq!(
            DEFAULTS_CALLS.swap(0, Ordering::SeqCst),
            2,
            "runtime default of 2 attempts"
        );

        let options = StartOptions::new().retry(
            RetryPolicy::default()
                .max_attempts(4)
                .backoff(Duration::from_millis(1)),
        );
        let _ = within(
            defaults::start_with(&rt, "defaults-2", options)
                .await
                .unwrap()
                .result(),
        )
        .await;
        assert_eq!(
            DEFAULTS_CALLS.load(Ordering::SeqCst),
            4,
            "per-execution override of 4 attempts"
        );
    }
);

static SLOW_CALLS: AtomicU32 = AtomicU32::new(0);

#[step(max_attempts = 2, backoff = "1ms", timeout = "50ms")]
async fn slow() -> Result<u32, AnyError> {
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(1)
}

#[workflow]
async fn times_out(_ctx: Context) -> Result<String, AnyError> {
    match slow().await {
        Ok(v) => Ok(format!("got {v}")),
        Err(e) => Ok(format!("fell back: {e}")),
    }
}

both_stores!(
    timeouts_are_retried_then_reach_the_workflow_as_the_steps_error,
    |db| async move {
        SLOW_CALLS.store(0, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let out = within(times_out::start(&rt, "timeout-1").await.unwrap().result())
            .await
            .unwrap();
        assert!(
            out.starts_with("fell back: step `slow#0` attempt 2 timed out"),
            "{out}"
        );
        assert_eq!(SLOW_CALLS.load(Ordering::SeqCst), 2);
    }
);
