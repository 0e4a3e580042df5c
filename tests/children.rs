//! Child workflows: started durably and idempotently from a parent (never
//! twice, also across restarts), awaited durably (the parent suspends),
//! gathered together (fan-out, fan-in), their errors and cancels handed to
//! the parent, and cancelled with it. Every test runs on both stores.

mod support;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, UNIX_EPOCH};

use replayflow::{
    AnyError, ChildOptions, Context, EntryKind, ExecutionStatus, ManualClock, step, workflow,
};
use serde::{Deserialize, Serialize};
use support::{both_stores, wait_for_status, wait_until, within};

const HOUR: Duration = Duration::from_secs(3600);

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

/// Runs of `square`'s body, by execution id.
static SQUARED: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);

#[step]
async fn square_of(n: u64) -> Result<u64, AnyError> {
    if let Some(step) = replayflow::StepContext::current() {
        let mut runs = SQUARED.lock().unwrap();
        *runs
            .get_or_insert_with(HashMap::new)
            .entry(step.execution_id().to_string())
            .or_default() += 1;
    }
    Ok(n * n)
}

#[workflow]
async fn square(_ctx: Context, n: u64) -> Result<u64, AnyError> {
    square_of(n).await
}

/// Starts `n` children at once and sums their results.
#[workflow]
async fn fan_out(ctx: Context, n: u64) -> Result<u64, AnyError> {
    let mut handles = Vec::new();
    for i in 1..=n {
        handles.push(square::child(&ctx, i));
    }
    let handles = futures_util::future::join_all(handles).await;
    let results = futures_util::future::join_all(handles.iter().map(|h| h.result())).await;
    let mut sum = 0;
    for r in results {
        sum += r.map_err(|e| AnyError::msg(e.to_string()))?;
    }
    Ok(sum)
}

both_stores!(
    children_started_together_are_gathered_once_each,
    threads = 2,
    |db| async move {
        SQUARED.lock().unwrap().take();
        let rt = db.builder().open().await.unwrap();
        let out = within(fan_out::start(&rt, "fan", 20).await.unwrap().result()).await;
        assert_eq!(out.unwrap(), (1..=20u64).map(|i| i * i).sum::<u64>());
        let info = rt.status("fan").await.unwrap();
        assert_eq!(info.children.len(), 20);
        assert!(
            info.children
                .iter()
                .all(|c| c.status == ExecutionStatus::Completed)
        );
        assert_eq!(info.children[0].id.as_str(), "fan/square-0");
        let child = rt.status("fan/square-7").await.unwrap();
        assert_eq!(child.parent.as_ref().map(|p| p.as_str()), Some("fan"));
        let runs = SQUARED.lock().unwrap().take().unwrap();
        for c in &info.children {
            assert_eq!(runs.get(c.id.as_str()), Some(&1), "{} ran once", c.id);
        }
        // The parent's journal: 20 starts, then 20 ends.
        let kinds: Vec<EntryKind> = info.steps.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, vec![EntryKind::Child; 40]);
        rt.shutdown().await.unwrap();
    }
);

#[workflow]
async fn napper(ctx: Context, hours: u64) -> Result<String, AnyError> {
    ctx.sleep(HOUR * hours as u32).await;
    Ok(format!("slept {hours}h"))
}

/// Starts one sleeping child and waits for it.
#[workflow]
async fn patient(ctx: Context) -> Result<String, AnyError> {
    let child = napper::child(&ctx, 2).await;
    child
        .result()
        .await
        .map_err(|e| AnyError::msg(e.to_string()))
}

both_stores!(
    a_parent_suspends_while_its_child_runs_and_wakes_at_its_end_across_a_restart,
    |db| async move {
        let clock = clock();
        let open = || async {
            db.builder()
                .clock(clock.clone())
                .suspend_after(Duration::from_millis(50))
                .open()
                .await
                .unwrap()
        };
        let rt = open().await;
        patient::start(&rt, "patient").await.unwrap();
        let info = wait_for_status(&rt, "patient", ExecutionStatus::Waiting).await;
        assert_eq!(
            info.error_message.as_deref(),
            Some("waiting for child workflow `patient/napper-0`")
        );
        sleeping(&rt, "patient/napper-0").await;
        rt.shutdown().await.unwrap();
        drop(rt);

        // Replayed by the next worker: the same child, not a second one.
        clock.advance(3 * HOUR);
        let rt = open().await;
        let out = within(rt.handle::<patient>("patient").result()).await;
        assert_eq!(out.unwrap(), "slept 2h");
        assert_eq!(rt.status("patient").await.unwrap().children.len(), 1);
        rt.shutdown().await.unwrap();
    }
);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
enum Refusal {
    OutOfStock(String),
}

#[workflow]
async fn reserve(_ctx: Context, item: String) -> Result<u32, Refusal> {
    Err(Refusal::OutOfStock(item))
}

/// What its children's ends look like from the parent.
#[workflow]
async fn inspector(ctx: Context) -> Result<Vec<String>, AnyError> {
    let refused = reserve::child(&ctx, "pear".into()).await.result().await;
    let napping = napper::child(&ctx, 5).await;
    let cancelled = napping.result().await;
    Ok(vec![format!("{refused:?}"), format!("{cancelled:?}")])
}

both_stores!(
    a_childs_error_and_cancel_reach_the_parent_as_run_errors,
    |db| async move {
        let rt = db
            .builder()
            .suspend_after(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        let handle = inspector::start(&rt, "inspector").await.unwrap();
        sleeping(&rt, "inspector/napper-0").await;
        rt.cancel("inspector/napper-0").await.unwrap();
        let out = within(handle.result()).await.unwrap();
        assert_eq!(
            out,
            [
                r#"Err(Workflow(OutOfStock("pear")))"#.to_owned(),
                "Err(Cancelled)".to_owned()
            ]
        );
        rt.shutdown().await.unwrap();
    }
);

/// Starts a child that goes with it and one that outlives it, then waits.
#[workflow]
async fn family(ctx: Context) -> Result<(), AnyError> {
    let _attached = napper::child(&ctx, 10).await;
    let _kept = napper::child_with(
        &ctx,
        ChildOptions::new()
            .id("family-kept")
            .keep_on_parent_cancel(true),
        10,
    )
    .await;
    ctx.recv::<()>("never").await;
    Ok(())
}

both_stores!(
    cancelling_a_parent_cancels_its_unfinished_children_but_the_kept_one,
    |db| async move {
        let rt = db
            .builder()
            .suspend_after(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        family::start(&rt, "family").await.unwrap();
        wait_for_status(&rt, "family", ExecutionStatus::Waiting).await;
        for id in ["family/napper-0", "family-kept"] {
            sleeping(&rt, id).await;
        }
        // The pre-deploy check replays the parent's waits without waiting.
        let report = within(rt.check()).await.unwrap();
        assert!(report.passed() && report.checked >= 3, "{report}");
        rt.cancel("family").await.unwrap();
        wait_for_status(&rt, "family/napper-0", ExecutionStatus::Cancelled).await;
        wait_until(&rt, "family", |i| i.status == ExecutionStatus::Cancelled).await;
        let kept = rt.status("family-kept").await.unwrap();
        assert_eq!(kept.status, ExecutionStatus::Sleeping, "kept on purpose");
        assert_eq!(kept.parent.as_ref().map(|p| p.as_str()), Some("family"));
        rt.shutdown().await.unwrap();
    }
);

/// Waits until child `id` exists and sleeps (its parent starts it).
async fn sleeping(rt: &replayflow::Runtime, id: &str) {
    within(async {
        while !rt
            .status(id)
            .await
            .is_ok_and(|i| i.status == ExecutionStatus::Sleeping)
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Starts a quick child, gathers it, then waits for `go`.
#[workflow]
async fn keeper(ctx: Context) -> Result<u64, AnyError> {
    let child = square::child(&ctx, 3).await;
    let nine = child
        .result()
        .await
        .map_err(|e| AnyError::msg(e.to_string()))?;
    ctx.recv::<()>("go").await;
    Ok(nine)
}

both_stores!(
    retention_keeps_the_children_of_an_unfinished_parent,
    |db| async move {
        let clock = clock();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        keeper::start(&rt, "keeper").await.unwrap();
        // It waits for `go` once its child's end is journaled.
        wait_for_status(&rt, "keeper", ExecutionStatus::Waiting).await;
        clock.advance(48 * HOUR);
        let report = rt.prune(HOUR).await.unwrap();
        assert_eq!(report.executions, 0, "the parent may still read its child");
        assert!(rt.status("keeper/square-0").await.is_ok());
        rt.send("keeper", "go", &()).await.unwrap();
        assert_eq!(
            within(rt.handle::<keeper>("keeper").result())
                .await
                .unwrap(),
            9
        );
        clock.advance(48 * HOUR);
        let report = rt.prune(HOUR).await.unwrap();
        assert_eq!(report.executions, 2, "both, once the parent has ended");
        rt.shutdown().await.unwrap();
    }
);

/// Gives its child the id of an execution that is not its child.
#[workflow]
async fn squatter(ctx: Context) -> Result<u64, AnyError> {
    let child = square::child_with(&ctx, ChildOptions::new().id("taken-id"), 2).await;
    child
        .result()
        .await
        .map_err(|e| AnyError::msg(e.to_string()))
}

both_stores!(
    a_child_never_attaches_to_an_execution_that_is_not_its_own,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        within(square::start(&rt, "taken-id", 5).await.unwrap().result())
            .await
            .unwrap();
        let handle = squatter::start(&rt, "squatter").await.unwrap();
        let err = within(handle.result()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("execution `taken-id` exists and is not a child of `squatter`"),
            "{text}"
        );
        rt.shutdown().await.unwrap();
    }
);

/// Starts a child whose input is over the size limit.
#[workflow]
async fn oversized(ctx: Context) -> Result<u64, AnyError> {
    let big = "x".repeat(4096);
    let child = napper_named::child(&ctx, big).await;
    child
        .result()
        .await
        .map_err(|e| AnyError::msg(e.to_string()))
}

#[workflow]
async fn napper_named(_ctx: Context, name: String) -> Result<u64, AnyError> {
    Ok(name.len() as u64)
}

both_stores!(
    a_child_that_cannot_start_fails_its_parent_with_the_reason,
    |db| async move {
        let rt = db.builder().max_payload_bytes(1024).open().await.unwrap();
        let handle = oversized::start(&rt, "oversized").await.unwrap();
        let err = within(handle.result()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("child workflow `napper_named` could not start")
                && text.contains("over the configured limit"),
            "{text}"
        );
        assert_eq!(
            rt.status("oversized").await.unwrap().status,
            ExecutionStatus::Failed,
            "failed for good, not paused for storage"
        );
        rt.shutdown().await.unwrap();
    }
);
