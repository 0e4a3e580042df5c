use workflow::step;

#[step]
struct Charge {
    amount: u64,
}

fn main() {}
