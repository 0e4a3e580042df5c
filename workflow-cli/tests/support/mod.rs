//! Workflows and helpers shared by the CLI and HTTP tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use replayflow::{
    AnyError, Context, ExecutionStatus, Runtime, RuntimeBuilder, StepContext, permanent, step,
    workflow,
};

#[step]
async fn hello(name: &str) -> Result<String, AnyError> {
    Ok(format!("hello, {name}"))
}

#[workflow]
pub async fn greet(_ctx: Context, name: String) -> Result<String, AnyError> {
    hello(&name).await
}

/// Two branches, each greeting once: the same step key in two branches.
#[workflow]
pub async fn forked(ctx: Context) -> Result<String, AnyError> {
    let (a, b) = tokio::join!(
        ctx.branch(async { hello("left").await }),
        ctx.branch(async { hello("right").await }),
    );
    Ok(format!("{} {}", a?, b?))
}

#[step]
async fn slow_hello(name: &str) -> Result<String, AnyError> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(format!("hello, {name}"))
}

/// Two branches whose first entry (the slow one) ends last: the journal's
/// order is not the order in which its entries ended.
#[workflow]
pub async fn race(ctx: Context) -> Result<String, AnyError> {
    let (a, b) = tokio::join!(
        ctx.branch(async { slow_hello("slow").await }),
        ctx.branch(async { hello("fast").await }),
    );
    Ok(format!("{} {}", a?, b?))
}

#[step(max_attempts = 3, backoff = "10ms")]
async fn wobble() -> Result<u32, AnyError> {
    let attempt = StepContext::current().map_or(1, |s| s.attempt());
    if attempt < 3 {
        return Err(AnyError::msg(format!("wobble {attempt} fell over")));
    }
    Ok(attempt)
}

#[derive(Debug, serde::Deserialize)]
pub struct Approval {
    pub approver: String,
    pub approved: bool,
}

/// Publishes its state, then waits for an approval message.
#[workflow]
pub async fn mailbox(ctx: Context) -> Result<String, AnyError> {
    ctx.set_event("state", "waiting for approval").await;
    let a: Approval = ctx.recv("approval").await;
    ctx.set_event("state", &format!("decided by {}", a.approver))
        .await;
    Ok(format!(
        "{} {}",
        a.approver,
        if a.approved { "approved" } else { "rejected" }
    ))
}

/// Streams three values and closes the stream.
#[workflow]
pub async fn ticker(ctx: Context) -> Result<u32, AnyError> {
    for i in 0..3u32 {
        ctx.write_stream("ticks", &(i * 10)).await;
    }
    ctx.close_stream("ticks").await;
    Ok(3)
}

/// Two failed attempts, then a result.
#[workflow]
pub async fn flaky(_ctx: Context) -> Result<u32, AnyError> {
    wobble().await
}

#[step]
async fn refuse(reason: &str) -> Result<(), AnyError> {
    Err(permanent(AnyError::msg(reason.to_owned())))
}

/// Fails for good.
#[workflow]
pub async fn doomed(_ctx: Context, reason: String) -> Result<(), AnyError> {
    refuse(&reason).await
}

#[step]
async fn prepare() -> Result<(), AnyError> {
    Ok(())
}

/// Sleeps an hour after one step.
#[workflow]
pub async fn nap(ctx: Context) -> Result<String, AnyError> {
    prepare().await?;
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok("rested".to_owned())
}

#[step]
async fn detonate(restart: u32) -> Result<(), AnyError> {
    if restart == 0 {
        panic!("the fuse was lit");
    }
    Ok(())
}

/// Panics on its first run, then waits an hour for its restart; completes
/// when restarted.
#[workflow(restart_delay = "1h")]
pub async fn boom(ctx: Context) -> Result<(), AnyError> {
    detonate(ctx.restart_attempt()).await
}

#[step]
async fn tick(n: u32) -> Result<u32, AnyError> {
    tokio::time::sleep(Duration::from_millis(150)).await;
    Ok(n)
}

/// A few short steps and a short durable sleep: something to watch.
#[workflow]
pub async fn steady(ctx: Context) -> Result<u32, AnyError> {
    let a = tick(1).await?;
    ctx.sleep(Duration::from_millis(600)).await;
    let b = tick(2).await?;
    let c = tick(3).await?;
    Ok(a + b + c)
}

#[step]
async fn linger() -> Result<(), AnyError> {
    tokio::time::sleep(Duration::from_secs(6)).await;
    Ok(())
}

/// One step that takes six seconds: an execution that stays `running`
/// with nothing in its row changing.
#[workflow]
pub async fn slow(_ctx: Context) -> Result<(), AnyError> {
    linger().await
}

/// A temporary directory for a database file.
pub struct TempDb {
    pub dir: tempfile::TempDir,
}

impl TempDb {
    pub fn new() -> TempDb {
        TempDb {
            dir: tempfile::tempdir().expect("create a temp dir"),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().join("app.db")
    }

    pub fn worker(&self) -> RuntimeBuilder {
        Runtime::builder().path(self.path())
    }

    pub async fn admin(&self) -> Runtime {
        Runtime::builder()
            .path(self.path())
            .admin()
            .open()
            .await
            .expect("admin open")
    }
}

/// Fails the test instead of hanging it.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("did not finish within 60 s")
}

/// Waits until `id` is in `status`.
pub async fn wait_status(rt: &Runtime, id: &str, status: ExecutionStatus) {
    within(async {
        loop {
            if rt.status(id).await.map(|i| i.status).ok() == Some(status) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

/// Executions in several states: `greet-1`, `greet-2` and `flaky-1`
/// completed, `doomed-1` failed, `nap-1` and `nap-2` sleeping, `boom-1`
/// panicked.
pub async fn seed(rt: &Runtime) {
    greet::start(rt, "greet-1", "Ada".to_owned()).await.unwrap();
    greet::start(rt, "greet-2", "Grace".to_owned())
        .await
        .unwrap();
    flaky::start(rt, "flaky-1").await.unwrap();
    doomed::start(rt, "doomed-1", "no such customer".to_owned())
        .await
        .unwrap();
    nap::start(rt, "nap-1").await.unwrap();
    nap::start(rt, "nap-2").await.unwrap();
    boom::start(rt, "boom-1").await.unwrap();
    use ExecutionStatus::*;
    for (id, status) in [
        ("greet-1", Completed),
        ("greet-2", Completed),
        ("flaky-1", Completed),
        ("doomed-1", Failed),
        ("nap-1", Sleeping),
        ("nap-2", Sleeping),
        ("boom-1", Panicked),
    ] {
        wait_status(rt, id, status).await;
    }
}
