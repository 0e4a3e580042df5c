// The return type may be any path ending in `Result`, like `anyhow::Result<T>`.
use replayflow::{AnyError, Context, Runtime, workflow};

mod app {
    #[derive(Debug, serde::Serialize, serde::Deserialize)]
    pub struct AppError(pub String);

    pub type Result<T> = std::result::Result<T, AppError>;
}

#[workflow]
async fn checked(_ctx: Context, n: u32) -> app::Result<u32> {
    if n == 0 {
        return Err(app::AppError("zero".to_owned()));
    }
    Ok(n)
}

#[workflow]
async fn parsed(_ctx: Context, text: String) -> std::result::Result<u32, AnyError> {
    Ok(text.parse::<u32>()?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = Runtime::in_memory().await.unwrap();
    assert_eq!(
        checked::start(&rt, "c-1", 5)
            .await
            .unwrap()
            .result()
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        parsed::start(&rt, "p-1", "12".to_owned())
            .await
            .unwrap()
            .result()
            .await
            .unwrap(),
        12
    );
}
