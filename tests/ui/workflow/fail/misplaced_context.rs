use replayflow::{Context, workflow};

#[workflow]
async fn process(order_id: u64, ctx: Context) -> Result<u64, String> {
    let _ = ctx;
    Ok(order_id)
}

fn main() {}
