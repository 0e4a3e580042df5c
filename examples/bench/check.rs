//! C1: the pre-deploy check (`Runtime::check`) on a database of 10,000
//! unfinished executions, each sleeping after 20 completed steps; beside
//! it, the raw SQLite read of the same rows on one rusqlite connection.
//!
//! The template is built once per run through the runtime (all 10,000
//! started at once, `Durability::Off`, shut down cleanly once every one
//! sleeps) and copied into each round's file. A round (one child) times,
//! in an order rotated by round:
//! - the raw read: every unfinished execution's row (the columns the
//!   check loads) in one query, then each one's journal rows with
//!   `SELECT .. FROM step_executions WHERE execution_id = ? ORDER BY
//!   position`, every value read into an owned Rust value;
//! - `rt.check()` on a worker runtime (opened, then timed);
//! - `rt.check()` on an admin open (`Runtime::builder().path(..).admin()`).
//!
//! Every figure of the check sides comes with the ratio to the raw read of
//! the same child.

use std::path::Path;
use std::time::{Duration, Instant};

use replayflow::{AnyError, Context, Durability, ExecutionStatus, ListFilter, Runtime, workflow};
use rusqlite::Connection;

use super::{Row, Target, copy_template, open, remove_db, report, row};

/// Unfinished executions in the database the check reads.
pub(super) const C1_EXECUTIONS: usize = 10_000;
/// Completed steps in each one's journal, before its sleep.
const C1_STEPS: u32 = 20;
/// How long each one sleeps: far past the end of the run.
const C1_SLEEP: Duration = Duration::from_secs(3600);

#[workflow]
async fn c1_sleeper(ctx: Context, steps: u32) -> Result<u32, AnyError> {
    for i in 0..steps {
        super::noop(i).await?;
    }
    ctx.sleep(C1_SLEEP).await;
    Ok(steps)
}

/// Builds the template: 10,000 executions started at once, each running
/// its 20 steps and going to sleep for an hour; a clean shutdown once the
/// journal says every one sleeps.
pub(super) async fn build(template: &Path) {
    remove_db(template);
    build_on(open(template, Durability::Off).await).await;
    report("db_bytes", super::checkpointed_size(template) as f64);
}

/// Starts the 10,000 sleepers on `rt` at once, waits until the journal
/// says every one sleeps, and shuts `rt` down.
pub(super) async fn build_on(rt: Runtime) {
    let t = Instant::now();
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..C1_EXECUTIONS {
        let rt = rt.clone();
        starts.spawn(async move {
            c1_sleeper::start(&rt, format!("c1-{i:05}"), C1_STEPS)
                .await
                .unwrap();
        });
    }
    while let Some(done) = starts.join_next().await {
        done.unwrap();
    }
    let started = t.elapsed();
    loop {
        let counts = rt.count(ListFilter::new()).await.unwrap();
        let sleeping = counts
            .iter()
            .find(|(s, _)| *s == ExecutionStatus::Sleeping)
            .map_or(0, |(_, n)| *n);
        if sleeping as usize >= C1_EXECUTIONS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rt.shutdown().await.unwrap();
    drop(rt);
    report("build_starts_s", started.as_secs_f64());
    report("build_s", t.elapsed().as_secs_f64());
}

/// What the raw read found.
struct RawRead {
    executions: usize,
    entries: usize,
    elapsed: Duration,
}

/// An execution's row as the check loads it, in owned values.
#[allow(dead_code)] // Read to be paid for, never looked at.
struct ExecRow {
    id: String,
    workflow: String,
    status: String,
    codec: String,
    input: Vec<u8>,
    output: Option<Vec<u8>>,
    error: Option<Vec<u8>>,
    error_message: Option<String>,
    options: String,
    restart_attempt: i64,
    wake_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
    completed_at: Option<i64>,
    app_version: String,
}

/// A journal row as the check loads it, in owned values.
#[allow(dead_code)] // Read to be paid for, never looked at.
struct EntryRow {
    position: i64,
    kind: String,
    name: String,
    occurrence: i64,
    status: String,
    attempts: i64,
    output: Option<Vec<u8>>,
    error: Option<Vec<u8>>,
    error_message: Option<String>,
    wake_at: Option<i64>,
    branch: String,
    local: i64,
    value_type: Option<i64>,
}

/// The raw baseline: one connection reads every unfinished execution's row
/// and then, one execution at a time, its journal, with the columns and
/// the order the check's store query uses.
fn raw_read(db: &Path) -> RawRead {
    let conn = Connection::open(db).expect("open the raw reader");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let t = Instant::now();
    let rows: Vec<ExecRow> = conn
        .prepare(
            "SELECT id, workflow_name, status, codec, input, output, error, error_message,
                    options, restart_attempt, wake_at, created_at, updated_at, completed_at,
                    app_version
             FROM workflow_executions
             WHERE status NOT IN ('completed', 'failed', 'cancelled')
             ORDER BY id",
        )
        .unwrap()
        .query_map([], |r| {
            Ok(ExecRow {
                id: r.get(0)?,
                workflow: r.get(1)?,
                status: r.get(2)?,
                codec: r.get(3)?,
                input: r.get(4)?,
                output: r.get(5)?,
                error: r.get(6)?,
                error_message: r.get(7)?,
                options: r.get(8)?,
                restart_attempt: r.get(9)?,
                wake_at: r.get(10)?,
                created_at: r.get(11)?,
                updated_at: r.get(12)?,
                completed_at: r.get(13)?,
                app_version: r.get(14)?,
            })
        })
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let mut journal = conn
        .prepare(
            "SELECT position, kind, name, occurrence, status, attempts, output, error,
                    error_message, wake_at, branch, local, value_type
             FROM step_executions WHERE execution_id = ?1 ORDER BY position",
        )
        .unwrap();
    let mut entries = 0;
    for row in &rows {
        let journal: Vec<EntryRow> = journal
            .query_map([&row.id], |r| {
                Ok(EntryRow {
                    position: r.get(0)?,
                    kind: r.get(1)?,
                    name: r.get(2)?,
                    occurrence: r.get(3)?,
                    status: r.get(4)?,
                    attempts: r.get(5)?,
                    output: r.get(6)?,
                    error: r.get(7)?,
                    error_message: r.get(8)?,
                    wake_at: r.get(9)?,
                    branch: r.get(10)?,
                    local: r.get(11)?,
                    value_type: r.get(12)?,
                })
            })
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        entries += journal.len();
    }
    RawRead {
        executions: rows.len(),
        entries,
        elapsed: t.elapsed(),
    }
}

/// Times `rt.check()` and reports it under `side`: the check's time, its
/// rates per execution and per journal entry (`entries` as the raw read
/// counted them), and how many it checked and found.
pub(super) async fn time_check(rt: &Runtime, side: &str, entries: usize) {
    let t = Instant::now();
    let checked = rt.check().await.expect("run the check");
    let elapsed = t.elapsed().as_secs_f64();
    assert_eq!(checked.checked, C1_EXECUTIONS, "{side}: {checked}");
    assert!(checked.passed(), "{side}: {checked}");
    report(&format!("{side}checked"), checked.checked as f64);
    report(&format!("{side}findings"), checked.findings.len() as f64);
    report(&format!("{side}check_s"), elapsed);
    report(&format!("{side}exec_s"), checked.checked as f64 / elapsed);
    report(&format!("{side}entries_s"), entries as f64 / elapsed);
}

/// One round: the raw read, the check on a worker runtime and on an admin
/// open, in an order rotated by `order`.
pub(super) async fn measure(template: &Path, db: &Path, d: Durability, order: u32) {
    copy_template(template, db);
    let entries: i64 = Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM step_executions", [], |r| r.get(0))
        .unwrap();
    let entries = entries as usize;
    for side in 0..3 {
        match (order + side) % 3 {
            0 => {
                let raw = raw_read(db);
                assert_eq!(raw.executions, C1_EXECUTIONS);
                assert_eq!(raw.entries, entries);
                let s = raw.elapsed.as_secs_f64();
                report("base_check_s", s);
                report("base_exec_s", raw.executions as f64 / s);
                report("base_entries_s", raw.entries as f64 / s);
                report("entries", raw.entries as f64);
            }
            1 => {
                let t = Instant::now();
                let rt = open(db, d).await;
                report("worker_open_s", t.elapsed().as_secs_f64());
                time_check(&rt, "worker_", entries).await;
                rt.shutdown().await.unwrap();
            }
            _ => {
                let t = Instant::now();
                let rt = Runtime::builder()
                    .path(db)
                    .admin()
                    .open()
                    .await
                    .expect("open as an admin");
                report("admin_open_s", t.elapsed().as_secs_f64());
                time_check(&rt, "admin_", entries).await;
                drop(rt);
            }
        }
    }
}

/// A child's figures, split into the worker side (`{name}-worker`) and
/// the admin side (`{name}-admin`), each with the raw reads' figures, so
/// the parent pairs each side with the baselines of its own child.
pub(super) fn split(name: &str, pairs: Vec<(String, f64)>) -> Vec<(String, Vec<(String, f64)>)> {
    let side = |prefix: &str| -> Vec<(String, f64)> {
        pairs
            .iter()
            .filter_map(|(k, v)| {
                let k = match k.strip_prefix(prefix) {
                    Some(k) => k.to_owned(),
                    None if k.starts_with("base_") || k.starts_with("min_") || k == "entries" => {
                        k.clone()
                    }
                    None => return None,
                };
                Some((k, *v))
            })
            .collect()
    };
    vec![
        (format!("{name}-worker"), side("worker_")),
        (format!("{name}-admin"), side("admin_")),
    ]
}

/// The table's rows of one store's check: `worker` and `admin` name the
/// two sides' workloads; `per_execution`: a second baseline (`min_`) reads
/// each journal with a query of its own.
pub(super) fn rows(worker: &'static str, admin: &'static str, per_execution: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    for w in [worker, admin] {
        rows.extend([
            row(w, "checked executions", "checked", None, Target::None),
            row(w, "  journal entries read", "entries", None, Target::None),
            row(w, "findings", "findings", None, Target::None),
            row(
                w,
                "check s (vs raw read s)",
                "check_s",
                Some("base_check_s"),
                Target::AtMost(5.0),
            ),
        ]);
        if per_execution {
            rows.push(row(
                w,
                "  vs per-execution read s",
                "check_s",
                Some("min_check_s"),
                Target::None,
            ));
        }
        rows.extend([
            row(
                w,
                "  executions/s",
                "exec_s",
                Some("base_exec_s"),
                Target::None,
            ),
            row(
                w,
                "  entries/s",
                "entries_s",
                Some("base_entries_s"),
                Target::None,
            ),
            row(
                w,
                "  open() s (not in check s)",
                "open_s",
                None,
                Target::None,
            ),
        ]);
    }
    rows
}
