use replayflow::{Context, workflow};

#[workflow(timeout = "0s")]
async fn instant(ctx: Context) -> Result<(), String> {
    let _ = ctx;
    Ok(())
}

#[workflow(timeout = 3600)]
async fn unitless(ctx: Context) -> Result<(), String> {
    let _ = ctx;
    Ok(())
}

fn main() {}
