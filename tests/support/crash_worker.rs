//! A worker process for the crash tests: runs execution `crash-1` of
//! `crash_flow` on a database file, starting it or (in `resume` mode) waiting
//! for the recovery that opening the database does, and prints its result.
//! The test SIGKILLs it while step two is in flight.
//!
//! Usage: `crash-worker start|resume <db> <ledger>`, or
//! `crash-worker poison|open <db>`: start `poison-1`, which aborts the
//! process each time it runs, or open the database (recovering it) and
//! print `paused` once it is paused; or
//! `crash-worker torture <db> <ledger> <generation> <n>`: run `n` mixed
//! workflows to their end, printing each output; or
//! `crash-worker grind|grind-resume <db> <ledger>`: steps that block their
//! thread; or `crash-worker once|once-resume <db> <ledger>`: an at-most-once
//! step; or `crash-worker fill <db> <n>`: run `n` short workflows, print
//! `filled`, and wait to be killed; or `crash-worker inbox <db> <ledger>
//! <n>`: start (or attach to) `inbox-1`, which takes `n` messages, and
//! print its result; or `crash-worker open-only <db>`: open (migrating it)
//! and shut down; or `crash-worker streamer <db> <n>`: start (or attach
//! to) `stream-1`, which streams `n` values; or `crash-worker fanout <db>
//! <ledger> <n>`: start (or attach to) `fan-1`, which gathers `n` children.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use replayflow::{AnyError, Context, Runtime, StepContext, step, workflow};

#[step]
async fn fill_step(i: u32) -> Result<u32, AnyError> {
    Ok(i * 2)
}

#[workflow]
async fn fill_flow(_ctx: Context, i: u32) -> Result<u32, AnyError> {
    Ok(fill_step(i).await? + fill_step(i + 1).await?)
}

/// Charges once: the start of each attempt is committed before its body runs,
/// and an attempt interrupted by a crash is not run again (one attempt).
#[step(at_most_once, max_attempts = 1)]
async fn charge_once(ledger: &str) -> Result<u32, AnyError> {
    let attempt = StepContext::current().map_or(0, |s| s.attempt());
    append(ledger, &format!("charge attempt {attempt}"))?;
    while !RELEASED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(100)
}

#[workflow]
async fn once_flow(_ctx: Context, ledger: String) -> Result<String, AnyError> {
    Ok(match charge_once(&ledger).await {
        Ok(amount) => format!("charged {amount}"),
        Err(e) => format!("not charged: {e}"),
    })
}

/// Set in `resume` mode: step two stops hanging.
static RELEASED: AtomicBool = AtomicBool::new(false);

fn append(ledger: &str, line: &str) -> Result<(), AnyError> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(ledger)?;
    // One write call per line, so concurrent appenders never interleave. No
    // fsync: a killed process loses nothing it wrote; only the OS could.
    f.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}

#[step]
async fn step_one(ledger: &str) -> Result<u32, AnyError> {
    append(ledger, "one")?;
    Ok(1)
}

#[step]
async fn step_two(ledger: &str) -> Result<u32, AnyError> {
    let attempt = StepContext::current().map_or(0, |s| s.attempt());
    append(ledger, &format!("two attempt {attempt}"))?;
    while !RELEASED.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(2)
}

#[workflow]
async fn crash_flow(ctx: Context, ledger: String) -> Result<String, AnyError> {
    let now = ctx.now().await;
    let random = ctx.random_u64().await;
    let ms = now
        .duration_since(UNIX_EPOCH)
        .map_err(AnyError::from)?
        .as_millis();
    // Deliberately outside a step: written on every run, so the test can
    // compare what each run saw.
    append(&ledger, &format!("values {ms} {random}"))?;
    let one = step_one(&ledger).await?;
    let two = step_two(&ledger).await?;
    Ok(format!("{one}+{two}={}", one + two))
}

#[step]
async fn abort_process() -> Result<(), AnyError> {
    // What an OOM kill or a segfault looks like from the journal's side.
    std::process::abort()
}

/// Kills its process every time it runs.
#[workflow]
async fn poison_flow(_ctx: Context) -> Result<(), AnyError> {
    abort_process().await
}

/// Sleeps two seconds between two steps (`nap` mode).
#[workflow]
async fn nap_flow(ctx: Context, ledger: String) -> Result<u32, AnyError> {
    append(&ledger, "before sleep")?;
    ctx.sleep(Duration::from_secs(2)).await;
    step_one(&ledger).await
}

/// Blocks its thread, never awaiting: 50 ms for `n == 0`, until released
/// for `n == 1` (`grind` mode).
#[step]
async fn grind(ledger: &str, n: u32) -> Result<u32, AnyError> {
    let attempt = StepContext::current().map_or(0, |s| s.attempt());
    append(ledger, &format!("grind {n} attempt {attempt}"))?;
    if n == 0 {
        std::thread::sleep(Duration::from_millis(50));
    }
    while n == 1 && !RELEASED.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(n)
}

/// Two blocking steps; the first is slow enough that the second journals
/// its start before it runs.
#[workflow]
async fn grind_flow(_ctx: Context, ledger: String) -> Result<u32, AnyError> {
    let a = grind(&ledger, 0).await?;
    let b = grind(&ledger, 1).await?;
    Ok(a + b)
}

/// The generation (run number) of this process, in the torture test.
static GENERATION: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Tagged {
    value: u64,
    /// The generation whose run produced the journaled value.
    generation: u32,
}

#[step(max_attempts = 4, backoff = "20ms")]
async fn work(ledger: &str, i: u64, k: u64) -> Result<Tagged, AnyError> {
    let generation = GENERATION.load(Ordering::SeqCst);
    let (key, attempt) =
        StepContext::current().map_or((String::new(), 0), |s| (s.idempotency_key(), s.attempt()));
    let at = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    append(ledger, &format!("begin {key} {generation} {attempt} {at}"))?;
    // Long enough that kills land while many bodies are in flight.
    tokio::time::sleep(Duration::from_millis(300 + (i * 37 + k * 53) % 600)).await;
    let at = std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    append(ledger, &format!("end {key} {generation} {attempt} {at}"))?;
    if (i + k).is_multiple_of(5) && attempt == 1 {
        return Err(AnyError::msg("transient failure on the first attempt"));
    }
    Ok(Tagged {
        value: i * 100 + k,
        generation,
    })
}

/// Steps of each torture workflow.
const STEPS: u64 = 10;

/// Steps, retries, inline steps and sleeps (some in memory, some suspended).
#[workflow]
async fn torture(ctx: Context, ledger: String, i: u64) -> Result<u64, AnyError> {
    let mut sum = 0;
    for k in 0..STEPS {
        sum += work(&ledger, i, k).await?.value;
        if k % 4 == 1 {
            // In memory for even workflows, suspended for odd ones.
            let ms = if i.is_multiple_of(2) { 300 } else { 1_500 };
            ctx.sleep(Duration::from_millis(ms)).await;
        }
    }
    let bonus = ctx
        .step("bonus", || async move { Ok::<_, AnyError>(i % 3) })
        .await?;
    Ok(sum + bonus)
}

async fn run_torture(
    db: &str,
    ledger: &str,
    generation: u32,
    n: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    GENERATION.store(generation, Ordering::SeqCst);
    // Kills come faster than progress at times; the budget is tested elsewhere.
    let rt = Runtime::builder()
        .path(db)
        .recovery_budget(1_000)
        .open()
        .await?;
    let mut handles = Vec::new();
    for i in 0..n {
        handles.push(torture::start(&rt, format!("t-{i}"), ledger.to_owned(), i).await?);
    }
    for (i, h) in handles.iter().enumerate() {
        let out = h.result().await?;
        println!("t-{i} {out}");
    }
    Ok(())
}

/// Records its start, then takes three seconds (`pg-stall` mode): long
/// enough to be frozen past its worker's lease.
#[step]
async fn stall_step(ledger: &str) -> Result<String, AnyError> {
    append(ledger, "stall begin")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    append(ledger, "stall end")?;
    Ok(format!("worker process {}", std::process::id()))
}

#[workflow]
async fn stall_flow(_ctx: Context, ledger: String) -> Result<String, AnyError> {
    stall_step(&ledger).await
}

/// Starts `stall-1` on a PostgreSQL schema with a one-second lease and
/// prints its result and this worker's ids before and after.
async fn run_pg_stall(
    url: &str,
    schema: &str,
    ledger: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .postgres(url)
        .schema(schema)
        .lease(Duration::from_secs(1))
        .open()
        .await?;
    let first = rt.worker_id();
    let handle = stall_flow::start(&rt, "stall-1", ledger.to_owned()).await?;
    let out = handle.result().await?;
    println!("{out}");
    // A worker frozen past its lease registers anew once it runs again.
    for _ in 0..200 {
        if rt.worker_id() != first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("workers {first:?} {:?}", rt.worker_id());
    rt.shutdown().await?;
    Ok(())
}

/// Sleeps two seconds, suspended (`pg-sleepers` mode).
#[workflow]
async fn pg_sleeper(ctx: Context, i: u32) -> Result<u32, AnyError> {
    ctx.sleep(Duration::from_secs(2)).await;
    Ok(i * 2)
}

/// Starts `n` sleepers on a PostgreSQL schema, prints `sleeping` once all
/// are suspended, and waits to be killed.
async fn run_pg_sleepers(
    url: &str,
    schema: &str,
    n: u32,
) -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .postgres(url)
        .schema(schema)
        .lease(Duration::from_secs(1))
        .open()
        .await?;
    for i in 0..n {
        pg_sleeper::start(&rt, format!("sleeper-{i}"), i).await?;
    }
    loop {
        let asleep = rt
            .count(replayflow::ListFilter::new())
            .await?
            .iter()
            .filter(|(s, _)| *s == replayflow::ExecutionStatus::Sleeping)
            .map(|(_, c)| *c)
            .sum::<u64>();
        if asleep == u64::from(n) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("sleeping");
    std::future::pending::<()>().await;
    Ok(())
}

/// The torture workload on a PostgreSQL schema shared with other worker
/// processes: every worker starts all `n` executions (a start of an
/// existing id attaches to it) and waits for every result.
async fn run_pg_torture(
    url: &str,
    schema: &str,
    ledger: &str,
    generation: u32,
    n: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    GENERATION.store(generation, Ordering::SeqCst);
    let rt = Runtime::builder()
        .postgres(url)
        .schema(schema)
        .lease(Duration::from_secs(1))
        .recovery_budget(1_000)
        .open()
        .await?;
    let mut handles = Vec::new();
    for i in 0..n {
        handles.push(torture::start(&rt, format!("t-{i}"), ledger.to_owned(), i).await?);
    }
    for (i, h) in handles.iter().enumerate() {
        let out = h.result().await?;
        println!("t-{i} {out}");
    }
    rt.shutdown().await?;
    Ok(())
}

/// Records each message taken, through a step that writes the ledger.
#[step]
async fn note_message(ledger: &str, n: u64) -> Result<(), AnyError> {
    append(ledger, &format!("got {n}"))
}

/// Takes `n` messages of topic `n`, in order, and sums them.
#[workflow]
async fn inbox_flow(ctx: Context, ledger: String, n: u32) -> Result<u64, AnyError> {
    let mut sum = 0;
    for _ in 0..n {
        let m: u64 = ctx.recv("n").await;
        note_message(&ledger, m).await?;
        sum += m;
    }
    Ok(sum)
}

#[step]
async fn tick(i: u32) -> Result<u32, AnyError> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    Ok(i)
}

/// Streams `n` values, each after a step, then closes the stream.
#[workflow]
async fn stream_flow(ctx: Context, n: u32) -> Result<u32, AnyError> {
    for i in 0..n {
        let v = tick(i).await?;
        ctx.write_stream("ticks", &v).await;
    }
    ctx.close_stream("ticks").await;
    Ok(n)
}

#[step]
async fn count_item(ledger: &str, i: u32) -> Result<u32, AnyError> {
    append(ledger, &format!("child {i}"))?;
    tokio::time::sleep(Duration::from_millis(30)).await;
    Ok(i)
}

/// One child of `fan_flow`.
#[workflow]
async fn item_flow(_ctx: Context, ledger: String, i: u32) -> Result<u32, AnyError> {
    count_item(&ledger, i).await
}

/// Starts `n` children together and sums their results.
#[workflow]
async fn fan_flow(ctx: Context, ledger: String, n: u32) -> Result<u32, AnyError> {
    let mut starts = Vec::new();
    for i in 0..n {
        starts.push(item_flow::child(&ctx, ledger.clone(), i));
    }
    let children = futures_util::future::join_all(starts).await;
    let mut sum = 0;
    for r in futures_util::future::join_all(children.iter().map(|c| c.result())).await {
        sum += r.map_err(|e| AnyError::msg(e.to_string()))?;
    }
    Ok(sum)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, db, ledger, n] = args.as_slice()
        && mode == "fanout"
    {
        let rt = Runtime::open(db).await?;
        let handle = fan_flow::start(&rt, "fan-1", ledger.clone(), n.parse()?).await?;
        println!("result: {}", handle.result().await?);
        rt.shutdown().await?;
        return Ok(());
    }
    if let [_, mode, db, n] = args.as_slice()
        && mode == "streamer"
    {
        let rt = Runtime::open(db).await?;
        let handle = stream_flow::start(&rt, "stream-1", n.parse()?).await?;
        println!("result: {}", handle.result().await?);
        rt.shutdown().await?;
        return Ok(());
    }
    if let [_, mode, db] = args.as_slice()
        && mode == "open-only"
    {
        // Opens (and so migrates) the database, then stops cleanly.
        let rt = Runtime::open(db).await?;
        println!("opened");
        rt.shutdown().await?;
        return Ok(());
    }
    if let [_, mode, db, ledger, n] = args.as_slice()
        && mode == "inbox"
    {
        let rt = Runtime::builder()
            .path(db)
            .suspend_after(Duration::from_millis(100))
            .open()
            .await?;
        let handle = inbox_flow::start(&rt, "inbox-1", ledger.clone(), n.parse()?).await?;
        println!("result: {}", handle.result().await?);
        rt.shutdown().await?;
        return Ok(());
    }
    if let [_, mode, url, schema, ledger, generation, n] = args.as_slice()
        && mode == "pg-torture"
    {
        return run_pg_torture(url, schema, ledger, generation.parse()?, n.parse()?).await;
    }
    if let [_, mode, url, schema] = args.as_slice()
        && mode == "pg-poison"
    {
        // Starts (or attaches to) `poison-1`; the worker that claims it dies.
        let rt = Runtime::builder()
            .postgres(url)
            .schema(schema)
            .lease(Duration::from_secs(1))
            .recovery_budget(2)
            .open()
            .await?;
        poison_flow::start(&rt, "poison-1").await?;
        for _ in 0..3_000 {
            if rt.status("poison-1").await?.status == replayflow::ExecutionStatus::Paused {
                println!("paused");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        return Err("poison-1 neither aborted the process nor was paused".into());
    }
    if let [_, mode, url, schema, n] = args.as_slice()
        && mode == "pg-sleepers"
    {
        return run_pg_sleepers(url, schema, n.parse()?).await;
    }
    if let [_, mode, url, schema, ledger] = args.as_slice()
        && mode == "pg-stall"
    {
        return run_pg_stall(url, schema, ledger).await;
    }
    if let [_, mode, db, ledger, generation, n] = args.as_slice()
        && mode == "torture"
    {
        return run_torture(db, ledger, generation.parse()?, n.parse()?).await;
    }
    if let [_, mode, db, n] = args.as_slice()
        && mode == "fill"
    {
        // Runs `n` short workflows to their end, says so, and waits to be
        // killed: everything they wrote is left in the WAL.
        let rt = Runtime::open(db).await?;
        for i in 0..n.parse::<u32>()? {
            let id = format!("fill-{i}");
            fill_flow::start(&rt, id.as_str(), i)
                .await?
                .result()
                .await?;
        }
        println!("filled");
        std::future::pending::<()>().await;
    }
    if let [_, mode, db] = args.as_slice() {
        let rt = Runtime::open(db).await?;
        if mode == "poison" {
            poison_flow::start(&rt, "poison-1").await?.result().await?;
            return Err("the poison workflow returned".into());
        }
        // Recovery runs on open; the poison aborts us unless it is paused.
        for _ in 0..600 {
            if rt.status("poison-1").await?.status == replayflow::ExecutionStatus::Paused {
                println!("paused");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        return Err("poison-1 neither aborted the process nor was paused".into());
    }
    if let [_, mode, db, ledger] = args.as_slice()
        && (mode == "grind" || mode == "grind-resume")
    {
        let handle = if mode == "grind" {
            let rt = Runtime::open(db).await?;
            grind_flow::start(&rt, "grind-1", ledger.clone()).await?
        } else {
            // Released before the recovery on open runs the step again.
            RELEASED.store(true, Ordering::SeqCst);
            Runtime::open(db).await?.handle::<grind_flow>("grind-1")
        };
        println!("result: {}", handle.result().await?);
        return Ok(());
    }
    if let [_, mode, db, ledger] = args.as_slice()
        && (mode == "once" || mode == "once-resume")
    {
        let handle = if mode == "once" {
            let rt = Runtime::open(db).await?;
            once_flow::start(&rt, "once-1", ledger.clone()).await?
        } else {
            // Released: a body run again would now complete and charge.
            RELEASED.store(true, Ordering::SeqCst);
            Runtime::open(db).await?.handle::<once_flow>("once-1")
        };
        println!("result: {}", handle.result().await?);
        return Ok(());
    }
    if let [_, mode, db, ledger] = args.as_slice()
        && (mode == "nap" || mode == "nap-resume")
    {
        let opened = std::time::Instant::now();
        let rt = Runtime::open(db).await?;
        let handle = if mode == "nap" {
            nap_flow::start(&rt, "nap-1", ledger.clone()).await?
        } else {
            rt.handle::<nap_flow>("nap-1")
        };
        let out = handle.result().await?;
        println!("result: {out} after {} ms", opened.elapsed().as_millis());
        return Ok(());
    }
    let [_, mode, db, ledger] = args.as_slice() else {
        return Err("usage: crash-worker start|resume <db> <ledger>".into());
    };
    let rt = Runtime::open(db).await?;
    let handle = if mode == "resume" {
        // Nothing to call: opening the database recovered the execution.
        RELEASED.store(true, Ordering::SeqCst);
        rt.handle::<crash_flow>("crash-1")
    } else {
        crash_flow::start(&rt, "crash-1", ledger.clone()).await?
    };
    let out = handle.result().await?;
    println!("result: {out}");
    Ok(())
}
