//! A restart of the PostgreSQL server itself in the middle of a run (an
//! upgrade, a failover, a crash of the server): every connection of the
//! worker dies and the server refuses new ones for a while. Executions stop
//! where they are and go on by replay once it answers again; every handle
//! completes with the right output and no step is journaled twice.
//!
//! It restarts the server every other test uses, so it is ignored by
//! `cargo test` and run alone by `.ci/run`, after the others:
//! `cargo test --test pg_restart -- --ignored` (as root, with
//! `pg_ctlcluster`, on the cluster of the port in `WORKFLOW_TEST_PG`).

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{AnyError, Context, step, workflow};
use support::pg::PgDb;

static RUNS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn slow_add(a: u32, b: u32) -> Result<u32, AnyError> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(a + b)
}

#[workflow]
async fn chain(_ctx: Context, n: u32) -> Result<u32, AnyError> {
    let mut sum = 0;
    for i in 0..n {
        sum = slow_add(sum, i).await?;
    }
    Ok(sum)
}

/// The `pg_ctlcluster` version and name of the cluster on `port`.
fn cluster_on(port: u16) -> (String, String) {
    let out = Command::new("pg_lsclusters")
        .arg("-h")
        .output()
        .expect("pg_lsclusters (the postgresql-common package) is needed to restart the server");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2] == port.to_string())
        .map(|f| (f[0].to_owned(), f[1].to_owned()))
        .unwrap_or_else(|| panic!("no cluster on port {port}:\n{text}"))
}

fn port_of(url: &str) -> u16 {
    let config: tokio_postgres::Config = url.parse().expect("WORKFLOW_TEST_PG is a URL");
    config.get_ports().first().copied().unwrap_or(5432)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "restarts the PostgreSQL server: .ci/run runs it alone, after the other tests"]
async fn executions_go_on_after_the_server_restarts() {
    let Some(db) = PgDb::new("server_restart").await else {
        return;
    };
    let (version, cluster) = cluster_on(port_of(&db.url));
    let started_at = "SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000)::bigint";
    let up_since = db.count(started_at).await;
    let rt = db.builder().open().await.expect("open");
    const CHAINS: u32 = 20;
    const STEPS: u32 = 20;
    let mut handles = Vec::new();
    for i in 0..CHAINS {
        handles.push(
            chain::start(&rt, format!("chain-{i}"), STEPS)
                .await
                .expect("start"),
        );
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let restarted = tokio::task::spawn_blocking(move || {
        Command::new("pg_ctlcluster")
            .args([version.as_str(), cluster.as_str(), "restart", "-m", "fast"])
            .status()
    })
    .await
    .expect("join")
    .expect("run pg_ctlcluster");
    assert!(restarted.success(), "pg_ctlcluster restart: {restarted}");
    assert!(
        db.count(started_at).await > up_since,
        "the server was not restarted"
    );
    // Generous: the worker's connections come back within its reconnect
    // delays, and its lease may have run out meanwhile (it then registers
    // anew and takes its executions over again).
    for h in &handles {
        let out = tokio::time::timeout(Duration::from_secs(120), h.result())
            .await
            .expect("completes within 120 s of the restart")
            .expect("completes after the restart");
        assert_eq!(out, (0..STEPS).sum::<u32>());
    }
    let duplicated: i64 = db
        .count(
            "SELECT count(*) FROM (SELECT execution_id, name, occurrence FROM step_executions
             GROUP BY 1, 2, 3 HAVING count(*) > 1) d",
        )
        .await;
    assert_eq!(duplicated, 0, "no step is journaled twice");
    let steps: i64 = db
        .count("SELECT count(*) FROM step_executions WHERE status = 'completed'")
        .await;
    assert_eq!(steps, i64::from(CHAINS * STEPS));
    // Re-runs are of steps in flight when the server went away, and of
    // steps whose commit found it still down (each execution stops at its
    // first failed write): a few per execution, far fewer than the chains
    // run again (400 more).
    let runs = i64::from(RUNS.load(Ordering::SeqCst));
    eprintln!("{runs} step bodies ran for {steps} steps");
    assert!(
        runs >= steps && runs <= steps + i64::from(CHAINS) * 5,
        "{runs} runs for {steps} steps"
    );
    rt.shutdown().await.expect("shutdown");
}
