//! Replay: completed steps return their journaled values without running,
//! failed steps return the same `Err`, and a workflow that changed its calls
//! is parked instead of being handed another call's result.

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use replayflow::{
    AnyError, Context, EntryKind, ExecutionStatus, RunError, StepStatus, permanent, step, workflow,
};
use serde::{Deserialize, Serialize};
use support::{both_stores, within};

static FETCHES: AtomicU32 = AtomicU32::new(0);
static SAVES: AtomicU32 = AtomicU32::new(0);

#[step]
async fn fetch(x: u32) -> Result<u32, AnyError> {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    Ok(x + 1)
}

#[step]
async fn save(x: u32) -> Result<u32, AnyError> {
    SAVES.fetch_add(1, Ordering::SeqCst);
    Ok(x * 10)
}

/// Runs two steps, then panics on its first run only: the restart replays.
#[workflow]
async fn fetch_then_save(ctx: Context, x: u32) -> Result<u32, AnyError> {
    let a = fetch(x).await?;
    let b = save(a).await?;
    if ctx.restart_attempt() == 0 {
        panic!("crash after two steps");
    }
    Ok(b)
}

both_stores!(replays_completed_steps_without_rerunning, |db| async move {
    FETCHES.store(0, Ordering::SeqCst);
    SAVES.store(0, Ordering::SeqCst);
    let rt = db.builder().open().await.unwrap();
    let handle = fetch_then_save::start(&rt, "replay-1", 4).await.unwrap();
    assert_eq!(within(handle.result()).await.unwrap(), 50);
    assert_eq!(
        FETCHES.load(Ordering::SeqCst),
        1,
        "fetch ran again on replay"
    );
    assert_eq!(SAVES.load(Ordering::SeqCst), 1, "save ran again on replay");

    let info = rt.status("replay-1").await.unwrap();
    assert_eq!(info.status, ExecutionStatus::Completed);
    assert_eq!(info.restart_attempt, 1);
    assert!(info.steps.iter().all(|s| s.attempts == 1));
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum PaymentError {
    Declined { code: u32 },
    Unavailable,
}

static CHARGES: AtomicU32 = AtomicU32::new(0);
static FALLBACKS: AtomicU32 = AtomicU32::new(0);

#[step(max_attempts = 3, backoff = "1ms")]
async fn charge_card(amount: u64) -> Result<u64, PaymentError> {
    CHARGES.fetch_add(1, Ordering::SeqCst);
    let _ = amount;
    Err(permanent(PaymentError::Declined { code: 7 }))
}

#[step]
async fn send_invoice(amount: u64) -> Result<String, PaymentError> {
    FALLBACKS.fetch_add(1, Ordering::SeqCst);
    Ok(format!("invoice for {amount}"))
}

#[workflow]
async fn pay(ctx: Context, amount: u64) -> Result<String, PaymentError> {
    let outcome = match charge_card(amount).await {
        Ok(id) => format!("charged {id}"),
        Err(PaymentError::Declined { code }) => {
            format!("{} (declined {code})", send_invoice(amount).await?)
        }
        Err(e) => return Err(e),
    };
    if ctx.restart_attempt() == 0 {
        panic!("crash after the fallback");
    }
    Ok(outcome)
}

both_stores!(failed_step_replays_the_same_err, |db| async move {
    CHARGES.store(0, Ordering::SeqCst);
    FALLBACKS.store(0, Ordering::SeqCst);
    let rt = db.builder().open().await.unwrap();
    let handle = pay::start(&rt, "pay-1", 30).await.unwrap();
    assert_eq!(
        within(handle.result()).await.unwrap(),
        "invoice for 30 (declined 7)"
    );
    assert_eq!(
        CHARGES.load(Ordering::SeqCst),
        1,
        "a permanent error was retried or re-run on replay"
    );
    assert_eq!(FALLBACKS.load(Ordering::SeqCst), 1);

    let info = rt.status("pay-1").await.unwrap();
    let charge = &info.steps[0];
    assert_eq!(charge.status, StepStatus::Failed);
    assert_eq!(charge.attempts, 1);
    assert!(
        charge
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("Declined"),
        "{charge:?}"
    );
});

static SWITCHED: AtomicBool = AtomicBool::new(false);

#[step]
async fn old_step() -> Result<u32, AnyError> {
    Ok(1)
}

#[step]
async fn new_step() -> Result<u32, AnyError> {
    panic!("a step at a position recorded for another step must not run");
}

#[workflow]
async fn evolving(ctx: Context) -> Result<u32, AnyError> {
    let v = if SWITCHED.load(Ordering::SeqCst) {
        new_step().await?
    } else {
        old_step().await?
    };
    if ctx.restart_attempt() == 0 {
        // The "deploy" of changed code happens while the execution is down.
        SWITCHED.store(true, Ordering::SeqCst);
        panic!("crash before the new code runs");
    }
    Ok(v)
}

both_stores!(
    different_step_at_a_recorded_position_parks_the_execution,
    |db| async move {
        SWITCHED.store(false, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = evolving::start(&rt, "evolving-1").await.unwrap();
        let err = within(handle.result()).await.unwrap_err();
        let RunError::Paused(reason) = err else {
            panic!("expected a paused execution, got {err:?}");
        };
        assert!(
            reason.contains("old_step#0") && reason.contains("new_step#0"),
            "{reason}"
        );
        assert!(reason.contains("non-determinism"), "{reason}");

        let info = rt.status("evolving-1").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Paused);
        assert_eq!(
            info.steps.len(),
            1,
            "nothing may be journaled for the mismatching call"
        );
        assert_eq!(info.steps[0].status, StepStatus::Completed);
    }
);

static SKIP_SECOND: AtomicBool = AtomicBool::new(false);

#[step]
async fn first(x: u32) -> Result<u32, AnyError> {
    Ok(x)
}

#[step]
async fn second(x: u32) -> Result<u32, AnyError> {
    Ok(x)
}

#[workflow]
async fn shrinking(ctx: Context) -> Result<u32, AnyError> {
    let a = first(1).await?;
    if !SKIP_SECOND.load(Ordering::SeqCst) {
        second(a).await?;
    }
    if ctx.restart_attempt() == 0 {
        SKIP_SECOND.store(true, Ordering::SeqCst);
        panic!("crash before the new code runs");
    }
    Ok(a)
}

both_stores!(
    unreached_journal_entries_park_the_execution,
    |db| async move {
        SKIP_SECOND.store(false, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = shrinking::start(&rt, "shrinking-1").await.unwrap();
        let err = within(handle.result()).await.unwrap_err();
        let RunError::Paused(reason) = err else {
            panic!("expected a paused execution, got {err:?}");
        };
        assert!(reason.contains("second#0"), "{reason}");
    }
);

static SEEN: Mutex<Vec<(u64, u64, String)>> = Mutex::new(Vec::new());

#[workflow]
async fn helpers(ctx: Context) -> Result<u64, AnyError> {
    let now = ctx.now().await;
    let r = ctx.random_u64().await;
    let id = ctx.uuid().await;
    let ms = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(AnyError::from)?
        .as_millis() as u64;
    SEEN.lock().unwrap().push((ms, r, id.to_string()));
    first(1).await?;
    if ctx.restart_attempt() == 0 {
        panic!("crash after the helper values");
    }
    Ok(r)
}

both_stores!(
    helper_values_are_identical_after_a_restart,
    |db| async move {
        SEEN.lock().unwrap().clear();
        let rt = db.builder().open().await.unwrap();
        let handle = helpers::start(&rt, "helpers-1").await.unwrap();
        let r = within(handle.result()).await.unwrap();
        let seen = SEEN.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], seen[1], "replay saw different helper values");
        assert_eq!(seen[0].1, r);

        let info = rt.status("helpers-1").await.unwrap();
        let kinds: Vec<EntryKind> = info.steps.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            [
                EntryKind::Now,
                EntryKind::Random,
                EntryKind::Random,
                EntryKind::Step
            ]
        );
    }
);
