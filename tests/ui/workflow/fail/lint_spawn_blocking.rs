#![deny(deprecated)]
use replayflow::{Context, workflow};

#[workflow]
async fn read_file(_ctx: Context) -> Result<usize, String> {
    let text = tokio::task::spawn_blocking(|| std::fs::read_to_string("order.json"))
        .await
        .map_err(|error| error.to_string())?
        .map_err(|error| error.to_string())?;
    Ok(text.len())
}

fn main() {}
