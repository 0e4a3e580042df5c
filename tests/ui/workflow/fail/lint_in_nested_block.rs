#![deny(deprecated)]
use std::time::SystemTime;

use replayflow::{Context, workflow};

#[workflow]
async fn stamp(_ctx: Context, retry: bool) -> Result<Option<SystemTime>, String> {
    let stamped = if retry {
        let at = {
            let base = SystemTime::now();
            base
        };
        Some(at)
    } else {
        None
    };
    Ok(stamped)
}

fn main() {}
