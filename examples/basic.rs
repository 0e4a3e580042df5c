//! Two steps passing data, on an in-memory database.
//!
//! ```text
//! cargo run --example basic
//! ```

use replayflow::{AnyError, Context, Runtime, step, workflow};

#[step]
async fn fetch_user(id: u32) -> Result<String, AnyError> {
    Ok(format!("user-{id}"))
}

#[step]
async fn send_welcome(user: &str) -> Result<String, AnyError> {
    Ok(format!("welcome mail sent to {user}"))
}

#[workflow]
async fn onboard(_ctx: Context, user_id: u32) -> Result<String, AnyError> {
    let user = fetch_user(user_id).await?;
    let receipt = send_welcome(&user).await?;
    Ok(receipt)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::in_memory().await?;
    let handle = onboard::start(&rt, "onboard-1", 7).await?;
    println!("{}", handle.result().await?);
    for step in rt.status("onboard-1").await?.steps {
        println!("  {} -> {:?}", step.key, step.output);
    }
    Ok(())
}
