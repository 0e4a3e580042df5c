#![deny(deprecated)]
use std::time::Duration;

use replayflow::{Context, workflow};

#[workflow]
async fn timed(_ctx: Context) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    Ok(started.elapsed())
}

fn main() {}
