use replayflow::{Context, workflow};

#[workflow]
async fn process(ctx: Context, name: &str) -> Result<String, String> {
    let _ = ctx;
    Ok(name.to_owned())
}

fn main() {}
