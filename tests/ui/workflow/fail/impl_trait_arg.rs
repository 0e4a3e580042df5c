use replayflow::{Context, workflow};

#[workflow]
async fn process(ctx: Context, name: impl Into<String>) -> Result<String, String> {
    let _ = ctx;
    Ok(name.into())
}

fn main() {}
