//! A full disk pauses executions visibly, and they go on by themselves once
//! space returns: with a size cap (`max_database_size`) and, where the test
//! may mount one, on a real filesystem that fills up (a small tmpfs). A
//! queued write that SQLite rolls back with its batch pauses its execution.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{AnyError, Context, ExecutionStatus, Runtime, step, workflow};
use support::{TempDb, Unmount, wait_for_status, within};

#[step]
async fn chunk(i: u32) -> Result<String, AnyError> {
    Ok(format!("{i}:{}", "y".repeat(64 * 1024)))
}

#[workflow]
async fn eight_chunks(_ctx: Context) -> Result<u32, AnyError> {
    for i in 0..8 {
        chunk(i).await?;
    }
    Ok(8)
}

/// Waits until `id` is paused for lack of space; returns the reason.
async fn paused_for_space(rt: &Runtime, id: &str) -> String {
    within(async {
        loop {
            let info = rt.status(id).await.unwrap();
            if info.status == ExecutionStatus::Paused {
                return info.error_message.unwrap_or_default();
            }
            assert_ne!(
                info.status,
                ExecutionStatus::Completed,
                "it never ran out of space"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_capped_database_pauses_then_goes_on_when_space_is_freed() {
    let db = TempDb::new();
    Runtime::open(db.path())
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    {
        // Ballast that the test frees later, written beside the journal.
        let c = rusqlite::Connection::open(db.path()).unwrap();
        c.execute_batch(
            "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(614400));",
        )
        .unwrap();
    }
    let rt = db
        .builder()
        .max_database_size(1024 * 1024)
        .open()
        .await
        .unwrap();
    let handle = eight_chunks::start(&rt, "full-1").await.unwrap();
    let reason = paused_for_space(&rt, "full-1").await;
    assert!(reason.contains("full"), "{reason}");
    assert!(
        handle.result().await.is_err(),
        "the waiter learns of the pause"
    );

    {
        let c = rusqlite::Connection::open(db.path()).unwrap();
        c.busy_timeout(Duration::from_secs(10)).unwrap();
        c.execute_batch("DELETE FROM ballast").unwrap();
    }
    // Nobody resumes it: the runtime tries again by itself.
    let info = wait_for_status(&rt, "full-1", ExecutionStatus::Completed).await;
    assert_eq!(info.steps.len(), 8);
    assert!(info.steps.iter().all(|s| s.output.is_some()));
    rt.shutdown().await.unwrap();
}

/// Mounts a tmpfs of `size` at `dir`, or says why not (it needs root).
fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_full_filesystem_pauses_then_goes_on_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    if !mount_tmpfs(&mnt, "4m") {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let _unmount = Unmount(mnt.clone());
    let path = mnt.join("journal.db");
    let rt = Runtime::builder()
        .path(&path)
        .restart_delay(Duration::from_millis(20))
        .open()
        .await
        .unwrap();
    // Leave about 300 KiB free: the workflow needs more than that.
    let ballast = mnt.join("ballast");
    let free = {
        let stat = nix_free_bytes(&mnt);
        stat.saturating_sub(300 * 1024)
    };
    std::fs::write(&ballast, vec![0u8; usize::try_from(free).unwrap()]).unwrap();

    let handle = eight_chunks::start(&rt, "tmpfs-1").await.unwrap();
    let reason = paused_for_space(&rt, "tmpfs-1").await;
    assert!(
        reason.contains("full") || reason.contains("space"),
        "{reason}"
    );
    assert!(
        handle.result().await.is_err(),
        "the waiter learns of the pause"
    );

    std::fs::remove_file(&ballast).unwrap();
    let info = wait_for_status(&rt, "tmpfs-1", ExecutionStatus::Completed).await;
    assert_eq!(info.steps.len(), 8);
    rt.shutdown().await.unwrap();
}

/// Free bytes on the filesystem of `dir` (`df`, to need no extra crate).
fn nix_free_bytes(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .unwrap()
}

// A queued write lost when SQLite rolls back its batch. Gates are flags the
// test raises; the workflows wait for them between their journal writes.

static A_ONE: AtomicU32 = AtomicU32::new(0);
static A_TWO: AtomicU32 = AtomicU32::new(0);
static C_ONE: AtomicU32 = AtomicU32::new(0);
static C_TWO: AtomicU32 = AtomicU32::new(0);
/// Raised: `lost_helper` journals `ctx.now()`.
static GATE_NOW: AtomicBool = AtomicBool::new(false);
/// Raised: `lost_helper` goes on to its second step; each run lowers it
/// again, so a run the sweep starts by itself waits for the test too.
static GATE_GO_ON: AtomicBool = AtomicBool::new(false);
/// Raised: `steady` goes on to its second step.
static GATE_STEADY: AtomicBool = AtomicBool::new(false);
/// Raised by `lost_helper` once `ctx.now()` has returned (its write queued).
static NOW_QUEUED: AtomicBool = AtomicBool::new(false);
/// Counts the waits at a gate (a workflow has reached it).
static AT_GATE: AtomicU32 = AtomicU32::new(0);

async fn wait_for_gate(gate: &AtomicBool, take: bool) {
    AT_GATE.fetch_add(1, Ordering::SeqCst);
    loop {
        let open = if take {
            gate.swap(false, Ordering::SeqCst)
        } else {
            gate.load(Ordering::SeqCst)
        };
        if open {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[step]
async fn a_one() -> Result<u32, AnyError> {
    A_ONE.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[step]
async fn a_two() -> Result<u32, AnyError> {
    A_TWO.fetch_add(1, Ordering::SeqCst);
    Ok(2)
}

#[workflow]
async fn lost_helper(ctx: Context) -> Result<u64, AnyError> {
    a_one().await?;
    wait_for_gate(&GATE_NOW, false).await;
    let now = ctx.now().await;
    NOW_QUEUED.store(true, Ordering::SeqCst);
    wait_for_gate(&GATE_GO_ON, true).await;
    a_two().await?;
    let ms = now.duration_since(std::time::UNIX_EPOCH)?.as_millis();
    Ok(u64::try_from(ms)?)
}

#[step]
async fn c_one() -> Result<u32, AnyError> {
    C_ONE.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[step]
async fn c_two() -> Result<u32, AnyError> {
    C_TWO.fetch_add(1, Ordering::SeqCst);
    Ok(2)
}

#[workflow]
async fn steady(_ctx: Context) -> Result<u32, AnyError> {
    let one = c_one().await?;
    wait_for_gate(&GATE_STEADY, false).await;
    Ok(one + c_two().await?)
}

#[workflow]
async fn noop(_ctx: Context) -> Result<(), AnyError> {
    Ok(())
}

#[workflow]
async fn big_input(_ctx: Context, data: String) -> Result<usize, AnyError> {
    Ok(data.len())
}

/// Polls `fut` once: far enough for a start to send its insert to the
/// journal's writer (nothing before that send awaits), not for its answer.
async fn send_now<F: std::future::Future + Unpin>(fut: &mut F) {
    tokio::select! {
        biased;
        _ = fut => panic!("the journal's writer answered while its database was locked"),
        () = std::future::ready(()) => {}
    }
}

/// The writer groups every op waiting for it into one transaction. With the
/// database locked by another connection, the writer is held inside a batch
/// (the start of `noop`); meanwhile `lost_helper` queues its `ctx.now()`
/// value (nobody waits for that write) and a start whose input cannot fit
/// under the size cap is sent. Both land in the next batch: the insert hits
/// SQLITE_FULL and SQLite rolls the whole transaction back, the queued value
/// with it. `lost_helper` must then stop at its next boundary, paused for
/// storage, instead of going on as if `now` were journaled; an execution with
/// nothing in that batch goes on untouched; and once resumed `lost_helper`
/// finishes without running its completed step again.
#[tokio::test]
async fn a_queued_write_lost_in_a_rolled_back_batch_pauses_its_execution() {
    let db = TempDb::new();
    Runtime::open(db.path())
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    {
        let c = rusqlite::Connection::open(db.path()).unwrap();
        c.execute_batch(
            "CREATE TABLE ballast (b BLOB); INSERT INTO ballast VALUES (zeroblob(614400));",
        )
        .unwrap();
    }
    let rt = db
        .builder()
        .max_database_size(1024 * 1024)
        .busy_timeout(Duration::from_secs(30))
        .open()
        .await
        .unwrap();
    let lost = lost_helper::start(&rt, "lost").await.unwrap();
    let steady_run = steady::start(&rt, "steady").await.unwrap();
    within(async {
        while AT_GATE.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;

    // Hold the database; the writer blocks in its next batch.
    let holder = rusqlite::Connection::open(db.path()).unwrap();
    holder.busy_timeout(Duration::from_secs(30)).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut blocker = Box::pin(noop::start(&rt, "blocker"));
    send_now(&mut blocker).await;
    // Time for the writer thread to take the blocker as a batch of its own.
    // Taken after both sends below, it joins their batch, which changes
    // nothing; only a writer thread left unscheduled for all of this wait
    // and woken exactly between those two sends would split them.
    tokio::time::sleep(Duration::from_millis(300)).await;

    GATE_NOW.store(true, Ordering::SeqCst);
    within(async {
        while !NOW_QUEUED.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut big = Box::pin(big_input::start(&rt, "big", "x".repeat(600 * 1024)));
    send_now(&mut big).await;
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    let _ = within(blocker).await;
    let Err(err) = within(big).await else {
        panic!("the oversized start was accepted");
    };
    assert!(err.to_string().contains("full"), "{err}");

    // The next boundary of `lost_helper` is its second step.
    let mut ended = Box::pin(lost.result());
    send_now(&mut ended).await;
    GATE_GO_ON.store(true, Ordering::SeqCst);
    let paused = within(ended).await;
    let Err(replayflow::RunError::Paused(reason)) = paused else {
        panic!("expected paused, got {paused:?}");
    };
    assert!(reason.contains("lost a queued write"), "{reason}");
    assert_eq!(
        A_TWO.load(Ordering::SeqCst),
        0,
        "it went on past the lost write"
    );

    // An execution with nothing in the lost batch goes on.
    GATE_STEADY.store(true, Ordering::SeqCst);
    assert_eq!(within(steady_run.result()).await.unwrap(), 3);
    assert_eq!(
        (C_ONE.load(Ordering::SeqCst), C_TWO.load(Ordering::SeqCst)),
        (1, 1)
    );

    // Resumed (the sweep may have begun that already), it journals `now`
    // anew and finishes, without running its completed step again.
    rt.resume("lost").await.unwrap();
    GATE_GO_ON.store(true, Ordering::SeqCst);
    let info = wait_for_status(&rt, "lost", ExecutionStatus::Completed).await;
    assert_eq!(
        A_ONE.load(Ordering::SeqCst),
        1,
        "a completed step ran again"
    );
    assert_eq!(A_TWO.load(Ordering::SeqCst), 1);
    let now = info
        .steps
        .iter()
        .find(|s| s.kind == replayflow::EntryKind::Now)
        .expect("`now` is journaled");
    let output: u64 = lost.result().await.unwrap();
    assert_eq!(
        now.output.as_ref().map(|p| p.decode::<u64>().unwrap()),
        Some(output),
        "the value it went on with is the journaled one"
    );
    rt.shutdown().await.unwrap();
}
