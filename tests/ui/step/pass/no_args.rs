// A step without arguments, and one defined inside a function body.
use replayflow::step;

#[step]
async fn now_ms() -> Result<u64, String> {
    Ok(1_700_000_000_000)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    #[step]
    async fn local(n: u8) -> Result<u8, String> {
        Ok(n)
    }

    assert_eq!(now_ms().await.unwrap(), 1_700_000_000_000);
    assert_eq!(local(3).await.unwrap(), 3);
}
