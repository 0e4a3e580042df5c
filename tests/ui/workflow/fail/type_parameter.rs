use replayflow::{Context, workflow};

#[workflow]
async fn process<T>(ctx: Context, input: T) -> Result<T, String> {
    let _ = ctx;
    Ok(input)
}

fn main() {}
