use replayflow::{Context, workflow};

#[workflow(max_restart = 3)]
async fn process(ctx: Context) -> Result<(), String> {
    let _ = ctx;
    Ok(())
}

fn main() {}
