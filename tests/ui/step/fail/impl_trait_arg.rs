use replayflow::step;

#[step]
async fn describe(value: impl std::fmt::Display) -> Result<String, String> {
    Ok(value.to_string())
}

fn main() {}
