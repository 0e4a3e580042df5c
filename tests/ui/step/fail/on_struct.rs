use replayflow::step;

#[step]
struct Charge {
    amount: u64,
}

fn main() {}
