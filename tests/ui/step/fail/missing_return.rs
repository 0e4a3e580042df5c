use replayflow::step;

#[step]
async fn charge(amount: u64) {
    let _ = amount;
}

fn main() {}
