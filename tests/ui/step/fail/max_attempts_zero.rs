use replayflow::step;

#[step(max_attempts = 0)]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
