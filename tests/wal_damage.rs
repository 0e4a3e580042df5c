//! A journal that lost committed data is refused, never silently opened as
//! less: a worker is killed with its commits in the WAL, then the WAL is
//! damaged, truncated or removed. The file and its WAL are left as they were.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use replayflow::{Error, ListFilter, Runtime};
use support::TempDb;

const EXECUTIONS: u32 = 20;

/// A database whose worker was SIGKILLed after completing its executions,
/// with the files it left: `(db, wal)`.
fn killed_worker(db: &TempDb) -> (PathBuf, PathBuf) {
    let path = db.path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args(["fill", path.to_str().unwrap(), &EXECUTIONS.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "filled");
    child.kill().unwrap();
    child.wait().unwrap();
    let wal = wal_of(&path);
    let len = std::fs::metadata(&wal).unwrap().len();
    assert!(len > 60_000, "the WAL holds the commits: {len} bytes");
    (path, wal)
}

fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Opens as a worker and as an admin, expecting both to refuse the file as
/// having lost data, and leaves the file and its WAL byte for byte as they were.
async fn refused(db: &Path, wal: &Path) {
    let before = (std::fs::read(db).unwrap(), std::fs::read(wal).ok());
    for admin in [false, true] {
        let builder = Runtime::builder().path(db);
        let builder = if admin { builder.admin() } else { builder };
        match builder.open().await {
            Err(Error::JournalLost { detail, .. }) => {
                assert!(detail.contains("log"), "{detail}")
            }
            Err(e) => panic!("expected a lost-journal error (admin: {admin}), got {e}"),
            Ok(rt) => {
                let left = rt.list(ListFilter::new()).await.unwrap().len();
                panic!("opened a journal that lost data (admin: {admin}): {left} executions left");
            }
        }
        let after = (std::fs::read(db).unwrap(), std::fs::read(wal).ok());
        assert!(
            before == after,
            "the file or its WAL was modified (admin: {admin})"
        );
    }
}

fn flip(wal: &Path, offset: usize) {
    let mut bytes = std::fs::read(wal).unwrap();
    for b in &mut bytes[offset..offset + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(wal, bytes).unwrap();
}

#[tokio::test]
async fn an_intact_wal_after_a_kill_opens_with_everything() {
    let db = TempDb::new();
    let (path, _) = killed_worker(&db);
    let rt = Runtime::open(&path).await.unwrap();
    let all = rt.list(ListFilter::new().limit(1000)).await.unwrap();
    assert_eq!(all.len(), EXECUTIONS as usize);
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_damaged_wal_header_is_refused() {
    let db = TempDb::new();
    let (path, wal) = killed_worker(&db);
    flip(&wal, 10);
    refused(&path, &wal).await;
}

#[tokio::test]
async fn a_damaged_first_frame_is_refused() {
    let db = TempDb::new();
    let (path, wal) = killed_worker(&db);
    flip(&wal, 40);
    refused(&path, &wal).await;
}

#[tokio::test]
async fn a_damaged_frame_in_the_middle_is_refused() {
    let db = TempDb::new();
    let (path, wal) = killed_worker(&db);
    flip(&wal, 50_000);
    refused(&path, &wal).await;
}

#[tokio::test]
async fn a_truncated_wal_is_refused() {
    let db = TempDb::new();
    let (path, wal) = killed_worker(&db);
    let len = std::fs::metadata(&wal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    refused(&path, &wal).await;
}

#[tokio::test]
async fn a_missing_wal_is_refused() {
    let db = TempDb::new();
    let (path, wal) = killed_worker(&db);
    std::fs::remove_file(&wal).unwrap();
    refused(&path, &wal).await;
    assert!(!wal.exists(), "a WAL was created");
}

#[tokio::test]
async fn an_admin_open_leaves_the_wal_of_a_killed_worker_in_place() {
    let db = TempDb::new();
    let (path, wal) = killed_worker(&db);
    let before = std::fs::read(&wal).unwrap();
    {
        let admin = Runtime::builder().path(&path).admin().open().await.unwrap();
        let all = admin.list(ListFilter::new().limit(1000)).await.unwrap();
        assert_eq!(all.len(), EXECUTIONS as usize);
        admin.shutdown().await.unwrap();
    }
    assert_eq!(
        std::fs::read(&wal).unwrap(),
        before,
        "the admin open changed the WAL"
    );
    // The worker's next open still finds everything.
    let rt = Runtime::open(&path).await.unwrap();
    assert_eq!(
        rt.list(ListFilter::new().limit(1000)).await.unwrap().len(),
        EXECUTIONS as usize
    );
    rt.shutdown().await.unwrap();
}
