//! One database, one worker: a second worker on the same file is refused
//! with a message naming the holder; a lock left by a killed process is
//! taken over.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use replayflow::{Error, Runtime};
use support::{TempDb, Unmount};

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

/// Opens `alias` while a worker runs on `db`, expecting a refusal.
async fn refused_through(db: &std::path::Path, alias: &std::path::Path) {
    let first = Runtime::open(db).await.unwrap();
    match Runtime::open(alias).await {
        Err(Error::Locked { .. }) => {}
        Err(e) => panic!("expected a lock error through {}, got {e}", alias.display()),
        Ok(_) => panic!(
            "a second worker opened {} through {}",
            db.display(),
            alias.display()
        ),
    }
    first.shutdown().await.unwrap();
    // Released: the alias now opens, and so does the file.
    Runtime::open(alias)
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_second_worker_through_a_symlink_is_refused() {
    let db = TempDb::new();
    let alias = db.dir.path().join("alias.db");
    std::os::unix::fs::symlink(db.path(), &alias).unwrap();
    refused_through(&db.path(), &alias).await;
}

#[tokio::test]
async fn a_second_worker_through_a_symlinked_directory_is_refused() {
    let db = TempDb::new();
    let linked = db.dir.path().join("linked-dir");
    std::os::unix::fs::symlink(db.dir.path(), &linked).unwrap();
    refused_through(&db.path(), &linked.join("workflow.db")).await;
}

#[tokio::test]
async fn a_second_worker_through_a_hard_link_is_refused() {
    let db = TempDb::new();
    // The file must exist to be linked: a worker creates it, then leaves.
    Runtime::open(db.path())
        .await
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let alias = db.dir.path().join("hard.db");
    std::fs::hard_link(db.path(), &alias).unwrap();
    refused_through(&db.path(), &alias).await;
}

#[tokio::test]
async fn a_second_worker_through_a_relative_path_is_refused() {
    let db = TempDb::new();
    std::fs::create_dir(db.dir.path().join("sub")).unwrap();
    let dotted = db.dir.path().join("sub").join("..").join("workflow.db");
    refused_through(&db.path(), &dotted).await;
    // And relative to the working directory, however deep it is.
    let cwd = std::env::current_dir().unwrap();
    let mut relative = std::path::PathBuf::new();
    for _ in cwd.components().skip(1) {
        relative.push("..");
    }
    relative.push(db.path().strip_prefix("/").unwrap());
    assert!(relative.is_relative());
    refused_through(&db.path(), &relative).await;
}

/// A bind mount shows the same file under another directory; only the lock
/// on the file itself (by inode) sees through it. Needs root to mount.
#[tokio::test]
async fn a_second_worker_through_a_bind_mount_is_refused() {
    let db = TempDb::new();
    let source = db.dir.path().join("source");
    let target = db.dir.path().join("target");
    std::fs::create_dir(&source).unwrap();
    std::fs::create_dir(&target).unwrap();
    let mounted = Command::new("mount")
        .arg("--bind")
        .arg(&source)
        .arg(&target)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: `mount --bind` needs root");
        return;
    }
    let _unmount = Unmount(target.clone());
    refused_through(&source.join("workflow.db"), &target.join("workflow.db")).await;
}
