//! A worker process for the crash tests: runs execution `crash-1` of
//! `crash_flow` on a database file, starting it or (in `resume` mode) waiting
//! for the recovery that opening the database does, and prints its result.
//! The test SIGKILLs it while step two is in flight.
//!
//! Usage: `crash-worker start|resume <db> <ledger>`

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use workflow::{AnyError, Context, Runtime, StepContext, step, workflow};

/// Set in `resume` mode: step two stops hanging.
static RELEASED: AtomicBool = AtomicBool::new(false);

fn append(ledger: &str, line: &str) -> Result<(), AnyError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)?;
    writeln!(f, "{line}")?;
    f.sync_all()?;
    Ok(())
}

#[step]
async fn step_one(ledger: &str) -> Result<u32, AnyError> {
    append(ledger, "one")?;
    Ok(1)
}

#[step]
async fn step_two(ledger: &str) -> Result<u32, AnyError> {
    let attempt = StepContext::current().map_or(0, |s| s.attempt());
    append(ledger, &format!("two attempt {attempt}"))?;
    while !RELEASED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(2)
}

#[workflow]
async fn crash_flow(ctx: Context, ledger: String) -> Result<String, AnyError> {
    let now = ctx.now().await;
    let random = ctx.random_u64().await;
    let ms = now
        .duration_since(UNIX_EPOCH)
        .map_err(AnyError::from)?
        .as_millis();
    // Deliberately outside a step: written on every run, so the test can
    // compare what each run saw.
    append(&ledger, &format!("values {ms} {random}"))?;
    let one = step_one(&ledger).await?;
    let two = step_two(&ledger).await?;
    Ok(format!("{one}+{two}={}", one + two))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, mode, db, ledger] = args.as_slice() else {
        return Err("usage: crash-worker start|resume <db> <ledger>".into());
    };
    let rt = Runtime::open(db).await?;
    let handle = if mode == "resume" {
        // Nothing to call: opening the database recovered the execution.
        RELEASED.store(true, Ordering::SeqCst);
        rt.handle::<crash_flow>("crash-1")
    } else {
        crash_flow::start(&rt, "crash-1", ledger.clone()).await?
    };
    let out = handle.result().await?;
    println!("result: {out}");
    Ok(())
}
