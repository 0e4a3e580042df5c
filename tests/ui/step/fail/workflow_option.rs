use replayflow::step;

#[step(max_restarts = 3)]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
