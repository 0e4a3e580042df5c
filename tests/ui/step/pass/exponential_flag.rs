// `exponential` is a bare flag or takes a bool.
use replayflow::step;

#[step(exponential)]
async fn bare() -> Result<(), String> {
    Ok(())
}

#[step(exponential = true, backoff = "1s")]
async fn explicit_true() -> Result<(), String> {
    Ok(())
}

#[step(exponential = false, backoff = "2s", max_backoff = "2s")]
async fn fixed_backoff() -> Result<(), String> {
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    bare().await.unwrap();
    explicit_true().await.unwrap();
    fixed_backoff().await.unwrap();
}
