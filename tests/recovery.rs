//! Recovery: on open every unfinished execution is picked up; a workflow that
//! kills its process every time ends `paused` instead of looping; executions
//! of workflows this process lacks are left as they are; a paused execution
//! resumes once its cause is fixed.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use replayflow::{AnyError, Context, ExecutionStatus, RunError, Runtime, step, workflow};
use support::{TempDb, both_stores, wait_until, within};

fn worker(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_crash-worker"))
        .args(args)
        .output()
        .expect("run the worker")
}

#[test]
fn a_workflow_that_aborts_its_process_every_time_ends_paused() {
    let db = TempDb::new();
    let path = db.path();
    let path = path.to_str().unwrap();
    let first = worker(&["poison", path]);
    assert!(
        !first.status.success(),
        "the poison workflow did not abort its process"
    );

    // Budget 3: three recoveries abort the process again, the fourth open pauses it.
    let mut opens = 0;
    loop {
        opens += 1;
        assert!(opens <= 4, "still not paused after {opens} opens");
        let out = worker(&["open", path]);
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "paused");
            break;
        }
    }
    assert_eq!(opens, 4, "paused after {opens} opens, expected the 4th");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // This test binary does not register `poison_flow`: its execution is
        // left as it is, readable.
        let wf = Runtime::open(db.path()).await.unwrap();
        let info = wf.status("poison-1").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Paused);
        let reason = info.error_message.unwrap();
        assert!(reason.contains("interrupted 4 times"), "{reason}");
    });
}

#[test]
fn executions_of_unregistered_workflows_are_left_untouched() {
    let db = TempDb::new();
    let path = db.path();
    // `poison_flow` exists only in the worker; once it aborted, its
    // execution is `running` with nobody running it.
    let first = worker(&["poison", path.to_str().unwrap()]);
    assert!(!first.status.success());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let wf = Runtime::open(db.path()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let info = wf.status("poison-1").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Running);
        assert_eq!(info.restart_attempt, 0);
        assert!(info.error_message.is_none());
    });
}

static FIXED: AtomicBool = AtomicBool::new(false);

#[step]
async fn original() -> Result<u32, AnyError> {
    Ok(1)
}

#[step]
async fn replacement() -> Result<u32, AnyError> {
    Ok(2)
}

#[step]
async fn finalize(x: u32) -> Result<u32, AnyError> {
    Ok(x * 100)
}

static BROKEN_DEPLOY: AtomicBool = AtomicBool::new(false);

#[workflow]
async fn deployable(ctx: Context) -> Result<u32, AnyError> {
    let v = if BROKEN_DEPLOY.load(Ordering::SeqCst) && !FIXED.load(Ordering::SeqCst) {
        replacement().await?
    } else {
        original().await?
    };
    if ctx.restart_attempt() == 0 {
        BROKEN_DEPLOY.store(true, Ordering::SeqCst);
        panic!("crash; the next run has the broken code");
    }
    finalize(v).await
}

both_stores!(
    a_paused_execution_resumes_once_the_cause_is_fixed,
    |db| async move {
        FIXED.store(false, Ordering::SeqCst);
        BROKEN_DEPLOY.store(false, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = deployable::start(&rt, "deploy-1").await.unwrap();
        let err = within(handle.result()).await.unwrap_err();
        assert!(matches!(err, RunError::Paused(_)), "{err:?}");

        FIXED.store(true, Ordering::SeqCst);
        deployable::resume(&rt, "deploy-1").await.unwrap();
        if db.is_postgres() {
            // No worker drives a paused execution: on PostgreSQL the resume
            // is a request that the sweep applies within about a second, and
            // until then the handle reads the pause again.
            wait_until(&rt, "deploy-1", |info| {
                info.status != ExecutionStatus::Paused
            })
            .await;
        }
        assert_eq!(within(handle.result()).await.unwrap(), 100);
    }
);

#[workflow]
async fn sleepy_then_done(ctx: Context) -> Result<u32, AnyError> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(7)
}

both_stores!(resume_wakes_a_sleeping_execution_now, |db| async move {
    let rt = db.builder().open().await.unwrap();
    let handle = sleepy_then_done::start(&rt, "sleepy-1").await.unwrap();
    within(async {
        while rt.status("sleepy-1").await.unwrap().status != ExecutionStatus::Sleeping {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    sleepy_then_done::resume(&rt, "sleepy-1").await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 7);
});

static GATE_OPEN: AtomicBool = AtomicBool::new(false);
static ENTERED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

#[step]
async fn gated() -> Result<u32, AnyError> {
    ENTERED.fetch_add(1, Ordering::SeqCst);
    while !GATE_OPEN.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(1)
}

#[workflow]
async fn long_running(_ctx: Context) -> Result<u32, AnyError> {
    gated().await
}

both_stores!(
    clean_shutdowns_do_not_count_against_the_recovery_budget,
    |db| async move {
        GATE_OPEN.store(false, Ordering::SeqCst);
        ENTERED.store(0, Ordering::SeqCst);
        let mut rt = db.builder().recovery_budget(1).open().await.unwrap();
        long_running::start(&rt, "long-1").await.unwrap();
        for round in 1..=4 {
            // The step is running in this worker (its first run, or a replay).
            within(async {
                while ENTERED.load(Ordering::SeqCst) < round {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            rt.shutdown().await.unwrap();
            drop(rt);
            // Budget 1: were clean shutdowns counted, the second reopen would pause it.
            rt = db.builder().recovery_budget(1).open().await.unwrap();
            assert_ne!(
                rt.status("long-1").await.unwrap().status,
                ExecutionStatus::Paused
            );
        }
        GATE_OPEN.store(true, Ordering::SeqCst);
        assert_eq!(
            within(rt.handle::<long_running>("long-1").result())
                .await
                .unwrap(),
            1
        );
    }
);
