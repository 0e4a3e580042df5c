use replayflow::{Context, workflow};

#[derive(Debug)]
struct Order {
    id: u64,
}

#[workflow]
async fn process(ctx: Context, order: Order) -> Result<u64, String> {
    let _ = ctx;
    Ok(order.id)
}

fn main() {}
