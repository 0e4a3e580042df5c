use replayflow::{Context, workflow};

#[workflow(max_restarts = -1)]
async fn process(ctx: Context) -> Result<(), String> {
    let _ = ctx;
    Ok(())
}

fn main() {}
