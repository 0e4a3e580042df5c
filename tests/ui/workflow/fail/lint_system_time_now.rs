// The determinism lint warns; `deny(deprecated)` makes its warning an error to test it.
#![deny(deprecated)]
use std::time::SystemTime;

use replayflow::{Context, workflow};

#[workflow]
async fn stamp(_ctx: Context) -> Result<SystemTime, String> {
    let now = SystemTime::now();
    Ok(now)
}

fn main() {}
