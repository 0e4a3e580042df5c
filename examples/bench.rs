//! Throughput, latency, memory and recovery figures of the runtime, each
//! next to a raw rusqlite baseline measured in the same run, on the same disk,
//! schema and `synchronous` setting.
//!
//! ```text
//! cargo build --release --example bench
//! target/release/examples/bench                       # everything, FULL and NORMAL
//! target/release/examples/bench --rounds 1 --only w1,w2 --durability full
//! ```
//!
//! Options: `--rounds N` (default 5 rounds of W1, W2, W3, W6, C1 and 3 of
//! W4, W5; `--rounds` sets both), `--only w1,w2,w3,w4,w5,w6,c1,size,fsync,wal`,
//! `--durability full,normal`, `--dir PATH` (default `target/bench` of this
//! workspace), `--no-strace`, `--wait-idle SECONDS` (before each measurement,
//! wait up to that long for the machine to be at least 90% idle: for shared
//! machines).
//!
//! Every measurement runs in a child process of its own (this binary with
//! `--child`), so memory figures, leaked tasks and static counters of one
//! workload never touch another. The parent prints the median, min and max
//! over the rounds and the ratio to the baseline of the same child.
//!
//! Workloads:
//! - W1: one workflow, 1,000 sequential trivial steps; baselines: one
//!   `INSERT` per transaction into the same `step_executions` table, and one
//!   per transaction of the smallest row a step could be (execution id,
//!   position, 8-byte output, clustered on the key). With it, the WAL
//!   frames (pages) per commit and WAL bytes per step of each (`wal`).
//! - W2: 200 workflows x 10 steps started together, each awaited with
//!   `handle.result()`; baseline: 200 tasks that each await their own row's
//!   commit through one writer thread committing all queued rows per
//!   transaction.
//! - W3: resume (open, recovery, replay) of an execution whose journal holds
//!   100,000 completed steps.
//! - W4: 10,000 suspended sleepers: resident memory per sleeper and wake-up
//!   lateness, wake times spread over 10 s, and all due at once.
//! - W5: open a database holding 10,000 interrupted executions (5 completed
//!   steps each, in their 6th when their process was SIGKILLed) and run them
//!   all to completion.
//! - W6: CPU time per step on an in-memory database, 200 workflows at once.
//! - C1: the pre-deploy check (`Runtime::check`) of 10,000 sleeping
//!   executions of 20 completed steps each, on a worker runtime and on an
//!   admin open; baseline: one rusqlite connection reading the same rows
//!   (`bench/check.rs`).
//! - Journal bytes per step after a checkpoint; fsyncs per step (strace).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use replayflow::{
    AnyError, Context, Durability, ExecutionStatus, ListFilter, Runtime, step, workflow,
};
use rusqlite::Connection;
use tokio::sync::Notify;

#[path = "bench/check.rs"]
mod check;
#[path = "bench/postgres.rs"]
mod postgres;

// ------------------------------------------------------------------------
// Sizes of the workloads.

const W1_STEPS: u32 = 1_000;
const W2_WORKFLOWS: usize = 200;
const W2_STEPS: u32 = 10;
const W3_STEPS: u32 = 100_000;
const W4_SLEEPERS: usize = 10_000;
/// Wake times of the spread case are spread evenly over this.
const W4_SPREAD: Duration = Duration::from_secs(10);
/// Time between starting the sleepers and the first wake time: every sleeper
/// is suspended by then (the child reports it when not).
const W4_HEAD_START: Duration = Duration::from_secs(3);
/// Starts in flight at once when W4 starts its sleepers.
const START_CONCURRENCY: usize = 256;
const W5_EXECUTIONS: usize = 10_000;
const W5_DONE_STEPS: u32 = 5;
const W6_WORKFLOWS: usize = 200;
const W6_STEPS: u32 = 250;

// ------------------------------------------------------------------------
// Counters the workflows report to.

/// A count the benchmark waits on.
struct Counter {
    n: AtomicUsize,
    notify: Notify,
}

impl Counter {
    const fn new() -> Counter {
        Counter {
            n: AtomicUsize::new(0),
            notify: Notify::const_new(),
        }
    }

    fn bump(&self) {
        self.n.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_one();
    }

    fn get(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }

    async fn wait_for(&self, target: usize) {
        while self.get() < target {
            // `notify_one` leaves a permit when nobody waits: no wake-up is lost.
            self.notify.notified().await;
        }
    }
}

/// An instant recorded by a workflow body.
struct Mark(Mutex<Option<Instant>>);

impl Mark {
    const fn new() -> Mark {
        Mark(Mutex::new(None))
    }

    fn set(&self) {
        *self.0.lock().unwrap() = Some(Instant::now());
    }

    fn get(&self) -> Instant {
        self.0.lock().unwrap().expect("mark not set")
    }
}

static W1_BEGIN: Mark = Mark::new();
static W1_END: Mark = Mark::new();

/// Step latencies of W2, in microseconds.
static W2_LATENCY: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// While set, the W3 workflow waits forever after its steps (the journal is
/// being built); cleared in the process that times the replay.
static W3_BLOCK: AtomicBool = AtomicBool::new(true);
static W3_BUILT: Counter = Counter::new();
static W3_ENTER: Mark = Mark::new();
static W3_END: Mark = Mark::new();
static W3_DONE: Counter = Counter::new();

/// Sleepers whose future was dropped before their sleep ended (suspended).
static W4_SUSPENDED: Counter = Counter::new();
static W4_WOKEN: Counter = Counter::new();
/// Wake-up lateness of W4, in microseconds.
static W4_LATENESS: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// While set, the 6th step of W5 waits forever.
static W5_BLOCK: AtomicBool = AtomicBool::new(true);
static W5_BLOCKED: Counter = Counter::new();
static W5_DONE: Counter = Counter::new();

static W6_DONE: Counter = Counter::new();

// ------------------------------------------------------------------------
// The workflows.

#[step]
async fn noop(i: u32) -> Result<u32, AnyError> {
    Ok(i)
}

#[workflow]
async fn w1_sequential(_ctx: Context, steps: u32) -> Result<u32, AnyError> {
    W1_BEGIN.set();
    for i in 0..steps {
        noop(i).await?;
    }
    W1_END.set();
    Ok(steps)
}

#[workflow]
async fn w2_concurrent(_ctx: Context, steps: u32) -> Result<u32, AnyError> {
    let mut latencies = Vec::with_capacity(steps as usize);
    for i in 0..steps {
        // Measures this run's step latency, which the result does not depend on.
        #[allow_nondeterministic]
        let t = Instant::now();
        noop(i).await?;
        latencies.push(t.elapsed().as_micros() as u64);
    }
    W2_LATENCY.lock().unwrap().extend(latencies);
    Ok(steps)
}

#[workflow]
async fn w3_long(_ctx: Context, steps: u32) -> Result<u32, AnyError> {
    W3_ENTER.set();
    for i in 0..steps {
        noop(i).await?;
    }
    if W3_BLOCK.load(Ordering::SeqCst) {
        W3_BUILT.bump();
        std::future::pending::<()>().await;
    }
    W3_END.set();
    W3_DONE.bump();
    Ok(steps)
}

/// Lives in a sleeper's future: dropped before the sleep ended means suspended.
struct SuspendProbe {
    woke: bool,
}

impl Drop for SuspendProbe {
    fn drop(&mut self) {
        if !self.woke {
            W4_SUSPENDED.bump();
        }
    }
}

#[step]
async fn after_sleep(wake_at_ms: u64) -> Result<u64, AnyError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64;
    let late = now.saturating_sub(wake_at_ms * 1000);
    W4_LATENESS.lock().unwrap().push(late);
    W4_WOKEN.bump();
    Ok(late)
}

#[workflow]
async fn w4_sleeper(ctx: Context, wake_at_ms: u64) -> Result<u64, AnyError> {
    let mut probe = SuspendProbe { woke: false };
    ctx.sleep_until(UNIX_EPOCH + Duration::from_millis(wake_at_ms))
        .await;
    probe.woke = true;
    after_sleep(wake_at_ms).await
}

#[step]
async fn w5_sixth() -> Result<u32, AnyError> {
    if W5_BLOCK.load(Ordering::SeqCst) {
        W5_BLOCKED.bump();
        std::future::pending::<()>().await;
    }
    Ok(6)
}

#[workflow]
async fn w5_interrupted(_ctx: Context, steps: u32) -> Result<u32, AnyError> {
    for i in 0..steps {
        noop(i).await?;
    }
    let six = w5_sixth().await?;
    W5_DONE.bump();
    Ok(six)
}

#[workflow]
async fn w6_cpu(_ctx: Context, steps: u32) -> Result<u32, AnyError> {
    for i in 0..steps {
        noop(i).await?;
    }
    W6_DONE.bump();
    Ok(steps)
}

// ------------------------------------------------------------------------
// Helpers.

fn durability(name: &str) -> Durability {
    match name {
        "full" => Durability::Full,
        "normal" => Durability::Normal,
        "off" => Durability::Off,
        other => panic!("unknown durability `{other}` (full, normal, off)"),
    }
}

fn synchronous(name: &str) -> &'static str {
    match name {
        "full" => "FULL",
        "normal" => "NORMAL",
        _ => "OFF",
    }
}

/// Removes a database and its sidecar files.
fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal", ".lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn file_len(path: &Path, suffix: &str) -> u64 {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    std::fs::metadata(PathBuf::from(p))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Checkpoints the WAL into the database and returns the bytes on disk
/// (database plus `-wal`).
/// Database + WAL size after a checkpoint. The file keeps its modification
/// time: measuring it is not a change the next open should check for.
fn checkpointed_size(path: &Path) -> u64 {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let size = checkpointed_size_inner(path);
    if let Some(modified) = modified {
        let _ = std::fs::File::options()
            .write(true)
            .open(path)
            .and_then(|f| f.set_modified(modified));
    }
    size
}

fn checkpointed_size_inner(path: &Path) -> u64 {
    let conn = Connection::open(path).expect("open for checkpoint");
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let _: (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .expect("checkpoint");
    drop(conn);
    file_len(path, "") + file_len(path, "-wal")
}

/// Opens a runtime on `path` with `durability`.
async fn open(path: &Path, durability: Durability) -> Runtime {
    Runtime::builder()
        .path(path)
        .durability(durability)
        .open()
        .await
        .expect("open the runtime")
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Gives freed heap memory back to the system where the allocator allows.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1] as f64
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// One figure of a child, read by the parent.
fn report(key: &str, value: f64) {
    println!("RESULT {key} {value}");
}

/// The library's schema in a fresh file: a runtime opens (creates) it and
/// shuts down. Then the pragmas the library's writer uses.
async fn baseline_db(path: &Path, sync: &str) -> Connection {
    remove_db(path);
    let rt = open(path, durability(sync)).await;
    rt.shutdown().await.expect("shutdown");
    drop(rt);
    let conn = Connection::open(path).expect("open the baseline");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .unwrap();
    assert!(mode.eq_ignore_ascii_case("wal"));
    conn.pragma_update(None, "synchronous", synchronous(sync))
        .unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    conn
}

/// The baseline's row: a completed step, as the library's `step_executions`
/// table holds one. Built from the table's columns, so it follows the schema:
/// execution (?1), position (?2), output (?3), times (?4); any other column
/// that needs a value gets the position (integers) or '' (text).
fn baseline_insert(conn: &Connection) -> String {
    let mut stmt = conn
        .prepare(
            "SELECT name, type, \"notnull\", dflt_value FROM pragma_table_info('step_executions')",
        )
        .unwrap();
    let columns: Vec<(String, String, bool, Option<String>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    let (mut names, mut values) = (Vec::new(), Vec::new());
    for (name, ty, not_null, default) in columns {
        let value = match name.as_str() {
            "execution_id" => "?1".to_owned(),
            "position" | "occurrence" => "?2".to_owned(),
            "kind" => "'step'".to_owned(),
            "name" => "'noop'".to_owned(),
            "status" => "'completed'".to_owned(),
            "attempts" => "1".to_owned(),
            "output" => "?3".to_owned(),
            "started_at" | "completed_at" => "?4".to_owned(),
            _ if not_null && default.is_none() => {
                if ty.eq_ignore_ascii_case("INTEGER") {
                    // Unique per row, like the position (a column of a
                    // unique index, say).
                    "?2".to_owned()
                } else {
                    "''".to_owned()
                }
            }
            _ => continue,
        };
        names.push(name);
        values.push(value);
    }
    format!(
        "INSERT INTO step_executions ({}) VALUES ({})",
        names.join(", "),
        values.join(", ")
    )
}

/// One row per transaction, `rows` times. Returns the elapsed time.
fn baseline_one_row_commits(conn: &Connection, rows: u32) -> Duration {
    let output = b"123".to_vec();
    let now = now_ms() as i64;
    let sql = baseline_insert(conn);
    let t = Instant::now();
    for i in 0..rows {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached(&sql)
            .unwrap()
            .execute(rusqlite::params!["base-1", i, output, now])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    t.elapsed()
}

/// The second W1 baseline: the smallest row a step commit could write. An
/// execution id, a position and an 8-byte output, clustered on the key (no
/// rowid, no other index), in a table of its own inside a file the library
/// created, so it has the library's page size and pragmas (WAL,
/// `synchronous`, `foreign_keys`). One `INSERT` per transaction: the
/// physical cost of a step commit on this disk.
async fn minimal_db(path: &Path, sync: &str) -> Connection {
    let conn = baseline_db(path, sync).await;
    conn.execute_batch(
        "CREATE TABLE steps (
             execution TEXT NOT NULL,
             position  INTEGER NOT NULL,
             output    BLOB NOT NULL,
             PRIMARY KEY (execution, position)
         ) STRICT, WITHOUT ROWID",
    )
    .unwrap();
    conn
}

/// One minimal row per transaction, `rows` times. Returns the elapsed time.
fn minimal_one_row_commits(conn: &Connection, rows: u32) -> Duration {
    let t = Instant::now();
    for i in 0..rows {
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn.prepare_cached("INSERT INTO steps (execution, position, output) VALUES (?1, ?2, ?3)")
            .unwrap()
            .execute(rusqlite::params!["base-1", i, u64::from(i).to_le_bytes()])
            .unwrap();
        conn.execute_batch("COMMIT").unwrap();
    }
    t.elapsed()
}

/// What a `-wal` file holds: frames and commit frames of its current
/// generation (frames whose salt matches the header's, read up to the first
/// that does not, as SQLite's own recovery reads them), and the page size.
#[derive(Debug, Default, Clone, Copy)]
struct WalCount {
    frames: u64,
    commits: u64,
    page_size: u64,
}

fn wal_count(db: &Path) -> WalCount {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    let Ok(bytes) = std::fs::read(PathBuf::from(p)) else {
        return WalCount::default();
    };
    if bytes.len() < 32 {
        return WalCount::default();
    }
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let page_size = u64::from(be(8));
    let salt = (be(16), be(20));
    let frame = 24 + page_size as usize;
    let mut count = WalCount {
        page_size,
        ..WalCount::default()
    };
    let mut at = 32;
    while at + frame <= bytes.len() && (be(at + 8), be(at + 12)) == salt {
        count.frames += 1;
        if be(at + 4) != 0 {
            count.commits += 1;
        }
        at += frame;
    }
    count
}

/// A connection in an open read transaction on `db`: while it lives, the
/// WAL is never reset, only appended to.
fn pin_wal(db: &Path) -> Connection {
    let conn = Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open a reader");
    conn.execute_batch("BEGIN").unwrap();
    let _: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    conn
}

fn report_wal(db: &Path) {
    let c = wal_count(db);
    report("wal_frames", c.frames as f64);
    report("wal_commits", c.commits as f64);
    report("page_size", c.page_size as f64);
}

// ------------------------------------------------------------------------
// The children: one measurement each.

struct ChildArgs {
    task: String,
    sync: String,
    dir: PathBuf,
    file: Option<PathBuf>,
    n: u32,
    order: u32,
    /// `--store postgres`: the server, and the prefix of the schemas.
    pg: Option<String>,
    schema_prefix: Option<String>,
    /// P2N: when to start (Unix ms).
    start_at: u64,
}

async fn child(a: ChildArgs) {
    let d = durability(&a.sync);
    let pid = std::process::id();
    let db = a.dir.join(format!("{}-{}-{pid}.db", a.task, a.sync));
    remove_db(&db);
    match a.task.as_str() {
        "w1" => {
            let base = a.dir.join(format!("w1-base-{}-{pid}.db", a.sync));
            let min = a.dir.join(format!("w1-min-{}-{pid}.db", a.sync));
            let run_base = async || {
                let conn = baseline_db(&base, &a.sync).await;
                let t = baseline_one_row_commits(&conn, W1_STEPS);
                report("base_steps_s", f64::from(W1_STEPS) / t.as_secs_f64());
                drop(conn);
                remove_db(&base);
            };
            let run_min = async || {
                let conn = minimal_db(&min, &a.sync).await;
                let t = minimal_one_row_commits(&conn, W1_STEPS);
                report("min_steps_s", f64::from(W1_STEPS) / t.as_secs_f64());
                drop(conn);
                remove_db(&min);
            };
            let run_lib = async || {
                let rt = open(&db, d).await;
                let h = w1_sequential::start(&rt, "w1", W1_STEPS).await.unwrap();
                h.result().await.unwrap();
                let t = W1_END.get() - W1_BEGIN.get();
                report("steps_s", f64::from(W1_STEPS) / t.as_secs_f64());
                rt.shutdown().await.unwrap();
            };
            // Rotate the order by round, so no side always runs first on a
            // cold disk or last on a warm one.
            for side in 0..3 {
                match (a.order + side) % 3 {
                    0 => run_base().await,
                    1 => run_min().await,
                    _ => run_lib().await,
                }
            }
        }
        // What W1 writes to the WAL with `--n` steps. A read transaction
        // held open from before the first step keeps SQLite from resetting
        // the WAL (its automatic checkpoint can copy frames but not start
        // over), so every frame written stays in the file to be counted.
        "w1-wal-lib" => {
            let rt = open(&db, d).await;
            let pin = pin_wal(&db);
            let h = w1_sequential::start(&rt, "w1", a.n).await.unwrap();
            h.result().await.unwrap();
            report_wal(&db);
            drop(pin);
            rt.shutdown().await.unwrap();
        }
        "w1-wal-base" => {
            let conn = baseline_db(&db, &a.sync).await;
            let pin = pin_wal(&db);
            baseline_one_row_commits(&conn, a.n);
            report_wal(&db);
            drop(pin);
        }
        "w1-wal-min" => {
            let conn = minimal_db(&db, &a.sync).await;
            let pin = pin_wal(&db);
            minimal_one_row_commits(&conn, a.n);
            report_wal(&db);
            drop(pin);
        }
        "w1-fsync-lib" => {
            let rt = open(&db, d).await;
            let h = w1_sequential::start(&rt, "w1", a.n).await.unwrap();
            h.result().await.unwrap();
            rt.shutdown().await.unwrap();
        }
        "w1-fsync-base" => {
            let conn = baseline_db(&db, &a.sync).await;
            baseline_one_row_commits(&conn, a.n);
        }
        "w2" => {
            let base = a.dir.join(format!("w2-base-{}-{pid}.db", a.sync));
            if a.order.is_multiple_of(2) {
                w2_baseline(&base, &a.sync).await;
                w2_library(&db, d).await;
            } else {
                w2_library(&db, d).await;
                w2_baseline(&base, &a.sync).await;
            }
            remove_db(&base);
        }
        "w3-build" => w3_build(a.file.as_deref().expect("--file")).await,
        "w3" => w3_replay(a.file.as_deref().expect("--file"), &db, d).await,
        "w4-spread" => w4_sleepers(&db, d, W4_SPREAD).await,
        "w4-once" => w4_sleepers(&db, d, Duration::ZERO).await,
        "w5-build" => w5_build(a.file.as_deref().expect("--file")).await,
        "w5" => w5_recover(a.file.as_deref().expect("--file"), &db, d).await,
        "w6" => w6_cpu_per_step().await,
        "c1-build" => check::build(a.file.as_deref().expect("--file")).await,
        "c1" => check::measure(a.file.as_deref().expect("--file"), &db, d, a.order).await,
        other => panic!("unknown child task `{other}`"),
    }
    remove_db(&db);
}

async fn w2_baseline(path: &Path, sync: &str) {
    let conn = baseline_db(path, sync).await;
    type Row = (String, u32, tokio::sync::oneshot::Sender<()>);
    let (tx, rx) = std::sync::mpsc::channel::<Row>();
    let writer = std::thread::spawn(move || {
        let output = b"123".to_vec();
        let sql = baseline_insert(&conn);
        let mut batch: Vec<Row> = Vec::new();
        while let Ok(first) = rx.recv() {
            batch.push(first);
            while let Ok(more) = rx.try_recv() {
                batch.push(more);
            }
            let now = now_ms() as i64;
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            {
                let mut insert = conn.prepare_cached(&sql).unwrap();
                for (exec, position, _) in &batch {
                    insert
                        .execute(rusqlite::params![exec, position, output, now])
                        .unwrap();
                }
            }
            conn.execute_batch("COMMIT").unwrap();
            for (_, _, done) in batch.drain(..) {
                let _ = done.send(());
            }
        }
    });
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..W2_WORKFLOWS {
        let tx = tx.clone();
        tasks.push(tokio::spawn(async move {
            let exec = format!("base-{w}");
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
    writer.join().unwrap();
    latencies.sort_unstable();
    let steps = (W2_WORKFLOWS * W2_STEPS as usize) as f64;
    report("base_steps_s", steps / elapsed);
    report("base_workflows_s", W2_WORKFLOWS as f64 / elapsed);
    report("base_p50_ms", percentile(&latencies, 50.0) / 1000.0);
    report("base_p99_ms", percentile(&latencies, 99.0) / 1000.0);
}

async fn w2_library(path: &Path, d: Durability) {
    let rt = open(path, d).await;
    w2_drive(&rt, "w2").await;
    rt.shutdown().await.unwrap();
    drop(rt);
    let steps = (W2_WORKFLOWS * W2_STEPS as usize) as f64;
    report("journal_bytes_step", checkpointed_size(path) as f64 / steps);
}

/// W2's workflows on `rt` (ids `{ids}-0`, ...): starts them together, awaits each result and
/// reports throughput and step latency.
async fn w2_drive(rt: &Runtime, ids: &str) {
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..W2_WORKFLOWS {
        let rt = rt.clone();
        let ids = ids.to_owned();
        tasks.push(tokio::spawn(async move {
            let h = w2_concurrent::start(&rt, format!("{ids}-{w}"), W2_STEPS)
                .await
                .unwrap();
            h.result().await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let mut latencies = std::mem::take(&mut *W2_LATENCY.lock().unwrap());
    latencies.sort_unstable();
    let steps = (W2_WORKFLOWS * W2_STEPS as usize) as f64;
    report("steps_s", steps / elapsed);
    report("workflows_s", W2_WORKFLOWS as f64 / elapsed);
    report("p50_ms", percentile(&latencies, 50.0) / 1000.0);
    report("p99_ms", percentile(&latencies, 99.0) / 1000.0);
}

/// Runs the 100,000-step workflow once without fsync and leaves it
/// interrupted after its last step: the template W3 resumes.
async fn w3_build(template: &Path) {
    remove_db(template);
    let t = Instant::now();
    let rt = open(template, Durability::Off).await;
    w3_long::start(&rt, "w3", W3_STEPS).await.unwrap();
    W3_BUILT.wait_for(1).await;
    rt.shutdown().await.unwrap();
    report("build_s", t.elapsed().as_secs_f64());
    report(
        "journal_bytes_step",
        checkpointed_size(template) as f64 / f64::from(W3_STEPS),
    );
    // The blocked workflow keeps a reader connection open; this process ends now.
}

/// A copy of a template database, with its lock sidecar when there is one
/// (it tells the next worker whether the last one ended cleanly).
fn copy_template(template: &Path, db: &Path) {
    remove_db(db);
    std::fs::copy(template, db).expect("copy the template");
    // Keep the template's modification time: the copy stands for the same
    // file reopened, which the lock sidecar's clean-end record names.
    let modified = std::fs::metadata(template)
        .and_then(|m| m.modified())
        .expect("read the template's modification time");
    std::fs::File::options()
        .write(true)
        .open(db)
        .and_then(|f| f.set_modified(modified))
        .expect("set the copy's modification time");
    let lock = |p: &Path| {
        let mut s = p.as_os_str().to_owned();
        s.push(".lock");
        PathBuf::from(s)
    };
    if lock(template).exists() {
        std::fs::copy(lock(template), lock(db)).expect("copy the lock sidecar");
    }
}

async fn w3_replay(template: &Path, db: &Path, d: Durability) {
    copy_template(template, db);
    W3_BLOCK.store(false, Ordering::SeqCst);
    let t0 = Instant::now();
    let rt = open(db, d).await;
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
    let out = rt.handle::<w3_long>("w3").result().await.unwrap();
    assert_eq!(out, W3_STEPS);
    rt.shutdown().await.unwrap();
}

async fn w4_sleepers(db: &Path, d: Durability, spread: Duration) {
    let rt = open(db, d).await;
    w4_on(&rt, spread, W4_HEAD_START, async {}).await;
    rt.shutdown().await.unwrap();
}

/// W4 on `rt`: starts the sleepers, waits until all are suspended, runs
/// `suspended` (P4 hands them over to another worker there), then waits
/// until all woke, wherever they run in this process.
async fn w4_on(
    rt: &Runtime,
    spread: Duration,
    head_start: Duration,
    suspended: impl std::future::Future<Output = ()>,
) {
    let n = W4_SLEEPERS;
    trim_heap();
    let rss_before = rss_bytes();
    let t = Instant::now();
    let first_wake = now_ms() + head_start.as_millis() as u64;
    let spread_ms = spread.as_millis() as u64;
    // At most START_CONCURRENCY starts in flight: enough to share each
    // commit among many, without the benchmark's own tasks adding to the peak.
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..n {
        if starts.len() >= START_CONCURRENCY {
            starts.join_next().await.unwrap().unwrap();
        }
        let rt = rt.clone();
        let wake_at = first_wake + spread_ms * i as u64 / n as u64;
        starts.spawn(async move {
            w4_sleeper::start(&rt, format!("sleeper-{i}"), wake_at)
                .await
                .unwrap();
        });
    }
    while let Some(done) = starts.join_next().await {
        done.unwrap();
    }
    // Until all are suspended, or the first is due (then it never will be:
    // the report says so).
    let due_in = Duration::from_millis(first_wake.saturating_sub(now_ms()));
    let _ = tokio::time::timeout(due_in, W4_SUSPENDED.wait_for(n)).await;
    let setup = t.elapsed();
    let before_first_wake = now_ms() < first_wake;
    let rss_after = rss_bytes();
    trim_heap();
    let rss_trimmed = rss_bytes();
    report("setup_s", setup.as_secs_f64());
    report(
        "suspended_before_first_wake",
        if before_first_wake { 1.0 } else { 0.0 },
    );
    report(
        "bytes_per_sleeper",
        rss_after.saturating_sub(rss_before) as f64 / n as f64,
    );
    report(
        "bytes_per_sleeper_trimmed",
        rss_trimmed.saturating_sub(rss_before) as f64 / n as f64,
    );
    suspended.await;
    report(
        "handed_over_before_first_wake",
        if now_ms() < first_wake { 1.0 } else { 0.0 },
    );
    W4_WOKEN.wait_for(n).await;
    report(
        "all_woken_after_last_wake_ms",
        (now_ms() as f64) - (first_wake + spread_ms) as f64,
    );
    let mut late = std::mem::take(&mut *W4_LATENESS.lock().unwrap());
    late.sort_unstable();
    report("late_p50_ms", percentile(&late, 50.0) / 1000.0);
    report("late_p99_ms", percentile(&late, 99.0) / 1000.0);
    report("late_max_ms", percentile(&late, 100.0) / 1000.0);
}

/// 10,000 executions with 5 completed steps each, interrupted in their 6th:
/// the template W5 recovers.
/// 10,000 executions with 5 completed steps each, in their 6th when the
/// process is SIGKILLed by the parent once this prints `READY`: the template
/// W5 recovers.
async fn w5_build(template: &Path) {
    remove_db(template);
    let t = Instant::now();
    let rt = open(template, Durability::Off).await;
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..W5_EXECUTIONS {
        if starts.len() >= START_CONCURRENCY {
            starts.join_next().await.unwrap().unwrap();
        }
        let rt = rt.clone();
        starts.spawn(async move {
            w5_interrupted::start(&rt, format!("r-{i}"), W5_DONE_STEPS)
                .await
                .unwrap();
        });
    }
    while let Some(done) = starts.join_next().await {
        done.unwrap();
    }
    W5_BLOCKED.wait_for(W5_EXECUTIONS).await;
    // Queued start records of the 6th steps commit within the writer's linger.
    tokio::time::sleep(Duration::from_millis(200)).await;
    report("build_s", t.elapsed().as_secs_f64());
    println!("READY");
    std::future::pending::<()>().await;
}

/// Runs the `w5-build` child and SIGKILLs it once its executions are all
/// in their 6th step, then folds the WAL into the database file.
fn build_w5_template(exe: &Path, opts: &Opts, template: &Path) {
    use std::io::BufRead;
    let mut child = Command::new(exe)
        .args(["--child", "w5-build", "--durability", "off", "--dir"])
        .arg(&opts.dir)
        .arg("--file")
        .arg(template)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run the w5-build child");
    let stdout = child.stdout.take().expect("piped stdout");
    let ready = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l == "READY");
    child.kill().expect("SIGKILL the w5-build child");
    let _ = child.wait();
    assert!(
        ready,
        "the w5-build child ended before its executions were ready"
    );
    checkpointed_size(template);
}

async fn w5_recover(template: &Path, db: &Path, d: Durability) {
    copy_template(template, db);
    W5_BLOCK.store(false, Ordering::SeqCst);
    let t0 = Instant::now();
    let rt = open(db, d).await;
    let opened = t0.elapsed();
    W5_DONE.wait_for(W5_EXECUTIONS).await;
    let bodies_done = t0.elapsed();
    // Then until the journal says completed for every one.
    loop {
        let completed = rt
            .list(
                ListFilter::new()
                    .status(ExecutionStatus::Completed)
                    .limit(W5_EXECUTIONS as u32 + 1),
            )
            .await
            .unwrap()
            .len();
        if completed >= W5_EXECUTIONS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let committed = t0.elapsed();
    report("open_s", opened.as_secs_f64());
    report("bodies_done_s", bodies_done.as_secs_f64());
    report("all_completed_s", committed.as_secs_f64());
    rt.shutdown().await.unwrap();
}

async fn w6_cpu_per_step() {
    w6_cpu_on(Runtime::in_memory().await.unwrap()).await;
}

/// W6 on `rt`: CPU of this process per step, over 200 concurrent workflows.
/// The PostgreSQL store's P6 runs it too.
async fn w6_cpu_on(rt: Runtime) {
    // Warm up: prepared statements, allocator, tokio's worker threads.
    let h = w6_cpu::start(&rt, "warm-up", 50).await.unwrap();
    h.result().await.unwrap();
    let warm = W6_DONE.get();
    let cpu0 = cpu_time();
    let t = Instant::now();
    for w in 0..W6_WORKFLOWS {
        let rt = rt.clone();
        tokio::spawn(async move {
            w6_cpu::start(&rt, format!("cpu-{w}"), W6_STEPS)
                .await
                .unwrap();
        });
    }
    W6_DONE.wait_for(warm + W6_WORKFLOWS).await;
    let cpu = cpu_time() - cpu0;
    let wall = t.elapsed();
    let steps = (W6_WORKFLOWS * W6_STEPS as usize) as f64;
    report("us_per_step", cpu.as_secs_f64() * 1e6 / steps);
    report("steps_s", steps / wall.as_secs_f64());
    rt.shutdown().await.unwrap();
}

// ------------------------------------------------------------------------
// The parent: runs the children, aggregates, prints the table.

struct Opts {
    /// Rounds of the quick workloads (W1, W2, W3, W6).
    rounds: u32,
    /// Rounds of the long ones (W4, W5).
    heavy_rounds: u32,
    /// Before each child, wait up to this long for the machine to be idle.
    wait_idle: Option<Duration>,
    only: Vec<String>,
    durabilities: Vec<String>,
    dir: PathBuf,
    strace: bool,
    /// `sqlite` or `postgres`.
    store: String,
    /// The PostgreSQL server of `--store postgres`.
    pg: String,
}

/// Workloads that take long: run `heavy_rounds` times.
const HEAVY: &[&str] = &["w4", "w5"];

/// Per (workload, durability): every key's values over the rounds.
type Results = BTreeMap<(String, String), BTreeMap<String, Vec<f64>>>;

/// Share of CPU time the whole machine spent idle over `window`.
fn idle_share(window: Duration) -> f64 {
    let read = || -> Option<(u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        let idle = fields.get(3)? + fields.get(4).unwrap_or(&0);
        Some((idle, fields.iter().sum()))
    };
    let (Some((i0, t0)), Some((i1, t1))) = (read(), {
        std::thread::sleep(window);
        read()
    }) else {
        return 1.0;
    };
    if t1 <= t0 {
        return 1.0;
    }
    (i1 - i0) as f64 / (t1 - t0) as f64
}

/// With `--wait-idle`: waits (up to the limit) until other processes leave
/// the CPUs alone, so a shared machine's builds do not land in a measurement.
fn wait_for_idle(opts: &Opts) {
    let Some(limit) = opts.wait_idle else { return };
    let start = Instant::now();
    while idle_share(Duration::from_millis(500)) < 0.9 {
        if start.elapsed() > limit {
            eprintln!("         the machine is still busy; measuring anyway");
            return;
        }
    }
}

fn run_child(
    exe: &Path,
    opts: &Opts,
    task: &str,
    sync: &str,
    extra: &[String],
) -> Vec<(String, f64)> {
    wait_for_idle(opts);
    let mut cmd = Command::new(exe);
    cmd.args(["--child", task, "--durability", sync, "--dir"])
        .arg(&opts.dir)
        .args(extra);
    parse_child(cmd.output().expect("run a child"), task)
}

fn parse_child(out: std::process::Output, task: &str) -> Vec<(String, f64)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        eprintln!(
            "child `{task}` failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        std::process::exit(1);
    }
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("RESULT "))
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// fdatasync + fsync calls of one child run under strace.
fn count_fsyncs(exe: &Path, opts: &Opts, task: &str, sync: &str, n: u32) -> Option<f64> {
    wait_for_idle(opts);
    let trace = opts.dir.join(format!("strace-{task}-{sync}-{n}.txt"));
    let out = Command::new("strace")
        .args(["-f", "-c", "-e", "trace=fdatasync,fsync", "-o"])
        .arg(&trace)
        .arg(exe)
        .args(["--child", task, "--durability", sync, "--dir"])
        .arg(&opts.dir)
        .args(["--n", &n.to_string()])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "strace run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = std::fs::read_to_string(&trace).ok()?;
    let _ = std::fs::remove_file(&trace);
    let calls = text
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            match cols.last() {
                Some(&"fdatasync") | Some(&"fsync") => cols.get(3)?.parse::<f64>().ok(),
                _ => None,
            }
        })
        .sum();
    Some(calls)
}

/// WAL frames (pages written) per commit and WAL bytes per step of W1, for
/// the library and both baselines: the `-wal` file after a run of
/// `W1_STEPS` steps less that after a run of none (which leaves out what
/// opening, starting and ending an execution write).
fn wal_per_step(exe: &Path, opts: &Opts, sync: &str) -> Vec<(String, f64)> {
    let mut pairs = Vec::new();
    for (task, prefix) in [
        ("w1-wal-lib", ""),
        ("w1-wal-base", "base_"),
        ("w1-wal-min", "min_"),
    ] {
        let count = |n: u32| {
            let out = run_child(exe, opts, task, sync, &["--n".to_owned(), n.to_string()]);
            let get = |k: &str| {
                out.iter()
                    .find(|(key, _)| key == k)
                    .map_or(0.0, |(_, v)| *v)
            };
            (get("wal_frames"), get("wal_commits"), get("page_size"))
        };
        let (f0, c0, _) = count(0);
        let (f1, c1, page_size) = count(W1_STEPS);
        let steps = f64::from(W1_STEPS);
        pairs.push((format!("{prefix}wal_pages_commit"), (f1 - f0) / (c1 - c0)));
        pairs.push((
            format!("{prefix}wal_bytes_step"),
            (f1 - f0) * (page_size + 24.0) / steps,
        ));
        pairs.push((format!("{prefix}wal_commits_step"), (c1 - c0) / steps));
        pairs.push((format!("{prefix}page_size"), page_size));
    }
    pairs
}

fn median_min_max(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (mid, v[0], v[v.len() - 1])
}

enum Target {
    None,
    /// At least this fraction of the baseline, at FULL.
    RatioAtFull(f64),
    AtLeast(f64),
    AtMost(f64),
    /// None at all.
    Zero,
}

struct Row {
    workload: &'static str,
    metric: &'static str,
    key: &'static str,
    base: Option<&'static str>,
    target: Target,
}

const fn row(
    workload: &'static str,
    metric: &'static str,
    key: &'static str,
    base: Option<&'static str>,
    target: Target,
) -> Row {
    Row {
        workload,
        metric,
        key,
        base,
        target,
    }
}

const ROWS: &[Row] = &[
    row(
        "w1",
        "steps/s",
        "steps_s",
        Some("base_steps_s"),
        Target::RatioAtFull(0.75),
    ),
    row(
        "w1",
        "steps/s vs minimal row",
        "steps_s",
        Some("min_steps_s"),
        Target::RatioAtFull(0.8),
    ),
    row(
        "w1",
        "WAL commits/step",
        "wal_commits_step",
        Some("min_wal_commits_step"),
        Target::None,
    ),
    row(
        "w1",
        "page size",
        "page_size",
        Some("min_page_size"),
        Target::None,
    ),
    row(
        "w1",
        "WAL pages/commit vs own row",
        "wal_pages_commit",
        Some("base_wal_pages_commit"),
        Target::None,
    ),
    row(
        "w1",
        "WAL pages/commit vs minimal row",
        "wal_pages_commit",
        Some("min_wal_pages_commit"),
        Target::None,
    ),
    row(
        "w1",
        "WAL bytes/step vs own row",
        "wal_bytes_step",
        Some("base_wal_bytes_step"),
        Target::None,
    ),
    row(
        "w1",
        "WAL bytes/step vs minimal row",
        "wal_bytes_step",
        Some("min_wal_bytes_step"),
        Target::None,
    ),
    row(
        "fsync",
        "fsyncs/step (W1)",
        "per_step",
        Some("base_per_step"),
        Target::None,
    ),
    row(
        "w2",
        "steps/s",
        "steps_s",
        Some("base_steps_s"),
        Target::RatioAtFull(0.6),
    ),
    row(
        "w2",
        "workflows/s",
        "workflows_s",
        Some("base_workflows_s"),
        Target::None,
    ),
    row(
        "w2",
        "step latency p50 ms",
        "p50_ms",
        Some("base_p50_ms"),
        Target::None,
    ),
    row(
        "w2",
        "step latency p99 ms",
        "p99_ms",
        Some("base_p99_ms"),
        Target::AtMost(20.0),
    ),
    row(
        "w3",
        "replayed steps/s (open to end)",
        "steps_s",
        None,
        Target::AtLeast(500_000.0),
    ),
    row("w3", "  open() ms", "open_ms", None, Target::None),
    row(
        "w3",
        "  open to first poll ms",
        "load_ms",
        None,
        Target::None,
    ),
    row("w3", "  body replay ms", "body_ms", None, Target::None),
    row(
        "w3",
        "  body-only steps/s",
        "body_steps_s",
        None,
        Target::None,
    ),
    row(
        "w4-spread",
        "RSS bytes/sleeper",
        "bytes_per_sleeper",
        None,
        Target::AtMost(2048.0),
    ),
    row(
        "w4-spread",
        "  after malloc_trim",
        "bytes_per_sleeper_trimmed",
        None,
        Target::None,
    ),
    row(
        "w4-spread",
        "  setup s (10k starts)",
        "setup_s",
        None,
        Target::None,
    ),
    row(
        "w4-spread",
        "lateness p50 ms",
        "late_p50_ms",
        None,
        Target::None,
    ),
    row(
        "w4-spread",
        "lateness p99 ms",
        "late_p99_ms",
        None,
        Target::AtMost(20.0),
    ),
    row(
        "w4-spread",
        "lateness max ms",
        "late_max_ms",
        None,
        Target::None,
    ),
    row(
        "w4-once",
        "all due at once: p50 ms",
        "late_p50_ms",
        None,
        Target::None,
    ),
    row(
        "w4-once",
        "all due at once: p99 ms",
        "late_p99_ms",
        None,
        Target::None,
    ),
    row(
        "w4-once",
        "all due at once: max ms",
        "late_max_ms",
        None,
        Target::None,
    ),
    row(
        "w5",
        "open to all completed s",
        "all_completed_s",
        None,
        Target::AtMost(5.0),
    ),
    row("w5", "  open() s", "open_s", None, Target::None),
    row(
        "w5",
        "  open to last body end s",
        "bodies_done_s",
        None,
        Target::None,
    ),
    row(
        "w6",
        "CPU us/step (in memory)",
        "us_per_step",
        None,
        Target::AtMost(5.0),
    ),
    row("w6", "  steps/s (in memory)", "steps_s", None, Target::None),
    row(
        "size",
        "journal bytes/step (100k-step)",
        "w3_journal_bytes_step",
        None,
        Target::None,
    ),
    row(
        "w2",
        "journal bytes/step (10-step wfs)",
        "journal_bytes_step",
        None,
        Target::None,
    ),
];

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn print_table(results: &Results, rows: &[Row]) {
    println!(
        "\n{:<10} {:<34} {:<6} {:>10} {:>10} {:>10} {:>10} {:>7} {:<14} met",
        "workload", "metric", "sync", "median", "min", "max", "baseline", "ratio", "target"
    );
    println!("{}", "-".repeat(124));
    for r in rows {
        for ((w, sync), keys) in results {
            if w != r.workload {
                continue;
            }
            let Some(values) = keys.get(r.key) else {
                continue;
            };
            let (med, min, max) = median_min_max(values);
            let base = r
                .base
                .and_then(|b| keys.get(b))
                .map(|b| median_min_max(b).0);
            let ratio = r
                .base
                .and_then(|b| keys.get(&format!("ratio:{b}")))
                .map(|v| median_min_max(v).0);
            let (target, met) = match r.target {
                Target::None => (String::new(), String::new()),
                Target::RatioAtFull(x) if sync == "full" => (
                    format!(">= {x} x base"),
                    yes_no(ratio.is_some_and(|q| q >= x)),
                ),
                Target::RatioAtFull(_) => ("(at FULL only)".to_owned(), String::new()),
                Target::AtLeast(x) => (format!(">= {}", fmt_num(x)), yes_no(med >= x)),
                Target::AtMost(x) => (format!("< {}", fmt_num(x)), yes_no(med < x)),
                Target::Zero => ("0".to_owned(), yes_no(med == 0.0)),
            };
            println!(
                "{:<10} {:<34} {:<6} {:>10} {:>10} {:>10} {:>10} {:>7} {:<14} {}",
                w.to_uppercase(),
                r.metric,
                sync.to_uppercase(),
                fmt_num(med),
                fmt_num(min),
                fmt_num(max),
                base.map_or(String::new(), fmt_num),
                ratio.map_or(String::new(), |q| format!("{q:.2}")),
                target,
                met
            );
        }
    }
}

fn yes_no(ok: bool) -> String {
    if ok { "yes".into() } else { "NO".into() }
}

/// One child's figures into `results`.
fn add_round(results: &mut Results, w: &str, sync: &str, pairs: Vec<(String, f64)>) {
    let entry = results.entry((w.to_owned(), sync.to_owned())).or_default();
    let round: BTreeMap<String, f64> = pairs.iter().cloned().collect();
    for (k, v) in pairs {
        // A baseline's figure (`base_x`: the library's own row; `min_x`:
        // the minimal row; `rt3_x`: the library's round trips; `many_x`:
        // rows in one multi-row statement) next to the library's `x` of
        // the same round: their ratio, kept under the baseline's key.
        if let Some(lib) = k
            .strip_prefix("base_")
            .or_else(|| k.strip_prefix("min_"))
            .or_else(|| k.strip_prefix("rt3_"))
            .or_else(|| k.strip_prefix("many_"))
            .and_then(|lib| round.get(lib))
        {
            entry.entry(format!("ratio:{k}")).or_default().push(lib / v);
        }
        entry.entry(k).or_default().push(v);
    }
}

fn parent(opts: Opts) {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    std::fs::create_dir_all(&opts.dir).expect("create the benchmark directory");
    let wants = |w: &str| opts.only.is_empty() || opts.only.iter().any(|o| o == w);
    let started = Instant::now();
    let mut results: Results = BTreeMap::new();
    let add = add_round;
    let progress = |what: &str| eprintln!("[{:>6.1}s] {what}", started.elapsed().as_secs_f64());

    // Templates, built once without fsync.
    let w3_template = opts.dir.join("w3-template.db");
    let w5_template = opts.dir.join("w5-template.db");
    let c1_template = opts.dir.join("c1-template.db");
    if wants("w3") || wants("size") {
        progress("building the 100,000-step journal (W3)");
        let out = run_child(
            &exe,
            &opts,
            "w3-build",
            "off",
            &["--file".into(), w3_template.display().to_string()],
        );
        let size = out
            .iter()
            .find(|(k, _)| k == "journal_bytes_step")
            .map(|(_, v)| *v);
        if let Some(size) = size {
            add(
                &mut results,
                "size",
                "off",
                vec![("w3_journal_bytes_step".into(), size)],
            );
        }
    }
    if wants("w5") {
        progress("building 10,000 interrupted executions (W5)");
        build_w5_template(&exe, &opts, &w5_template);
    }
    if wants("c1") {
        progress("building 10,000 sleeping executions of 20 steps (C1)");
        let out = run_child(
            &exe,
            &opts,
            "c1-build",
            "off",
            &["--file".into(), c1_template.display().to_string()],
        );
        for (k, v) in out {
            eprintln!("         {k} {}", fmt_num(v));
        }
    }

    let strace = opts.strace
        && Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    if wants("fsync") {
        if strace {
            for sync in &opts.durabilities {
                progress(&format!("counting fsyncs of W1 at {sync} (strace)"));
                let mut pairs = Vec::new();
                for (task, key) in [
                    ("w1-fsync-lib", "per_step"),
                    ("w1-fsync-base", "base_per_step"),
                ] {
                    let (small, large) = (100, W1_STEPS);
                    if let (Some(a), Some(b)) = (
                        count_fsyncs(&exe, &opts, task, sync, small),
                        count_fsyncs(&exe, &opts, task, sync, large),
                    ) {
                        pairs.push((key.to_owned(), (b - a) / f64::from(large - small)));
                    }
                }
                add(&mut results, "fsync", sync, pairs);
            }
        } else {
            eprintln!("strace not found (or --no-strace): fsyncs per step are not counted");
        }
    }

    if wants("w1") || wants("wal") {
        for sync in &opts.durabilities {
            progress(&format!("counting WAL frames of W1 at {sync}"));
            let pairs = wal_per_step(&exe, &opts, sync);
            add(&mut results, "w1", sync, pairs);
        }
    }

    let most = opts.rounds.max(opts.heavy_rounds);
    for round in 0..most {
        for sync in &opts.durabilities {
            for w in ["w1", "w2", "w3", "w4-spread", "w4-once", "w5"] {
                let family = w.split('-').next().unwrap_or(w);
                if !wants(family) && !wants(w) {
                    continue;
                }
                let rounds = if HEAVY.contains(&family) {
                    opts.heavy_rounds
                } else {
                    opts.rounds
                };
                if round >= rounds {
                    continue;
                }
                progress(&format!("round {} of {rounds}: {w} at {sync}", round + 1));
                let mut extra = vec!["--order".to_owned(), round.to_string()];
                match family {
                    "w3" => extra.extend(["--file".into(), w3_template.display().to_string()]),
                    "w5" => extra.extend(["--file".into(), w5_template.display().to_string()]),
                    _ => {}
                }
                let out = run_child(&exe, &opts, w, sync, &extra);
                add(&mut results, w, sync, out);
            }
        }
        if wants("w6") && round < opts.rounds {
            progress(&format!(
                "round {} of {}: w6 (in memory)",
                round + 1,
                opts.rounds
            ));
            let out = run_child(&exe, &opts, "w6", "off", &[]);
            add(&mut results, "w6", "mem", out);
        }
        // The check writes nothing: one durability (the worker side's
        // runtime opens with it) is enough.
        if wants("c1") && round < opts.rounds {
            let sync = &opts.durabilities[0];
            progress(&format!(
                "round {} of {}: c1 (check) at {sync}",
                round + 1,
                opts.rounds
            ));
            let extra = [
                "--order".to_owned(),
                round.to_string(),
                "--file".to_owned(),
                c1_template.display().to_string(),
            ];
            let out = run_child(&exe, &opts, "c1", sync, &extra);
            for (side, pairs) in check::split("c1", out) {
                add(&mut results, &side, sync, pairs);
            }
        }
    }
    remove_db(&w3_template);
    remove_db(&w5_template);
    remove_db(&c1_template);

    if results.keys().any(|(w, _)| !w.starts_with("c1")) {
        print_table(&results, ROWS);
    }
    if wants("c1") {
        print_table(&results, &check::rows("c1-worker", "c1-admin", false));
    }
    for ((w, sync), keys) in &results {
        if w.starts_with("w4")
            && let Some(v) = keys.get("suspended_before_first_wake")
            && v.iter().any(|x| *x < 1.0)
        {
            println!(
                "note: {w} at {sync}: in some round not every sleeper was suspended before the first wake time"
            );
        }
    }
    println!(
        "\n{} round(s) of W1, W2, W3, W6, C1 and {} of W4, W5; {} s in all; data in {}",
        opts.rounds,
        opts.heavy_rounds,
        started.elapsed().as_secs(),
        opts.dir.display()
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut opts = Opts {
        rounds: 5,
        heavy_rounds: 3,
        wait_idle: None,
        only: Vec::new(),
        durabilities: vec!["full".into(), "normal".into()],
        dir: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench")),
        strace: true,
        store: "sqlite".into(),
        pg: "postgres://postgres@127.0.0.1:5432/test".into(),
    };
    let mut child_task = None;
    let mut sync = "full".to_owned();
    let mut file = None;
    let mut n = 0;
    let mut order = 0;
    let mut schema_prefix = None;
    let mut start_at = 0;
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => {
                opts.rounds = value().parse().expect("--rounds N");
                opts.heavy_rounds = opts.rounds;
            }
            "--only" => {
                opts.only = value()
                    .split(',')
                    .map(|s| s.trim().to_lowercase())
                    .collect()
            }
            "--durability" => {
                let v = value();
                opts.durabilities = v.split(',').map(|s| s.trim().to_lowercase()).collect();
                sync = opts.durabilities[0].clone();
            }
            "--store" => {
                opts.store = value();
                assert!(
                    opts.store == "sqlite" || opts.store == "postgres",
                    "--store sqlite|postgres"
                );
            }
            "--pg" => opts.pg = value(),
            "--schema-prefix" => schema_prefix = Some(value()),
            "--start-at" => start_at = value().parse().expect("--start-at UNIX_MS"),
            "--dir" => opts.dir = PathBuf::from(value()),
            "--no-strace" => opts.strace = false,
            "--wait-idle" => {
                let secs: u64 = value().parse().expect("--wait-idle SECONDS");
                opts.wait_idle = Some(Duration::from_secs(secs));
            }
            "--child" => child_task = Some(value()),
            "--file" => file = Some(PathBuf::from(value())),
            "--n" => n = value().parse().expect("--n N"),
            "--order" => order = value().parse().expect("--order N"),
            "--help" | "-h" => {
                println!(
                    "bench [--rounds N] [--only w1,w2,w3,w4,w5,w6,c1,size,fsync,wal] [--durability full,normal] [--dir PATH] [--no-strace] [--wait-idle SECONDS]\n\
                     bench --store postgres [--pg URL] [--rounds N] [--only p1,p2,p2n,p3,p6,pc1] [--durability full,normal] [--wait-idle SECONDS]"
                );
                return;
            }
            other => panic!("unknown argument `{other}` (try --help)"),
        }
    }
    match child_task {
        None if opts.store == "postgres" => postgres::parent(opts),
        None => parent(opts),
        Some(task) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            let args = ChildArgs {
                task,
                sync,
                dir: opts.dir,
                file,
                n,
                order,
                pg: Some(opts.pg),
                schema_prefix,
                start_at,
            };
            if args.task.starts_with('p') {
                runtime.block_on(postgres::child(&args));
            } else {
                runtime.block_on(child(args));
            }
            // Blocked workflows of the template builders never end: leave now.
            std::process::exit(0);
        }
    }
}
