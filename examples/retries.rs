//! Transient errors are retried with backoff; permanent ones are not; a step
//! can set its own retry options and read its attempt number.
//!
//! ```text
//! cargo run --example retries
//! ```

use std::sync::atomic::{AtomicU32, Ordering};

use replayflow::{Context, RunError, Runtime, StepContext, permanent, step, workflow};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
enum PaymentError {
    /// Worth retrying.
    GatewayTimeout,
    /// Retrying cannot help.
    CardDeclined { reason: String },
}

static GATEWAY_CALLS: AtomicU32 = AtomicU32::new(0);

#[step(max_attempts = 5, backoff = "100ms", exponential, max_backoff = "1s")]
async fn charge(amount: u64, card: &str) -> Result<String, PaymentError> {
    let attempt = StepContext::current().map_or(1, |s| s.attempt());
    let call = GATEWAY_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    println!("  charge attempt {attempt} (gateway call {call})");
    if card == "4000-0000-0000-0002" {
        return Err(permanent(PaymentError::CardDeclined {
            reason: "insufficient funds".into(),
        }));
    }
    if attempt < 3 {
        return Err(PaymentError::GatewayTimeout);
    }
    Ok(format!("charged {amount}"))
}

#[workflow]
async fn checkout(_ctx: Context, amount: u64, card: String) -> Result<String, PaymentError> {
    charge(amount, &card).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::in_memory().await?;

    println!("a flaky gateway: two timeouts, then success");
    let ok = checkout::start(&rt, "checkout-1", 4_200, "4242-4242-4242-4242".into()).await?;
    println!("  => {:?}", ok.result().await?);

    println!("a declined card: a permanent error, not retried");
    let declined = checkout::start(&rt, "checkout-2", 4_200, "4000-0000-0000-0002".into()).await?;
    match declined.result().await {
        Err(RunError::Workflow(e)) => println!("  => workflow error: {e:?}"),
        other => println!("  => unexpected: {other:?}"),
    }
    for id in ["checkout-1", "checkout-2"] {
        let info = rt.status(id).await?;
        let step = &info.steps[0];
        println!("{id}: {} after {} attempt(s)", step.status, step.attempts);
    }
    Ok(())
}
