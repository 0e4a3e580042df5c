use replayflow::step;

#[step(name = "")]
async fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
