use std::time::SystemTime;

use replayflow::{Context, workflow};

#[workflow]
#[allow_nondeterministic]
async fn stamp(_ctx: Context) -> Result<SystemTime, String> {
    Ok(SystemTime::now())
}

fn main() {}
