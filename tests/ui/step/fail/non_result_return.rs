use replayflow::step;

#[step]
async fn charge(amount: u64) -> Option<u64> {
    Some(amount)
}

fn main() {}
