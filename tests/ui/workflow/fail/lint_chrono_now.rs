#![deny(deprecated)]
use replayflow::{Context, workflow};

/// The shape of chrono's clocks, so the case needs no chrono dependency.
mod chrono {
    pub struct Utc;
    pub struct Local;

    impl Utc {
        pub fn now() -> i64 {
            0
        }
    }

    impl Local {
        pub fn now() -> i64 {
            0
        }
    }
}

use chrono::{Local, Utc};

#[workflow]
async fn stamp(_ctx: Context) -> Result<i64, String> {
    let utc = chrono::Utc::now();
    let local = Local::now();
    let _ = Utc;
    Ok(utc + local)
}

fn main() {}
