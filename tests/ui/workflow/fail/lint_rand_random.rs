#![deny(deprecated)]
use replayflow::{Context, workflow};

/// The shape of rand's entry points, so the case needs no rand dependency.
mod rand {
    pub struct Rng;

    impl Rng {
        pub fn next_u64(&mut self) -> u64 {
            4
        }
    }

    pub fn random<T: Default>() -> T {
        T::default()
    }

    pub fn rng() -> Rng {
        Rng
    }
}

#[workflow]
async fn draw(_ctx: Context) -> Result<u64, String> {
    let a: u64 = rand::random();
    let b = rand::rng().next_u64();
    Ok(a + b)
}

fn main() {}
