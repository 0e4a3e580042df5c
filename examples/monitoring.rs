//! Status and list of executions, and a failed step's error.
//!
//! ```text
//! cargo run --example monitoring
//! ```

use replayflow::{AnyError, Context, ExecutionStatus, ListFilter, Runtime, step, workflow};

#[step(max_attempts = 2, backoff = "50ms")]
async fn resize(image: &str) -> Result<String, AnyError> {
    if image.ends_with(".gif") {
        return Err(AnyError::msg(format!(
            "cannot resize {image}: unsupported format"
        )));
    }
    Ok(format!("{image} (resized)"))
}

#[workflow]
async fn thumbnail(_ctx: Context, image: String) -> Result<String, AnyError> {
    resize(&image).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::in_memory().await?;
    for (i, image) in ["cat.png", "dog.jpg", "party.gif"].iter().enumerate() {
        let handle = thumbnail::start(&rt, format!("thumb-{i}"), image.to_string()).await?;
        let _ = handle.result().await;
    }

    println!("all executions:");
    for e in rt.list(ListFilter::new()).await? {
        println!(
            "  {:<8} {:<10} {}",
            e.id,
            e.status,
            e.error_message.unwrap_or_default()
        );
    }

    let failed = rt
        .list(ListFilter::new().status(ExecutionStatus::Failed))
        .await?;
    println!("failed: {}", failed.len());
    for e in failed {
        let info = rt.status(e.id).await?;
        for step in info.steps {
            println!(
                "  step {} {} after {} attempts",
                step.key, step.status, step.attempts
            );
            for a in step.attempt_log {
                println!(
                    "    attempt {}: {} {}",
                    a.attempt,
                    a.status,
                    a.error.unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
