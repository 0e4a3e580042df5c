// The first error type one reaches for is not a serde type; `replayflow::AnyError` is.
use replayflow::step;

#[step]
async fn fetch_price(sku: &str) -> Result<u64, anyhow::Error> {
    let price = sku.len() as u64;
    Ok(price)
}

fn main() {}
