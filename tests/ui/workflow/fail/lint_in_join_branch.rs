#![deny(deprecated)]
use replayflow::{Context, step, workflow};

#[step]
async fn fetch(n: u32) -> Result<u32, String> {
    Ok(n)
}

#[workflow]
async fn fan_out(ctx: Context) -> Result<u32, String> {
    let (a, b) = tokio::join!(
        ctx.branch(async { fetch(1).await }),
        ctx.branch(async {
            let n = std::env::var("N").map_or(2, |n| n.len() as u32);
            fetch(n).await
        }),
    );
    Ok(a? + b?)
}

fn main() {}
