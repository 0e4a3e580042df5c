// A `pub` step keeps its visibility and docs, and is callable from another module.
mod payments {
    use replayflow::step;

    /// Charges a card.
    #[step(max_attempts = 3)]
    pub async fn charge(amount: u64) -> Result<u64, String> {
        Ok(amount)
    }

    pub(crate) mod refunds {
        #[replayflow::step]
        pub(crate) async fn refund(amount: u64) -> Result<u64, String> {
            Ok(amount)
        }
    }
}

mod checkout {
    pub async fn run() -> u64 {
        let charged = crate::payments::charge(5).await.unwrap();
        let refunded = crate::payments::refunds::refund(2).await.unwrap();
        charged - refunded
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(checkout::run().await, 3);
}
