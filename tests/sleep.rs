//! Durable sleep: the wake time is journaled once, a sleeping execution holds
//! no task and no future, and it wakes at its time, also across restarts.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use replayflow::{
    AnyError, Clock, Context, EntryKind, ExecutionStatus, ManualClock, Runtime, StepStatus, step,
    workflow,
};
use support::{both_stores, wait_for_status, within};

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

static BEFORE: AtomicU32 = AtomicU32::new(0);
static AFTER: AtomicU32 = AtomicU32::new(0);
static DROPPED: AtomicU32 = AtomicU32::new(0);

/// Lives in the workflow future: its drop shows the future was dropped.
struct DropProbe;

impl Drop for DropProbe {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

#[step]
async fn before_sleep() -> Result<u32, AnyError> {
    BEFORE.fetch_add(1, Ordering::SeqCst);
    Ok(1)
}

#[step]
async fn after_sleep() -> Result<u32, AnyError> {
    AFTER.fetch_add(1, Ordering::SeqCst);
    Ok(2)
}

#[workflow]
async fn nap(ctx: Context, hours: u64) -> Result<u32, AnyError> {
    let _probe = DropProbe;
    let a = before_sleep().await?;
    ctx.sleep(Duration::from_secs(hours * 3600)).await;
    let b = after_sleep().await?;
    Ok(a + b)
}

both_stores!(
    a_long_sleep_suspends_the_execution_and_replays_it_when_due,
    |db| async move {
        BEFORE.store(0, Ordering::SeqCst);
        AFTER.store(0, Ordering::SeqCst);
        DROPPED.store(0, Ordering::SeqCst);
        let clock = clock();
        let start = clock.now();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let handle = nap::start(&rt, "nap-1", 2).await.unwrap();

        let info = wait_for_status(&rt, "nap-1", ExecutionStatus::Sleeping).await;
        assert_eq!(info.wake_at, Some(start + Duration::from_secs(7200)));
        let sleep = &info.steps[1];
        assert_eq!(
            (sleep.kind, sleep.status),
            (EntryKind::Sleep, StepStatus::Sleeping)
        );
        within(async {
            while DROPPED.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert_eq!(AFTER.load(Ordering::SeqCst), 0);

        clock.advance(Duration::from_secs(3600));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            rt.status("nap-1").await.unwrap().status,
            ExecutionStatus::Sleeping,
            "woke an hour early"
        );

        clock.advance(Duration::from_secs(3600));
        assert_eq!(within(handle.result()).await.unwrap(), 3);
        assert_eq!(
            BEFORE.load(Ordering::SeqCst),
            1,
            "the step before the sleep ran again"
        );
        assert_eq!(AFTER.load(Ordering::SeqCst), 1);
        let info = rt.status("nap-1").await.unwrap();
        assert_eq!(info.steps[1].status, StepStatus::Completed);
    }
);

#[workflow]
async fn doze(ctx: Context) -> Result<SystemTime, AnyError> {
    ctx.sleep(Duration::from_secs(600)).await;
    Ok(ctx.now().await)
}

both_stores!(
    a_sleep_that_expired_while_down_fires_promptly_after_open,
    |db| async move {
        let clock = clock();
        let start = clock.now();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        doze::start(&rt, "doze-1").await.unwrap();
        wait_for_status(&rt, "doze-1", ExecutionStatus::Sleeping).await;
        rt.shutdown().await.unwrap();
        drop(rt);

        clock.advance(Duration::from_secs(3600));
        let opened = std::time::Instant::now();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let woke_at = within(rt.handle::<doze>("doze-1").result()).await.unwrap();
        assert!(
            opened.elapsed() < Duration::from_secs(1),
            "took {:?}",
            opened.elapsed()
        );
        assert_eq!(woke_at, start + Duration::from_secs(3600));
    }
);

both_stores!(
    a_sleep_not_yet_due_after_reopen_waits_only_the_remainder,
    |db| async move {
        let clock = clock();
        let start = clock.now();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        doze::start(&rt, "doze-2").await.unwrap();
        wait_for_status(&rt, "doze-2", ExecutionStatus::Sleeping).await;
        rt.shutdown().await.unwrap();
        drop(rt);

        clock.advance(Duration::from_secs(400));
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let info = rt.status("doze-2").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Sleeping);
        assert_eq!(
            info.wake_at,
            Some(start + Duration::from_secs(600)),
            "the wake time was recomputed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            rt.status("doze-2").await.unwrap().status,
            ExecutionStatus::Sleeping
        );

        clock.advance(Duration::from_secs(200));
        let woke_at = within(rt.handle::<doze>("doze-2").result()).await.unwrap();
        assert_eq!(woke_at, start + Duration::from_secs(600));
    }
);

#[workflow]
async fn short_nap(ctx: Context) -> Result<u32, AnyError> {
    ctx.sleep(Duration::from_millis(20)).await;
    Ok(ctx.restart_attempt())
}

both_stores!(a_short_sleep_waits_in_memory, |db| async move {
    let rt = db.builder().open().await.unwrap();
    assert_eq!(
        within(short_nap::start(&rt, "short-1").await.unwrap().result())
            .await
            .unwrap(),
        0
    );
    let info = rt.status("short-1").await.unwrap();
    assert_eq!(info.steps[0].kind, EntryKind::Sleep);
    assert_eq!(info.steps[0].status, StepStatus::Completed);
});

#[workflow]
async fn long_nap(ctx: Context) -> Result<(), AnyError> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sleeping_executions_hold_no_tasks() {
    let clock = clock();
    let rt = Runtime::builder()
        .in_memory()
        .clock(clock.clone())
        .open()
        .await
        .unwrap();
    const N: usize = 10_000;
    let mut starts = Vec::with_capacity(N);
    for i in 0..N {
        let rt = rt.clone();
        starts.push(tokio::spawn(async move {
            long_nap::start(&rt, format!("sleeper-{i}"))
                .await
                .map(|_| ())
        }));
    }
    for s in starts {
        s.await.unwrap().unwrap();
    }
    within(async {
        loop {
            let sleeping = rt
                .list(
                    replayflow::ListFilter::new()
                        .status(ExecutionStatus::Sleeping)
                        .limit(N as u32 + 1),
                )
                .await
                .unwrap()
                .len();
            if sleeping == N {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    // Let the drivers of the suspended executions finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alive = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    assert!(
        alive < 10,
        "{alive} tasks alive for {N} sleeping executions"
    );
}
