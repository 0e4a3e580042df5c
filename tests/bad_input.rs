//! Bad input gets a clear error and loses nothing: payloads that no longer
//! decode park their execution (others go on), corrupt files are refused
//! untouched, a database held by another connection gives a typed error.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use replayflow::{
    AnyError, Context, Error, ExecutionStatus, IntegrityCheck, PauseCause, RunError, Runtime, step,
    workflow,
};
use serde::{Deserialize, Serialize};
use support::{TempDb, both_stores, within};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReadingV1 {
    value: TemperatureV1,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TemperatureV1 {
    celsius: String,
}

/// `ReadingV1` renamed on purpose (so the journal's type check lets it
/// through), whose field changed shape: the decode fails on the field.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[replayflow::renamed_from("bad_input::ReadingV1")]
struct ReadingV2 {
    value: TemperatureV2,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TemperatureV2 {
    celsius: f64,
}

static NEW_CODE: AtomicBool = AtomicBool::new(false);

#[step(name = "measure")]
async fn measure_v1() -> Result<ReadingV1, AnyError> {
    Ok(ReadingV1 {
        value: TemperatureV1 {
            celsius: "21.5".into(),
        },
    })
}

#[step(name = "measure")]
async fn measure_v2() -> Result<ReadingV2, AnyError> {
    Ok(ReadingV2 {
        value: TemperatureV2 { celsius: 21.5 },
    })
}

#[workflow]
async fn thermostat(ctx: Context) -> Result<String, AnyError> {
    let shown = if NEW_CODE.load(Ordering::SeqCst) {
        format!("{}", measure_v2().await?.value.celsius)
    } else {
        measure_v1().await?.value.celsius
    };
    if ctx.restart_attempt() == 0 {
        // The types change while the execution is down.
        NEW_CODE.store(true, Ordering::SeqCst);
        panic!("crash before the new types are deployed");
    }
    Ok(shown)
}

#[workflow]
async fn bystander(_ctx: Context, n: u32) -> Result<u32, AnyError> {
    Ok(n + 1)
}

both_stores!(
    a_journaled_value_that_no_longer_decodes_parks_its_execution_only,
    |db| async move {
        NEW_CODE.store(false, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = thermostat::start(&rt, "thermo-1").await.unwrap();
        let err = within(handle.result()).await.unwrap_err();
        let RunError::Paused(reason) = err else {
            panic!("expected paused, got {err:?}");
        };
        assert!(
            reason.contains("thermostat"),
            "names the workflow: {reason}"
        );
        assert!(reason.contains("measure#0"), "names the step: {reason}");
        assert!(
            reason.contains("value.celsius"),
            "names the serde path: {reason}"
        );
        assert!(reason.contains("ReadingV2"), "names the type: {reason}");
        let info = rt.status("thermo-1").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Paused);
        assert_eq!(
            info.steps[0].output.as_ref().unwrap().to_json().unwrap(),
            serde_json::json!({"value": {"celsius": "21.5"}}),
            "the journaled value is kept as it was"
        );
        let _ = PauseCause::Undecodable;

        let other = bystander::start(&rt, "bystander-1", 1).await.unwrap();
        assert_eq!(within(other.result()).await.unwrap(), 2);
    }
);

#[tokio::test]
async fn a_corrupt_database_is_refused_and_left_untouched() {
    let db = TempDb::new();
    {
        let rt = db.builder().open().await.unwrap();
        within(bystander::start(&rt, "b-1", 1).await.unwrap().result())
            .await
            .unwrap();
        rt.shutdown().await.unwrap();
    }
    // Keep our header (first 100 bytes), garble the rest of the file.
    let path = db.path();
    let checkpointed = {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
        drop(c);
        std::fs::read(&path).unwrap()
    };
    let mut bytes = checkpointed.clone();
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    let err = match Runtime::open(&path).await {
        Ok(_) => panic!("opened a corrupt database"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("corrupt"), "{err}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was modified"
    );
    assert!(!db.dir.path().join("workflow.db-wal").exists());
}

#[tokio::test]
async fn a_corrupt_wal_mode_database_is_refused_without_sidecars() {
    let db = TempDb::new();
    {
        let rt = db.builder().open().await.unwrap();
        within(bystander::start(&rt, "b-1", 1).await.unwrap().result())
            .await
            .unwrap();
        rt.shutdown().await.unwrap();
    }
    let path = db.path();
    let wal = db.dir.path().join("workflow.db-wal");
    let shm = db.dir.path().join("workflow.db-shm");
    assert!(
        !wal.exists() && !shm.exists(),
        "a clean shutdown leaves no sidecars"
    );
    let mut bytes = std::fs::read(&path).unwrap();
    // Still in WAL mode (header bytes 18 and 19), our header kept.
    assert_eq!((bytes[18], bytes[19]), (2, 2), "the file is in WAL mode");
    for (i, b) in bytes.iter_mut().enumerate().skip(100) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    for admin in [false, true] {
        let builder = Runtime::builder().path(&path);
        let builder = if admin { builder.admin() } else { builder };
        match builder.open().await {
            Err(Error::Corrupt { .. }) => {}
            Err(e) => panic!("expected a corrupt-file error (admin: {admin}), got {e}"),
            Ok(_) => panic!("opened a corrupt database (admin: {admin})"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file was modified"
        );
        assert!(!wal.exists(), "a -wal was created (admin: {admin})");
        assert!(!shm.exists(), "a -shm was created (admin: {admin})");
    }
}

#[step]
async fn kilobyte(i: u32) -> Result<String, AnyError> {
    Ok(format!("{i:04}").repeat(256))
}

#[workflow]
async fn bulk(_ctx: Context, n: u32) -> Result<u32, AnyError> {
    for i in 0..n {
        kilobyte(i).await?;
    }
    Ok(n)
}

#[tokio::test]
async fn a_damaged_page_is_found_after_an_unclean_end_a_change_or_when_always_checked() {
    let db = TempDb::new();
    {
        let rt = db.builder().open().await.unwrap();
        within(bulk::start(&rt, "bulk-1", 300).await.unwrap().result())
            .await
            .unwrap();
        rt.shutdown().await.unwrap();
    }
    let path = db.path();
    let lock = db.dir.path().join("workflow.db.lock");
    assert!(
        std::fs::read_to_string(&lock)
            .unwrap()
            .contains("(shut down cleanly)")
    );
    let page_size = {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
        c.pragma_query_value(None, "page_size", |r| r.get::<_, u32>(0))
            .unwrap() as usize
    };
    // Garble one page in the middle of the journal; the schema (page 1) is intact.
    let mut bytes = std::fs::read(&path).unwrap();
    let pages = bytes.len() / page_size;
    assert!(pages > 50, "{pages} pages");
    let middle = pages / 2 * page_size;
    for (i, b) in bytes[middle..middle + page_size].iter_mut().enumerate() {
        *b = (i * 13 % 251) as u8;
    }
    std::fs::write(&path, &bytes).unwrap();

    let refused = |result: Result<Runtime, Error>| match result {
        Ok(_) => panic!("opened a damaged database"),
        Err(e) => assert!(matches!(e, Error::Corrupt { .. }), "{e}"),
    };
    refused(
        db.builder()
            .integrity_check(IntegrityCheck::Always)
            .open()
            .await,
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was modified"
    );

    // The lock file still records a clean end, but of a file that has
    // changed since (as a restored backup or a copy would have).
    assert!(
        std::fs::read_to_string(&lock)
            .unwrap()
            .contains("(shut down cleanly)")
    );
    refused(db.builder().open().await);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was modified"
    );

    // A killed worker leaves its name in the lock file, not a clean end.
    std::fs::write(&lock, "process 1 on worker").unwrap();
    refused(db.builder().open().await);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the file was modified"
    );
    assert!(!db.dir.path().join("workflow.db-wal").exists());
}

#[tokio::test]
async fn a_database_held_by_another_connection_gives_a_typed_error() {
    let db = TempDb::new();
    let rt = db
        .builder()
        .busy_timeout(Duration::from_millis(100))
        .open()
        .await
        .unwrap();
    let path = db.path();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = std::thread::spawn(move || {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        c.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    let err = bystander::start(&rt, "held-1", 1).await.unwrap_err();
    assert!(matches!(err, Error::Busy { .. }), "{err}");
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    // Nothing was lost or half-written: the same start now works.
    let handle = bystander::start(&rt, "held-1", 1).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 2);
}

#[step]
async fn bulky(i: u32) -> Result<String, AnyError> {
    Ok(format!("{i}:{}", "x".repeat(64 * 1024)))
}

#[workflow]
async fn fills_the_disk(_ctx: Context) -> Result<u32, AnyError> {
    for i in 0..1_000 {
        bulky(i).await?;
    }
    Ok(1_000)
}

#[tokio::test]
async fn a_full_disk_pauses_the_execution_and_marks_no_step_complete_without_its_output() {
    let db = TempDb::new();
    let rt = db
        .builder()
        .max_database_size(1024 * 1024)
        .open()
        .await
        .unwrap();
    let handle = fills_the_disk::start(&rt, "full-1").await.unwrap();
    let err = within(handle.result()).await.unwrap_err();
    let RunError::Paused(reason) = err else {
        panic!("expected paused, got {err:?}");
    };
    assert!(reason.contains("full"), "{reason}");
    assert!(reason.contains("bulky#"), "names the step: {reason}");
    let info = rt.status("full-1").await.unwrap();
    assert_eq!(info.status, ExecutionStatus::Paused);
    assert!(info.steps.len() < 1_000);
    for s in &info.steps {
        if s.status == replayflow::StepStatus::Completed {
            assert!(s.output.is_some(), "{s:?}");
        }
    }
    // Nothing already journaled was lost: every completed value is intact.
    let last = info
        .steps
        .iter()
        .filter(|s| s.status == replayflow::StepStatus::Completed)
        .count();
    assert!(last > 0);
    let v: String = info.steps[last - 1]
        .output
        .as_ref()
        .unwrap()
        .decode()
        .unwrap();
    assert!(v.starts_with(&format!("{}:", last - 1)));
}

/// A directory under `base` whose full path is `len` bytes long (within a
/// few), built from names of at most 200 bytes.
fn deep_dir(base: &std::path::Path, len: usize) -> std::path::PathBuf {
    let mut dir = std::fs::canonicalize(base).unwrap();
    while dir.as_os_str().len() + 1 < len {
        let room = len - dir.as_os_str().len() - 1;
        dir.push("d".repeat(room.min(200)));
    }
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_path_too_long_for_sqlite_is_refused_before_anything_is_created() {
    let db = TempDb::new();
    let dir = deep_dir(db.dir.path(), 520);
    let path = dir.join("journal.db");
    match Runtime::open(&path).await {
        Err(Error::PathTooLong { len, limit, .. }) => assert!(len > limit, "{len} {limit}"),
        Err(e) => panic!("expected a path-length error, got {e}"),
        Ok(_) => panic!("opened a path SQLite cannot open"),
    }
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "files were created: {left:?}");

    // Just under the limit opens and runs.
    let dir = deep_dir(db.dir.path(), 490);
    let path = dir.join("journal.db");
    assert!(path.as_os_str().len() <= 512, "{}", path.as_os_str().len());
    let rt = Runtime::open(&path).await.unwrap();
    within(bystander::start(&rt, "b-long", 1).await.unwrap().result())
        .await
        .unwrap();
    rt.shutdown().await.unwrap();
}

/// Reads an SQLite varint at `at`: its value and length.
fn varint(bytes: &[u8], at: usize) -> (u64, usize) {
    let mut value = 0u64;
    for (i, &b) in bytes[at..].iter().take(9).enumerate() {
        if i == 8 {
            return ((value << 8) | u64::from(b), 9);
        }
        value = (value << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return (value, i + 1);
        }
    }
    unreachable!("a varint is at most 9 bytes")
}

/// Flips the bytes of the first column's value in every cell of an index
/// leaf page (type 0x0A), leaving the page header, the cell pointers, each
/// cell's size and each record's header as they were: the b-tree's shape is
/// intact, only its keys are wrong. Returns how many cells changed.
fn garble_index_keys(page: &mut [u8]) -> usize {
    assert_eq!(page[0], 0x0A, "not an index leaf page");
    let cells = usize::from(u16::from_be_bytes([page[3], page[4]]));
    for c in 0..cells {
        let cell = usize::from(u16::from_be_bytes([page[8 + 2 * c], page[9 + 2 * c]]));
        let (_payload_len, n) = varint(page, cell);
        let record = cell + n;
        let (header_len, n) = varint(page, record);
        let (serial_type, _) = varint(page, record + n);
        let value_len = match serial_type {
            1..=4 => serial_type as usize,
            5 => 6,
            6 | 7 => 8,
            t if t >= 12 => ((t - 12) / 2) as usize,
            _ => 0,
        };
        let value = record + header_len as usize;
        for b in &mut page[value..value + value_len] {
            *b ^= 0x5A;
        }
    }
    cells
}

/// What `PRAGMA <check>` says of the database at `path` (opened as a
/// separate file, so the original gets no sidecars).
fn sqlite_check(path: &std::path::Path, check: &str) -> String {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(&format!("PRAGMA {check}(1)"), [], |r| r.get(0))
        .unwrap()
}

/// `quick_check` checks each b-tree's shape, not that an index holds its
/// table's rows: an index page whose keys are garbled passes it. The open
/// check is `integrity_check`, which finds it, so such a file is refused
/// untouched instead of being written through the damaged index.
#[tokio::test]
async fn a_garbled_index_page_that_quick_check_passes_is_refused() {
    let db = TempDb::new();
    {
        let rt = db.builder().open().await.unwrap();
        let mut handles = Vec::new();
        for i in 0..1000 {
            let id = format!("b-{i}");
            handles.push(bystander::start(&rt, id.as_str(), i).await.unwrap());
        }
        for h in handles {
            within(h.result()).await.unwrap();
        }
        rt.shutdown().await.unwrap();
    }
    let path = db.path();
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("copy.db");
    std::fs::copy(&path, &copy).unwrap();
    let (page_size, leaf) = {
        let c = rusqlite::Connection::open(&copy).unwrap();
        let page_size: u32 = c
            .pragma_query_value(None, "page_size", |r| r.get(0))
            .unwrap();
        let leaf: u32 = c
            .query_row(
                "SELECT pageno FROM dbstat WHERE name = 'workflow_executions_by_created' \
                 AND pagetype = 'leaf' ORDER BY pageno LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        (page_size as usize, leaf as usize)
    };
    let mut bytes = std::fs::read(&path).unwrap();
    let at = (leaf - 1) * page_size;
    let cells = garble_index_keys(&mut bytes[at..at + page_size]);
    assert!(cells > 10, "{cells} cells");
    std::fs::write(&path, &bytes).unwrap();

    // The damage this test is about: invisible to quick_check.
    std::fs::write(&copy, &bytes).unwrap();
    assert_eq!(sqlite_check(&copy, "quick_check"), "ok");
    let found = sqlite_check(&copy, "integrity_check");
    assert!(found.contains("workflow_executions_by_created"), "{found}");

    let wal = db.dir.path().join("workflow.db-wal");
    let shm = db.dir.path().join("workflow.db-shm");
    // Checked when asked to on every open, and (the lock file records a
    // clean end, but of a file that changed since) by default.
    for always in [true, false] {
        let builder = db.builder();
        let builder = if always {
            builder.integrity_check(IntegrityCheck::Always)
        } else {
            builder
        };
        match builder.open().await {
            Err(e @ Error::Corrupt { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("missing from index workflow_executions_by_created"),
                    "{message}"
                );
                assert!(message.contains("left untouched"), "{message}");
            }
            Err(e) => panic!("expected a corrupt-file error (always: {always}), got {e}"),
            Ok(_) => panic!("opened a database with a garbled index (always: {always})"),
        }
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file was modified"
        );
        assert!(!wal.exists(), "a -wal was created (always: {always})");
        assert!(!shm.exists(), "a -shm was created (always: {always})");
    }
}
