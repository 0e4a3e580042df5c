//! A real process is SIGKILLed after step one completed and while step two is
//! in flight; a new process resumes the execution from the journal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The tests here kill and time real processes: one at a time, so that one
/// test's processes do not slow another's timing on a 2-core machine.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn worker() -> Command {
    Command::new(env!("CARGO_BIN_EXE_crash-worker"))
}

fn ledger_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn sigkill_mid_step_then_resume_runs_completed_steps_once() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let ledger = dir.path().join("ledger.txt");

    let mut child = worker()
        .args(["start", db.to_str().unwrap(), ledger.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the worker");
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ledger_lines(&ledger)
        .iter()
        .any(|l| l.starts_with("two attempt"))
    {
        assert!(Instant::now() < deadline, "step two never started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the worker exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Step two runs for longer than a quick step: its start is journaled
    // on its own. Wait until it is committed, then kill.
    while !attempt_running(&db) {
        assert!(
            Instant::now() < deadline,
            "the start of step two was never journaled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL the worker");
    child.wait().unwrap();

    let before = ledger_lines(&ledger);
    assert_eq!(
        before.iter().filter(|l| *l == "one").count(),
        1,
        "{before:?}"
    );
    assert_eq!(
        before
            .iter()
            .filter(|l| l.starts_with("two attempt"))
            .count(),
        1,
        "{before:?}"
    );

    let out = worker()
        .args(["resume", db.to_str().unwrap(), ledger.to_str().unwrap()])
        .output()
        .expect("run the resuming worker");
    assert!(
        out.status.success(),
        "resume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "result: 1+2=3");

    let after = ledger_lines(&ledger);
    // Step one completed before the kill: its body ran exactly once in total.
    assert_eq!(after.iter().filter(|l| *l == "one").count(), 1, "{after:?}");
    // Step two was in flight: it ran again, its attempt count going on.
    let twos: Vec<&String> = after
        .iter()
        .filter(|l| l.starts_with("two attempt"))
        .collect();
    assert_eq!(twos.len(), 2, "{after:?}");
    assert_eq!(twos[0], "two attempt 1");
    assert_eq!(twos[1], "two attempt 2");
    // Journaled helper values are the same in both runs.
    let values: Vec<&String> = after.iter().filter(|l| l.starts_with("values")).collect();
    assert_eq!(values.len(), 2, "{after:?}");
    assert_eq!(values[0], values[1], "now/random differ after the crash");
}

#[test]
fn a_sleep_that_came_due_while_the_worker_was_dead_fires_promptly_after_open() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nap.db");
    let ledger = dir.path().join("ledger.txt");
    let mut child = worker()
        .args(["nap", db.to_str().unwrap(), ledger.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ledger_lines(&ledger).iter().any(|l| l == "before sleep") {
        assert!(
            Instant::now() < deadline,
            "the workflow never reached its sleep"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed during the two-second sleep; reopened after its wake time.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    std::thread::sleep(Duration::from_secs(3));

    let out = worker()
        .args(["nap-resume", db.to_str().unwrap(), ledger.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let ms: u64 = stdout
        .trim()
        .strip_prefix("result: 1 after ")
        .and_then(|s| s.strip_suffix(" ms"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    assert!(ms < 1_000, "completed {ms} ms after open");
    assert_eq!(
        ledger_lines(&ledger).iter().filter(|l| *l == "one").count(),
        1
    );
}

#[test]
fn a_step_that_blocks_its_thread_journals_its_start_once_it_has_been_slow() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grind.db");
    let ledger = dir.path().join("ledger.txt");
    let mut child = Killed(
        worker()
            .args(["grind", db.to_str().unwrap(), ledger.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the worker"),
    );
    // The second call blocks its thread: no timer of its task can fire, so
    // only a start journaled before the body ran can be seen here.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !ledger_lines(&ledger)
        .iter()
        .any(|l| l == "grind 1 attempt 1")
        || !attempt_running(&db)
    {
        assert!(
            Instant::now() < deadline,
            "the start of the blocking step was never journaled: {:?}",
            ledger_lines(&ledger)
        );
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("the worker exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.0.kill().expect("SIGKILL the worker");
    child.0.wait().unwrap();

    let out = worker()
        .args([
            "grind-resume",
            db.to_str().unwrap(),
            ledger.to_str().unwrap(),
        ])
        .output()
        .expect("run the resuming worker");
    assert!(
        out.status.success(),
        "resume failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "result: 1");
    let lines = ledger_lines(&ledger);
    assert_eq!(
        lines,
        [
            "grind 0 attempt 1",
            "grind 1 attempt 1",
            "grind 1 attempt 2"
        ],
        "the first step ran once; the second again, its attempt count going on"
    );
}

/// A worker that a failing test kills instead of leaving behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether the journal holds an attempt in flight (read beside the worker).
fn attempt_running(db: &std::path::Path) -> bool {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return false;
    };
    conn.query_row(
        "SELECT count(*) FROM step_attempts WHERE status = 'running'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .is_ok_and(|n| n > 0)
}

/// `#[step(at_most_once, max_attempts = 1)]`: the start is committed before
/// the body runs, so a kill at any moment of the body leaves it on record,
/// and the re-opened worker counts the attempt as failed instead of running
/// the body a second time.
#[test]
fn sigkill_during_an_at_most_once_step_never_runs_its_body_twice() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("once.db");
    let ledger = dir.path().join("ledger.txt");
    let mut child = worker()
        .args(["once", db.to_str().unwrap(), ledger.to_str().unwrap()])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the worker");
    let deadline = Instant::now() + Duration::from_secs(120);
    // Killed as soon as the body has begun: no timer has fired, nothing
    // else was written since the start.
    while ledger_lines(&ledger).is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the worker exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().expect("SIGKILL the worker");
    child.wait().unwrap();

    let out = worker()
        .args([
            "once-resume",
            db.to_str().unwrap(),
            ledger.to_str().unwrap(),
        ])
        .output()
        .expect("run the resuming worker");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("not charged"), "{stdout}");
    assert!(stdout.contains("interrupted"), "{stdout}");
    assert_eq!(
        ledger_lines(&ledger),
        ["charge attempt 1"],
        "the body ran once"
    );
}
