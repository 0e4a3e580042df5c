//! A step that panics on its first run: the runtime survives, the execution
//! becomes `panicked`, restarts by replay after its restart delay (the step
//! before the panic is not run again), and completes; its status shows the
//! restart and the panic message with its location.
//!
//! ```text
//! cargo run --example panic_recovery
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use replayflow::{AnyError, Context, Runtime, step, workflow};

static PANICKED_ONCE: AtomicBool = AtomicBool::new(false);

#[step]
async fn load_report(id: u32) -> Result<String, AnyError> {
    println!("  load_report runs");
    Ok(format!("report {id}"))
}

#[step]
async fn render(report: &str) -> Result<String, AnyError> {
    println!("  render runs");
    if !PANICKED_ONCE.swap(true, Ordering::SeqCst) {
        let pages: Vec<u32> = Vec::new();
        // A bug that only bites on the first run.
        let _ = pages[0];
    }
    Ok(format!("{report} rendered"))
}

#[workflow(max_restarts = 2, restart_delay = "1s")]
async fn publish(ctx: Context, id: u32) -> Result<String, AnyError> {
    println!(
        "  workflow run with restart_attempt = {}",
        ctx.restart_attempt()
    );
    let report = load_report(id).await?;
    render(&report).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep the default panic message quiet; the journal records it anyway.
    std::panic::set_hook(Box::new(|_| {}));
    let rt = Runtime::builder()
        .in_memory()
        .restart_delay(Duration::from_secs(1))
        .open()
        .await?;
    let handle = publish::start(&rt, "publish-1", 7).await?;
    println!("result: {}", handle.result().await?);

    let info = rt.status("publish-1").await?;
    println!(
        "status: {}, restarts: {}",
        info.status, info.restart_attempt
    );
    for step in info.steps {
        println!(
            "  {} {} after {} attempt(s)",
            step.key, step.status, step.attempts
        );
        for a in step.attempt_log {
            if let Some(e) = a.error {
                println!("    attempt {}: {e}", a.attempt);
            }
        }
    }
    Ok(())
}
