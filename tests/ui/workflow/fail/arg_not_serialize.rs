use replayflow::{Context, workflow};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
}

#[workflow]
async fn checkout(ctx: Context, order: Order) -> Result<u64, String> {
    let _ = ctx;
    Ok(order.id)
}

fn main() {}
