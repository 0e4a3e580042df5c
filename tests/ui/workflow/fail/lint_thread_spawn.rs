#![deny(deprecated)]
use replayflow::{Context, workflow};

#[workflow]
async fn background(_ctx: Context) -> Result<(), String> {
    std::thread::spawn(|| println!("in the background"));
    Ok(())
}

fn main() {}
