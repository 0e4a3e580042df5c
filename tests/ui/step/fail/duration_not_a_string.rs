use replayflow::step;

#[step(timeout = 5)]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
