#![deny(deprecated)]
use std::env;

use replayflow::{Context, workflow};

#[workflow]
async fn configured(_ctx: Context) -> Result<usize, String> {
    let region = std::env::var("REGION").unwrap_or_default();
    let home = env::var_os("HOME");
    let count = env::vars().count();
    Ok(region.len() + home.map_or(0, |home| home.len()) + count)
}

fn main() {}
