//! The order workflow: validate the order, check inventory (which fails
//! transiently at first), wait before the payment (a durable sleep), take the
//! payment, ship. Every step is journaled in
//! `order_processing.db`.
//!
//! Run it, interrupt it with Ctrl-C in the middle, and run it again: the
//! unfinished order is resumed from the journal, completed steps are replayed
//! (not run again), and the output says which is which.
//!
//! ```text
//! cargo run --example order_processing
//! ```

use std::time::Duration;

use replayflow::{
    AnyError, Context, ExecutionStatus, ListFilter, Runtime, StepContext, StepStatus, permanent,
    step, workflow,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    sku: String,
    quantity: u32,
    amount_cents: u64,
    address: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Receipt {
    reservation: String,
    payment: String,
    tracking: String,
}

/// Pretends to do slow I/O, so there is time to press Ctrl-C.
async fn io(what: &str) {
    let attempt = StepContext::current().map_or(1, |s| s.attempt());
    println!("    running  {what} (attempt {attempt})");
    tokio::time::sleep(Duration::from_millis(700)).await;
}

#[step]
async fn validate_order(order: &Order) -> Result<(), AnyError> {
    io("validate_order").await;
    if order.quantity == 0 {
        return Err(permanent(AnyError::msg("an order needs at least one item")));
    }
    Ok(())
}

#[step(max_attempts = 4, backoff = "300ms", exponential)]
async fn check_inventory(order: &Order) -> Result<String, AnyError> {
    io("check_inventory").await;
    let attempt = StepContext::current().map_or(1, |s| s.attempt());
    if attempt < 3 {
        // The inventory service is flaky at first; the step is retried.
        println!("    failed   check_inventory: inventory service unavailable");
        return Err(AnyError::msg("inventory service unavailable"));
    }
    Ok(format!("reserved {} x {}", order.quantity, order.sku))
}

#[step(max_attempts = 5, backoff = "200ms")]
async fn charge_payment(order: &Order) -> Result<String, AnyError> {
    io("charge_payment").await;
    // A real payment provider gets this key so a retried charge is not doubled.
    let key = StepContext::current()
        .map(|s| s.idempotency_key())
        .unwrap_or_default();
    Ok(format!(
        "charged {} cents (idempotency key {key})",
        order.amount_cents
    ))
}

#[step]
async fn ship(order: &Order) -> Result<String, AnyError> {
    io("ship").await;
    Ok(format!("parcel to {} via 1Z999", order.address))
}

#[workflow]
async fn order_processing(ctx: Context, order: Order) -> Result<Receipt, AnyError> {
    println!(
        "  workflow body runs for {} (restart {})",
        ctx.execution_id(),
        ctx.restart_attempt()
    );
    validate_order(&order).await?;
    let reservation = check_inventory(&order).await?;
    // A durable delay before charging: the wake time is journaled, the
    // execution is suspended (no task, no future) and replayed when due.
    // Interrupt it here and run again: only the remaining time is waited.
    println!("    sleeping 3 s before the payment (durable)");
    ctx.sleep(Duration::from_secs(3)).await;
    let payment = charge_payment(&order).await?;
    let tracking = ship(&order).await?;
    Ok(Receipt {
        reservation,
        payment,
        tracking,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("ORDER_DB").unwrap_or_else(|_| "order_processing.db".into());
    let rt = Runtime::open(&path).await?;
    println!("journal: {path}");

    let executions = rt
        .list(ListFilter::new().workflow("order_processing"))
        .await?;
    let unfinished = executions.iter().find(|e| !e.status.is_terminal());
    let id = match unfinished {
        Some(e) => {
            let info = rt.status(e.id.clone()).await?;
            let done: Vec<String> = info
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Completed)
                .map(|s| s.key.name.clone())
                .collect();
            println!(
                "resuming {} from the journal; already completed (will be replayed, not run): {}",
                e.id,
                if done.is_empty() {
                    "none".to_owned()
                } else {
                    done.join(", ")
                }
            );
            order_processing::resume(&rt, e.id.clone()).await?;
            e.id.clone()
        }
        None => {
            let id = replayflow::ExecutionId::new(format!("order-{}", executions.len() + 1));
            println!("starting {id} (press Ctrl-C in the middle, then run again)");
            let order = Order {
                sku: "book-42".into(),
                quantity: 2,
                amount_cents: 4_200,
                address: "221B Baker Street".into(),
            };
            order_processing::start(&rt, id.clone(), order).await?;
            id
        }
    };

    let handle = rt.handle::<order_processing>(id.clone());
    let receipt = handle.result().await?;
    println!("completed {id}: {receipt:#?}");

    let info = rt.status(id).await?;
    assert_eq!(info.status, ExecutionStatus::Completed);
    println!("journal of {}:", info.id);
    for s in &info.steps {
        println!(
            "  #{} {:<20} {:<10} attempts: {}",
            s.position,
            s.key.to_string(),
            s.status,
            s.attempts
        );
    }
    Ok(())
}
