//! A parent workflow that fans out into child workflows and gathers their
//! results, streaming its progress while it waits: a report over five
//! regions, each computed by a child of its own. The parent's journal
//! holds each child's start and end; a crash of the process at any point
//! resumes the parent, which finds the same children (never a second
//! copy) and the ends already journaled.
//!
//! ```text
//! cargo run --example fanout
//! ```

use std::time::Duration;

use futures_util::StreamExt;
use replayflow::{AnyError, Context, Runtime, step, workflow};

#[step]
async fn sales_of(region: &str) -> Result<u64, AnyError> {
    // An external call goes here; this one pretends to take a while.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(region.len() as u64 * 1_000)
}

/// One region's figure: a child workflow of the report.
#[workflow]
async fn region_report(_ctx: Context, region: String) -> Result<u64, AnyError> {
    sales_of(&region).await
}

/// Starts a child per region, gathers them as they end, and streams the
/// progress.
#[workflow]
async fn sales_report(ctx: Context, regions: Vec<String>) -> Result<u64, AnyError> {
    let mut children = Vec::new();
    for region in &regions {
        children.push(region_report::child(&ctx, region.clone()));
    }
    // All started together (fan-out) ...
    let children = futures_util::future::join_all(children).await;
    // ... and awaited together (fan-in).
    let results = futures_util::future::join_all(children.iter().map(|c| c.result())).await;
    let mut total = 0;
    for (region, result) in regions.iter().zip(results) {
        let sales = result.map_err(|e| AnyError::msg(format!("{region}: {e}")))?;
        ctx.write_stream("progress", &format!("{region}: {sales}"))
            .await;
        total += sales;
    }
    ctx.close_stream("progress").await;
    Ok(total)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::open("fanout.db").await?;
    let regions: Vec<String> = ["north", "south", "east", "west", "central"]
        .into_iter()
        .map(String::from)
        .collect();
    let handle = sales_report::start(&rt, "report-2026-11", regions).await?;

    // Read the parent's progress live, from another task.
    let reader = rt.read_stream::<String>("report-2026-11", "progress");
    let progress = tokio::spawn(async move {
        let mut reader = Box::pin(reader);
        while let Some(line) = reader.next().await {
            match line {
                Ok(line) => println!("    progress {line}"),
                Err(e) => println!("    progress unreadable: {e}"),
            }
        }
    });
    let total = handle.result().await?;
    progress.await?;
    println!("report-2026-11: total {total}");

    let info = rt.status("report-2026-11").await?;
    for child in &info.children {
        println!("    child    {} {}", child.id, child.status);
    }
    rt.shutdown().await?;
    Ok(())
}
