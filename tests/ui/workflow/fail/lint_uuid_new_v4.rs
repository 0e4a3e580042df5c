#![deny(deprecated)]
use replayflow::{Context, Uuid, workflow};

#[workflow]
async fn invoice(_ctx: Context) -> Result<Uuid, String> {
    let reference = Uuid::new_v4();
    Ok(reference)
}

fn main() {}
