// A workflow is started through its type, not called like the `async fn` it was written as.
use replayflow::{Context, workflow};

#[workflow]
async fn fulfil(ctx: Context, order_id: u64) -> Result<u64, String> {
    let _ = ctx;
    Ok(order_id)
}

#[workflow]
async fn checkout(ctx: Context, order_id: u64) -> Result<u64, String> {
    fulfil(ctx, order_id).await
}

fn main() {}
