//! Every example runs to completion, as `cargo run --example NAME` would run
//! it, each in a directory of its own (the file-backed ones write their
//! database there). The benchmark is left out: it has its own command.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// `target/<profile>/examples/<name>`, which `cargo test` builds.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    profile.join("examples").join(name)
}

fn runs_to_completion(name: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = example(name);
    assert!(path.exists(), "{} is not built", path.display());
    let started = Instant::now();
    let out = Command::new(&path)
        .current_dir(dir.path())
        .env("SLEEP_DB", dir.path().join("sleep.db"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{name} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(expect), "{name} printed:\n{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{name} took {:?}",
        started.elapsed()
    );
}

#[test]
fn basic() {
    runs_to_completion("basic", "welcome mail sent to user-7");
}

#[test]
fn retries() {
    runs_to_completion("retries", "checkout-1: completed after 3 attempt(s)");
}

#[test]
fn monitoring() {
    runs_to_completion("monitoring", "attempt 2: failed");
}

#[test]
fn panic_recovery() {
    runs_to_completion("panic_recovery", "render#0 completed after 2 attempt(s)");
}

#[test]
fn order_processing() {
    runs_to_completion("order_processing", "completed order-1");
}

#[test]
fn sleep() {
    runs_to_completion("sleep", "reminder sent to ada@example.com");
}

/// Needs the PostgreSQL server of the machine (127.0.0.1:5432); skipped
/// without one, except under CI.
#[test]
fn workers() {
    if std::net::TcpStream::connect("127.0.0.1:5432").is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the workers example needs PostgreSQL on 127.0.0.1:5432 under CI"
        );
        eprintln!("skipped: no PostgreSQL on 127.0.0.1:5432");
        return;
    }
    runs_to_completion("workers", "orders, all completed on the surviving workers");
}

#[test]
fn approval() {
    runs_to_completion(
        "approval",
        "order-1001: approved by ada, paid (pay-order-1001)",
    );
}

#[test]
fn fanout() {
    runs_to_completion("fanout", "report-2026-11: total 25000");
}
