use replayflow::{Context, workflow};

#[workflow]
async fn process(ctx: &Context, order_id: u64) -> Result<u64, String> {
    let _ = ctx;
    Ok(order_id)
}

fn main() {}
