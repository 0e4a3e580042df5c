use replayflow::{Context, workflow};

#[workflow]
async fn process(ctx: Context, id: u64) -> Result<u64, anyhow::Error> {
    let _ = ctx;
    Ok(id)
}

fn main() {}
