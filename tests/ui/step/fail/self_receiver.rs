use replayflow::step;

struct Payments;

impl Payments {
    #[step]
    async fn charge(&self, amount: u64) -> Result<u64, String> {
        Ok(amount)
    }
}

fn main() {}
