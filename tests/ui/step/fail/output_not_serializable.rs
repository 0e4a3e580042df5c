use replayflow::step;

#[derive(Debug)]
struct Payment {
    amount: u64,
}

#[step]
async fn charge(amount: u64) -> Result<Payment, String> {
    Ok(Payment { amount })
}

fn main() {}
