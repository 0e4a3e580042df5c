//! What both builds of `evolve` share: `start DB` (the old build starts one
//! execution per case and leaves each asleep), `run DB` (the new build runs
//! on until every execution it can run has settled, and prints each as a
//! JSON line), and the mounted `check --db DB [--json]` subcommand.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use replayflow::{AnyError, Context, ExecutionStatus, ListFilter, ManualClock, Runtime};

pub type Starts = fn(&Runtime) -> Pin<Box<dyn Future<Output = ()> + '_>>;

/// An inline step named `name` that returns its name.
pub async fn step(ctx: &Context, name: &str) -> Result<String, AnyError> {
    let name = name.to_owned();
    ctx.step(&name.clone(), || {
        let name = name.clone();
        async move { Ok::<_, AnyError>(name) }
    })
    .await
}

/// Starts or reads nothing.
pub fn nothing(_: &Runtime) -> Pin<Box<dyn Future<Output = ()> + '_>> {
    Box::pin(async {})
}

/// How long the cases sleep: the new build's clock is past it.
pub const NAP: Duration = Duration::from_secs(3600);

/// `start` runs on the old build, `start_new` and then `read` on the new
/// one (`read` prints what it finds, one line each).
pub async fn main(start: Starts, start_new: Starts, read: Starts) {
    replayflow::check::subcommand().await;
    let args: Vec<String> = std::env::args().collect();
    let (Some(command), Some(db)) = (args.get(1), args.get(2)) else {
        panic!("usage: evolve (start | run | check --db) DB");
    };
    match command.as_str() {
        "start" => {
            let rt = Runtime::open(db).await.expect("open");
            start(&rt).await;
            settle(
                &rt,
                &[ExecutionStatus::Sleeping, ExecutionStatus::Completed],
            )
            .await;
            rt.shutdown().await.expect("shutdown");
        }
        "run" => {
            let clock = ManualClock::new(SystemTime::now() + 2 * NAP);
            let rt = Runtime::builder()
                .path(db)
                .clock(clock.clone())
                .open()
                .await
                .expect("open");
            start_new(&rt).await;
            // Executions started here sleep too: time runs on.
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    clock.advance(NAP);
                }
            });
            let registered = rt.workflows();
            settle_registered(&rt, &registered).await;
            read(&rt).await;
            for e in rt.list(ListFilter::new()).await.expect("list") {
                let info = rt.status(e.id.clone()).await.expect("status");
                let output = info
                    .output
                    .map(|o| o.decode::<serde_json::Value>().expect("output"));
                let line = serde_json::json!({
                    "id": info.id.as_str(),
                    "status": info.status,
                    "message": info.error_message,
                    "output": output,
                });
                println!("{line}");
            }
            rt.shutdown().await.expect("shutdown");
        }
        other => panic!("unknown command {other}"),
    }
}

/// Waits until every execution has one of `statuses`.
async fn settle(rt: &Runtime, statuses: &[ExecutionStatus]) {
    for _ in 0..6000 {
        let all = rt.list(ListFilter::new()).await.expect("list");
        if all.iter().all(|e| statuses.contains(&e.status)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the executions did not settle");
}

/// Waits until every execution of a workflow of this build has ended or
/// parked (the others are left as they are).
async fn settle_registered(rt: &Runtime, registered: &[&str]) {
    for _ in 0..6000 {
        let all = rt.list(ListFilter::new()).await.expect("list");
        let settled = all.iter().all(|e| {
            !registered.contains(&e.workflow.as_str())
                || matches!(
                    e.status,
                    ExecutionStatus::Completed | ExecutionStatus::Paused | ExecutionStatus::Failed
                )
        });
        if settled {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the executions did not settle");
}
