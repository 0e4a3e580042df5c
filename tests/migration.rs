//! A database written by the first release (schema version 1, kept as
//! `tests/fixtures/schema-v1.db`) opens on this build: an admin reads it as
//! it is, a worker migrates it in one transaction and runs its executions
//! on, and the new kinds of journal entry can then be written.
//!
//! `tests/fixtures/schema-v2.db` was written by the release before
//! messages (schema version 2) running the same `fixture_order`, and
//! `marked` once (a patch marker, which version 2 added), at the same
//! clock: `done-1` and `marked-1` completed, `sleeping-1` and `sleeping-2`
//! asleep for a day.
//!
//! The version 1 fixture was made by the first release running `fixture_order` below
//! (unchanged since) on a manual clock at 1,700,000,000 s: `done-1`
//! completed ("apple x5") after the clock moved 25 hours, then `sleeping-1`
//! ("pear") and `sleeping-2` ("banana") asleep for a day after their step.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use replayflow::{
    AnyError, Context, EntryKind, Error, ExecutionStatus, ManualClock, Runtime, step, workflow,
};
use support::{TempDb, wait_for_status, within};

#[step]
async fn reserve(item: String) -> Result<u32, AnyError> {
    Ok(item.len() as u32)
}

#[workflow]
async fn fixture_order(ctx: Context, item: String) -> Result<String, AnyError> {
    let n = reserve(item.clone()).await?;
    let _at = ctx.now().await;
    ctx.sleep(Duration::from_secs(24 * 3600)).await;
    Ok(format!("{item} x{n}"))
}

#[workflow]
async fn marked(ctx: Context) -> Result<bool, AnyError> {
    Ok(ctx.patched("after-migration").await)
}

fn user_version(db: &TempDb) -> i64 {
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

fn fixture() -> TempDb {
    fixture_of(1)
}

fn fixture_of(version: u32) -> TempDb {
    let db = TempDb::new();
    let fixture = format!(
        "{}/tests/fixtures/schema-v{version}.db",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::copy(fixture, db.path()).unwrap();
    db
}

#[workflow]
async fn inbox_after_migration(ctx: Context) -> Result<String, AnyError> {
    ctx.set_event("state", "waiting").await;
    ctx.recv::<String>("word").await;
    Ok(ctx.recv::<String>("word").await)
}

#[tokio::test]
async fn a_first_release_database_is_read_by_an_admin_and_migrated_by_a_worker() {
    let db = fixture();
    assert_eq!(user_version(&db), 1);

    // An admin reads it as it is: no migration under a worker of the old build.
    let admin = Runtime::builder()
        .path(db.path())
        .admin()
        .open()
        .await
        .unwrap();
    let info = admin.status("done-1").await.unwrap();
    assert_eq!(info.status, ExecutionStatus::Completed);
    assert_eq!(info.output.unwrap().decode::<String>().unwrap(), "apple x5");
    assert_eq!(info.app_version, "", "version 1 recorded no versions");
    let listed = admin.list(replayflow::ListFilter::new()).await.unwrap();
    assert_eq!(listed.len(), 3);
    let report = admin.check().await.unwrap();
    assert_eq!((report.checked, report.passed()), (2, true), "{report}");
    drop(admin);
    assert_eq!(user_version(&db), 1);

    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let rt = db.builder().clock(clock.clone()).open().await.unwrap();
    assert_eq!(user_version(&db), 3);
    let report = rt.check().await.unwrap();
    assert_eq!((report.checked, report.passed()), (2, true), "{report}");

    // The journals carry on: the sleepers wake and finish.
    clock.advance(Duration::from_secs(3 * 24 * 3600));
    for (id, out) in [("sleeping-1", "pear x4"), ("sleeping-2", "banana x6")] {
        let info = within(wait_for_status(&rt, id, ExecutionStatus::Completed)).await;
        assert_eq!(info.output.unwrap().decode::<String>().unwrap(), out);
        assert_eq!(info.steps.len(), 3);
    }
    // A patch marker, a kind version 1 refused, is written.
    let handle = marked::start(&rt, "marked-1").await.unwrap();
    assert!(within(handle.result()).await.unwrap());
    assert_eq!(
        rt.status("marked-1").await.unwrap().steps[0].kind,
        EntryKind::Patch
    );
    rt.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_database_of_a_newer_schema_is_refused_with_both_versions() {
    let db = fixture();
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.pragma_update(None, "user_version", 4).unwrap();
    drop(conn);
    let Err(err) = Runtime::open(db.path()).await else {
        panic!("a newer schema opened")
    };
    let err = err.to_string();
    assert!(
        err.contains("version 4") && err.contains("3"),
        "the message names both versions: {err}"
    );
}

#[tokio::test]
async fn a_version_2_database_is_read_by_an_admin_and_migrated_to_take_messages() {
    let db = fixture_of(2);
    assert_eq!(user_version(&db), 2);

    // An admin reads it as it is, and cannot send: a worker of the older
    // build may run on it, and would never see the message.
    let admin = Runtime::builder()
        .path(db.path())
        .admin()
        .open()
        .await
        .unwrap();
    assert_eq!(
        admin
            .list(replayflow::ListFilter::new())
            .await
            .unwrap()
            .len(),
        4
    );
    let marker = &admin.status("marked-1").await.unwrap().steps[0];
    assert_eq!(marker.kind, EntryKind::Patch);
    assert!(admin.events("done-1").await.unwrap().is_empty());
    let err = admin.send("sleeping-1", "word", "hi").await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotMigrated {
                found: 2,
                needed: 3,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("open it once with a worker"),
        "{err}"
    );
    drop(admin);
    assert_eq!(user_version(&db), 2, "an admin never migrates");

    // A worker migrates it in one transaction; the journals carry on.
    let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let rt = db.builder().clock(clock.clone()).open().await.unwrap();
    assert_eq!(user_version(&db), 3);
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'workflow_executions' AND sql IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        indexes, 4,
        "the rebuilt table has its indexes again, and one more"
    );
    drop(conn);
    clock.advance(Duration::from_secs(3 * 24 * 3600));
    for (id, out) in [("sleeping-1", "pear x4"), ("sleeping-2", "banana x6")] {
        let info = within(wait_for_status(&rt, id, ExecutionStatus::Completed)).await;
        assert_eq!(info.output.unwrap().decode::<String>().unwrap(), out);
    }
    assert_eq!(
        rt.status("done-1")
            .await
            .unwrap()
            .output
            .unwrap()
            .decode::<String>()
            .unwrap(),
        "apple x5"
    );

    // Messages and events, which version 2 had no tables for.
    let handle = inbox_after_migration::start(&rt, "inbox-1").await.unwrap();
    handle.send("word", "first").await.unwrap();
    handle.send("word", "second").await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), "second");
    let state: Option<String> = rt.get_event("inbox-1", "state").await.unwrap();
    assert_eq!(state.as_deref(), Some("waiting"));
    rt.shutdown().await.unwrap();
}

/// A version 2 database big enough for its migration to take a while: the
/// fixture, and `executions` more completed executions of 20 entries each,
/// written as version 2 writes them.
fn big_version_2(executions: u32) -> TempDb {
    let db = fixture_of(2);
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for e in 0..executions {
        let id = format!("bulk-{e:06}");
        conn.execute(
            "INSERT INTO workflow_executions (id, workflow_name, status, codec, input, output, options,
                 created_at, updated_at, completed_at, app_version)
             VALUES (?1, 'fixture_order', 'completed', 'json', x'7b7d', x'2233', '{}', 1, 2, 2, '0.1.0')",
            [&id],
        )
        .unwrap();
        for p in 0..20 {
            conn.execute(
                "INSERT INTO step_executions (execution_id, position, branch, local, kind, name,
                     occurrence, status, attempts, output, started_at, completed_at, value_type)
                 VALUES (?1, ?2, '', ?2, 'step', 'reserve', ?2, 'completed', 1, x'35', 1, 2, 7)",
                rusqlite::params![id, p],
            )
            .unwrap();
        }
    }
    conn.execute_batch("COMMIT; PRAGMA wal_checkpoint(TRUNCATE);")
        .unwrap();
    drop(conn);
    db
}

fn counts(path: &std::path::Path) -> (i64, i64, i64, String) {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let one = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    (
        one("PRAGMA user_version"),
        one("SELECT count(*) FROM workflow_executions"),
        one("SELECT count(*) FROM step_executions"),
        check,
    )
}

#[test]
fn a_worker_killed_during_the_migration_leaves_a_file_that_migrates_on_the_next_open() {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    let db = big_version_2(20_000);
    let path = db.path();
    let before = counts(&path);
    assert_eq!(before.0, 2);
    let wal = std::path::PathBuf::from(format!("{}-wal", path.display()));

    // Killed once the migration's transaction has spilled pages into the
    // log, before it commits.
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args(["open-only", path.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&wal).map_or(0, |m| m.len()) < 256 * 1024
        && child.try_wait().unwrap().is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_micros(200));
    }
    child.kill().ok();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the migration of {} entries ended before the kill",
        before.2
    );
    let after = counts(&path);
    assert_eq!(after.3, "ok", "the file is sound after the kill");
    assert_eq!(
        (after.0, after.1, after.2),
        (2, before.1, before.2),
        "nothing of the migration and nothing lost"
    );

    // The next open migrates it, everything kept.
    let out = Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args(["open-only", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = counts(&path);
    assert_eq!(after, (3, before.1, before.2, "ok".to_owned()));
}
