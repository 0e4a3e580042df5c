// The return type may be any path ending in `Result`, like `anyhow::Result<T>`: here an
// application's own alias, and the library's `AnyError` for errors that are not serde types.
use replayflow::{AnyError, step};

mod app {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    pub struct AppError(pub String);

    pub type Result<T> = std::result::Result<T, AppError>;
}

#[step]
async fn parse(text: &str) -> app::Result<u32> {
    text.parse()
        .map_err(|_| app::AppError(format!("not a number: {text}")))
}

#[step]
async fn parse_any(text: &str) -> std::result::Result<u32, AnyError> {
    Ok(text.parse::<u32>()?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    assert_eq!(parse("42").await.unwrap(), 42);
    assert!(parse("x").await.is_err());
    assert_eq!(parse_any("7").await.unwrap(), 7);
}
