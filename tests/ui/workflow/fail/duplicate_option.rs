use replayflow::{Context, workflow};

#[workflow(max_restarts = 1, name = "orders", max_restarts = 2)]
async fn process(ctx: Context) -> Result<(), String> {
    let _ = ctx;
    Ok(())
}

fn main() {}
