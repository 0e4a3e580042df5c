//! A full disk pauses executions visibly, and they go on by themselves once
//! space returns: with a size cap (`max_database_size`) and, where the test
//! may mount one, on a real filesystem that fills up (a small tmpfs).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
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
