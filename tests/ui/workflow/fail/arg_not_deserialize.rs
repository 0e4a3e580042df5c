use replayflow::{Context, workflow};
use serde::Serialize;

#[derive(Debug, Serialize)]
struct Order {
    id: u64,
}

#[workflow]
async fn checkout(ctx: Context, order: Order) -> Result<u64, String> {
    let _ = ctx;
    Ok(order.id)
}

fn main() {}
