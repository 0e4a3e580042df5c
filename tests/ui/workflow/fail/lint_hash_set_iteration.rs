#![deny(deprecated)]
use std::collections::HashSet;

use replayflow::{Context, step, workflow};

#[step]
async fn notify(user: &str) -> Result<(), String> {
    let _ = user;
    Ok(())
}

#[workflow]
async fn notify_all(_ctx: Context, users: Vec<String>) -> Result<(), String> {
    let unique: HashSet<String> = users.into_iter().collect();
    for user in unique.iter() {
        notify(user).await?;
    }
    Ok(())
}

fn main() {}
