//! The `replayflow` program, run as a user runs it, on databases the library
//! wrote.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use replayflow::ExecutionStatus;
use serde_json::Value;
use support::{TempDb, seed, wait_status, within};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn command(db: Option<&Path>, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_replayflow"));
    cmd.env_remove("WORKFLOW_DB")
        .env_remove("WORKFLOW_TOKEN")
        .env("NO_COLOR", "1");
    if let Some(db) = db {
        cmd.arg("--db").arg(db);
    }
    cmd.args(args);
    cmd
}

/// Runs the program to its end, off the async executor.
async fn run_cmd(mut cmd: Command) -> Run {
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run the workflow binary"))
        .await
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn cli(db: &Path, args: &[&str]) -> Run {
    run_cmd(command(Some(db), args)).await
}

fn ok(run: &Run) -> &str {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    &run.stdout
}

fn json(run: &Run) -> Value {
    serde_json::from_str(ok(run)).unwrap_or_else(|e| panic!("{e}: {}", run.stdout))
}

/// Asserts one `error: ...` line on stderr and a failing exit code.
fn fails(run: &Run, needle: &str) {
    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    assert!(lines[0].starts_with("error: "), "{}", run.stderr);
    assert!(lines[0].contains(needle), "{}", run.stderr);
}

/// A database with executions in several states, its worker shut down.
async fn seeded() -> TempDb {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;
    rt.shutdown().await.unwrap();
    db
}

#[tokio::test]
async fn list_prints_a_table_and_counts() {
    let db = seeded().await;
    let run = cli(&db.path(), &["list"]).await;
    let out = ok(&run);
    let header = out.lines().next().unwrap();
    for column in [
        "ID",
        "WORKFLOW",
        "VERSION",
        "STATUS",
        "RESTARTS",
        "CREATED (UTC)",
        "ERROR",
    ] {
        assert!(header.contains(column), "{out}");
    }
    for id in ["greet-1", "flaky-1", "doomed-1", "nap-1", "boom-1"] {
        assert!(out.contains(id), "{out}");
    }
    assert!(out.contains("no such customer"), "{out}");
    // The version of the package that defines the workflows.
    assert!(out.contains(env!("CARGO_PKG_VERSION")), "{out}");
    assert!(out.contains("showing 1-7 of 7"), "{out}");
    assert!(
        out.contains("7 executions: 2 sleeping, 3 completed, 1 failed, 1 panicked"),
        "{out}"
    );
    assert!(!out.contains('\x1b'), "colors on a pipe: {out}");

    let run = cli(&db.path(), &["list", "--status", "sleeping"]).await;
    let out = ok(&run);
    assert!(out.contains("nap-1") && !out.contains("greet-1"), "{out}");
    assert!(out.contains("showing 1-2 of 2"), "{out}");

    let run = cli(&db.path(), &["list", "--limit", "2"]).await;
    assert!(
        ok(&run).contains("(next page: --offset 2)"),
        "{}",
        run.stdout
    );

    let run = cli(&db.path(), &["list", "--until", "1h"]).await;
    assert!(ok(&run).contains("no executions match"), "{}", run.stdout);
}

#[tokio::test]
async fn list_json_filters_and_pages() {
    let db = seeded().await;
    let all = json(&cli(&db.path(), &["list", "--json"]).await);
    let executions = all["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 7);
    assert_eq!(executions[0]["id"], "boom-1");
    assert_eq!(all["total"], 7);
    assert_eq!(all["counts"]["completed"], 3);
    assert_eq!(all["counts"]["running"], 0);
    assert_eq!(all["has_more"], false);

    let failed = json(&cli(&db.path(), &["list", "--json", "--status", "failed"]).await);
    let executions = failed["executions"].as_array().unwrap();
    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0]["id"], "doomed-1");
    assert_eq!(executions[0]["error_message"], "no such customer");

    let greet = json(&cli(&db.path(), &["list", "--json", "--workflow", "greet"]).await);
    assert_eq!(greet["executions"].as_array().unwrap().len(), 2);
    assert_eq!(greet["total"], 2);

    let page = json(
        &cli(
            &db.path(),
            &["list", "--json", "--limit", "2", "--offset", "2"],
        )
        .await,
    );
    let ids: Vec<&str> = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["nap-1", "doomed-1"]);
    assert_eq!(page["has_more"], true);

    let recent = json(&cli(&db.path(), &["list", "--json", "--since", "10m"]).await);
    assert_eq!(recent["executions"].as_array().unwrap().len(), 7);
    let old = json(
        &cli(
            &db.path(),
            &["list", "--json", "--until", "2000-01-01T00:00:00Z"],
        )
        .await,
    );
    assert_eq!(old["executions"].as_array().unwrap().len(), 0);
    assert_eq!(old["total"], 0);

    fails(
        &cli(&db.path(), &["list", "--since", "yesterday"]).await,
        "--since: invalid time `yesterday`",
    );
    // Bad values of typed options are usage errors (exit 2).
    let run = cli(&db.path(), &["list", "--status", "done"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("expected one of"), "{}", run.stderr);
}

#[tokio::test]
async fn show_prints_the_timeline() {
    let db = seeded().await;
    let run = cli(&db.path(), &["show", "flaky-1"]).await;
    let out = ok(&run);
    assert!(out.contains("execution  flaky-1"), "{out}");
    assert!(out.contains("status     completed"), "{out}");
    assert!(out.contains("output     3"), "{out}");
    assert!(out.contains("input      {}"), "{out}");
    let header = out
        .lines()
        .find(|l| l.starts_with('#'))
        .unwrap_or_else(|| panic!("{out}"));
    for column in [
        "STEP", "KIND", "STATUS", "ATTEMPTS", "START", "DURATION", "RESULT",
    ] {
        assert!(header.contains(column), "{out}");
    }
    let step = out.lines().find(|l| l.contains("wobble#0")).unwrap();
    assert!(step.contains("completed") && step.contains(" 3 "), "{step}");
    assert!(out.contains("attempt 1"), "{out}");
    assert!(out.contains("wobble 1 fell over"), "{out}");
    assert!(out.contains("wobble 2 fell over"), "{out}");

    let out = ok(&cli(&db.path(), &["show", "doomed-1"]).await).to_owned();
    assert!(out.contains("status     failed"), "{out}");
    assert!(out.contains("reason     no such customer"), "{out}");
    assert!(
        out.contains(r#"error      {"message":"no such customer"}"#),
        "{out}"
    );

    let out = ok(&cli(&db.path(), &["show", "nap-1"]).await).to_owned();
    assert!(out.contains("wakes"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("sleep#0") && l.contains("sleeping")),
        "{out}"
    );

    let out = ok(&cli(&db.path(), &["show", "boom-1"]).await).to_owned();
    assert!(out.contains("the fuse was lit"), "{out}");
}

#[tokio::test]
async fn show_json_decodes_payloads() {
    let db = seeded().await;
    let e = json(&cli(&db.path(), &["show", "greet-1", "--json"]).await);
    assert_eq!(e["id"], "greet-1");
    assert_eq!(e["workflow"], "greet");
    assert_eq!(e["status"], "completed");
    assert_eq!(e["input"]["name"], "Ada");
    assert_eq!(e["output"], "hello, Ada");
    assert_eq!(e["steps"][0]["key"], "hello#0");
    assert_eq!(e["steps"][0]["output"], "hello, Ada");
    assert_eq!(e["steps"][0]["attempt_log"][0]["status"], "completed");
    assert!(e["steps"][0]["duration_ms"].is_u64());

    let e = json(&cli(&db.path(), &["show", "flaky-1", "--json"]).await);
    let log = e["steps"][0]["attempt_log"].as_array().unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[1]["error"], "wobble 2 fell over");
}

#[tokio::test]
async fn errors_are_one_line_and_a_failing_exit() {
    let db = seeded().await;
    let dir = db.dir.path();

    let missing = dir.join("missing.db");
    fails(&cli(&missing, &["list"]).await, "no workflow database at");
    assert!(!missing.exists(), "the CLI created the file");

    fails(
        &cli(&db.path(), &["show", "no-such-id"]).await,
        "no execution with id `no-such-id`",
    );
    fails(
        &cli(&db.path(), &["cancel", "no-such-id"]).await,
        "no-such-id",
    );
    fails(
        &cli(&db.path(), &["watch", "no-such-id"]).await,
        "no-such-id",
    );

    // Another program's SQLite file, and a text file: refused, untouched.
    let foreign = dir.join("other.sqlite");
    {
        let conn = rusqlite::Connection::open(&foreign).unwrap();
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('hi');")
            .unwrap();
    }
    let text = dir.join("notes.txt");
    std::fs::write(
        &text,
        "just some text, long enough to have a header?\n".repeat(4),
    )
    .unwrap();
    for file in [&foreign, &text] {
        let before = std::fs::read(file).unwrap();
        fails(&cli(file, &["list"]).await, "is not a workflow database");
        fails(
            &cli(file, &["show", "x"]).await,
            "is not a workflow database",
        );
        assert_eq!(std::fs::read(file).unwrap(), before);
        let wal = format!("{}-wal", file.display());
        assert!(!Path::new(&wal).exists());
    }

    let run = run_cmd(command(None, &["list"])).await;
    fails(&run, "no database given: pass --db PATH or set WORKFLOW_DB");

    // The environment variable works as --db.
    let mut cmd = command(None, &["list", "--json"]);
    cmd.env("WORKFLOW_DB", db.path());
    let run = run_cmd(cmd).await;
    assert_eq!(json(&run)["total"], 7);
}

#[tokio::test]
async fn a_database_whose_tables_were_never_created_is_one_clear_line() {
    // Stamped as ours (application_id "WFLW"), schema version 0, no tables:
    // the first worker stopped between stamping the file and creating them.
    let db = TempDb::new();
    {
        let conn = rusqlite::Connection::open(db.path()).unwrap();
        conn.pragma_update(None, "application_id", 0x5746_4C57)
            .unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL").unwrap();
    }
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["show", "x"],
        &["watch", "x"],
        &["cancel", "x"],
    ] {
        let run = cli(&db.path(), args).await;
        fails(&run, "whose tables were never created");
        assert!(!run.stderr.contains("CREATE"), "{}", run.stderr);
        assert!(!run.stderr.contains("SELECT"), "{}", run.stderr);
    }
}

/// Makes `dir` read-only, and returns whether this process can still write
/// in it (it runs as root): then the commands must run as another user for
/// the directory to be read-only to them.
fn make_read_only(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let probe = dir.join("probe");
    let privileged = std::fs::write(&probe, b"").is_ok();
    let _ = std::fs::remove_file(&probe);
    privileged
}

/// The program on `db`, as the user `nobody` when this process is root.
async fn cli_as(db: &Path, privileged: bool, args: &[&str]) -> Run {
    use std::os::unix::process::CommandExt;
    let mut cmd = command(Some(db), args);
    if privileged {
        cmd.uid(65534).gid(65534);
    }
    run_cmd(cmd).await
}

#[cfg(unix)]
#[tokio::test]
async fn read_only_commands_work_in_a_read_only_directory() {
    use std::os::unix::fs::PermissionsExt;
    let db = seeded().await;
    let wal = db.dir.path().join("app.db-wal");
    assert!(!wal.exists(), "a clean shutdown leaves no -wal file");
    let privileged = make_read_only(db.dir.path());

    let run = cli_as(&db.path(), privileged, &["list"]).await;
    assert!(ok(&run).contains("showing 1-7 of 7"), "{}", run.stdout);
    let run = cli_as(&db.path(), privileged, &["list", "--json"]).await;
    assert_eq!(json(&run)["total"], 7);
    let run = cli_as(&db.path(), privileged, &["show", "flaky-1"]).await;
    assert!(ok(&run).contains("wobble 2 fell over"), "{}", run.stdout);
    let run = cli_as(&db.path(), privileged, &["watch", "greet-1"]).await;
    assert!(
        ok(&run).contains("execution greet-1 completed"),
        "{}",
        run.stdout
    );
    // Nothing can change a snapshot: an unfinished one is told, not waited for.
    let run = cli_as(&db.path(), privileged, &["watch", "nap-1"]).await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("cannot be followed"), "{}", run.stderr);
    let dir = db.dir.path().display().to_string();
    let run = cli_as(&db.path(), privileged, &["cancel", "nap-1"]).await;
    fails(&run, &format!("its directory `{dir}` is not writable"));

    // Changes left in a -wal file cannot be read without creating files:
    // refused, naming the directory.
    std::fs::set_permissions(db.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(&wal, vec![1u8; 4096]).unwrap();
    let privileged = make_read_only(db.dir.path());
    let run = cli_as(&db.path(), privileged, &["list"]).await;
    fails(&run, &format!("in `{dir}`, which is not writable"));
    std::fs::set_permissions(db.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Reads how many requests the admin table holds for `id`, applied or not.
fn requests(db: &Path, id: &str) -> Vec<(String, Option<i64>)> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT action, applied_at FROM admin_requests WHERE execution_id = ?1 ORDER BY id",
        )
        .unwrap();
    stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[tokio::test]
async fn actions_are_recorded_as_requests() {
    // No worker: the request waits in the database.
    let db = seeded().await;
    let run = cli(&db.path(), &["cancel", "nap-1"]).await;
    assert!(
        ok(&run).contains("cancel of `nap-1` requested (sleeping)"),
        "{}",
        run.stdout
    );
    assert_eq!(requests(&db.path(), "nap-1"), [("cancel".to_owned(), None)]);
    let run = cli(&db.path(), &["resume", "nap-2"]).await;
    ok(&run);
    assert_eq!(requests(&db.path(), "nap-2"), [("resume".to_owned(), None)]);
    let run = cli(&db.path(), &["restart", "boom-1"]).await;
    ok(&run);
    assert_eq!(
        requests(&db.path(), "boom-1"),
        [("restart".to_owned(), None)]
    );

    // A worker opened later applies them.
    let rt = db.worker().open().await.unwrap();
    wait_status(&rt, "nap-1", ExecutionStatus::Cancelled).await;
    wait_status(&rt, "nap-2", ExecutionStatus::Completed).await;
    wait_status(&rt, "boom-1", ExecutionStatus::Completed).await;
    assert!(requests(&db.path(), "nap-1")[0].1.is_some());
    rt.shutdown().await.unwrap();

    // Refused at once when the status does not allow it; nothing recorded.
    fails(
        &cli(&db.path(), &["cancel", "greet-1"]).await,
        "execution `greet-1` is completed; there is nothing to cancel",
    );
    fails(
        &cli(&db.path(), &["resume", "greet-1"]).await,
        "nothing to resume",
    );
    fails(
        &cli(&db.path(), &["restart", "greet-1"]).await,
        "only panicked and failed executions can be restarted",
    );
    assert!(requests(&db.path(), "greet-1").is_empty());
}

#[tokio::test]
async fn a_running_worker_applies_requests_within_seconds() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;

    let asked = Instant::now();
    ok(&cli(&db.path(), &["cancel", "nap-1"]).await);
    wait_status(&rt, "nap-1", ExecutionStatus::Cancelled).await;
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );

    let run = cli(&db.path(), &["resume", "nap-2", "--wait"]).await;
    assert!(
        ok(&run).contains("resume of `nap-2` applied"),
        "{}",
        run.stdout
    );
    wait_status(&rt, "nap-2", ExecutionStatus::Completed).await;

    let run = cli(&db.path(), &["restart", "boom-1", "--wait"]).await;
    assert!(
        ok(&run).contains("restart of `boom-1` applied"),
        "{}",
        run.stdout
    );
    wait_status(&rt, "boom-1", ExecutionStatus::Completed).await;
    assert_eq!(rt.status("boom-1").await.unwrap().restart_attempt, 1);

    let run = cli(&db.path(), &["restart", "doomed-1", "--wait"]).await;
    ok(&run);
    assert_eq!(rt.status("doomed-1").await.unwrap().restart_attempt, 1);

    support::nap::start(&rt, "nap-3").await.unwrap();
    wait_status(&rt, "nap-3", ExecutionStatus::Sleeping).await;
    let run = cli(&db.path(), &["cancel", "nap-3", "--wait"]).await;
    assert!(
        ok(&run).contains("cancel of `nap-3` applied: it is cancelled"),
        "{}",
        run.stdout
    );
    rt.shutdown().await.unwrap();

    // With no worker, --wait gives up with a clear error.
    support::wait_status(&db.admin().await, "greet-1", ExecutionStatus::Completed).await;
    let rt = db.worker().open().await.unwrap();
    support::nap::start(&rt, "nap-4").await.unwrap();
    wait_status(&rt, "nap-4", ExecutionStatus::Sleeping).await;
    rt.shutdown().await.unwrap();
    fails(
        &cli(
            &db.path(),
            &["cancel", "nap-4", "--wait", "--timeout", "1s"],
        )
        .await,
        "was requested but not applied within 1s",
    );
}

#[tokio::test]
async fn wait_reports_a_request_applied_without_a_visible_change() {
    // A resume of an execution the worker is running leaves its row as it
    // is: only the request's own row tells that the worker applied it.
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    support::slow::start(&rt, "slow-1").await.unwrap();
    within(async {
        while rt.status("slow-1").await.unwrap().steps.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let asked = Instant::now();
    let run = cli(
        &db.path(),
        &["resume", "slow-1", "--wait", "--timeout", "4s"],
    )
    .await;
    assert!(
        ok(&run).contains("resume of `slow-1` applied: it is running"),
        "{}",
        run.stdout
    );
    assert!(
        asked.elapsed() < Duration::from_secs(4),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        requests(&db.path(), "slow-1")[0].0,
        "resume",
        "the request was recorded"
    );
    assert!(requests(&db.path(), "slow-1")[0].1.is_some());
    rt.shutdown().await.unwrap();
}

/// Asserts that `text` holds nothing that drives a terminal.
fn inert(text: &str) {
    for c in ['\x1b', '\x07', '\r', '\u{9b}', '\u{202e}', '\u{2066}'] {
        assert!(!text.contains(c), "{c:?} printed raw in {text:?}");
    }
}

#[tokio::test]
async fn control_characters_are_escaped_in_every_text_output() {
    let evil = "evil\x1b[2J\x07id";
    let reason = "\x1b[31mred\x1b]0;pwned\x07\r\u{202e}txt.exe\u{2066}";
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    support::greet::start(&rt, evil, "Ada\x1b[1A".to_owned())
        .await
        .unwrap();
    support::doomed::start(&rt, "doomed\u{9b}2J", reason.to_owned())
        .await
        .unwrap();
    wait_status(&rt, evil, ExecutionStatus::Completed).await;
    wait_status(&rt, "doomed\u{9b}2J", ExecutionStatus::Failed).await;
    rt.shutdown().await.unwrap();

    let escaped_id = "evil\\u{1b}[2J\\u{7}id";
    let escaped_reason = "\\u{1b}[31mred\\u{1b}]0;pwned\\u{7}\\r\\u{202e}txt.exe\\u{2066}";

    let out = ok(&cli(&db.path(), &["list"]).await).to_owned();
    inert(&out);
    assert!(out.contains(escaped_id), "{out}");
    assert!(out.contains("doomed\\u{9b}2J"), "{out}");
    assert!(out.contains(escaped_reason), "{out}");

    let out = ok(&cli(&db.path(), &["show", evil]).await).to_owned();
    inert(&out);
    assert!(out.contains(&format!("execution  {escaped_id}")), "{out}");
    // JSON payloads escape controls their own way.
    assert!(out.contains(r"Ada\u001b[1A"), "{out}");
    let out = ok(&cli(&db.path(), &["show", "doomed\u{9b}2J"]).await).to_owned();
    inert(&out);
    assert!(
        out.contains(&format!("reason     {escaped_reason}")),
        "{out}"
    );

    for id in [evil, "doomed\u{9b}2J"] {
        let run = cli(&db.path(), &["watch", id]).await;
        inert(&run.stdout);
        inert(&run.stderr);
    }
    let run = cli(&db.path(), &["watch", "doomed\u{9b}2J"]).await;
    assert!(run.stdout.contains(escaped_reason), "{}", run.stdout);

    // The `error:` line, with an id from the command line and from the
    // database.
    let run = cli(&db.path(), &["show", "no\x1b[2Jsuch"]).await;
    fails(&run, "no\\u{1b}[2Jsuch");
    inert(&run.stderr);
    let run = cli(&db.path(), &["cancel", evil]).await;
    fails(&run, escaped_id);
    inert(&run.stderr);

    // JSON stays exact.
    let e = json(&cli(&db.path(), &["show", evil, "--json"]).await);
    assert_eq!(e["id"], evil);
    let all = json(&cli(&db.path(), &["list", "--json", "--status", "failed"]).await);
    assert_eq!(all["executions"][0]["error_message"], reason);
}

/// `watch` prints what changed in the order it happened, not in the
/// journal's order: a later entry that ended first comes first.
#[tokio::test]
async fn watch_prints_changes_in_time_order() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let handle = support::race::start(&rt, "race-1").await.unwrap();
    within(handle.result()).await.unwrap();
    let run = cli(&db.path(), &["watch", "race-1"]).await;
    let out = ok(&run);
    let times: Vec<&str> = out.lines().map(|l| &l[..12]).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "lines out of time order:\n{out}");
    let fast = out.find("  hello#0").unwrap_or(usize::MAX);
    let slow = out.find("  slow_hello#0").unwrap_or(0);
    assert!(
        fast < slow,
        "the entry that ended first comes first:\n{out}"
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn watch_follows_an_execution_to_its_end() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    support::steady::start(&rt, "steady-1").await.unwrap();
    let run = cli(&db.path(), &["watch", "steady-1", "--interval", "50ms"]).await;
    let out = ok(&run);
    // One plain line per change, the last one saying how it ended.
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.len() >= 4, "{out}");
    assert!(lines.iter().all(|l| !l.contains('\x1b')), "{out}");
    for needle in ["tick#0  completed", "sleep#0  slept", "tick#2  completed"] {
        assert!(out.contains(needle), "{needle}: {out}");
    }
    let last = lines.last().unwrap();
    assert!(last.contains("execution steady-1 completed after"), "{out}");
    rt.shutdown().await.unwrap();

    // An execution that already ended prints its story and exits at once;
    // one that failed exits 3.
    let db = seeded().await;
    let run = cli(&db.path(), &["watch", "flaky-1"]).await;
    let out = ok(&run);
    assert!(
        out.contains("wobble#0  attempt 1 failed: wobble 1 fell over"),
        "{out}"
    );
    assert!(out.contains("wobble#0  completed in"), "{out}");
    let run = cli(&db.path(), &["watch", "doomed-1"]).await;
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout
            .contains("refuse#0  failed after 1 attempt: no such customer"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("execution doomed-1 failed"),
        "{}",
        run.stdout
    );
}

/// A `workflow serve` child process, killed on drop.
struct Server {
    child: std::process::Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(db: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
    serve_on(db, "127.0.0.1:0", extra, env)
}

fn serve_on(db: &Path, bind: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut args = vec!["serve", "--bind", bind];
    args.extend_from_slice(extra);
    let mut cmd = command(Some(db), &args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    reader.read_line(&mut first).unwrap();
    // Keep reading, so the server never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let addr = first
        .split("http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .trim()
        .trim_end_matches('/')
        .to_owned();
    Server { child, addr }
}

/// One HTTP/1.1 request; the status code and the body.
fn http(addr: &str, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn serve_answers_on_the_database() {
    let db = seeded().await;
    let server = serve(&db.path(), &[], &[]);
    let addr = server.addr.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        http(
            &addr,
            &format!("GET /api/counts HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    let counts: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(counts["total"], 7);

    let addr = server.addr.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        http(
            &addr,
            "GET / HTTP/1.1\r\nHost: attacker.example\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 400, "{body}");

    // Cancel through the API: recorded for the worker.
    let addr = server.addr.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        http(
            &addr,
            &format!(
                "POST /api/executions/nap-1/cancel HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 202, "{body}");
    assert_eq!(requests(&db.path(), "nap-1"), [("cancel".to_owned(), None)]);
    drop(server);

    // A token from the environment guards the API.
    let server = serve(&db.path(), &["--read-only"], &[("WORKFLOW_TOKEN", "t0ken")]);
    let addr = server.addr.clone();
    let (status, _) = tokio::task::spawn_blocking(move || {
        http(
            &addr,
            &format!("GET /api/counts HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 401);
    let addr = server.addr.clone();
    let (status, _) = tokio::task::spawn_blocking(move || {
        http(
            &addr,
            &format!(
                "GET /api/counts HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer t0ken\r\nConnection: close\r\n\r\n"
            ),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200);
}

/// Sends `request` as it is and returns the whole answer.
fn http_raw(addr: &str, request: Vec<u8>) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn every_rejection_of_the_server_is_a_json_error() {
    let db = seeded().await;
    let server = serve(&db.path(), &["--max-body-bytes", "1024"], &[]);
    let addr = server.addr.clone();
    let host = format!("Host: {addr}\r\n");
    let long_target = format!("/api/executions?workflow={}", "x".repeat(100_000));
    let headers: String = (0..200).map(|i| format!("X-Filler-{i}: a\r\n")).collect();
    let cases: Vec<(u16, Vec<u8>)> = vec![
        (
            414,
            format!("GET {long_target} HTTP/1.1\r\n{host}\r\n").into_bytes(),
        ),
        (
            431,
            format!("GET /api/info HTTP/1.1\r\n{host}{headers}\r\n").into_bytes(),
        ),
        (400, b"NOT HTTP AT ALL\r\n\r\n".to_vec()),
        (
            404,
            format!("GET /api/nope HTTP/1.1\r\n{host}Connection: close\r\n\r\n").into_bytes(),
        ),
        (
            405,
            format!("GET /api/executions/x/cancel HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
                .into_bytes(),
        ),
        (
            400,
            format!("GET /api/executions?limit=%FF HTTP/1.1\r\n{host}Connection: close\r\n\r\n")
                .into_bytes(),
        ),
        (
            413,
            format!(
                "POST /api/executions/nap-1/cancel HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n{}",
                " ".repeat(4096)
            )
            .into_bytes(),
        ),
    ];
    for (status, request) in cases {
        let addr = addr.clone();
        let answer = tokio::task::spawn_blocking(move || http_raw(&addr, request))
            .await
            .unwrap();
        let (head, body) = answer
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{status}: no head in {answer:?}"));
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status} ")),
            "{status}: {answer}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{status}: {answer}"
        );
        let json: Value =
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: {e}: {answer}"));
        assert!(
            json["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{status}: {answer}"
        );
    }
}

#[tokio::test]
async fn serve_binds_a_host_name() {
    let db = seeded().await;
    let server = serve_on(&db.path(), "localhost:0", &[], &[]);
    assert!(server.addr.starts_with("localhost:"), "{}", server.addr);
    let addr = server.addr.clone();
    let (status, body) = tokio::task::spawn_blocking(move || {
        http(
            &addr,
            &format!("GET /api/counts HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        )
    })
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    fails(
        &cli(&db.path(), &["serve", "--bind", "no-such-host.invalid:0"]).await,
        "cannot resolve `no-such-host.invalid`",
    );
}

#[tokio::test]
async fn serve_refuses_unsafe_or_impossible_setups() {
    let db = seeded().await;
    fails(
        &cli(&db.path(), &["serve", "--bind", "0.0.0.0:0"]).await,
        "needs a bearer token",
    );
    fails(
        &cli(
            &db.path(),
            &["serve", "--bind", "127.0.0.1:0", "--token", ""],
        )
        .await,
        "the bearer token is empty",
    );
    let missing = db.dir.path().join("missing.db");
    fails(&cli(&missing, &["serve"]).await, "no workflow database at");

    // A port already taken.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bind = taken.local_addr().unwrap().to_string();
    fails(
        &cli(&db.path(), &["serve", "--bind", &bind]).await,
        "cannot listen on",
    );
}

#[tokio::test]
async fn an_admin_open_never_runs_anything() {
    // The CLI reads a database whose worker is running, without taking its lock.
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;
    let all = json(&cli(&db.path(), &["list", "--json"]).await);
    assert_eq!(all["total"], 7);
    within(async {
        assert_eq!(
            rt.status("nap-1").await.unwrap().status,
            ExecutionStatus::Sleeping
        );
    })
    .await;
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn show_names_the_branch_of_each_entry() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    within(
        support::forked::start(&rt, "forked-1")
            .await
            .unwrap()
            .result(),
    )
    .await
    .unwrap();
    rt.shutdown().await.unwrap();

    let out = ok(&cli(&db.path(), &["show", "forked-1"]).await).to_owned();
    assert!(out.lines().any(|l| l.contains("0/hello#0")), "{out}");
    assert!(out.lines().any(|l| l.contains("1/hello#0")), "{out}");
    let json = ok(&cli(&db.path(), &["show", "forked-1", "--json"]).await).to_owned();
    let view: serde_json::Value = serde_json::from_str(&json).unwrap();
    let branches: Vec<&str> = view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["branch"].as_str().unwrap())
        .collect();
    assert_eq!(branches.len(), 2, "{json}");
    assert!(branches.contains(&"0") && branches.contains(&"1"), "{json}");
}

/// Moves the start and end of `ids` 60 days back, as if they had run then.
fn age(db: &Path, ids: &[&str]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let days = 60 * 86_400_000i64;
    for id in ids {
        conn.execute(
            "UPDATE workflow_executions
             SET created_at = created_at - ?2, updated_at = updated_at - ?2,
                 completed_at = completed_at - ?2
             WHERE id = ?1",
            rusqlite::params![id, days],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn prune_removes_old_finished_executions_beside_a_running_worker() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    seed(&rt).await;
    // Old: three finished ones, and a sleeping and a panicked one, which stay.
    age(
        &db.path(),
        &["greet-1", "flaky-1", "doomed-1", "nap-1", "boom-1"],
    );

    let run = cli(&db.path(), &["prune", "--older-than", "30d"]).await;
    let out = ok(&run);
    assert!(
        out.starts_with("removed 3 finished executions; freed "),
        "{out}"
    );
    assert!(out.contains("the database holds"), "{out}");
    for gone in ["greet-1", "flaky-1", "doomed-1"] {
        assert!(
            matches!(rt.status(gone).await, Err(replayflow::Error::NotFound(_))),
            "{gone}"
        );
    }
    for kept in ["greet-2", "nap-1", "nap-2", "boom-1"] {
        assert!(!rt.status(kept).await.unwrap().steps.is_empty(), "{kept}");
    }

    // The worker goes on: it wakes what it holds and runs new executions.
    rt.resume("nap-1").await.unwrap();
    wait_status(&rt, "nap-1", ExecutionStatus::Completed).await;
    support::greet::start(&rt, "greet-3", "Edsger".to_owned())
        .await
        .unwrap();
    wait_status(&rt, "greet-3", ExecutionStatus::Completed).await;

    let run = cli(&db.path(), &["prune", "--older-than", "30d", "--json"]).await;
    let report = json(&run);
    assert_eq!(report["executions"], 0, "{report}");
    assert_eq!(report["batches"], 0, "{report}");
    rt.shutdown().await.unwrap();

    let run = cli(&db.path(), &["prune", "--older-than", "soon"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("expected a duration"), "{}", run.stderr);
}

/// The program on a shared PostgreSQL database: `list` and `show` read it,
/// and `cancel` files a request that the live worker owning the execution
/// applies. Skipped without a server, except under CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_show_and_cancel_on_postgres() {
    let url = std::env::var("WORKFLOW_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!("t_cli_{}", std::process::id());
    let admin = match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        Ok((client, connection)) => {
            tokio::spawn(connection);
            client
        }
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "PostgreSQL is required under CI: {e}"
            );
            eprintln!("skipped: no PostgreSQL at {url}");
            return;
        }
    };
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
    let rt = replayflow::Runtime::builder()
        .postgres(&url)
        .schema(&schema)
        .open()
        .await
        .unwrap();
    let done = support::greet::start(&rt, "greet-pg", "ada".to_owned())
        .await
        .unwrap();
    within(done.result()).await.unwrap();
    support::nap::start(&rt, "nap-pg").await.unwrap();
    wait_status(&rt, "nap-pg", ExecutionStatus::Sleeping).await;

    let pg = |args: &[&str]| {
        let mut cmd = command(None, &["--db", &url, "--schema", &schema]);
        cmd.args(args);
        run_cmd(cmd)
    };
    let listed = json(&pg(&["list", "--json"]).await);
    let text = listed.to_string();
    assert!(
        text.contains("greet-pg") && text.contains("nap-pg"),
        "{text}"
    );
    let shown = ok(&pg(&["show", "greet-pg"]).await).to_owned();
    assert!(shown.contains("completed"), "{shown}");
    // The worker and what it owns: the sleeper.
    let me = rt.worker_id().expect("a worker id").to_string();
    let shown = ok(&pg(&["show", "nap-pg"]).await).to_owned();
    assert!(shown.contains("worker") && shown.contains(&me), "{shown}");
    let workers = ok(&pg(&["workers"]).await).to_owned();
    let line = workers
        .lines()
        .find(|l| l.split_whitespace().next() == Some(me.as_str()))
        .unwrap_or_else(|| panic!("worker {me} is not listed:\n{workers}"));
    assert!(
        line.contains("alive") && line.trim_end().ends_with('1'),
        "{line}"
    );
    let listed = json(&pg(&["workers", "--json"]).await);
    let mine = listed
        .as_array()
        .and_then(|a| a.iter().find(|w| w["id"] == me.as_str()))
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(mine["state"], "alive");
    assert_eq!(mine["owned"], 1);
    assert_eq!(mine["this_process"], false, "the CLI is not a worker");
    ok(&pg(&["cancel", "nap-pg"]).await);
    wait_status(&rt, "nap-pg", ExecutionStatus::Cancelled).await;
    let missing = run_cmd(command(
        None,
        &["--db", &url, "--schema", "no_such_schema", "list"],
    ))
    .await;
    fails(&missing, "no_such_schema");
    rt.shutdown().await.unwrap();
    admin
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test]
async fn send_reaches_a_waiting_workflow_and_events_show_what_it_published() {
    let db = TempDb::new();
    let rt = db
        .worker()
        .suspend_after(Duration::from_millis(50))
        .open()
        .await
        .unwrap();
    let handle = support::mailbox::start(&rt, "order-9").await.unwrap();
    wait_status(&rt, "order-9", ExecutionStatus::Waiting).await;

    let events = ok(&cli(db.path().as_path(), &["events", "order-9"]).await).to_owned();
    assert!(events.starts_with("KEY"), "{events}");
    assert!(
        events.contains("state  \"waiting for approval\""),
        "{events}"
    );

    // Bad input is refused before anything is written.
    fails(
        &cli(
            db.path().as_path(),
            &["send", "order-9", "approval", "{not json"],
        )
        .await,
        "the message is not JSON",
    );
    fails(
        &cli(db.path().as_path(), &["send", "nobody", "approval", "1"]).await,
        "no execution with id `nobody`",
    );
    let message = r#"{"approver": "ada", "approved": true}"#;
    let args = [
        "send",
        "order-9",
        "approval",
        message,
        "--idempotency-key",
        "k1",
    ];
    let sent = cli(db.path().as_path(), &args).await;
    assert_eq!(ok(&sent), "sent to `order-9` on topic `approval`\n");
    let again = cli(db.path().as_path(), &args).await;
    assert!(ok(&again).contains("already sent"), "{}", again.stdout);

    // The worker takes it within its sweep.
    assert_eq!(within(handle.result()).await.unwrap(), "ada approved");
    let events = json(&cli(db.path().as_path(), &["events", "order-9", "--json"]).await);
    assert_eq!(events["state"], "decided by ada");
    fails(
        &cli(
            db.path().as_path(),
            &["send", "order-9", "approval", message],
        )
        .await,
        "execution `order-9` is completed; it takes no more messages",
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn start_records_a_request_the_running_application_applies() {
    let db = TempDb::new();
    let rt = db.worker().open().await.unwrap();
    let path = db.path();
    let started = cli(
        path.as_path(),
        &["start", "greet", "g-9", r#"{"name": "ada"}"#, "--wait"],
    )
    .await;
    assert!(
        ok(&started).starts_with("`g-9` started: it is "),
        "{}",
        started.stdout
    );
    let out = within(rt.handle::<support::greet>("g-9").result()).await;
    assert_eq!(out.unwrap(), "hello, ada");

    fails(
        &cli(
            path.as_path(),
            &["start", "greet", "g-9", r#"{"name": "bo"}"#],
        )
        .await,
        "execution id `g-9` already belongs to workflow `greet`",
    );
    fails(
        &cli(path.as_path(), &["start", "greet", "g-10", "name=bo"]).await,
        "the input is not JSON",
    );
    fails(
        &cli(path.as_path(), &["start", "nosuch", "g-11", "{}", "--wait"]).await,
        "the application refused the start of `g-11`: workflow `nosuch` is not registered",
    );
    let later = cli(
        path.as_path(),
        &["start", "greet", "g-12", r#"{"name": "cy"}"#],
    )
    .await;
    assert!(ok(&later).contains("requested; the running application applies it"));
    wait_status(&rt, "g-12", ExecutionStatus::Completed).await;
    let out = within(rt.handle::<support::greet>("g-12").result()).await;
    assert_eq!(out.unwrap(), "hello, cy");
    rt.shutdown().await.unwrap();
}
