//! A durable delay: the wake time is journaled before the workflow waits.
//! Interrupt it with Ctrl-C during the sleep and run it again: the sleep
//! resumes with only the remaining time, not the whole duration.
//!
//! ```text
//! cargo run --example sleep
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replayflow::{AnyError, Context, ExecutionStatus, ListFilter, Runtime, step, workflow};

fn clock_time(t: SystemTime) -> String {
    let s = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{:02}:{:02}:{:02} UTC", s / 3600 % 24, s / 60 % 60, s % 60)
}

#[step]
async fn send_reminder(to: &str) -> Result<String, AnyError> {
    println!("  sending the reminder to {to}");
    Ok(format!("reminder sent to {to}"))
}

#[workflow]
async fn reminder(ctx: Context, to: String, delay_secs: u64) -> Result<String, AnyError> {
    let started = ctx.now().await;
    println!("  workflow body runs (from the top on every replay; journaled values come back)");
    println!(
        "  sleeping {delay_secs} s from {} (durable)",
        clock_time(started)
    );
    ctx.sleep(Duration::from_secs(delay_secs)).await;
    // The real time of this run, for the log only: nothing the workflow returns depends on it.
    #[allow_nondeterministic]
    println!("  woke at {}", clock_time(SystemTime::now()));
    send_reminder(&to).await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::var("SLEEP_DB").unwrap_or_else(|_| "sleep.db".into());
    let rt = Runtime::open(&path).await?;
    let existing = rt.list(ListFilter::new().workflow("reminder")).await?;
    let id = match existing.iter().find(|e| !e.status.is_terminal()) {
        Some(e) => {
            let info = rt.status(e.id.clone()).await?;
            if let (ExecutionStatus::Sleeping, Some(wake)) = (info.status, info.wake_at) {
                let left = wake.duration_since(SystemTime::now()).unwrap_or_default();
                println!(
                    "{} was interrupted; it wakes at {} ({:.1} s left)",
                    e.id,
                    clock_time(wake),
                    left.as_secs_f64()
                );
            } else {
                println!("{} was interrupted; it is resumed from its journal", e.id);
            }
            e.id.clone()
        }
        None => {
            let id = replayflow::ExecutionId::new(format!("reminder-{}", existing.len() + 1));
            println!("starting {id}: press Ctrl-C during the sleep, then run again");
            reminder::start(&rt, id.clone(), "ada@example.com".into(), 10).await?;
            id
        }
    };
    let out = rt.handle::<reminder>(id.clone()).result().await?;
    println!("{id}: {out}");
    Ok(())
}
