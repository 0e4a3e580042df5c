use replayflow::step;

#[step(backoff = "10s", max_backoff = "1s")]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
