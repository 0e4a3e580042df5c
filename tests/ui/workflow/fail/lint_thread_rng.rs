#![deny(deprecated)]
use replayflow::{Context, workflow};

/// The shape of rand's entry points, so the case needs no rand dependency.
mod rand {
    pub struct ThreadRng;

    impl ThreadRng {
        pub fn next_u64(&mut self) -> u64 {
            4
        }
    }

    pub fn thread_rng() -> ThreadRng {
        ThreadRng
    }
}

#[workflow]
async fn draw(_ctx: Context) -> Result<u64, String> {
    let n = rand::thread_rng().next_u64();
    Ok(n)
}

fn main() {}
