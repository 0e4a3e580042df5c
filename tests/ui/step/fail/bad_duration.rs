use replayflow::step;

#[step(backoff = "2 parsecs")]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
