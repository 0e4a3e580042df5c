//! An order that waits for a person's approval: it reserves the stock,
//! publishes its state as an event, then waits (durably, up to a day) for
//! a message on topic `approval`. The approval comes from another process:
//! this example starts one (`approval approve ...`, an admin open of the
//! same file, as the CLI's `send` is), so it runs to the end by itself.
//!
//! ```text
//! cargo run --example approval
//! ```
//!
//! Or leave the order waiting and approve it by hand from the CLI, while
//! `cargo run --example approval -- wait` runs:
//!
//! ```text
//! cargo run -p replayflow-cli -- --db approval.db send order-1001 approval \
//!     '{"approver": "ada", "approved": true}'
//! ```
//!
//! Stop the worker while the order waits and start it again: the wait goes
//! on with the deadline it had, and a message sent meanwhile is taken then.

use std::time::Duration;

use replayflow::{AnyError, Context, ExecutionStatus, Runtime, step, workflow};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Approval {
    approver: String,
    approved: bool,
}

#[step]
async fn reserve_stock(order: &str) -> Result<String, AnyError> {
    println!("    step     reserve_stock for {order}");
    Ok(format!("rsv-{order}"))
}

#[step]
async fn release_stock(reservation: &str) -> Result<(), AnyError> {
    println!("    step     release_stock {reservation}");
    Ok(())
}

#[step]
async fn charge(order: &str) -> Result<String, AnyError> {
    println!("    step     charge {order}");
    Ok(format!("pay-{order}"))
}

#[workflow]
async fn approve_order(ctx: Context, order: String) -> Result<String, AnyError> {
    let reservation = reserve_stock(&order).await?;
    ctx.set_event("state", "awaiting approval").await;
    let answer = ctx
        .recv_timeout::<Approval>("approval", Duration::from_secs(24 * 3600))
        .await;
    let outcome = match answer {
        Some(Approval {
            approver,
            approved: true,
        }) => {
            let payment = charge(&order).await?;
            format!("approved by {approver}, paid ({payment})")
        }
        Some(Approval { approver, .. }) => {
            release_stock(&reservation).await?;
            format!("rejected by {approver}")
        }
        None => {
            release_stock(&reservation).await?;
            "no answer within a day: released".to_owned()
        }
    };
    ctx.set_event("state", &outcome).await;
    Ok(outcome)
}

const DB: &str = "approval.db";
const ORDER: &str = "order-1001";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("approve") {
        return approve(&args[1..]).await;
    }
    let wait_by_hand = args.first().map(String::as_str) == Some("wait");

    let rt = Runtime::open(DB).await?;
    let handle = approve_order::start(&rt, ORDER, ORDER.into()).await?;
    let state: Option<String> = rt
        .wait_event(ORDER, "state", Duration::from_secs(30))
        .await?;
    println!("{ORDER}: {}", state.as_deref().unwrap_or("(no state yet)"));

    if rt.status(ORDER).await?.status.is_terminal() {
        println!("{ORDER} had already finished: {}", handle.result().await?);
        return Ok(());
    }
    if wait_by_hand {
        println!(
            "waiting; approve it with:\n  cargo run -p replayflow-cli -- --db {DB} send {ORDER} approval '{{\"approver\": \"ada\", \"approved\": true}}'"
        );
    } else {
        // The approver is another process: it opens the file as an admin
        // and commits the message; this worker takes it within a second.
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(["approve", ORDER, "ada"])
            .status()?;
        if !status.success() {
            return Err(format!("the approver process failed: {status}").into());
        }
    }
    let outcome = handle.result().await?;
    println!("{ORDER}: {outcome}");
    let info = rt.status(ORDER).await?;
    assert_eq!(info.status, ExecutionStatus::Completed);
    for entry in &info.steps {
        println!(
            "    journal  {:<6} {:<16} {}",
            entry.kind.as_str(),
            entry.key.name,
            entry.status
        );
    }
    rt.shutdown().await?;
    Ok(())
}

/// `approval approve ORDER APPROVER`: what a second process (a web
/// handler, the CLI) does.
async fn approve(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let [order, approver] = args else {
        return Err("usage: approval approve ORDER APPROVER".into());
    };
    let admin = Runtime::builder().path(DB).admin().open().await?;
    let approval = Approval {
        approver: approver.clone(),
        approved: true,
    };
    admin.send(order.as_str(), "approval", &approval).await?;
    println!("approver: sent the approval of {order} as {approver}");
    Ok(())
}
