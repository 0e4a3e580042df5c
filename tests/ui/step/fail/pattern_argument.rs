use replayflow::step;

#[step]
async fn add((a, b): (u64, u64)) -> Result<u64, String> {
    Ok(a + b)
}

fn main() {}
