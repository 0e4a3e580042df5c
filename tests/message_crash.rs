//! Messages under kill -9: a worker process takes messages one by one; it
//! is SIGKILLed with a message just sent, messages are sent while it is
//! down (through an admin open, as the CLI does), and a new process goes
//! on. Every message is taken exactly once and in order, whatever was in
//! flight when the process died.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use replayflow::{Delivery, EntryKind, Runtime, SendOptions, StepStatus};

/// The tests here kill real processes: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn worker(db: &Path, ledger: &Path, n: u32) -> Child {
    Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args([
            "inbox",
            db.to_str().unwrap(),
            ledger.to_str().unwrap(),
            &n.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the worker")
}

fn got(ledger: &Path) -> Vec<u64> {
    std::fs::read_to_string(ledger)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("got ")?.parse().ok())
        .collect()
}

/// Waits until the ledger shows message `n` taken.
fn wait_for(ledger: &Path, n: u64, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !got(ledger).contains(&n) {
        assert!(Instant::now() < deadline, "message {n} was never taken");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the worker exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn send(db: &Path, n: u64) {
    let admin = Runtime::builder().path(db).admin().open().await.unwrap();
    let key = SendOptions::idempotency_key(format!("msg-{n}"));
    let delivery = admin.send_with("inbox-1", "n", &n, key).await.unwrap();
    assert_eq!(delivery, Delivery::Delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_taken_once_and_in_order_across_kills() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("inbox.db");
    let ledger = dir.path().join("ledger.txt");
    let total = 6;

    let mut child = worker(&db, &ledger, total);
    // The execution exists once the worker has started it.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !db.exists() || !started(&db).await {
        assert!(
            Instant::now() < deadline,
            "the worker never started inbox-1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    send(&db, 1).await;
    wait_for(&ledger, 1, &mut child);

    // Killed with a message just sent: taken before the kill or after.
    send(&db, 2).await;
    child.kill().unwrap();
    child.wait().unwrap();
    // Sent while no worker runs, one of them twice under its key.
    send(&db, 3).await;
    send(&db, 4).await;
    let admin = Runtime::builder().path(&db).admin().open().await.unwrap();
    let again = admin
        .send_with("inbox-1", "n", &4u64, SendOptions::idempotency_key("msg-4"))
        .await
        .unwrap();
    assert_eq!(again, Delivery::Duplicate);
    drop(admin);

    let mut child = worker(&db, &ledger, total);
    wait_for(&ledger, 4, &mut child);
    // Killed while waiting (suspended) for the fifth.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();

    let child = worker(&db, &ledger, total);
    send(&db, 5).await;
    send(&db, 6).await;
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("result: 21"),
        "1 + ... + 6 once each: {stdout}"
    );

    // The journal took each message once, in the order sent.
    let admin = Runtime::builder().path(&db).admin().open().await.unwrap();
    let info = admin.status("inbox-1").await.unwrap();
    let taken: Vec<u64> = info
        .steps
        .iter()
        .filter(|e| e.kind == EntryKind::Recv)
        .map(|e| {
            assert_eq!(e.status, StepStatus::Completed);
            e.output.as_ref().unwrap().decode::<u64>().unwrap()
        })
        .collect();
    assert_eq!(taken, [1, 2, 3, 4, 5, 6]);
    // A step in flight at a kill may run again; none is skipped, and the
    // first runs are in order.
    let mut seen = Vec::new();
    for n in got(&ledger) {
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5, 6], "ledger: {:?}", got(&ledger));
}

async fn started(db: &Path) -> bool {
    let Ok(admin) = Runtime::builder().path(db).admin().open().await else {
        return false;
    };
    admin.status("inbox-1").await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_read_live_across_a_kill_loses_and_repeats_nothing() {
    let _serial = SERIAL.lock().await;
    use futures_util::StreamExt;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("stream.db");
    let n: u32 = 60;
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_crash-worker"))
            .args(["streamer", db.to_str().unwrap(), &n.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the worker")
    };
    let mut child = spawn();
    let deadline = Instant::now() + Duration::from_secs(120);
    let admin = loop {
        assert!(
            Instant::now() < deadline,
            "the worker never started stream-1"
        );
        if let Ok(admin) = Runtime::builder().path(&db).admin().open().await
            && admin.status("stream-1").await.is_ok()
        {
            break admin;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A reader in this process, live, while the worker dies and comes back.
    let reader = tokio::spawn(async move {
        admin
            .read_stream::<u32>("stream-1", "ticks")
            .map(|v| v.expect("a value"))
            .collect::<Vec<u32>>()
            .await
    });
    let status = admin_status(&db).await;
    assert!(!status.is_terminal(), "{status}");
    // Killed once some values are out.
    while stream_len(&db).await < 10 {
        assert!(Instant::now() < deadline, "the stream never grew");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let out = spawn().wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("result: {n}")));
    let read = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader ended")
        .unwrap();
    assert_eq!(
        read,
        (0..n).collect::<Vec<_>>(),
        "every value once, in order"
    );
}

async fn admin_status(db: &Path) -> replayflow::ExecutionStatus {
    let admin = Runtime::builder().path(db).admin().open().await.unwrap();
    admin.status("stream-1").await.unwrap().status
}

async fn stream_len(db: &Path) -> usize {
    let admin = Runtime::builder().path(db).admin().open().await.unwrap();
    let info = admin.status("stream-1").await.unwrap();
    info.steps
        .iter()
        .filter(|e| e.kind == EntryKind::Stream)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_gathered_across_a_kill_of_the_parents_worker_start_once_each() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fan.db");
    let ledger = dir.path().join("ledger.txt");
    let n: u32 = 100;
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_crash-worker"))
            .args([
                "fanout",
                db.to_str().unwrap(),
                ledger.to_str().unwrap(),
                &n.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the worker")
    };
    let mut child = spawn();
    // Killed once some children have run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while ran(&ledger) < 20 {
        assert!(Instant::now() < deadline, "no child ran");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the worker exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let out = spawn().wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("result: {}", (0..n).sum::<u32>())),
        "every child's result gathered: {stdout}"
    );
    let admin = Runtime::builder().path(&db).admin().open().await.unwrap();
    let info = admin.status("fan-1").await.unwrap();
    assert_eq!(info.children.len(), n as usize, "no child started twice");
    let all = admin
        .list(replayflow::ListFilter::new().limit(1000))
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        n as usize + 1,
        "the parent and its children, no more"
    );
    // A child's step runs again only when it was in flight at the kill.
    let lines = std::fs::read_to_string(&ledger).unwrap();
    for i in 0..n {
        let runs = lines.lines().filter(|l| *l == format!("child {i}")).count();
        assert!((1..=2).contains(&runs), "child {i} ran {runs} times");
    }
}

fn ran(ledger: &Path) -> usize {
    std::fs::read_to_string(ledger)
        .unwrap_or_default()
        .lines()
        .count()
}
