//! A worker process for the crash tests: runs execution `crash-1` of
//! `crash_flow` on a database file, starting it or (in `resume` mode) waiting
//! for the recovery that opening the database does, and prints its result.
//! The test SIGKILLs it while step two is in flight.
//!
//! Usage: `crash-worker start|resume <db> <ledger>`, or
//! `crash-worker poison|open <db>`: start `poison-1`, which aborts the
//! process each time it runs, or open the database (recovering it) and
//! print `paused` once it is paused.

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

#[step]
async fn abort_process() -> Result<(), AnyError> {
    // What an OOM kill or a segfault looks like from the journal's side.
    std::process::abort()
}

/// Kills its process every time it runs.
#[workflow]
async fn poison_flow(_ctx: Context) -> Result<(), AnyError> {
    abort_process().await
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, db] = args.as_slice() {
        let rt = Runtime::open(db).await?;
        if mode == "poison" {
            poison_flow::start(&rt, "poison-1").await?.result().await?;
            return Err("the poison workflow returned".into());
        }
        // Recovery runs on open; the poison aborts us unless it is paused.
        for _ in 0..600 {
            if rt.status("poison-1").await?.status == workflow::ExecutionStatus::Paused {
                println!("paused");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        return Err("poison-1 neither aborted the process nor was paused".into());
    }
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
