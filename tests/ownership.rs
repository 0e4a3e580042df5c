//! One database, one worker: a second worker on the same file is refused
//! with a message naming the holder; a lock left by a killed process is
//! taken over.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use replayflow::{Error, Runtime};
use support::TempDb;

#[tokio::test]
async fn a_second_worker_on_the_same_file_is_refused() {
    let db = TempDb::new();
    let first = Runtime::open(db.path()).await.unwrap();
    let err = match Runtime::open(db.path()).await {
        Ok(_) => panic!("two workers opened one database"),
        Err(e) => e,
    };
    assert!(matches!(&err, Error::Locked { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("process {}", std::process::id())),
        "{text}"
    );
    first.shutdown().await.unwrap();
    // Released by the shutdown: a new worker may open it.
    let _again = Runtime::open(db.path()).await.unwrap();
}

#[tokio::test]
async fn a_lock_left_by_a_killed_process_is_taken_over() {
    let db = TempDb::new();
    let ledger = db.dir.path().join("ledger.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args([
            "start",
            db.path().to_str().unwrap(),
            ledger.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // The worker holds the lock once it has started its workflow.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&ledger)
        .unwrap_or_default()
        .contains("two attempt")
    {
        assert!(Instant::now() < deadline, "the worker never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    match Runtime::open(db.path()).await {
        Err(Error::Locked { holder, .. }) => assert!(
            holder.contains(&format!("process {}", child.id())),
            "{holder}"
        ),
        Err(e) => panic!("expected a lock error, got {e}"),
        Ok(_) => panic!("opened a database another worker holds"),
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _taken_over = Runtime::open(db.path())
        .await
        .expect("a dead worker's lock must not block");
}
