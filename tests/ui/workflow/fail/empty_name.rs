use replayflow::{Context, workflow};

#[workflow(name = "")]
async fn process(ctx: Context) -> Result<(), String> {
    let _ = ctx;
    Ok(())
}

fn main() {}
