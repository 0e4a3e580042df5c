use replayflow::step;

#[step]
async fn echo<T: serde::Serialize>(value: T) -> Result<T, String> {
    Ok(value)
}

fn main() {}
