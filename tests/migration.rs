//! A database written by the first release (schema version 1, kept as
//! `tests/fixtures/schema-v1.db`) opens on this build: an admin reads it as
//! it is, a worker migrates it in one transaction and runs its executions
//! on, and the new kinds of journal entry can then be written.
//!
//! The fixture was made by the first release running `fixture_order` below
//! (unchanged since) on a manual clock at 1,700,000,000 s: `done-1`
//! completed ("apple x5") after the clock moved 25 hours, then `sleeping-1`
//! ("pear") and `sleeping-2` ("banana") asleep for a day after their step.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use replayflow::{
    AnyError, Context, EntryKind, ExecutionStatus, ManualClock, Runtime, step, workflow,
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
    let db = TempDb::new();
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/schema-v1.db");
    std::fs::copy(fixture, db.path()).unwrap();
    db
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
    assert_eq!(user_version(&db), 2);
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
    conn.pragma_update(None, "user_version", 3).unwrap();
    drop(conn);
    let Err(err) = Runtime::open(db.path()).await else {
        panic!("a newer schema opened")
    };
    let err = err.to_string();
    assert!(
        err.contains("version 3") && err.contains("2"),
        "the message names both versions: {err}"
    );
}
