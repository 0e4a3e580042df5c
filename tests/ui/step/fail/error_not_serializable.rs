use replayflow::step;

#[derive(Debug)]
enum PaymentError {
    Declined,
}

#[step]
async fn charge(amount: u64) -> Result<u64, PaymentError> {
    if amount == 0 {
        return Err(PaymentError::Declined);
    }
    Ok(amount)
}

fn main() {}
