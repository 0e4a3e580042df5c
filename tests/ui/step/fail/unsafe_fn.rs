use replayflow::step;

#[step]
async unsafe fn charge(amount: u64) -> Result<u64, String> {
    Ok(amount)
}

fn main() {}
