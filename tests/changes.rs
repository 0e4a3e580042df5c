//! Changing code safely: `ctx.patched` keeps executions in flight on the
//! path their journal recorded, and the pre-deploy check reports, without
//! running or writing anything, exactly the executions a code change would
//! park, with the message the park then gives.
//!
//! One binary holds one version of a workflow, so these tests switch the
//! code with a static between runtimes, as a deploy would between builds
//! (`tests/evolve.rs` does it with two real builds).

mod support;

use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use replayflow::check::CheckProblem;
use replayflow::{
    AnyError, Context, EntryKind, Error, ExecutionStatus, ManualClock, Runtime, step, workflow,
};
use support::{TempDb, both_stores, wait_for_status, within};

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

const HOUR: Duration = Duration::from_secs(3600);

// ---- patching -------------------------------------------------------------

/// Which deploy of `pay` runs: 0 before the change, 1 with
/// `patched("wallet")`, 2 with `deprecate_patch("wallet")`, 3 with the call
/// removed.
static PAY_CODE: AtomicU8 = AtomicU8::new(0);
static CARD: AtomicU32 = AtomicU32::new(0);
static WALLET: AtomicU32 = AtomicU32::new(0);

#[step]
async fn check_stock(order: u64) -> Result<u64, AnyError> {
    Ok(order)
}

#[step]
async fn charge_card(order: u64) -> Result<String, AnyError> {
    CARD.fetch_add(1, Ordering::SeqCst);
    Ok(format!("card {order}"))
}

#[step]
async fn charge_wallet(order: u64) -> Result<String, AnyError> {
    WALLET.fetch_add(1, Ordering::SeqCst);
    Ok(format!("wallet {order}"))
}

/// With `early`, sleeps an hour before the payment (so an execution can be
/// in flight before the changed call); always sleeps `hours` after it.
#[workflow]
async fn pay(ctx: Context, order: u64, early: bool, hours: u64) -> Result<String, AnyError> {
    check_stock(order).await?;
    if early {
        ctx.sleep(HOUR).await;
    }
    let paid = match PAY_CODE.load(Ordering::SeqCst) {
        0 => charge_card(order).await?,
        1 => {
            if ctx.patched("wallet").await {
                charge_wallet(order).await?
            } else {
                charge_card(order).await?
            }
        }
        2 => {
            ctx.deprecate_patch("wallet").await;
            charge_wallet(order).await?
        }
        _ => charge_wallet(order).await?,
    };
    ctx.sleep(HOUR * u32::try_from(hours)?).await;
    Ok(paid)
}

async fn kinds(rt: &Runtime, id: &str) -> Vec<(EntryKind, String)> {
    let info = rt.status(id).await.unwrap();
    info.steps
        .iter()
        .map(|s| (s.kind, s.key.name.clone()))
        .collect()
}

async fn output(rt: &Runtime, id: &str) -> String {
    let info = wait_for_status(rt, id, ExecutionStatus::Completed).await;
    info.output.unwrap().decode().unwrap()
}

both_stores!(
    a_patch_keeps_executions_in_flight_on_their_path_through_all_three_deploys,
    |db| async move {
        PAY_CODE.store(0, Ordering::SeqCst);
        CARD.store(0, Ordering::SeqCst);
        WALLET.store(0, Ordering::SeqCst);
        let clock = clock();
        let open = || async { db.builder().clock(clock.clone()).open().await.unwrap() };

        // Before the change: one execution waits before the payment, one
        // after it.
        let rt = open().await;
        pay::start(&rt, "early", 1, true, 1).await.unwrap();
        pay::start(&rt, "late", 2, false, 1).await.unwrap();
        wait_for_status(&rt, "early", ExecutionStatus::Sleeping).await;
        wait_for_status(&rt, "late", ExecutionStatus::Sleeping).await;
        assert_eq!(CARD.load(Ordering::SeqCst), 1);
        rt.shutdown().await.unwrap();
        drop(rt);

        // Deploy 1: `patched`. Nothing in flight would park.
        PAY_CODE.store(1, Ordering::SeqCst);
        let rt = open().await;
        let report = rt.check().await.unwrap();
        assert_eq!((report.checked, report.passed()), (2, true), "{report}");
        pay::start(&rt, "new", 3, false, 10).await.unwrap();
        wait_for_status(&rt, "new", ExecutionStatus::Sleeping).await;
        clock.advance(HOUR + Duration::from_secs(1));
        // It had passed the change on the old code: the old path, replayed.
        assert_eq!(within(output(&rt, "late")).await, "card 2");
        // It reaches the change on the new code: the new path, marked.
        wait_until_sleeping_after(&rt, "early", 4).await;
        assert_eq!(
            kinds(&rt, "early").await,
            [
                (EntryKind::Step, "check_stock".into()),
                (EntryKind::Sleep, "sleep".into()),
                (EntryKind::Patch, "wallet".into()),
                (EntryKind::Step, "charge_wallet".into()),
                (EntryKind::Sleep, "sleep".into()),
            ]
        );
        assert_eq!(
            kinds(&rt, "new").await[1],
            (EntryKind::Patch, "wallet".into())
        );
        assert_eq!(
            CARD.load(Ordering::SeqCst),
            1,
            "a journaled payment ran again"
        );
        assert_eq!(WALLET.load(Ordering::SeqCst), 2);
        rt.shutdown().await.unwrap();
        drop(rt);

        // Deploy 2: `deprecate_patch`; the marked executions replay as they ran.
        PAY_CODE.store(2, Ordering::SeqCst);
        let rt = open().await;
        assert!(rt.check().await.unwrap().passed());
        clock.advance(HOUR);
        assert_eq!(within(output(&rt, "early")).await, "wallet 1");
        pay::start(&rt, "newer", 4, false, 1).await.unwrap();
        wait_for_status(&rt, "newer", ExecutionStatus::Sleeping).await;
        clock.advance(HOUR + Duration::from_secs(1));
        assert_eq!(within(output(&rt, "newer")).await, "wallet 4");
        assert_eq!(
            kinds(&rt, "newer").await[1],
            (EntryKind::Step, "charge_wallet".into()),
            "a deprecated patch journals nothing"
        );
        rt.shutdown().await.unwrap();
        drop(rt);

        // Deploy 3: the call is gone; the marker of `new` is passed over.
        PAY_CODE.store(3, Ordering::SeqCst);
        let rt = open().await;
        let report = rt.check().await.unwrap();
        assert_eq!((report.checked, report.passed()), (1, true), "{report}");
        clock.advance(HOUR * 10);
        assert_eq!(within(output(&rt, "new")).await, "wallet 3");
        assert_eq!(CARD.load(Ordering::SeqCst), 1);
        assert_eq!(
            WALLET.load(Ordering::SeqCst),
            3,
            "a journaled payment ran again"
        );
        rt.shutdown().await.unwrap();
    }
);

/// Waits until `id` sleeps with `entries` journal entries.
async fn wait_until_sleeping_after(rt: &Runtime, id: &str, entries: usize) {
    within(async {
        loop {
            let info = rt.status(id).await.unwrap();
            if info.status == ExecutionStatus::Sleeping && info.steps.len() > entries {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

// ---- the pre-deploy check -------------------------------------------------

/// 0: the code the executions started on; 1: `pack` renamed `pick` and the
/// quote's type changed from a number to text.
static SHIP_CODE: AtomicU8 = AtomicU8::new(0);
static SHIP_BODIES: AtomicU32 = AtomicU32::new(0);

#[step]
async fn pack() -> Result<u32, AnyError> {
    SHIP_BODIES.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[step]
async fn pick() -> Result<u32, AnyError> {
    SHIP_BODIES.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[workflow]
async fn ship(ctx: Context) -> Result<u32, AnyError> {
    let n = match SHIP_CODE.load(Ordering::SeqCst) {
        0 => pack().await?,
        _ => pick().await?, // PICK_LINE
    };
    ctx.sleep(HOUR).await;
    Ok(n)
}

#[workflow]
async fn quote(ctx: Context) -> Result<String, AnyError> {
    let price = match SHIP_CODE.load(Ordering::SeqCst) {
        0 => ctx
            .step("price", || async { Ok::<_, AnyError>(12u32) })
            .await?
            .to_string(),
        _ => {
            ctx.step("price", || async { Ok::<_, AnyError>("12 EUR".to_owned()) })
                .await?
        }
    };
    ctx.sleep(HOUR).await;
    Ok(price)
}

#[workflow]
async fn bill(ctx: Context) -> Result<u32, AnyError> {
    let n = ctx
        .step("invoice", || async { Ok::<_, AnyError>(7u32) })
        .await?;
    ctx.sleep(HOUR).await;
    Ok(n)
}

both_stores!(
    the_check_reports_exactly_what_would_park_writes_nothing_and_the_park_says_the_same,
    |db| async move {
        SHIP_CODE.store(0, Ordering::SeqCst);
        SHIP_BODIES.store(0, Ordering::SeqCst);
        let clock = clock();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        ship::start(&rt, "ship-1").await.unwrap();
        quote::start(&rt, "quote-1").await.unwrap();
        bill::start(&rt, "bill-1").await.unwrap();
        for id in ["ship-1", "quote-1", "bill-1"] {
            wait_for_status(&rt, id, ExecutionStatus::Sleeping).await;
        }
        let report = rt.check().await.unwrap();
        assert_eq!((report.checked, report.passed()), (3, true), "{report}");

        SHIP_CODE.store(1, Ordering::SeqCst);
        let before: Vec<_> = futures_statuses(&rt).await;
        let report = rt.check().await.unwrap();
        assert_eq!(report.checked, 3);
        let found: Vec<(&str, CheckProblem)> = report
            .findings
            .iter()
            .map(|f| (f.id.as_str(), f.problem))
            .collect();
        assert_eq!(
            found,
            [
                ("quote-1", CheckProblem::Undecodable),
                ("ship-1", CheckProblem::Nondeterminism)
            ],
            "{report}"
        );
        let ship_message = report.findings[1].message.clone();
        assert!(
            ship_message.contains("`pack#0`") && ship_message.contains("`pick#0`"),
            "{ship_message}"
        );
        // The line of the workflow body that calls the `#[step]` now.
        let pick_line = include_str!("changes.rs")
            .lines()
            .position(|l| l.ends_with("// PICK_LINE"))
            .unwrap()
            + 1;
        let line = format!("(at tests/changes.rs:{pick_line}:");
        assert!(ship_message.contains(&line), "{ship_message}");
        let quote_message = report.findings[0].message.clone();
        assert!(quote_message.contains("price"), "{quote_message}");
        assert_eq!(
            rt.check_execution("bill-1")
                .await
                .unwrap()
                .map(|f| f.message),
            None
        );
        // Nothing ran and nothing was written.
        assert_eq!(SHIP_BODIES.load(Ordering::SeqCst), 1);
        assert_eq!(futures_statuses(&rt).await, before);

        // The new code parks exactly those, with the check's words.
        clock.advance(HOUR + Duration::from_secs(1));
        assert_eq!(within(output_u32(&rt, "bill-1")).await, 7);
        for (id, message) in [("ship-1", &ship_message), ("quote-1", &quote_message)] {
            let info = wait_for_status(&rt, id, ExecutionStatus::Paused).await;
            assert_eq!(info.error_message.as_ref(), Some(message), "{id}");
        }
        assert_eq!(
            SHIP_BODIES.load(Ordering::SeqCst),
            1,
            "a step ran past a park"
        );
        rt.shutdown().await.unwrap();
    }
);

async fn output_u32(rt: &Runtime, id: &str) -> u32 {
    let info = wait_for_status(rt, id, ExecutionStatus::Completed).await;
    info.output.unwrap().decode().unwrap()
}

/// Every execution's status and journal, to show the check wrote nothing.
async fn futures_statuses(rt: &Runtime) -> Vec<String> {
    let mut all = Vec::new();
    for id in ["ship-1", "quote-1", "bill-1"] {
        let info = rt.status(id).await.unwrap();
        all.push(format!("{id} {:?} {:?}", info.status, info.steps));
    }
    all
}

#[workflow]
async fn retired(ctx: Context) -> Result<(), AnyError> {
    ctx.sleep(HOUR).await;
    Ok(())
}

#[tokio::test]
async fn a_workflow_no_longer_registered_is_reported_and_a_fixture_replays_in_a_unit_test() {
    let db = TempDb::new();
    let clock = clock();
    let rt = db.builder().clock(clock.clone()).open().await.unwrap();
    retired::start(&rt, "retired-1").await.unwrap();
    bill::start(&rt, "bill-2").await.unwrap();
    wait_for_status(&rt, "retired-1", ExecutionStatus::Sleeping).await;
    wait_for_status(&rt, "bill-2", ExecutionStatus::Sleeping).await;
    rt.shutdown().await.unwrap();
    drop(rt);

    // A database row of a workflow this build does not have, as after a
    // deploy that dropped it.
    let conn = rusqlite::Connection::open(db.path()).unwrap();
    conn.execute(
        "UPDATE workflow_executions SET workflow_name = 'gone' WHERE id = 'retired-1'",
        [],
    )
    .unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    drop(conn);
    let files = || {
        let mut names: Vec<_> = std::fs::read_dir(db.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let before = (std::fs::read(db.path()).unwrap(), files());

    // The journal of a file as a regression test: read in place, never written.
    replayflow::testing::replay::<bill>(db.path(), "bill-2")
        .await
        .unwrap();
    match replayflow::testing::replay::<bill>(db.path(), "retired-1").await {
        Err(Error::InvalidOption(message)) => {
            assert!(message.contains("belongs to workflow `gone`"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        replayflow::testing::replay::<bill>(db.path(), "nobody").await,
        Err(Error::NotFound(_))
    ));
    assert_eq!((std::fs::read(db.path()).unwrap(), files()), before);

    let rt = Runtime::builder()
        .path(db.path())
        .admin()
        .open()
        .await
        .unwrap();
    let report = rt.check().await.unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.findings.len(), 1, "{report}");
    let finding = &report.findings[0];
    assert_eq!(
        (finding.id.as_str(), finding.problem, finding.status),
        (
            "retired-1",
            CheckProblem::UnknownWorkflow,
            ExecutionStatus::Sleeping
        )
    );
    assert!(
        finding.message.contains("`gone` is not registered"),
        "{}",
        finding.message
    );
    let json = report.to_json();
    assert_eq!(json["findings"][0]["problem"], "unknown_workflow");
}

// ---- type fingerprints ----------------------------------------------------

/// 0: the step returns `Count` (a `u32`); 1: a `u64`, which decodes the
/// journaled number fine but is another type; 2: `Tally`, declared the
/// renamed `Count`.
static COUNT_CODE: AtomicU8 = AtomicU8::new(0);

#[derive(serde::Serialize, serde::Deserialize)]
struct Count(u32);

#[derive(serde::Serialize, serde::Deserialize)]
#[replayflow::renamed_from("changes::Count")]
struct Tally(u32);

#[workflow]
async fn count(ctx: Context) -> Result<u64, AnyError> {
    let n = match COUNT_CODE.load(Ordering::SeqCst) {
        0 => u64::from(
            ctx.step("count", || async { Ok::<_, AnyError>(Count(3)) })
                .await?
                .0,
        ),
        1 => {
            ctx.step("count", || async { Ok::<_, AnyError>(3u64) })
                .await?
        }
        _ => u64::from(
            ctx.step("count", || async { Ok::<_, AnyError>(Tally(3)) })
                .await?
                .0,
        ),
    };
    ctx.sleep(HOUR).await;
    Ok(n)
}

both_stores!(
    a_value_read_as_another_type_parks_naming_both_unless_declared_renamed,
    |db| async move {
        COUNT_CODE.store(0, Ordering::SeqCst);
        let clock = clock();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        count::start(&rt, "count-1").await.unwrap();
        count::start(&rt, "count-2").await.unwrap();
        wait_for_status(&rt, "count-1", ExecutionStatus::Sleeping).await;
        wait_for_status(&rt, "count-2", ExecutionStatus::Sleeping).await;
        rt.shutdown().await.unwrap();
        drop(rt);

        COUNT_CODE.store(1, Ordering::SeqCst);
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let report = rt.check().await.unwrap();
        assert_eq!(report.findings.len(), 2, "{report}");
        let message = report.findings[0].message.clone();
        assert_eq!(report.findings[0].problem, CheckProblem::Undecodable);
        assert!(
            message.contains(
                "the output of step `count#0` in workflow `count` was journaled as `changes::Count` and is now read as `u64`"
            ),
            "{message}"
        );
        // Parked with those words, though `3` decodes as a u64.
        rt.resume("count-1").await.unwrap();
        let info = wait_for_status(&rt, "count-1", ExecutionStatus::Paused).await;
        assert_eq!(info.error_message.as_deref(), Some(message.as_str()));
        rt.shutdown().await.unwrap();
        drop(rt);

        // Declared renamed: the value decodes and the execution runs on.
        COUNT_CODE.store(2, Ordering::SeqCst);
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let report = rt.check().await.unwrap();
        assert!(report.passed(), "{report}");
        clock.advance(HOUR * 2);
        assert_eq!(within(output_u64(&rt, "count-2")).await, 3);
        rt.resume("count-1").await.unwrap();
        assert_eq!(within(output_u64(&rt, "count-1")).await, 3);
        rt.shutdown().await.unwrap();
    }
);

async fn output_u64(rt: &Runtime, id: &str) -> u64 {
    let info = wait_for_status(rt, id, ExecutionStatus::Completed).await;
    info.output.unwrap().decode().unwrap()
}

// ---- app versions ---------------------------------------------------------

both_stores!(
    executions_record_their_version_and_a_runtime_runs_only_the_versions_it_accepts,
    |db| async move {
        let clock = clock();
        // By default, the version of the package that defines the workflow.
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        bill::start(&rt, "bill-default").await.unwrap();
        let info = wait_for_status(&rt, "bill-default", ExecutionStatus::Sleeping).await;
        assert_eq!(info.app_version, env!("CARGO_PKG_VERSION"));
        rt.shutdown().await.unwrap();
        drop(rt);

        let rt = db
            .builder()
            .clock(clock.clone())
            .app_version("1.0")
            .open()
            .await
            .unwrap();
        bill::start(&rt, "bill-1.0").await.unwrap();
        wait_for_status(&rt, "bill-1.0", ExecutionStatus::Sleeping).await;
        let listed = rt.list(replayflow::ListFilter::new()).await.unwrap();
        let versions: Vec<(&str, &str)> = listed
            .iter()
            .map(|e| (e.id.as_str(), e.app_version.as_str()))
            .collect();
        assert!(versions.contains(&("bill-1.0", "1.0")), "{versions:?}");
        rt.shutdown().await.unwrap();
        drop(rt);

        // Version 2.0 only: the 1.0 execution is left as it is, past its wake time.
        clock.advance(HOUR * 2);
        let rt = db
            .builder()
            .clock(clock.clone())
            .app_version("2.0")
            .accept_versions(["2.0", env!("CARGO_PKG_VERSION")])
            .open()
            .await
            .unwrap();
        assert_eq!(within(output_u32(&rt, "bill-default")).await, 7);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            rt.status("bill-1.0").await.unwrap().status,
            ExecutionStatus::Sleeping,
            "an execution of a version not accepted ran"
        );
        rt.shutdown().await.unwrap();
        drop(rt);

        // A runtime that accepts 1.0 runs it.
        let rt = db
            .builder()
            .clock(clock.clone())
            .accept_versions(["1.0"])
            .open()
            .await
            .unwrap();
        assert_eq!(within(output_u32(&rt, "bill-1.0")).await, 7);
        rt.shutdown().await.unwrap();
    }
);
