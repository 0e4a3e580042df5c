use replayflow::{Context, step};

#[step]
async fn charge(ctx: &Context, amount: u64) -> Result<u64, String> {
    let _ = ctx;
    Ok(amount)
}

fn main() {}
