//! Three worker processes share one PostgreSQL database; one is killed
//! (SIGKILL) while it holds executions, and the two others take them over.
//!
//! ```sh
//! cargo run --example workers                       # postgres://postgres@127.0.0.1:5432/test
//! cargo run --example workers -- postgres://user@host/db
//! ```
//!
//! The program starts itself three times as a worker (`workers worker URL
//! SCHEMA N`), each in a schema of its own made for the run and dropped at
//! the end. Every worker starts the same 30 orders (a start of an existing
//! id attaches to it, so each runs once) and prints each order it finishes.
//! After two seconds the first worker is killed; the orders it was running
//! are finished by the others, from where its journal stopped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use replayflow::{AnyError, Context, Runtime, step, workflow};

const ORDERS: u32 = 30;

/// Each step takes a second, so an order is in flight when the worker
/// running it is killed.
#[step]
async fn reserve(_order: u32) -> Result<u32, AnyError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(std::process::id())
}

#[step]
async fn charge(order: u32) -> Result<u32, AnyError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(order * 10)
}

#[step]
async fn ship(_order: u32) -> Result<u32, AnyError> {
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(std::process::id())
}

/// Returns which process reserved the stock and which shipped the order.
#[workflow]
async fn order(_ctx: Context, id: u32) -> Result<(u32, u32, u32), AnyError> {
    let reserved_by = reserve(id).await?;
    let amount = charge(id).await?;
    let shipped_by = ship(id).await?;
    Ok((reserved_by, amount, shipped_by))
}

async fn worker(url: &str, schema: &str) -> Result<(), AnyError> {
    let rt = Runtime::builder()
        .postgres(url)
        .schema(schema)
        .lease(Duration::from_secs(2))
        .open()
        .await?;
    let me = rt.worker_id().unwrap_or(0);
    let mut handles = Vec::new();
    for i in 0..ORDERS {
        handles.push((i, order::start(&rt, format!("order-{i}"), i).await?));
    }
    for (i, handle) in handles {
        let (reserved_by, amount, shipped_by) = handle.result().await?;
        println!("{me} order-{i} {reserved_by} {amount} {shipped_by}");
    }
    rt.shutdown().await?;
    Ok(())
}

fn spawn(url: &str, schema: &str) -> Result<Child, AnyError> {
    Ok(Command::new(std::env::current_exe()?)
        .args(["worker", url, schema])
        .stdout(Stdio::piped())
        .spawn()?)
}

async fn drop_schema(url: &str, schema: &str) -> Result<(), AnyError> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, url, schema] = args.as_slice()
        && mode == "worker"
    {
        return worker(url, schema).await;
    }
    let url = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("workers_demo_{}", std::process::id());
    drop_schema(&url, &schema).await?;

    let started = Instant::now();
    let mut victim = spawn(&url, &schema)?;
    let survivors = [spawn(&url, &schema)?, spawn(&url, &schema)?];
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    victim.kill()?;
    victim.wait()?;
    println!(
        "killed worker process {} (SIGKILL) {:.1} s in; the two others take its orders over",
        victim.id(),
        started.elapsed().as_secs_f64()
    );
    // Each survivor prints every order's end: `worker order-i reserved_by amount shipped_by`.
    let mut ends = std::collections::BTreeMap::new();
    for mut child in survivors {
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| AnyError::msg("no stdout"))?;
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            let parts: Vec<&str> = line.split(' ').collect();
            if let [_, id, reserved_by, amount, shipped_by] = parts.as_slice() {
                ends.insert(
                    id.to_string(),
                    (
                        reserved_by.to_string(),
                        amount.to_string(),
                        shipped_by.to_string(),
                    ),
                );
            }
        }
        child.wait()?;
    }
    let victim_pid = victim.id().to_string();
    let mut taken_over = 0;
    for (id, (reserved_by, amount, shipped_by)) in &ends {
        if *reserved_by == victim_pid && *shipped_by != victim_pid {
            taken_over += 1;
            println!(
                "{id}: stock reserved by the killed process {reserved_by}, charged {amount} and shipped by process {shipped_by}"
            );
        }
    }
    println!(
        "{taken_over} orders begun on the killed worker were finished by the others, from its journal: the stock it reserved was not reserved again"
    );
    let status = {
        let admin = Runtime::builder()
            .postgres(&url)
            .schema(&schema)
            .admin()
            .open()
            .await?;
        admin.count(replayflow::ListFilter::new()).await?
    };
    println!(
        "{ORDERS} orders, all completed on the surviving workers in {:.1} s: {status:?}",
        started.elapsed().as_secs_f64()
    );
    drop_schema(&url, &schema).await?;
    Ok(())
}
