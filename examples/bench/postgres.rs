//! `--store postgres`: the workloads on a PostgreSQL store, each next to a
//! raw tokio-postgres baseline measured in the same child, on the same
//! server, in a table shaped like the library's `step_executions`.
//!
//! - P1: one workflow, 1,000 sequential steps; baseline: one `INSERT` per
//!   transaction (autocommit, one round trip) on one connection.
//! - P2: 200 workflows x 10 steps on one worker; baseline: 200 tasks each
//!   sending its 10 rows one at a time to one connection that commits all
//!   queued rows per transaction (`BEGIN`, an `INSERT` per row and
//!   `COMMIT` pipelined: one round trip per batch). Beside it, the same
//!   loop with one multi-row `INSERT` per batch (`unnest` of arrays, as the
//!   library's writer sends quick steps' results): the raw rate the
//!   library's own CPU per step keeps it under.
//! - P2N: P2 in N worker processes at once on one schema (N = 1, 2, 4),
//!   each starting its own 200 workflows; baseline: the P2 baseline in N
//!   processes at once, one connection each.
//! - P3: resume (open, take-over, replay) of an execution whose journal
//!   holds 100,000 completed steps.
//! - P6: worker CPU time (`getrusage`) per step, 200 workflows x 250 steps;
//!   beside it, the CPU per row of the P2 baseline's process.
//! - P4: W4's 10,000 sleepers on a live owner (lateness, memory each); then
//!   orphaned: started on one worker, which shuts down cleanly before the
//!   first wake time, and woken by another worker's sweep (lateness).
//! - P5: a worker holding 10,000 unfinished executions (5 steps completed,
//!   the 6th in flight) is SIGKILLed while another worker runs: the time
//!   from the kill until the survivor has completed them all, and how many
//!   completed steps ran again there (none may).
//! - PC1: C1 (the pre-deploy check of 10,000 sleeping executions of 20
//!   steps, on a worker runtime and on an admin open) on PostgreSQL;
//!   baselines on one tokio-postgres connection: the check's own query
//!   shape (pages of 500 executions, their journals in one `= ANY($1)`
//!   query), and one journal query per execution.
//!
//! Commits per step are `pg_stat_database.xact_commit` deltas over the whole
//! life of a side (connections closed, so their backends have flushed their
//! counters), WAL bytes per step `pg_current_wal_lsn()` deltas: both count
//! every session of the database and the server, so they are right only
//! on an otherwise idle server (`other_sessions` reports the client
//! backends of other processes seen at the start).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use replayflow::{Durability, Runtime};
use tokio_postgres::{Client, NoTls};

use std::sync::atomic::{AtomicBool, Ordering};

use replayflow::{AnyError, Context, ExecutionStatus, ListFilter, step, workflow};

use super::{
    ChildArgs, Counter, Opts, Results, Row, START_CONCURRENCY, Target, W1_BEGIN, W1_END, W1_STEPS,
    W2_STEPS, W2_WORKFLOWS, W3_BLOCK, W3_BUILT, W3_DONE, W3_END, W3_ENTER, W3_STEPS, W4_SPREAD,
    add_round, cpu_time, durability, now_ms, percentile, print_table, report, row, run_child,
    w1_sequential, w2_drive, w3_long, w4_on,
};

/// Worker processes of P2N.
const P2N_WORKERS: &[u32] = &[1, 2, 4];

/// P4 with a live owner: time from the start of the sleepers to the first
/// wake time (W4's is too short for 10,000 starts on PostgreSQL here).
const P4_HEAD_START: Duration = Duration::from_secs(25);

/// P4's orphans: time from the start of the sleepers to the first wake
/// time, enough for 10,000 starts on PostgreSQL and the clean shutdown of
/// the worker that started them.
const P4_ORPHAN_HEAD_START: Duration = Duration::from_secs(25);

/// Executions of P5, and their steps completed before the kill.
const P5_EXECUTIONS: usize = 10_000;
const P5_DONE_STEPS: u32 = 5;

/// While set (in the worker that is killed), P5's 6th step waits forever.
static P5_BLOCK: AtomicBool = AtomicBool::new(true);
static P5_BLOCKED: Counter = Counter::new();
/// Bodies of P5's first steps run in this process (none may run in the
/// survivor: they completed before the kill).
static P5_EARLY_RUNS: Counter = Counter::new();
static P5_SIXTH_RUNS: Counter = Counter::new();
static P5_DONE: Counter = Counter::new();

#[step]
async fn p5_early(i: u32) -> Result<u32, AnyError> {
    P5_EARLY_RUNS.bump();
    Ok(i)
}

#[step]
async fn p5_sixth() -> Result<u32, AnyError> {
    P5_SIXTH_RUNS.bump();
    if P5_BLOCK.load(Ordering::SeqCst) {
        P5_BLOCKED.bump();
        std::future::pending::<()>().await;
    }
    Ok(6)
}

#[workflow]
async fn p5_interrupted(_ctx: Context, steps: u32) -> Result<u32, AnyError> {
    for i in 0..steps {
        p5_early(i).await?;
    }
    let six = p5_sixth().await?;
    P5_DONE.bump();
    Ok(six)
}

/// A connection of the benchmark's own, with `schema` on its path.
async fn connect(url: &str, schema: Option<&str>) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to PostgreSQL at {url}: {e}"));
    tokio::spawn(connection);
    if let Some(schema) = schema {
        client
            .batch_execute(&format!("SET search_path TO {schema}"))
            .await
            .expect("set the search path");
    }
    client
}

async fn drop_schema(url: &str, schema: &str) {
    let client = connect(url, None).await;
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .expect("drop a benchmark schema");
}

async fn open_pg(url: &str, schema: &str, d: Durability) -> Runtime {
    Runtime::builder()
        .postgres(url)
        .schema(schema)
        .durability(d)
        .open()
        .await
        .expect("open the runtime on PostgreSQL")
}

/// `X/Y` (hex) as a byte position in the WAL.
fn lsn(text: &str) -> f64 {
    let (hi, lo) = text.split_once('/').expect("an LSN");
    let hi = u64::from_str_radix(hi, 16).expect("an LSN");
    let lo = u64::from_str_radix(lo, 16).expect("an LSN");
    ((hi << 32) + lo) as f64
}

/// The database's commit count and the WAL position at one moment.
struct Counters {
    commits: f64,
    wal: f64,
    /// The server's clock, to tell the sessions opened after it.
    at: std::time::SystemTime,
}

/// Reads the counters in a transaction that rolls back (it commits
/// nothing, so it does not count itself).
async fn counters(url: &str) -> Counters {
    let client = connect(url, None).await;
    client.batch_execute("BEGIN").await.unwrap();
    let row = client
        .query_one(
            "SELECT xact_commit, pg_current_wal_lsn()::text, now()
               FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .expect("read pg_stat_database");
    client.batch_execute("ROLLBACK").await.unwrap();
    Counters {
        commits: row.get::<_, i64>(0) as f64,
        wal: lsn(row.get(1)),
        at: row.get(2),
    }
}

/// Client backends of other processes than this one's sessions.
async fn other_sessions(url: &str) -> f64 {
    let client = connect(url, None).await;
    let n: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("read pg_stat_activity")
        .get(0);
    n as f64
}

/// Waits until every session opened since `since` has ended (a backend
/// flushes its counters when it exits), at most 5 s; false on timeout.
/// Polls inside one transaction that rolls back, so it commits nothing.
async fn settle(url: &str, since: std::time::SystemTime) -> bool {
    let client = connect(url, None).await;
    client.batch_execute("BEGIN").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let query = "SELECT pid, application_name, state, query FROM pg_stat_activity
                  WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
                    AND datname = current_database() AND backend_start >= $1";
    let settled = loop {
        // A transaction sees one snapshot of the statistics unless cleared.
        client
            .batch_execute("SELECT pg_stat_clear_snapshot()")
            .await
            .unwrap();
        let open = client
            .query(query, &[&since])
            .await
            .expect("read pg_stat_activity");
        if open.is_empty() {
            break true;
        }
        if Instant::now() > deadline {
            for r in open {
                let (pid, app, state, query): (i32, String, Option<String>, String) =
                    (r.get(0), r.get(1), r.get(2), r.get(3));
                eprintln!("still open after the run: {pid} {app} {state:?} {query}");
            }
            break false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    client.batch_execute("ROLLBACK").await.unwrap();
    settled
}

/// Commits and WAL bytes from `before` until every session opened since
/// has ended.
async fn deltas(url: &str, before: &Counters) -> (f64, f64) {
    if !settle(url, before.at).await {
        report("settle_timeout", 1.0);
    }
    let after = counters(url).await;
    (after.commits - before.commits, after.wal - before.wal)
}

/// The baseline's table: `step_executions`' columns, defaults, checks and
/// key, without rows.
async fn base_table(client: &Client) {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS base_steps;
             CREATE TABLE base_steps (LIKE step_executions INCLUDING ALL)",
        )
        .await
        .expect("create the baseline table");
}

/// A completed step's row, as the library's quick step writes it.
const BASE_INSERT: &str = "INSERT INTO base_steps
    (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
     started_at, completed_at)
    VALUES ($1, $2, '', $2, 'step', 'noop', $2, 'completed', 1, $3, $4, $4)";

/// Completed steps' rows, one per element of the arrays: P2's batches.
const BASE_INSERT_MANY: &str = "INSERT INTO base_steps
    (execution_id, position, branch, local, kind, name, occurrence, status, attempts, output,
     started_at, completed_at)
    SELECT id, p, '', p, 'step', 'noop', p, 'completed', 1, $3, $4, $4
    FROM unnest($1::text[], $2::int8[]) AS u(id, p)";

async fn set_sync(client: &Client, d: Durability) {
    if d != Durability::Full {
        client
            .batch_execute("SET synchronous_commit = off")
            .await
            .expect("synchronous_commit");
    }
}

// ------------------------------------------------------------------------
// The children.

pub(super) async fn child(a: &ChildArgs) {
    let url = a.pg.clone().expect("--pg URL");
    let d = durability(&a.sync);
    // Processes started by a measuring child, on the schema it names:
    // they touch nothing else, so that they add no commits of their own.
    match a.task.as_str() {
        "p1-lib" => return p1_lib(&url, a.file_schema(), d, a.n).await,
        "p2-lib" => return p2_lib(&url, a.file_schema(), d).await,
        "p2n-lib" => return p2n_worker(&url, a.file_schema(), d, a.start_at).await,
        "p2n-base" => {
            return p2_baseline(&url, a.file_schema(), "p2n", d, Some(a.start_at), false).await;
        }
        "p5-build" => return p5_build(&url, a.file_schema(), d).await,
        "p5-survivor" => return p5_survivor(&url, a.file_schema(), d).await,
        _ => {}
    }
    let prefix = a.schema_prefix.clone().unwrap_or_else(|| "rfb".to_owned());
    let schema = format!(
        "{prefix}_{}_{}",
        a.task.replace('-', "_"),
        std::process::id()
    );
    drop_schema(&url, &schema).await;
    report("other_sessions", other_sessions(&url).await);
    match a.task.as_str() {
        "p1" => p1(a, &url, &schema, d, a.order).await,
        "p2" => p2(a, &url, &schema, d, a.order).await,
        "p3-build" => p3_build(&url, a.file_schema()).await,
        "p3" => p3(&url, &schema, a.file_schema(), d).await,
        "p4" => p4_live(&url, &schema, d).await,
        "p4-orphans" => p4_orphans(&url, &schema, d).await,
        "p6" => p6(&url, &schema, d).await,
        "pc1-build" => pc1_build(&url, a.file_schema()).await,
        "pc1" => pc1(&url, &schema, a.file_schema(), d, a.order).await,
        other => panic!("unknown child task `{other}`"),
    }
    drop_schema(&url, &schema).await;
}

impl ChildArgs {
    /// A schema named by the parent (`--file`).
    fn file_schema(&self) -> &str {
        self.file
            .as_deref()
            .and_then(Path::to_str)
            .expect("--file SCHEMA")
    }
}

/// Creates the library's schema: a runtime opens it and shuts down.
async fn create_schema(url: &str, schema: &str, d: Durability) {
    let rt = open_pg(url, schema, d).await;
    rt.shutdown().await.expect("shutdown");
}

async fn p1(a: &ChildArgs, url: &str, schema: &str, d: Durability, order: u32) {
    create_schema(url, schema, d).await;
    let steps = f64::from(W1_STEPS);
    let output = b"123".to_vec();
    let now = now_ms() as i64;
    let setup = connect(url, Some(schema)).await;
    base_table(&setup).await;
    drop(setup);
    // One row per transaction on one connection: `rows` rows from `first`.
    let base_loop = async |first: u32| {
        let before = counters(url).await;
        let client = connect(url, Some(schema)).await;
        set_sync(&client, d).await;
        let insert = client.prepare(BASE_INSERT).await.unwrap();
        let t = Instant::now();
        for i in first..first + W1_STEPS {
            client
                .execute(&insert, &[&"base-1", &i64::from(i), &output, &now])
                .await
                .unwrap();
        }
        let elapsed = t.elapsed();
        drop(client);
        let (commits, wal) = deltas(url, &before).await;
        (elapsed, commits, wal)
    };
    let run_rt3 = async || {
        // The same rows with the library's round trips: `BEGIN` and a
        // `FOR SHARE` lock of one row sent together, the insert, `COMMIT`.
        let client = connect(url, Some(schema)).await;
        set_sync(&client, d).await;
        client
            .batch_execute(
                "CREATE TABLE base_lock (id bigint PRIMARY KEY);
                 INSERT INTO base_lock VALUES (1)",
            )
            .await
            .unwrap();
        let insert = client.prepare(BASE_INSERT).await.unwrap();
        let lock = client
            .prepare("SELECT 1 FROM base_lock WHERE id = 1 FOR SHARE")
            .await
            .unwrap();
        let before = counters(url).await;
        let t = Instant::now();
        for i in 0..W1_STEPS {
            let (b, l) = tokio::join!(client.batch_execute("BEGIN"), client.query(&lock, &[]));
            b.unwrap();
            l.unwrap();
            client
                .execute(&insert, &[&"base-3", &i64::from(i), &output, &now])
                .await
                .unwrap();
            client.batch_execute("COMMIT").await.unwrap();
        }
        let elapsed = t.elapsed();
        drop(client);
        let (_, wal) = deltas(url, &before).await;
        report("rt3_steps_s", steps / elapsed.as_secs_f64());
        report("rt3_wal_bytes_step", wal / steps);
    };
    // The library's whole life (open, start, steps, end, shutdown) in a
    // process of its own, whose exit closes every connection (their
    // backends then flush their counters), less that of a workflow of no
    // steps: what the steps add.
    let life = async |n: u32| {
        let before = counters(url).await;
        let out = sub_child(a, "p1-lib", schema, n).await;
        let (commits, wal) = deltas(url, &before).await;
        (get(&out, "steps_s"), commits, wal)
    };
    let run_lib = async || {
        let (_, c0, w0) = life(0).await;
        let (steps_s, c1, w1) = life(W1_STEPS).await;
        report("steps_s", steps_s);
        report("commits_step", (c1 - c0) / steps);
        report("wal_bytes_step", (w1 - w0) / steps);
        report("life_commits_empty", c0);
    };
    // The baseline runs before and after the library (the server's fsync
    // time drifts within seconds on a shared machine): its rate is that of
    // both runs together.
    let (e0, commits, wal) = base_loop(0).await;
    if order.is_multiple_of(2) {
        run_rt3().await;
        run_lib().await;
    } else {
        run_lib().await;
        run_rt3().await;
    }
    let (e1, _, _) = base_loop(W1_STEPS).await;
    report("base_steps_s", 2.0 * steps / (e0 + e1).as_secs_f64());
    report("base_commits_step", commits / steps);
    report("base_wal_bytes_step", wal / steps);
    report("base_before_steps_s", steps / e0.as_secs_f64());
    report("base_after_steps_s", steps / e1.as_secs_f64());
}

async fn p2(a: &ChildArgs, url: &str, schema: &str, d: Durability, order: u32) {
    create_schema(url, schema, d).await;
    let run_lib = async || {
        let before = counters(url).await;
        let out = sub_child(a, "p2-lib", schema, 0).await;
        let (commits, wal) = deltas(url, &before).await;
        let steps = (W2_WORKFLOWS * W2_STEPS as usize) as f64;
        for (k, v) in out {
            if k != "other_sessions" {
                report(&k, v);
            }
        }
        report("commits_step", commits / steps);
        report("wal_bytes_step", wal / steps);
    };
    if order.is_multiple_of(2) {
        p2_baseline(url, schema, "p2", d, None, false).await;
        p2_baseline(url, schema, "p2", d, None, true).await;
        run_lib().await;
    } else {
        run_lib().await;
        p2_baseline(url, schema, "p2", d, None, false).await;
        p2_baseline(url, schema, "p2", d, None, true).await;
    }
}

/// The library's side of P1 in a process of its own: a runtime's life
/// with one workflow of `n` steps.
async fn p1_lib(url: &str, schema: &str, d: Durability, n: u32) {
    let rt = open_pg(url, schema, d).await;
    let h = w1_sequential::start(&rt, format!("p1-{n}"), n)
        .await
        .unwrap();
    h.result().await.unwrap();
    if n > 0 {
        let t = W1_END.get() - W1_BEGIN.get();
        report("steps_s", f64::from(n) / t.as_secs_f64());
    }
    rt.shutdown().await.unwrap();
}

/// The library's side of P2 in a process of its own; also its CPU time
/// per step over the run.
async fn p2_lib(url: &str, schema: &str, d: Durability) {
    let rt = open_pg(url, schema, d).await;
    let cpu0 = cpu_time();
    w2_drive(&rt, "w2").await;
    let cpu = cpu_time() - cpu0;
    let steps = (W2_WORKFLOWS * W2_STEPS as usize) as f64;
    report("us_per_step", cpu.as_secs_f64() * 1e6 / steps);
    rt.shutdown().await.unwrap();
}

/// Runs this binary as a child of this child on `schema`, and returns
/// its figures.
async fn sub_child(a: &ChildArgs, task: &str, schema: &str, n: u32) -> Vec<(String, f64)> {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    // Nothing else runs in this process meanwhile: a blocking wait.
    let out = std::process::Command::new(exe)
        .args(["--child", task, "--durability", &a.sync, "--dir"])
        .arg(&a.dir)
        .args(["--file", schema, "--n", &n.to_string()])
        .args(["--pg", a.pg.as_deref().unwrap_or_default()])
        .output()
        .expect("run a sub-child");
    super::parse_child(out, task)
}

fn get(out: &[(String, f64)], key: &str) -> f64 {
    out.iter()
        .find(|(k, _)| k == key)
        .map_or(f64::NAN, |(_, v)| *v)
}

/// 200 tasks, each sending its 10 rows one at a time to one connection
/// that commits every queued row per transaction, and awaiting each row's
/// commit. `BEGIN`, the inserts and `COMMIT` of a batch go out pipelined.
/// With `start_at` (P2N: the table exists), the run begins at that Unix
/// time in ms and reports when it ended.
async fn p2_baseline(
    url: &str,
    schema: &str,
    tag: &str,
    d: Durability,
    start_at: Option<u64>,
    many: bool,
) {
    if start_at.is_none() {
        let setup = connect(url, Some(schema)).await;
        base_table(&setup).await;
    }
    let before = counters(url).await;
    let client = connect(url, Some(schema)).await;
    set_sync(&client, d).await;
    let insert = client.prepare(BASE_INSERT).await.unwrap();
    let insert_many = client.prepare(BASE_INSERT_MANY).await.unwrap();
    // The multi-row baseline reports under its own keys.
    let key = |k: &str| match (many, k.strip_prefix("base_")) {
        (true, Some(rest)) => format!("many_{rest}"),
        _ => k.to_owned(),
    };
    if let Some(at) = start_at {
        wait_until(at).await;
    }
    type Row = (String, u32, tokio::sync::oneshot::Sender<()>);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Row>();
    let writer = tokio::spawn(async move {
        let output = b"123".to_vec();
        let mut batch: Vec<Row> = Vec::new();
        let mut commits = 0u32;
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let now = now_ms() as i64;
            let ids: Vec<&str> = batch.iter().map(|(e, _, _)| e.as_str()).collect();
            let positions: Vec<i64> = batch.iter().map(|(_, p, _)| i64::from(*p)).collect();
            type Param<'a> = &'a (dyn tokio_postgres::types::ToSql + Sync);
            let begin = client.batch_execute("BEGIN");
            let (params, one): (Vec<[Param; 4]>, [Param; 4]) = if many {
                (Vec::new(), [&ids, &positions, &output, &now])
            } else {
                let rows = ids.iter().zip(&positions);
                let rows = rows.map(|(exec, p)| [exec as Param, p, &output, &now]);
                (rows.collect(), [&"", &0i64, &output, &now])
            };
            let rows = async {
                if many {
                    client.execute(&insert_many, &one).await.map(drop)
                } else {
                    let rows = join_all(params.iter().map(|p| client.execute(&insert, p)));
                    rows.await.into_iter().try_for_each(|r| r.map(drop))
                }
            };
            let commit = client.batch_execute("COMMIT");
            let (b, rows, c) = tokio::join!(begin, rows, commit);
            b.unwrap();
            rows.unwrap();
            c.unwrap();
            commits += 1;
            for (_, _, done) in batch.drain(..) {
                let _ = done.send(());
            }
        }
        commits
    });
    let (cpu0, t) = (cpu_time(), Instant::now());
    let mut tasks = Vec::new();
    for w in 0..W2_WORKFLOWS {
        let tx = tx.clone();
        let exec = format!("{tag}-{w}-{}", std::process::id());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(W2_STEPS as usize);
            for i in 0..W2_STEPS {
                let started = Instant::now();
                let (done, committed) = tokio::sync::oneshot::channel();
                tx.send((exec.clone(), i, done)).unwrap();
                committed.await.unwrap();
                latencies.push(started.elapsed().as_micros() as u64);
            }
            latencies
        }));
    }
    drop(tx);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = t.elapsed().as_secs_f64();
    let cpu = cpu_time() - cpu0;
    let batches = writer.await.unwrap();
    latencies.sort_unstable();
    let steps = (W2_WORKFLOWS * W2_STEPS as usize) as f64;
    report(&key("base_steps_s"), steps / elapsed);
    report(&key("base_workflows_s"), W2_WORKFLOWS as f64 / elapsed);
    report(&key("base_p50_ms"), percentile(&latencies, 50.0) / 1000.0);
    report(&key("base_p99_ms"), percentile(&latencies, 99.0) / 1000.0);
    report(&key("base_us_per_step"), cpu.as_secs_f64() * 1e6 / steps);
    report(&key("base_rows_per_batch"), steps / f64::from(batches));
    report(&key("base_end_ms"), now_ms() as f64);
    if start_at.is_none() {
        let (commits, wal) = deltas(url, &before).await;
        report(&key("base_commits_step"), commits / steps);
        report(&key("base_wal_bytes_step"), wal / steps);
    }
}

/// Sleeps until the Unix time `at` (ms); reports a start it was late for.
async fn wait_until(at: u64) {
    let now = now_ms();
    if now > at {
        report("late_start_ms", (now - at) as f64);
    }
    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await;
}

/// One worker of P2N: its own 200 workflows x 10 steps on the shared
/// schema, started at the parent's start time (`--start-at`, Unix ms).
async fn p2n_worker(url: &str, schema: &str, d: Durability, start_at: u64) {
    let rt = open_pg(url, schema, d).await;
    wait_until(start_at).await;
    w2_drive(&rt, &format!("w2-{}", std::process::id())).await;
    report("end_ms", now_ms() as f64);
    rt.shutdown().await.unwrap();
}

/// Runs W3's workflow on PostgreSQL without waiting for commits and leaves
/// it unfinished after its last step; the shutdown releases it, unowned.
async fn p3_build(url: &str, template: &str) {
    drop_schema(url, template).await;
    let t = Instant::now();
    let rt = open_pg(url, template, Durability::Off).await;
    w3_long::start(&rt, "w3", W3_STEPS).await.unwrap();
    W3_BUILT.wait_for(1).await;
    rt.shutdown().await.unwrap();
    report("build_s", t.elapsed().as_secs_f64());
    let client = connect(url, Some(template)).await;
    let bytes: i64 = client
        .query_one("SELECT pg_total_relation_size('step_executions')", &[])
        .await
        .unwrap()
        .get(0);
    report("journal_bytes_step", bytes as f64 / f64::from(W3_STEPS));
}

async fn p3(url: &str, schema: &str, template: &str, d: Durability) {
    create_schema(url, schema, d).await;
    copy_schema(url, schema, template).await;
    W3_BLOCK.store(false, std::sync::atomic::Ordering::SeqCst);
    let t0 = Instant::now();
    let rt = open_pg(url, schema, d).await;
    let opened = t0.elapsed();
    W3_DONE.wait_for(1).await;
    let end = W3_END.get();
    let total = end - t0;
    let body = end - W3_ENTER.get();
    let steps = f64::from(W3_STEPS);
    report("steps_s", steps / total.as_secs_f64());
    report("open_ms", opened.as_secs_f64() * 1000.0);
    report("load_ms", (W3_ENTER.get() - t0).as_secs_f64() * 1000.0);
    report("body_ms", body.as_secs_f64() * 1000.0);
    report("body_steps_s", steps / body.as_secs_f64());
    rt.shutdown().await.unwrap();
}

/// Copies the rows of a template schema into `schema` (created, empty).
async fn copy_schema(url: &str, schema: &str, template: &str) {
    let client = connect(url, None).await;
    client
        .batch_execute(&format!(
            "INSERT INTO {schema}.workflows SELECT * FROM {template}.workflows
               ON CONFLICT DO NOTHING;
             INSERT INTO {schema}.workflow_executions SELECT * FROM {template}.workflow_executions;
             INSERT INTO {schema}.step_executions SELECT * FROM {template}.step_executions;
             INSERT INTO {schema}.step_attempts SELECT * FROM {template}.step_attempts;
             ANALYZE {schema}.step_executions; ANALYZE {schema}.workflow_executions;"
        ))
        .await
        .expect("copy the template");
}

/// P4 with a live owner: W4 on one PostgreSQL worker.
async fn p4_live(url: &str, schema: &str, d: Durability) {
    let rt = open_pg(url, schema, d).await;
    w4_on(&rt, W4_SPREAD, P4_HEAD_START, async {}).await;
    rt.shutdown().await.expect("shutdown");
}

/// P4's orphans: worker A starts the sleepers and shuts down cleanly once
/// all are suspended (which leaves them without an owner); worker B, open
/// all along, wakes them from its sweep. Lateness is measured by the step
/// after the sleep, which runs on B.
async fn p4_orphans(url: &str, schema: &str, d: Durability) {
    let b = open_pg(url, schema, d).await;
    let a = open_pg(url, schema, d).await;
    let handover = a.clone();
    w4_on(&a, W4_SPREAD, P4_ORPHAN_HEAD_START, async move {
        let t = Instant::now();
        handover.shutdown().await.expect("shut worker A down");
        report("shutdown_s", t.elapsed().as_secs_f64());
    })
    .await;
    drop(a);
    b.shutdown().await.expect("shutdown");
}

/// P5's worker to be killed: starts the executions, and prints `READY`
/// once every one is in its 6th step (the 5 before committed).
async fn p5_build(url: &str, schema: &str, d: Durability) {
    let t = Instant::now();
    let rt = open_pg(url, schema, d).await;
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..P5_EXECUTIONS {
        if starts.len() >= START_CONCURRENCY {
            starts.join_next().await.unwrap().unwrap();
        }
        let rt = rt.clone();
        starts.spawn(async move {
            p5_interrupted::start(&rt, format!("p5-{i}"), P5_DONE_STEPS)
                .await
                .unwrap();
        });
    }
    while let Some(done) = starts.join_next().await {
        done.unwrap();
    }
    P5_BLOCKED.wait_for(P5_EXECUTIONS).await;
    // The queued start records of the 6th steps commit within a batch.
    tokio::time::sleep(Duration::from_millis(200)).await;
    report("build_s", t.elapsed().as_secs_f64());
    println!("READY");
    std::future::pending::<()>().await;
}

/// P5's survivor: open before the kill (prints `READY`), then told the
/// moment of the kill (Unix ms, a line on stdin); times the completion of
/// every execution from it.
async fn p5_survivor(url: &str, schema: &str, d: Durability) {
    P5_BLOCK.store(false, Ordering::SeqCst);
    let rt = open_pg(url, schema, d).await;
    println!("READY");
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .expect("the kill time on stdin");
    let killed_at: u64 = line.trim().parse().expect("the kill time, Unix ms");
    let since_kill = || (now_ms().saturating_sub(killed_at)) as f64 / 1000.0;
    P5_DONE.wait_for(P5_EXECUTIONS).await;
    report("bodies_done_after_kill_s", since_kill());
    loop {
        let completed = rt
            .list(
                ListFilter::new()
                    .status(ExecutionStatus::Completed)
                    .limit(P5_EXECUTIONS as u32 + 1),
            )
            .await
            .unwrap()
            .len();
        if completed >= P5_EXECUTIONS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report("all_completed_after_kill_s", since_kill());
    report("lease_s", 10.0);
    report("completed_step_reruns", P5_EARLY_RUNS.get() as f64);
    report("in_flight_reruns", P5_SIXTH_RUNS.get() as f64);
    rt.shutdown().await.expect("shutdown");
}

/// P5 from the parent: the worker to kill, the survivor, the kill, the
/// survivor's figures.
fn p5(exe: &Path, opts: &Opts, prefix: &str, sync: &str, round: u32) -> Vec<(String, f64)> {
    use std::io::{BufRead, Write};
    use std::process::{Command, Stdio};
    let schema = format!("{prefix}_p5_{round}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        drop_schema(&opts.pg, &schema).await;
        create_schema(&opts.pg, &schema, durability(sync)).await;
    });
    let spawn = |task: &str| {
        Command::new(exe)
            .args(["--child", task, "--durability", sync, "--dir"])
            .arg(&opts.dir)
            .args(["--file", &schema])
            .args(pg_extra(opts, prefix))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run a P5 child")
    };
    let wait_ready = |child: &mut std::process::Child, what: &str| {
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut before = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("read a child's output");
            if line == "READY" {
                return (before, lines);
            }
            before.push(line);
        }
        panic!("the {what} ended before it was ready");
    };
    let mut victim = spawn("p5-build");
    let (built, _rest) = wait_ready(&mut victim, "worker to kill");
    let mut survivor = spawn("p5-survivor");
    let (_, rest) = wait_ready(&mut survivor, "survivor");
    victim.kill().expect("SIGKILL the worker");
    let killed_at = now_ms();
    let _ = victim.wait();
    writeln!(survivor.stdin.as_mut().expect("piped stdin"), "{killed_at}")
        .expect("tell the survivor");
    let mut out: Vec<String> = built;
    out.extend(rest.map_while(Result::ok));
    let status = survivor.wait().expect("wait for the survivor");
    assert!(status.success(), "the P5 survivor failed: {status}");
    runtime.block_on(drop_schema(&opts.pg, &schema));
    out.iter()
        .filter_map(|l| {
            let (k, v) = l.strip_prefix("RESULT ")?.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

async fn p6(url: &str, schema: &str, d: Durability) {
    super::w6_cpu_on(open_pg(url, schema, d).await).await;
}

// ------------------------------------------------------------------------
// PC1: the pre-deploy check.

/// PC1's template schema: C1's 10,000 sleepers, written through the runtime.
async fn pc1_build(url: &str, template: &str) {
    drop_schema(url, template).await;
    super::check::build_on(open_pg(url, template, Durability::Off).await).await;
}

/// The columns the check loads.
const PC1_EXECUTION: &str = "id, workflow_name, status, codec, input, output, error, error_message,
     options, restart_attempt, wake_at, created_at, updated_at, completed_at, app_version, owner";
const PC1_ENTRY: &str =
    "position, kind, name, occurrence, status, attempts, output, error, error_message, wake_at,
     branch, local, value_type";
/// Executions per page, as the check reads them.
const PC1_PAGE: i64 = 500;

/// Reads an execution's row (PC1_EXECUTION) into owned values; its id.
fn pc1_execution(r: &tokio_postgres::Row) -> String {
    let row = (
        r.get::<_, String>(0),
        r.get::<_, String>(1),
        r.get::<_, String>(2),
        r.get::<_, String>(3),
        r.get::<_, Vec<u8>>(4),
        r.get::<_, Option<Vec<u8>>>(5),
        r.get::<_, Option<Vec<u8>>>(6),
        r.get::<_, Option<String>>(7),
        r.get::<_, String>(8),
        (r.get::<_, i64>(9), r.get::<_, Option<i64>>(10)),
        (r.get::<_, i64>(11), r.get::<_, i64>(12)),
        (r.get::<_, Option<i64>>(13), r.get::<_, String>(14)),
        r.get::<_, Option<i64>>(15),
    );
    std::hint::black_box(row).0
}

/// Reads a journal row (PC1_ENTRY from column `at` on) into owned values.
fn pc1_entry(r: &tokio_postgres::Row, at: usize) {
    std::hint::black_box((
        (r.get::<_, i64>(at), r.get::<_, String>(at + 1)),
        (r.get::<_, String>(at + 2), r.get::<_, i64>(at + 3)),
        (r.get::<_, String>(at + 4), r.get::<_, i64>(at + 5)),
        r.get::<_, Option<Vec<u8>>>(at + 6),
        r.get::<_, Option<Vec<u8>>>(at + 7),
        r.get::<_, Option<String>>(at + 8),
        r.get::<_, Option<i64>>(at + 9),
        (r.get::<_, String>(at + 10), r.get::<_, i64>(at + 11)),
        r.get::<_, Option<i32>>(at + 12),
    ));
}

/// The raw read in the check's own shape: pages of 500 unfinished
/// executions in id order, each page's journals in one query. Returns
/// executions, entries and the time.
async fn pc1_read_pages(client: &Client) -> (usize, usize, Duration) {
    let page = client
        .prepare(&format!(
            "SELECT {PC1_EXECUTION} FROM workflow_executions
             WHERE id > $1 AND status NOT IN ('completed', 'failed', 'cancelled')
             ORDER BY id LIMIT $2"
        ))
        .await
        .unwrap();
    let journals = client
        .prepare(&format!(
            "SELECT execution_id, {PC1_ENTRY} FROM step_executions
             WHERE execution_id = ANY($1) ORDER BY execution_id, position"
        ))
        .await
        .unwrap();
    let t = Instant::now();
    let (mut executions, mut entries) = (0, 0);
    let mut after = String::new();
    loop {
        let rows = client.query(&page, &[&after, &PC1_PAGE]).await.unwrap();
        let ids: Vec<String> = rows.iter().map(pc1_execution).collect();
        let Some(last) = ids.last() else { break };
        after = last.clone();
        for r in client.query(&journals, &[&ids]).await.unwrap() {
            std::hint::black_box(r.get::<_, String>(0));
            pc1_entry(&r, 1);
            entries += 1;
        }
        executions += ids.len();
        if (ids.len() as i64) < PC1_PAGE {
            break;
        }
    }
    (executions, entries, t.elapsed())
}

/// The raw read with one journal query per execution (a round trip each).
async fn pc1_read_each(client: &Client) -> (usize, usize, Duration) {
    let all = client
        .prepare(&format!(
            "SELECT {PC1_EXECUTION} FROM workflow_executions
             WHERE status NOT IN ('completed', 'failed', 'cancelled') ORDER BY id"
        ))
        .await
        .unwrap();
    let journal = client
        .prepare(&format!(
            "SELECT {PC1_ENTRY} FROM step_executions WHERE execution_id = $1 ORDER BY position"
        ))
        .await
        .unwrap();
    let t = Instant::now();
    let ids: Vec<String> = client
        .query(&all, &[])
        .await
        .unwrap()
        .iter()
        .map(pc1_execution)
        .collect();
    let mut entries = 0;
    for id in &ids {
        for r in client.query(&journal, &[id]).await.unwrap() {
            pc1_entry(&r, 0);
            entries += 1;
        }
    }
    (ids.len(), entries, t.elapsed())
}

/// One PC1 round on a copy of the template: the raw reads, the check on a
/// worker runtime and on an admin open, in an order rotated by `order`.
async fn pc1(url: &str, schema: &str, template: &str, d: Durability, order: u32) {
    create_schema(url, schema, d).await;
    copy_schema(url, schema, template).await;
    let client = connect(url, Some(schema)).await;
    let entries: i64 = client
        .query_one("SELECT count(*) FROM step_executions", &[])
        .await
        .unwrap()
        .get(0);
    let entries = entries as usize;
    let executions = super::check::C1_EXECUTIONS;
    for side in 0..3 {
        match (order + side) % 3 {
            0 => {
                for (prefix, (n, e, t)) in [
                    ("base_", pc1_read_pages(&client).await),
                    ("min_", pc1_read_each(&client).await),
                ] {
                    assert_eq!((n, e), (executions, entries), "{prefix} read");
                    let s = t.as_secs_f64();
                    report(&format!("{prefix}check_s"), s);
                    report(&format!("{prefix}exec_s"), n as f64 / s);
                    report(&format!("{prefix}entries_s"), e as f64 / s);
                }
                report("entries", entries as f64);
            }
            1 => {
                let t = Instant::now();
                let rt = open_pg(url, schema, d).await;
                report("worker_open_s", t.elapsed().as_secs_f64());
                super::check::time_check(&rt, "worker_", entries).await;
                rt.shutdown().await.unwrap();
            }
            _ => {
                let t = Instant::now();
                let rt = Runtime::builder()
                    .postgres(url)
                    .schema(schema)
                    .admin()
                    .open()
                    .await
                    .expect("open as an admin on PostgreSQL");
                report("admin_open_s", t.elapsed().as_secs_f64());
                super::check::time_check(&rt, "admin_", entries).await;
                rt.shutdown().await.unwrap();
            }
        }
    }
}

// ------------------------------------------------------------------------
// The parent.

const PG_ROWS: &[Row] = &[
    row(
        "p1",
        "steps/s",
        "steps_s",
        Some("base_steps_s"),
        Target::RatioAtFull(0.75),
    ),
    row(
        "p1",
        "commits/step",
        "commits_step",
        Some("base_commits_step"),
        Target::None,
    ),
    row(
        "p1",
        "WAL bytes/step",
        "wal_bytes_step",
        Some("base_wal_bytes_step"),
        Target::None,
    ),
    row(
        "p1",
        "steps/s vs 3 round trips + lock",
        "steps_s",
        Some("rt3_steps_s"),
        Target::None,
    ),
    row(
        "p1",
        "WAL bytes/step vs 3 round trips + lock",
        "wal_bytes_step",
        Some("rt3_wal_bytes_step"),
        Target::None,
    ),
    row(
        "p1",
        "  commits of a 0-step life",
        "life_commits_empty",
        None,
        Target::None,
    ),
    row(
        "p2",
        "steps/s",
        "steps_s",
        Some("base_steps_s"),
        Target::RatioAtFull(0.6),
    ),
    row(
        "p2",
        "workflows/s",
        "workflows_s",
        Some("base_workflows_s"),
        Target::None,
    ),
    row(
        "p2",
        "step latency p50 ms",
        "p50_ms",
        Some("base_p50_ms"),
        Target::None,
    ),
    row(
        "p2",
        "step latency p99 ms",
        "p99_ms",
        Some("base_p99_ms"),
        Target::AtMost(20.0),
    ),
    row(
        "p2",
        "commits/step",
        "commits_step",
        Some("base_commits_step"),
        Target::None,
    ),
    row(
        "p2",
        "WAL bytes/step",
        "wal_bytes_step",
        Some("base_wal_bytes_step"),
        Target::None,
    ),
    row(
        "p2",
        "CPU us/step (worker process)",
        "us_per_step",
        Some("base_us_per_step"),
        Target::None,
    ),
    row(
        "p2",
        "steps/s vs multi-row baseline",
        "steps_s",
        Some("many_steps_s"),
        Target::None,
    ),
    row(
        "p2",
        "CPU us/step vs multi-row baseline",
        "us_per_step",
        Some("many_us_per_step"),
        Target::None,
    ),
    row(
        "p2",
        "  baseline rows per batch",
        "base_rows_per_batch",
        None,
        Target::None,
    ),
    row(
        "p2n-1",
        "total steps/s, 1 worker",
        "steps_s",
        Some("base_steps_s"),
        Target::RatioAtFull(0.8),
    ),
    row(
        "p2n-2",
        "total steps/s, 2 workers",
        "steps_s",
        Some("base_steps_s"),
        Target::RatioAtFull(0.8),
    ),
    row(
        "p2n-4",
        "total steps/s, 4 workers",
        "steps_s",
        Some("base_steps_s"),
        Target::RatioAtFull(0.8),
    ),
    row(
        "p2n-1",
        "  step latency p99 ms (worst)",
        "p99_ms",
        Some("base_p99_ms"),
        Target::None,
    ),
    row(
        "p2n-2",
        "  step latency p99 ms (worst)",
        "p99_ms",
        Some("base_p99_ms"),
        Target::None,
    ),
    row(
        "p2n-4",
        "  step latency p99 ms (worst)",
        "p99_ms",
        Some("base_p99_ms"),
        Target::None,
    ),
    row(
        "p2n-4",
        "  latest child start ms (worst)",
        "late_start_ms",
        Some("base_late_start_ms"),
        Target::None,
    ),
    row(
        "p3",
        "replayed steps/s (open to end)",
        "steps_s",
        None,
        Target::AtLeast(250_000.0),
    ),
    row("p3", "  open() ms", "open_ms", None, Target::None),
    row(
        "p3",
        "  open to first poll ms",
        "load_ms",
        None,
        Target::None,
    ),
    row("p3", "  body replay ms", "body_ms", None, Target::None),
    row(
        "p3",
        "  journal bytes/step (table+index)",
        "journal_bytes_step",
        None,
        Target::None,
    ),
    row(
        "p4",
        "RSS bytes/sleeper (live owner)",
        "bytes_per_sleeper",
        None,
        Target::AtMost(2048.0),
    ),
    row(
        "p4",
        "  after malloc_trim",
        "bytes_per_sleeper_trimmed",
        None,
        Target::None,
    ),
    row(
        "p4",
        "  setup s (10k starts)",
        "setup_s",
        None,
        Target::None,
    ),
    row(
        "p4",
        "  all suspended before the first wake",
        "suspended_before_first_wake",
        None,
        Target::AtLeast(1.0),
    ),
    row("p4", "lateness p50 ms", "late_p50_ms", None, Target::None),
    row(
        "p4",
        "lateness p99 ms",
        "late_p99_ms",
        None,
        Target::AtMost(20.0),
    ),
    row("p4", "lateness max ms", "late_max_ms", None, Target::None),
    row(
        "p4-orphans",
        "orphans: lateness p50 ms",
        "late_p50_ms",
        None,
        Target::None,
    ),
    row(
        "p4-orphans",
        "orphans: lateness max ms",
        "late_max_ms",
        None,
        Target::AtMost(1050.0),
    ),
    row(
        "p4-orphans",
        "  setup s (10k starts)",
        "setup_s",
        None,
        Target::None,
    ),
    row(
        "p4-orphans",
        "  clean shutdown of the starter s",
        "shutdown_s",
        None,
        Target::None,
    ),
    row(
        "p4-orphans",
        "  handed over before the first wake",
        "handed_over_before_first_wake",
        None,
        Target::AtLeast(1.0),
    ),
    row(
        "p5",
        "kill -9 to all completed s",
        "all_completed_after_kill_s",
        None,
        Target::AtMost(15.0),
    ),
    row(
        "p5",
        "  kill -9 to last body done s",
        "bodies_done_after_kill_s",
        None,
        Target::None,
    ),
    row(
        "p5",
        "completed steps run again",
        "completed_step_reruns",
        None,
        Target::Zero,
    ),
    row(
        "p5",
        "  in-flight steps run again",
        "in_flight_reruns",
        None,
        Target::None,
    ),
    row(
        "p5",
        "  10k starts, 5 steps each s",
        "build_s",
        None,
        Target::None,
    ),
    row(
        "p6",
        "CPU us/step (worker process)",
        "us_per_step",
        None,
        Target::AtMost(10.0),
    ),
    row("p6", "  steps/s", "steps_s", None, Target::None),
    row(
        "p6",
        "  other sessions at start",
        "other_sessions",
        None,
        Target::None,
    ),
];

fn pg_extra(opts: &Opts, prefix: &str) -> Vec<String> {
    vec![
        "--pg".to_owned(),
        opts.pg.clone(),
        "--schema-prefix".to_owned(),
        prefix.to_owned(),
    ]
}

/// P2N with `n` workers: `n` children on one schema (the library) told to
/// start at one moment, then `n` baseline children likewise. Total steps
/// over the time from that moment to the last child's end.
fn p2n(
    exe: &Path,
    opts: &Opts,
    prefix: &str,
    sync: &str,
    n: u32,
    round: u32,
) -> Vec<(String, f64)> {
    let schema = format!("{prefix}_p2n_{n}_{round}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The schema exists before the workers start: none waits on the
    // migration lock while the others run.
    runtime.block_on(async {
        drop_schema(&opts.pg, &schema).await;
        create_schema(&opts.pg, &schema, durability(sync)).await;
        let c = connect(&opts.pg, Some(&schema)).await;
        base_table(&c).await;
    });
    let mut pairs = Vec::new();
    for (task, key) in [("p2n-lib", ""), ("p2n-base", "base_")] {
        let start_at = now_ms() + 1_500 + 250 * u64::from(n);
        let children: Vec<_> = (0..n)
            .map(|_| {
                std::process::Command::new(exe)
                    .args(["--child", task, "--durability", sync, "--dir"])
                    .arg(&opts.dir)
                    .args(["--file", &schema, "--start-at", &start_at.to_string()])
                    .args(pg_extra(opts, prefix))
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("run a P2N child")
            })
            .collect();
        let outs: Vec<Vec<(String, f64)>> = children
            .into_iter()
            .map(|c| super::parse_child(c.wait_with_output().expect("wait"), task))
            .collect();
        let get = |o: &[(String, f64)], k: &str| {
            o.iter()
                .find(|(name, _)| name == k)
                .map_or(f64::NAN, |(_, v)| *v)
        };
        let last_end = outs
            .iter()
            .map(|o| get(o, &format!("{key}end_ms")))
            .fold(0.0, f64::max);
        let late = outs
            .iter()
            .map(|o| get(o, "late_start_ms"))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let total = f64::from(n) * (W2_WORKFLOWS * W2_STEPS as usize) as f64;
        pairs.push((
            format!("{key}steps_s"),
            total / ((last_end - start_at as f64) / 1000.0),
        ));
        pairs.push((
            format!("{key}p99_ms"),
            outs.iter()
                .map(|o| get(o, &format!("{key}p99_ms")))
                .fold(0.0, f64::max),
        ));
        pairs.push((format!("{key}late_start_ms"), late));
    }
    runtime.block_on(drop_schema(&opts.pg, &schema));
    pairs
}

pub(super) fn parent(opts: Opts) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    std::fs::create_dir_all(&opts.dir).expect("create the benchmark directory");
    let wants = |w: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == w);
    let started = Instant::now();
    let prefix = format!("rfb{}", std::process::id());
    let extra = pg_extra(&opts, &prefix);
    let mut results: Results = BTreeMap::new();
    let progress = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());
    let template = format!("{prefix}_p3_template");
    let pc1_template = format!("{prefix}_pc1_template");
    if wants("pc1") {
        progress("building 10,000 sleeping executions of 20 steps on PostgreSQL (PC1)");
        let mut args = extra.clone();
        args.extend(["--file".to_owned(), pc1_template.clone()]);
        for (k, v) in run_child(&exe, &opts, "pc1-build", "off", &args) {
            eprintln!("         {k} {}", super::fmt_num(v));
        }
    }
    if wants("p3") {
        progress("building the 100,000-step journal on PostgreSQL (P3)");
        let mut args = extra.clone();
        args.extend(["--file".to_owned(), template.clone()]);
        let out = run_child(&exe, &opts, "p3-build", "off", &args);
        let size: Vec<(String, f64)> = out
            .into_iter()
            .filter(|(k, _)| k != "other_sessions")
            .collect();
        add_round(&mut results, "p3", "off", size);
    }
    for round in 0..opts.rounds {
        for sync in &opts.durabilities {
            for w in ["p1", "p2", "p3", "p4", "p4-orphans", "p6"] {
                if !wants(w) {
                    continue;
                }
                progress(&format!(
                    "round {} of {}: {w} at {sync}",
                    round + 1,
                    opts.rounds
                ));
                let mut args = extra.clone();
                args.extend(["--order".to_owned(), round.to_string()]);
                if w == "p3" {
                    args.extend(["--file".to_owned(), template.clone()]);
                }
                let out = run_child(&exe, &opts, w, sync, &args);
                add_round(&mut results, w, sync, out);
            }
            // The check writes nothing: the first durability is enough.
            if wants("pc1") && *sync == opts.durabilities[0] {
                progress(&format!(
                    "round {} of {}: pc1 (check) at {sync}",
                    round + 1,
                    opts.rounds
                ));
                let mut args = extra.clone();
                args.extend([
                    "--order".to_owned(),
                    round.to_string(),
                    "--file".to_owned(),
                    pc1_template.clone(),
                ]);
                let out = run_child(&exe, &opts, "pc1", sync, &args);
                for (side, pairs) in super::check::split("pc1", out) {
                    add_round(&mut results, &side, sync, pairs);
                }
            }
            if wants("p5") {
                progress(&format!(
                    "round {} of {}: p5 (kill -9 of a worker holding {P5_EXECUTIONS} executions) at {sync}",
                    round + 1,
                    opts.rounds
                ));
                super::wait_for_idle(&opts);
                let pairs = p5(&exe, &opts, &prefix, sync, round);
                add_round(&mut results, "p5", sync, pairs);
            }
            if wants("p2n") {
                for &n in P2N_WORKERS {
                    progress(&format!(
                        "round {} of {}: p2n with {n} worker(s) at {sync}",
                        round + 1,
                        opts.rounds
                    ));
                    super::wait_for_idle(&opts);
                    let pairs = p2n(&exe, &opts, &prefix, sync, n, round);
                    add_round(&mut results, &format!("p2n-{n}"), sync, pairs);
                }
            }
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Children that failed leave their schemas: every one of this run goes.
        let client = connect(&opts.pg, None).await;
        let rows = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1",
                &[&format!("{prefix}\\_%")],
            )
            .await
            .unwrap();
        for r in rows {
            let name: String = r.get(0);
            drop_schema(&opts.pg, &name).await;
        }
    });
    if results.keys().any(|(w, _)| !w.starts_with("pc1")) {
        print_table(&results, PG_ROWS);
    }
    if wants("pc1") {
        print_table(
            &results,
            &super::check::rows("pc1-worker", "pc1-admin", true),
        );
    }
    println!("\nper round (library / baseline of the same child):");
    for ((w, sync), keys) in &results {
        for (k, v) in keys {
            if k.starts_with("ratio:") || k == "steps_s" || k == "base_steps_s" {
                let v: Vec<String> = v.iter().map(|x| super::fmt_num(*x)).collect();
                println!("  {w} {sync} {k}: {}", v.join(", "));
            }
        }
    }
    println!(
        "\n{} round(s) on PostgreSQL ({}); {} s in all",
        opts.rounds,
        opts.pg,
        started.elapsed().as_secs()
    );
}
