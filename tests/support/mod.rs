//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

pub mod pg;
pub mod stores;

#[allow(unused_imports)]
pub(crate) use stores::both_stores;
#[allow(unused_imports)]
pub use stores::{StoreKind, TestDb};

use replayflow::{Runtime, RuntimeBuilder};

/// A temporary directory that lives as long as the value.
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
        self.dir.path().join("workflow.db")
    }

    pub fn builder(&self) -> RuntimeBuilder {
        Runtime::builder()
            .path(self.path())
            .restart_delay(Duration::from_millis(20))
    }
}

/// Fails the test instead of hanging it when `fut` does not finish in time.
/// The bound is generous: these machines are shared and slow.
pub async fn within<T>(fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), fut)
        .await
        .expect("did not finish within 60 s")
}

/// Awaits `fut` while moving `clock` forward, for tests whose retries or
/// sleeps wait on a manual clock.
pub async fn with_clock_running<T>(
    clock: &replayflow::ManualClock,
    fut: impl Future<Output = T>,
) -> T {
    tokio::pin!(fut);
    within(async {
        loop {
            tokio::select! {
                out = &mut fut => return out,
                () = tokio::time::sleep(Duration::from_millis(2)) => clock.advance(Duration::from_secs(1)),
            }
        }
    })
    .await
}

/// Waits (within the generous bound) until execution `id` is in `status`.
pub async fn wait_for_status(
    rt: &Runtime,
    id: &str,
    status: replayflow::ExecutionStatus,
) -> replayflow::ExecutionInfo {
    within(async {
        loop {
            let info = rt.status(id).await.expect("read the status");
            if info.status == status {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Waits (within the generous bound) until execution `id` satisfies `done`.
pub async fn wait_until(
    rt: &Runtime,
    id: &str,
    done: impl Fn(&replayflow::ExecutionInfo) -> bool,
) -> replayflow::ExecutionInfo {
    within(async {
        loop {
            let info = rt.status(id).await.expect("read the status");
            if done(&info) {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// The status of `id` once a cancel, resume or restart called on it is
/// applied. On SQLite the call applies it before it returns: the status is
/// read at once and must be `status`. On PostgreSQL an execution that no
/// task of this process drives (a suspended sleeper, a finished one) is
/// controlled by a request that the worker's sweep applies within about a
/// second: the status is waited for.
pub async fn applied(
    db: &TestDb,
    rt: &Runtime,
    id: &str,
    status: replayflow::ExecutionStatus,
) -> replayflow::ExecutionInfo {
    if db.is_postgres() {
        return wait_for_status(rt, id, status).await;
    }
    let info = rt.status(id).await.expect("read the status");
    assert_eq!(info.status, status, "{id} was not controlled at once");
    info
}

/// Unmounts a mount point the test made, when dropped (lazily, so a file
/// still open there does not keep it).
pub struct Unmount(pub PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}
