#![deny(deprecated)]
use replayflow::{Context, workflow};

#[workflow]
async fn background(_ctx: Context) -> Result<u32, String> {
    let a = tokio::spawn(async { 1 });
    let b = tokio::task::spawn(async { 2 });
    Ok(a.await.unwrap_or(0) + b.await.unwrap_or(0))
}

fn main() {}
