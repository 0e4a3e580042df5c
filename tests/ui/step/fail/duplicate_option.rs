use replayflow::step;

#[step(backoff = "1s", max_attempts = 3, backoff = "2s")]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
