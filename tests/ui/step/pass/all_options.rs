// Every `#[step]` option at once, on a step called from a workflow.
use serde::{Deserialize, Serialize};
use replayflow::{Context, Runtime, StepFailure, step, workflow};

#[derive(Debug, Serialize, Deserialize)]
enum PaymentError {
    Declined,
    // `timeout` needs the error to hold a runtime failure.
    Failed(StepFailure),
}

impl From<StepFailure> for PaymentError {
    fn from(failure: StepFailure) -> Self {
        PaymentError::Failed(failure)
    }
}

#[step(
    name = "charge_card",
    max_attempts = 5,
    backoff = "200ms",
    exponential,
    max_backoff = "30s",
    timeout = "1m",
    at_most_once,
    crate = "::replayflow"
)]
async fn charge(amount: u64) -> Result<u64, PaymentError> {
    if amount == 0 {
        return Err(PaymentError::Declined);
    }
    Ok(amount)
}

#[step(timeout = "1h", backoff = "0ms")]
async fn notify() -> Result<(), PaymentError> {
    Ok(())
}

#[workflow]
async fn checkout(_ctx: Context, amount: u64) -> Result<u64, PaymentError> {
    let charged = charge(amount).await?;
    notify().await?;
    Ok(charged)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = Runtime::in_memory().await.unwrap();
    let handle = checkout::start(&rt, "checkout-1", 1200).await.unwrap();
    assert_eq!(handle.result().await.unwrap(), 1200);
    let info = rt.status("checkout-1").await.unwrap();
    assert_eq!(info.steps.len(), 2);
}
