#![deny(deprecated)]
use std::time::Instant;

use replayflow::{Context, workflow};

#[workflow]
async fn ages(_ctx: Context, items: Vec<u32>) -> Result<usize, String> {
    let stamped: Vec<(u32, Instant)> = items
        .into_iter()
        .map(|item| (item, Instant::now()))
        .collect();
    Ok(stamped.len())
}

fn main() {}
