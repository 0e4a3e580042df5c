#![deny(deprecated)]
use std::collections::HashMap;

use replayflow::{Context, step, workflow};

#[step]
async fn notify(user: &str, count: u32) -> Result<(), String> {
    let _ = (user, count);
    Ok(())
}

#[workflow]
async fn notify_all(_ctx: Context, counts: HashMap<String, u32>) -> Result<u32, String> {
    for (user, count) in &counts {
        notify(user, *count).await?;
    }
    let mut seen = HashMap::new();
    seen.insert("ada", 1);
    let first: Vec<&str> = seen.keys().copied().collect();
    Ok(first.len() as u32)
}

fn main() {}
