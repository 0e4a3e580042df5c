#![deny(deprecated)]
use replayflow::{Context, step, workflow};

#[step]
async fn fast() -> Result<u32, String> {
    Ok(1)
}

#[step]
async fn slow() -> Result<u32, String> {
    Ok(2)
}

#[workflow]
async fn race(_ctx: Context) -> Result<u32, String> {
    tokio::select! {
        a = fast() => a,
        b = slow() => b,
    }
}

fn main() {}
