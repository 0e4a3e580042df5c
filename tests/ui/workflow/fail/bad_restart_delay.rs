use replayflow::{Context, workflow};

#[workflow(restart_delay = "5 minutes")]
async fn process(ctx: Context) -> Result<(), String> {
    let _ = ctx;
    Ok(())
}

fn main() {}
