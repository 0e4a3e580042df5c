//! Messages benchmark: what sending to waiting workflows costs, beside the
//! raw SQLite rate measured in the same run on the same disk.
//!
//! ```text
//! cargo run --release --example bench_messages [-- --dir PATH]
//! cargo run --release --example bench_messages -- --pg postgres://postgres@127.0.0.1:5432/test
//! ```
//!
//! - M1, send-to-wake latency of a suspended workflow (FULL durability):
//!   500 workflows each suspended in `ctx.recv` (`suspend_after(0)`), woken
//!   one at a time by `rt.send`; the time from the call of `send` to the
//!   line after the `recv` in the workflow (p50, p99). Raw: one row
//!   inserted and committed at `synchronous = FULL` (p50, p99), the least
//!   a durable send costs.
//! - M2, memory of waiting workflows: RSS after 10,000 workflows are
//!   suspended in `recv` (heap trimmed), less RSS before they started.
//! - M3, throughput: 1,000 workflows each taking 10 messages, 10,000
//!   messages sent by 100 concurrent senders at FULL durability (a send
//!   and a take are each a waited commit, shared through group commit).
//!   Raw: 10,000 rows inserted one commit each at FULL, in sequence.
//! - M4, stream delivery: a workflow writes 500 values to a stream, 2 ms
//!   apart, while a reader in the same process reads it live; the time from
//!   the return of `write_stream` (the value is committed) to the reader
//!   getting it (p50, p99).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replayflow::{AnyError, Context, Durability, ExecutionStatus, ListFilter, Runtime, workflow};

/// When each waiter passed its `recv`, by execution id (M1).
static WOKEN: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

#[workflow]
async fn m1_waiter(ctx: Context) -> Result<u64, AnyError> {
    let n: u64 = ctx.recv("go").await;
    // Measuring, not deciding: a replay may read another instant.
    #[allow_nondeterministic]
    let at = Instant::now();
    WOKEN
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(ctx.execution_id().to_string(), at);
    Ok(n)
}

/// When each value of the M4 stream was committed, by value.
static WRITTEN: Mutex<Vec<Option<Instant>>> = Mutex::new(Vec::new());

#[workflow]
async fn m4_writer(ctx: Context, n: u32) -> Result<u32, AnyError> {
    for i in 0..n {
        ctx.write_stream("values", &i).await;
        // Measuring, not deciding: a replay may read another instant.
        #[allow_nondeterministic]
        let at = Instant::now();
        WRITTEN.lock().unwrap()[i as usize] = Some(at);
        ctx.sleep(Duration::from_millis(2)).await;
    }
    ctx.close_stream("values").await;
    Ok(n)
}

#[workflow]
async fn m3_taker(ctx: Context, n: u32) -> Result<u64, AnyError> {
    let mut sum = 0;
    for _ in 0..n {
        sum += ctx.recv::<u64>("m").await;
    }
    Ok(sum)
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// Where the runtime and the raw baseline run.
enum Target {
    /// Files in this directory.
    Sqlite(PathBuf),
    /// This PostgreSQL database, each measurement in a schema of its own.
    Postgres(String),
}

impl Target {
    /// A fresh runtime named `name` (a file, or a schema).
    async fn open(&self, name: &str, suspend_after: Duration) -> Runtime {
        let builder = match self {
            Target::Sqlite(dir) => {
                let path = dir.join(format!("{name}.db"));
                remove_db(&path);
                Runtime::builder().path(path)
            }
            Target::Postgres(url) => {
                let schema = format!("bench_{name}");
                drop_schema(url, &schema).await;
                Runtime::builder().postgres(url.as_str()).schema(schema)
            }
        };
        builder
            .durability(Durability::Full)
            .suspend_after(suspend_after)
            .open()
            .await
            .expect("open the runtime")
    }

    /// Removes what `open(name)` made.
    async fn remove(&self, name: &str) {
        match self {
            Target::Sqlite(dir) => remove_db(&dir.join(format!("{name}.db"))),
            Target::Postgres(url) => drop_schema(url, &format!("bench_{name}")).await,
        }
    }

    /// `n` one-row inserts, each committed on its own (at `synchronous =
    /// FULL`, or `synchronous_commit = on`), in sequence: the time of each.
    async fn raw_commits(&self, name: &str, n: usize) -> Vec<Duration> {
        match self {
            Target::Sqlite(dir) => {
                let path = dir.join(format!("{name}-raw.db"));
                let conn = raw_db(&path);
                let times = raw_sqlite_commits(&conn, n);
                drop(conn);
                remove_db(&path);
                times
            }
            Target::Postgres(url) => {
                let schema = format!("bench_{name}_raw");
                drop_schema(url, &schema).await;
                let client = pg_client(url).await;
                client
                    .batch_execute(&format!(
                        "CREATE SCHEMA {schema};
                         CREATE TABLE {schema}.messages (id bigserial PRIMARY KEY,
                             execution_id text NOT NULL, topic text NOT NULL, payload bytea,
                             sent_at bigint NOT NULL)"
                    ))
                    .await
                    .unwrap();
                let insert = client
                    .prepare(&format!(
                        "INSERT INTO {schema}.messages (execution_id, topic, payload, sent_at)
                         VALUES ($1, 'go', $2, $3)"
                    ))
                    .await
                    .unwrap();
                let payload = b"1".to_vec();
                let mut times = Vec::with_capacity(n);
                for i in 0..n {
                    let t = Instant::now();
                    client
                        .execute(&insert, &[&format!("w-{i}"), &payload, &(i as i64)])
                        .await
                        .unwrap();
                    times.push(t.elapsed());
                }
                drop_schema(url, &schema).await;
                times
            }
        }
    }
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

async fn drop_schema(url: &str, schema: &str) {
    pg_client(url)
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}

/// A table like the store's, for the raw baseline.
fn raw_db(path: &Path) -> rusqlite::Connection {
    remove_db(path);
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.pragma_update(None, "journal_mode", "WAL").unwrap();
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.execute_batch(
        "CREATE TABLE messages (id INTEGER PRIMARY KEY, execution_id TEXT NOT NULL,
             topic TEXT NOT NULL, payload BLOB, sent_at INTEGER NOT NULL)",
    )
    .unwrap();
    conn
}

fn raw_sqlite_commits(conn: &rusqlite::Connection, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        conn.execute(
            "INSERT INTO messages (execution_id, topic, payload, sent_at) VALUES (?1, 'go', x'31', ?2)",
            rusqlite::params![format!("w-{i}"), i as i64],
        )
        .unwrap();
        times.push(t.elapsed());
    }
    times
}

async fn wait_all(rt: &Runtime, status: ExecutionStatus, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let counts = rt.count(ListFilter::new()).await.unwrap();
        let have = counts
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n as usize);
        if have >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {have} of {n} are {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn m1(target: &Target) {
    const N: usize = 500;
    let rt = target.open("m1", Duration::ZERO).await;
    for i in 0..N {
        m1_waiter::start(&rt, format!("m1-{i}")).await.unwrap();
    }
    wait_all(&rt, ExecutionStatus::Waiting, N).await;
    let mut latencies = Vec::with_capacity(N);
    for i in 0..N {
        let id = format!("m1-{i}");
        let sent = Instant::now();
        rt.send(id.as_str(), "go", &(i as u64)).await.unwrap();
        let woken = loop {
            let at = WOKEN
                .lock()
                .unwrap()
                .as_ref()
                .and_then(|m| m.get(&id).copied());
            if let Some(at) = at {
                break at;
            }
            tokio::task::yield_now().await;
        };
        latencies.push(woken - sent);
    }
    rt.shutdown().await.unwrap();
    drop(rt);
    target.remove("m1").await;
    latencies.sort();

    let mut raw = target.raw_commits("m1", N).await;
    raw.sort();
    println!(
        "M1 send-to-wake, suspended ({N}): p50 {}  p99 {}   raw 1-row commit: p50 {}  p99 {}   p99 ratio {:.1}x",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(percentile(&raw, 50.0)),
        ms(percentile(&raw, 99.0)),
        percentile(&latencies, 99.0).as_secs_f64() / percentile(&raw, 99.0).as_secs_f64()
    );
}

async fn m2(target: &Target) {
    const N: usize = 10_000;
    let rt = target.open("m2", Duration::ZERO).await;
    trim_heap();
    let before = rss_bytes();
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..N {
        let rt = rt.clone();
        starts.spawn(async move {
            m1_waiter::start(&rt, format!("m2-{i}")).await.unwrap();
        });
    }
    while starts.join_next().await.is_some() {}
    wait_all(&rt, ExecutionStatus::Waiting, N).await;
    // Let the tasks that suspended them end.
    tokio::time::sleep(Duration::from_millis(500)).await;
    trim_heap();
    let after = rss_bytes();
    println!(
        "M2 memory of {N} suspended waiters: {:.0} bytes each (RSS {:.1} MiB -> {:.1} MiB)",
        after.saturating_sub(before) as f64 / N as f64,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    rt.shutdown().await.unwrap();
    drop(rt);
    target.remove("m2").await;
}

async fn m3(target: &Target) {
    const WORKFLOWS: usize = 1_000;
    const EACH: u32 = 10;
    const SENDERS: usize = 100;
    let total = WORKFLOWS * EACH as usize;
    let rt = target.open("m3", Duration::from_millis(500)).await;
    let mut handles = Vec::with_capacity(WORKFLOWS);
    for i in 0..WORKFLOWS {
        handles.push(m3_taker::start(&rt, format!("m3-{i}"), EACH).await.unwrap());
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..SENDERS {
        let (rt, next) = (rt.clone(), Arc::clone(&next));
        senders.spawn(async move {
            loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if k >= total {
                    return;
                }
                let id = format!("m3-{}", k % WORKFLOWS);
                rt.send(id.as_str(), "m", &1u64).await.unwrap();
            }
        });
    }
    while senders.join_next().await.is_some() {}
    let sent = started.elapsed();
    for h in handles {
        assert_eq!(h.result().await.unwrap(), u64::from(EACH));
    }
    let taken = started.elapsed();
    rt.shutdown().await.unwrap();
    drop(rt);
    target.remove("m3").await;

    let raw: Duration = target.raw_commits("m3", total).await.iter().sum();
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "M3 {total} messages to {WORKFLOWS} workflows, {SENDERS} senders: sent in {:.2} s ({:.0}/s), all taken in {:.2} s ({:.0}/s)   raw 1-row commits: {:.0}/s   ratio {:.1}x",
        sent.as_secs_f64(),
        rate(sent),
        taken.as_secs_f64(),
        rate(taken),
        rate(raw),
        rate(taken) / rate(raw)
    );
}

async fn m4(target: &Target) {
    use futures_util::StreamExt;
    const N: u32 = 500;
    *WRITTEN.lock().unwrap() = vec![None; N as usize];
    let rt = target.open("m4", Duration::from_millis(500)).await;
    let handle = m4_writer::start(&rt, "m4", N).await.unwrap();
    let mut reader = Box::pin(rt.read_stream::<u32>("m4", "values"));
    let mut received = Vec::with_capacity(N as usize);
    while let Some(value) = reader.next().await {
        received.push((value.unwrap(), Instant::now()));
    }
    handle.result().await.unwrap();
    rt.shutdown().await.unwrap();
    drop(rt);
    target.remove("m4").await;
    let written = WRITTEN.lock().unwrap().clone();
    let mut latencies: Vec<Duration> = received
        .iter()
        .filter_map(|(i, got)| written[*i as usize].map(|w| got.saturating_duration_since(w)))
        .collect();
    latencies.sort();
    println!(
        "M4 stream delivery to a live reader ({} values): p50 {}  p99 {}",
        latencies.len(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0))
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut dir = std::env::temp_dir();
    let mut pg = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => dir = PathBuf::from(args.next().expect("--dir PATH")),
            "--pg" => pg = Some(args.next().expect("--pg URL")),
            other => {
                panic!("unknown argument `{other}`; usage: bench_messages [--dir PATH] [--pg URL]")
            }
        }
    }
    let target = match pg {
        Some(url) => {
            println!("on PostgreSQL ({url})");
            Target::Postgres(url)
        }
        None => {
            std::fs::create_dir_all(&dir).unwrap();
            println!("on SQLite files in {}", dir.display());
            Target::Sqlite(dir)
        }
    };
    m1(&target).await;
    m2(&target).await;
    m3(&target).await;
    m4(&target).await;
}
