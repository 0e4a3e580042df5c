use replayflow::{Context, workflow};

#[workflow]
async fn process(ctx: Context, (a, b): (u64, u64)) -> Result<u64, String> {
    let _ = ctx;
    Ok(a + b)
}

fn main() {}
