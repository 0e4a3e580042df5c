use replayflow::step;

#[step]
fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
