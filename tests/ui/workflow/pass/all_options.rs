// Every `#[workflow]` option at once, and the generated `NAME`, `start`, `start_with` and
// `resume`.
use serde::{Deserialize, Serialize};
use replayflow::{Context, Runtime, StartOptions, workflow};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u32,
    amount: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    order: u32,
    charged: u64,
}

#[derive(Debug, Serialize, Deserialize)]
enum OrderError {
    Empty,
}

/// Processes an order.
#[workflow(
    name = "orders.process",
    max_restarts = 2,
    restart_delay = "5s",
    crate = "::replayflow"
)]
async fn process_order(ctx: Context, order: Order, note: String) -> Result<Receipt, OrderError> {
    let _ = (ctx.execution_id(), note);
    if order.amount == 0 {
        return Err(OrderError::Empty);
    }
    Ok(Receipt {
        order: order.id,
        charged: order.amount,
    })
}

#[workflow(max_restarts = 0)]
async fn never_restarts(_ctx: Context) -> Result<(), OrderError> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(process_order::NAME, "orders.process");
    assert_eq!(never_restarts::NAME, "never_restarts");

    let rt = Runtime::in_memory().await.unwrap();
    let order = Order { id: 7, amount: 120 };
    let handle = process_order::start(&rt, "order-7", order.clone(), "first".to_owned())
        .await
        .unwrap();
    let receipt = handle.result().await.unwrap();
    assert_eq!((receipt.order, receipt.charged), (7, 120));

    let empty = Order { id: 8, amount: 0 };
    let handle =
        process_order::start_with(&rt, "order-8", StartOptions::new(), empty, String::new())
            .await
            .unwrap();
    assert!(handle.result().await.is_err());

    // Resuming a finished execution is allowed or refused, but always compiles.
    let _ = process_order::resume(&rt, "order-7").await;

    let handle = never_restarts::start(&rt, "never-1").await.unwrap();
    handle.result().await.unwrap();
}
