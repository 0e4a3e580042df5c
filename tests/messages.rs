//! Talking to running workflows: messages taken exactly once (sent before
//! the `recv`, while it waits in memory, while it is suspended, while no
//! worker runs), idempotency keys, durable deadlines, events, and the
//! errors of sending to what cannot take a message. Every test runs on
//! both stores.

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use replayflow::{
    AnyError, Context, Delivery, EntryKind, Error, ExecutionStatus, ManualClock, Runtime,
    SendOptions, StepStatus, step, workflow,
};
use serde::{Deserialize, Serialize};
use support::{both_stores, wait_for_status, wait_until, within};

fn clock() -> ManualClock {
    ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

const HOUR: Duration = Duration::from_secs(3600);

static GATE_RUNS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn gate() -> Result<(), AnyError> {
    GATE_RUNS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Takes `n` messages of topic `add` and sums them; sleeps an hour first
/// when asked, so that messages can be sent before the `recv` is reached.
#[workflow]
async fn adder(ctx: Context, n: u32, sleep_first: bool) -> Result<u64, AnyError> {
    if sleep_first {
        ctx.sleep(HOUR).await;
    }
    gate().await?;
    let mut sum = 0;
    for _ in 0..n {
        sum += ctx.recv::<u64>("add").await;
    }
    Ok(sum)
}

/// The recv entries of `id` that took a message, with their values.
async fn taken(rt: &Runtime, id: &str) -> Vec<u64> {
    rt.status(id)
        .await
        .unwrap()
        .steps
        .iter()
        .filter(|e| e.kind == EntryKind::Recv && e.status == StepStatus::Completed)
        .map(|e| e.output.as_ref().unwrap().decode::<u64>().unwrap())
        .collect()
}

both_stores!(
    a_message_sent_before_the_recv_waits_in_the_inbox,
    |db| async move {
        let clock = clock();
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let handle = adder::start(&rt, "early", 2, true).await.unwrap();
        wait_for_status(&rt, "early", ExecutionStatus::Sleeping).await;
        assert_eq!(
            handle.send("add", &5u64).await.unwrap(),
            Delivery::Delivered
        );
        assert_eq!(
            handle.send("add", &7u64).await.unwrap(),
            Delivery::Delivered
        );
        clock.advance(2 * HOUR);
        assert_eq!(within(handle.result()).await.unwrap(), 12);
        assert_eq!(taken(&rt, "early").await, [5, 7], "oldest first");
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    a_message_wakes_a_waiter_in_memory_and_a_suspended_one,
    |db| async move {
        let rt = db
            .builder()
            .suspend_after(Duration::from_millis(200))
            .open()
            .await
            .unwrap();
        let handle = adder::start(&rt, "live", 2, false).await.unwrap();
        // In memory: the first message reaches the waiting recv.
        wait_until(&rt, "live", |i| {
            i.steps
                .iter()
                .any(|e| e.kind == EntryKind::Recv && e.status == StepStatus::Waiting)
        })
        .await;
        handle.send("add", &1u64).await.unwrap();
        // Then it waits past the threshold: suspended, with its topic.
        let info = wait_for_status(&rt, "live", ExecutionStatus::Waiting).await;
        assert_eq!(
            info.error_message.as_deref(),
            Some("waiting for a message on topic `add`")
        );
        let last = info.steps.last().unwrap();
        assert_eq!(
            (last.kind, last.key.name.as_str(), last.status, last.wake_at),
            (EntryKind::Recv, "add", StepStatus::Waiting, None)
        );
        let sent = std::time::Instant::now();
        handle.send("add", &2u64).await.unwrap();
        assert_eq!(within(handle.result()).await.unwrap(), 3);
        assert!(
            sent.elapsed() < Duration::from_millis(900),
            "a send in this process wakes the suspended waiter at once, not at the next sweep: {:?}",
            sent.elapsed()
        );
        assert_eq!(taken(&rt, "live").await, [1, 2]);
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    a_message_sent_while_no_worker_runs_is_taken_after_the_next_open,
    |db| async move {
        let clock = clock();
        let rt = db
            .builder()
            .clock(clock.clone())
            .suspend_after(Duration::ZERO)
            .open()
            .await
            .unwrap();
        adder::start(&rt, "offline", 1, false).await.unwrap();
        wait_for_status(&rt, "offline", ExecutionStatus::Waiting).await;
        rt.shutdown().await.unwrap();
        drop(rt);

        // An admin (the CLI, another process) sends while no worker runs.
        let admin = db.builder().admin().open().await.unwrap();
        admin.send("offline", "add", &40u64).await.unwrap();
        admin.send("offline", "add", &2u64).await.unwrap();
        drop(admin);

        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        let out = within(rt.handle::<adder>("offline").result())
            .await
            .unwrap();
        assert_eq!(out, 40, "one recv takes one message, the oldest");
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    an_admin_send_reaches_a_running_worker_within_its_sweep,
    |db| async move {
        let rt = db
            .builder()
            .suspend_after(Duration::ZERO)
            .open()
            .await
            .unwrap();
        let handle = adder::start(&rt, "swept", 2, false).await.unwrap();
        wait_for_status(&rt, "swept", ExecutionStatus::Waiting).await;
        let admin = db.builder().admin().open().await.unwrap();
        admin.send("swept", "add", &3u64).await.unwrap();
        admin.send("swept", "add", &4u64).await.unwrap();
        assert_eq!(within(handle.result()).await.unwrap(), 7);
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    one_idempotency_key_delivers_once_from_ten_concurrent_senders,
    threads = 2,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let handle = once_or_twice::start(&rt, "paid").await.unwrap();
        let sends = (0..10).map(|_| {
            let rt = rt.clone();
            tokio::spawn(async move {
                rt.send_with(
                    "paid",
                    "paid",
                    &100u64,
                    SendOptions::idempotency_key("evt-1"),
                )
                .await
                .unwrap()
            })
        });
        let mut delivered = 0;
        for send in sends.collect::<Vec<_>>() {
            if send.await.unwrap() == Delivery::Delivered {
                delivered += 1;
            }
        }
        assert_eq!(delivered, 1, "one delivery, nine duplicates");
        assert_eq!(within(handle.result()).await.unwrap(), (100, None));
        rt.shutdown().await.unwrap();
    }
);

#[workflow]
async fn once_or_twice(ctx: Context) -> Result<(u64, Option<u64>), AnyError> {
    let first = ctx.recv::<u64>("paid").await;
    let second = ctx
        .recv_timeout::<u64>("paid", Duration::from_millis(300))
        .await;
    Ok((first, second))
}

#[workflow]
async fn answer_or_give_up(ctx: Context) -> Result<String, AnyError> {
    gate().await?;
    Ok(match ctx.recv_timeout::<String>("answer", HOUR).await {
        Some(answer) => format!("answered {answer}"),
        None => "gave up".to_owned(),
    })
}

both_stores!(
    a_deadline_survives_a_restart_and_ends_the_wait_when_it_passes,
    |db| async move {
        let clock = clock();
        let start = replayflow::Clock::now(&clock);
        let open = || async {
            db.builder()
                .clock(clock.clone())
                .suspend_after(Duration::ZERO)
                .open()
                .await
                .unwrap()
        };
        let rt = open().await;
        answer_or_give_up::start(&rt, "late").await.unwrap();
        answer_or_give_up::start(&rt, "in-time").await.unwrap();
        for id in ["late", "in-time"] {
            let info = wait_for_status(&rt, id, ExecutionStatus::Waiting).await;
            assert_eq!(
                info.wake_at,
                Some(start + HOUR),
                "the deadline is the wake time"
            );
        }
        rt.shutdown().await.unwrap();
        drop(rt);

        // Half the time passes while no worker runs: the deadline stands.
        clock.advance(HOUR / 2);
        let rt = open().await;
        rt.send("in-time", "answer", "yes").await.unwrap();
        let out = within(rt.handle::<answer_or_give_up>("in-time").result()).await;
        assert_eq!(out.unwrap(), "answered yes");
        let info = rt.status("late").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Waiting);
        let wait = info.steps.last().unwrap();
        assert_eq!(wait.wake_at, Some(start + HOUR), "not restarted from now");
        rt.shutdown().await.unwrap();
        drop(rt);

        // Past the original deadline, the next open ends the wait: an
        // answer sent after the deadline is not this wait's.
        clock.advance(HOUR);
        let admin = db
            .builder()
            .admin()
            .clock(clock.clone())
            .open()
            .await
            .unwrap();
        admin
            .send("late", "answer", "after the deadline")
            .await
            .unwrap();
        drop(admin);
        let rt = open().await;
        let out = within(rt.handle::<answer_or_give_up>("late").result()).await;
        assert_eq!(out.unwrap(), "gave up");
        let wait = rt.status("late").await.unwrap().steps.pop().unwrap();
        assert_eq!(
            (wait.kind, wait.status, wait.output.is_none()),
            (EntryKind::Recv, StepStatus::Completed, true)
        );
        // A message that comes too late is refused: the execution is over.
        let err = rt.send("late", "answer", "too late").await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::Finished {
                    status: ExecutionStatus::Completed,
                    ..
                }
            ),
            "{err}"
        );
        rt.shutdown().await.unwrap();
    }
);

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Approval {
    approver: String,
    amount: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Refund {
    amount: u64,
}

/// What another crate (a web service sending approvals) calls the message.
#[derive(Debug, Serialize)]
struct SameShape {
    approver: &'static str,
    amount: u64,
}

#[workflow]
async fn approve(ctx: Context) -> Result<String, AnyError> {
    let a: Approval = ctx.recv("approval").await;
    Ok(format!("{} approved {}", a.approver, a.amount))
}

both_stores!(
    a_message_of_another_type_or_shape_parks_naming_the_topic,
    |db| async move {
        let rt = db.builder().open().await.unwrap();

        // Sent as another Rust type of another shape: parked, naming the
        // topic, the missing field and the type it was sent as.
        approve::start(&rt, "typed").await.unwrap();
        rt.send("typed", "approval", &Refund { amount: 5 })
            .await
            .unwrap();
        let info = wait_for_status(&rt, "typed", ExecutionStatus::Paused).await;
        let reason = info.error_message.unwrap();
        assert!(reason.contains("topic `approval`"), "{reason}");
        assert!(reason.contains("approver"), "{reason}");
        assert!(reason.contains("sent as `messages::Refund`"), "{reason}");

        // Another type of the same shape is decoded (a sender's own type).
        approve::start(&rt, "shaped").await.unwrap();
        rt.send(
            "shaped",
            "approval",
            &SameShape {
                approver: "bo",
                amount: 9,
            },
        )
        .await
        .unwrap();
        let out = within(rt.handle::<approve>("shaped").result())
            .await
            .unwrap();
        assert_eq!(out, "bo approved 9");

        // Sent as JSON of another shape: parked with the serde path.
        approve::start(&rt, "json").await.unwrap();
        let shape = serde_json::json!({ "approver": "ada", "amount": "lots" });
        rt.send_json("json", "approval", &shape, SendOptions::default())
            .await
            .unwrap();
        let info = wait_for_status(&rt, "json", ExecutionStatus::Paused).await;
        let reason = info.error_message.unwrap();
        assert!(reason.contains("topic `approval`"), "{reason}");
        assert!(reason.contains("amount"), "the serde path: {reason}");

        // Well-formed JSON without a type is decoded into the recv's type.
        approve::start(&rt, "ok").await.unwrap();
        let good = serde_json::json!({ "approver": "ada", "amount": 12 });
        rt.send_json("ok", "approval", &good, SendOptions::default())
            .await
            .unwrap();
        let out = within(rt.handle::<approve>("ok").result()).await.unwrap();
        assert_eq!(out, "ada approved 12");
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    sending_to_an_unknown_or_finished_execution_is_an_error,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let err = rt.send("nobody", "t", &1u32).await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        let handle = once_or_twice::start(&rt, "done").await.unwrap();
        let key = || SendOptions::idempotency_key("hook-7");
        handle.send("paid", &1u64).await.unwrap();
        rt.send_with("done", "paid", &2u64, key()).await.unwrap();
        within(handle.result()).await.unwrap();
        // A retried webhook after the end is still one delivery, not an error.
        let again = rt.send_with("done", "paid", &2u64, key()).await.unwrap();
        assert_eq!(again, Delivery::Duplicate);
        let err = handle.send("paid", &2u64).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "execution `done` is completed; it takes no more messages"
        );
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    cancelling_a_waiting_execution_ends_its_wait,
    |db| async move {
        let rt = db
            .builder()
            .suspend_after(Duration::ZERO)
            .open()
            .await
            .unwrap();
        let handle = adder::start(&rt, "bored", 1, false).await.unwrap();
        wait_for_status(&rt, "bored", ExecutionStatus::Waiting).await;
        rt.cancel("bored").await.unwrap();
        let info = wait_for_status(&rt, "bored", ExecutionStatus::Cancelled).await;
        let wait = info.steps.last().unwrap();
        assert_eq!(wait.status, StepStatus::Failed);
        assert_eq!(
            wait.error.as_deref(),
            Some("cancelled while waiting for a message")
        );
        assert!(matches!(
            within(handle.result()).await,
            Err(replayflow::RunError::Cancelled)
        ));
        rt.shutdown().await.unwrap();
    }
);

static REPLAYING: Mutex<Vec<bool>> = Mutex::new(Vec::new());

/// Publishes its progress, then waits for `go`.
#[workflow]
async fn publisher(ctx: Context) -> Result<u32, AnyError> {
    REPLAYING.lock().unwrap().push(ctx.is_replaying());
    ctx.set_event("stage", "started").await;
    ctx.set_event("count", &1u32).await;
    ctx.set_event("count", &2u32).await;
    REPLAYING.lock().unwrap().push(ctx.is_replaying());
    ctx.recv::<()>("go").await;
    REPLAYING.lock().unwrap().push(ctx.is_replaying());
    ctx.set_event("stage", "done").await;
    Ok(2)
}

both_stores!(
    events_hold_the_latest_value_and_a_replay_publishes_nothing_again,
    |db| async move {
        REPLAYING.lock().unwrap().clear();
        let clock = clock();
        let open = || async {
            db.builder()
                .clock(clock.clone())
                .suspend_after(Duration::ZERO)
                .open()
                .await
                .unwrap()
        };
        let rt = open().await;
        publisher::start(&rt, "pub").await.unwrap();
        let stage: Option<String> = rt
            .wait_event("pub", "stage", Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(stage.as_deref(), Some("started"));
        wait_for_status(&rt, "pub", ExecutionStatus::Waiting).await;
        assert_eq!(rt.get_event::<u32>("pub", "count").await.unwrap(), Some(2));
        assert_eq!(rt.get_event::<u32>("pub", "never").await.unwrap(), None);
        let err = rt.get_event::<u32>("nobody", "count").await.unwrap_err();
        assert!(matches!(err, Error::NotFound(_)), "{err}");
        assert_eq!(
            rt.get_event::<u64>("pub", "count").await.unwrap(),
            Some(2),
            "by shape"
        );
        let err = rt.get_event::<String>("pub", "count").await.unwrap_err();
        assert!(err.to_string().contains("set as `u32`"), "{err}");
        let before = rt.events("pub").await.unwrap();
        rt.shutdown().await.unwrap();
        drop(rt);

        // Replayed later: the events keep their values and times.
        clock.advance(HOUR);
        let rt = open().await;
        rt.send("pub", "go", &()).await.unwrap();
        assert_eq!(
            within(rt.handle::<publisher>("pub").result())
                .await
                .unwrap(),
            2
        );
        let after = rt.events("pub").await.unwrap();
        let count = |events: &[replayflow::EventRecord]| {
            events
                .iter()
                .find(|e| e.key == "count")
                .map(|e| (e.value.decode::<u32>().unwrap(), e.updated_at))
        };
        assert_eq!(count(&after), count(&before), "not written again on replay");
        let stage = after.iter().find(|e| e.key == "stage").unwrap();
        assert_eq!(stage.value.decode::<String>().unwrap(), "done");
        assert_eq!(stage.updated_at, replayflow::Clock::now(&clock));
        assert_eq!(
            *REPLAYING.lock().unwrap(),
            [false, false, true, true, false]
        );
        let entries = rt.status("pub").await.unwrap().steps;
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.kind == EntryKind::Event)
                .count(),
            4
        );
        rt.shutdown().await.unwrap();
    }
);

// ---- streams ----------------------------------------------------------------

/// Streams `n` values, waiting for a `next` message before each one after
/// the first, then closes the stream (or leaves it open, to end with the
/// execution).
#[workflow]
async fn streamer(ctx: Context, n: u32, close: bool) -> Result<u32, AnyError> {
    for i in 0..n {
        if i > 0 {
            ctx.recv::<()>("next").await;
        }
        ctx.write_stream("progress", &i).await;
    }
    if close {
        ctx.close_stream("progress").await;
        ctx.recv::<()>("finish").await;
    }
    Ok(n)
}

both_stores!(
    a_stream_is_read_live_in_order_once_and_ends_at_its_close,
    threads = 2,
    |db| async move {
        use futures_util::StreamExt;
        let rt = db
            .builder()
            .suspend_after(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        let handle = streamer::start(&rt, "live-stream", 4, true).await.unwrap();
        let mut reader = Box::pin(rt.read_stream::<u32>("live-stream", "progress"));
        for i in 0..4u32 {
            let got = within(reader.next()).await.unwrap().unwrap();
            assert_eq!(got, i, "in order, each once");
            if i < 3 {
                handle.send("next", &()).await.unwrap();
            }
        }
        // Closed while the execution goes on: the reader ends.
        assert!(within(reader.next()).await.is_none());
        handle.send("finish", &()).await.unwrap();
        assert_eq!(within(handle.result()).await.unwrap(), 4);

        // From an offset, with the offsets.
        let tail: Vec<(u64, u32)> = rt
            .read_stream_from::<u32>("live-stream", "progress", 2)
            .map(|v| v.unwrap())
            .collect()
            .await;
        assert_eq!(tail, [(2, 2), (3, 3)]);
        // An unknown execution is an error, once.
        let unknown: Vec<_> = rt.read_stream::<u32>("nobody", "progress").collect().await;
        assert!(matches!(unknown.as_slice(), [Err(Error::NotFound(_))]));
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    a_stream_ends_with_its_execution_and_a_replay_writes_nothing_again,
    |db| async move {
        use futures_util::StreamExt;
        let clock = clock();
        let open = || async {
            db.builder()
                .clock(clock.clone())
                .suspend_after(Duration::ZERO)
                .open()
                .await
                .unwrap()
        };
        let rt = open().await;
        streamer::start(&rt, "restream", 3, false).await.unwrap();
        wait_for_status(&rt, "restream", ExecutionStatus::Waiting).await;
        rt.shutdown().await.unwrap();
        drop(rt);

        // Replayed by the next worker: the first value is not written again.
        let rt = open().await;
        rt.send("restream", "next", &()).await.unwrap();
        rt.send("restream", "next", &()).await.unwrap();
        assert_eq!(
            within(rt.handle::<streamer>("restream").result())
                .await
                .unwrap(),
            3
        );
        let values: Vec<u32> = rt
            .read_stream::<u32>("restream", "progress")
            .map(|v| v.unwrap())
            .collect()
            .await;
        assert_eq!(values, [0, 1, 2], "never closed: ends with the execution");
        let entries = rt.status("restream").await.unwrap().steps;
        assert_eq!(
            entries
                .iter()
                .filter(|e| e.kind == EntryKind::Stream)
                .count(),
            3
        );
        // A value read as another shape is an error, and ends the reading.
        let wrong: Vec<_> = rt
            .read_stream::<String>("restream", "progress")
            .collect()
            .await;
        assert_eq!(wrong.len(), 1);
        assert!(
            wrong[0]
                .as_ref()
                .unwrap_err()
                .to_string()
                .contains("stream `progress`")
        );
        rt.shutdown().await.unwrap();
    }
);

// ---- restarts and code changes ----------------------------------------------

static FIXED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[step]
async fn refuse_always() -> Result<(), AnyError> {
    Err(replayflow::permanent(AnyError::msg("refused")))
}

#[step]
async fn check_amount(amount: u64) -> Result<u64, AnyError> {
    if FIXED.load(Ordering::SeqCst) {
        Ok(amount)
    } else {
        Err(replayflow::permanent(AnyError::msg("not yet")))
    }
}

/// A handled failure, then a message, then a step that fails until fixed.
#[workflow]
async fn takes_then_fails(ctx: Context) -> Result<u64, AnyError> {
    let _ = refuse_always().await;
    let amount = ctx.recv::<u64>("amount").await;
    check_amount(amount).await
}

both_stores!(
    a_restarted_execution_takes_again_the_messages_of_its_set_aside_entries,
    |db| async move {
        FIXED.store(false, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let handle = takes_then_fails::start(&rt, "retaken").await.unwrap();
        rt.send_with(
            "retaken",
            "amount",
            &42u64,
            SendOptions::idempotency_key("a"),
        )
        .await
        .unwrap();
        assert!(within(handle.result()).await.is_err());
        FIXED.store(true, Ordering::SeqCst);
        // The journal from the first failed entry on (the handled refusal)
        // is set aside, the `recv` with it: its message goes back.
        rt.restart("retaken").await.unwrap();
        assert_eq!(within(handle.result()).await.unwrap(), 42);
        let again = rt
            .send_with(
                "retaken",
                "amount",
                &42u64,
                SendOptions::idempotency_key("a"),
            )
            .await
            .unwrap();
        // Its key still says delivered: a retry is a duplicate.
        assert_eq!(again, Delivery::Duplicate);
        rt.shutdown().await.unwrap();
    }
);

static RECV_CODE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Deploy 0 waits with a timeout; deploy 1 without.
#[workflow]
async fn changes_its_wait(ctx: Context) -> Result<String, AnyError> {
    Ok(if RECV_CODE.load(Ordering::SeqCst) == 0 {
        ctx.recv_timeout::<String>("go", HOUR)
            .await
            .unwrap_or_default()
    } else {
        ctx.recv::<String>("go").await
    })
}

both_stores!(
    a_wait_that_lost_its_timeout_in_new_code_parks_as_nondeterminism,
    |db| async move {
        RECV_CODE.store(0, Ordering::SeqCst);
        let clock = clock();
        let open = || async {
            db.builder()
                .clock(clock.clone())
                .suspend_after(Duration::ZERO)
                .open()
                .await
                .unwrap()
        };
        let rt = open().await;
        changes_its_wait::start(&rt, "changed").await.unwrap();
        wait_for_status(&rt, "changed", ExecutionStatus::Waiting).await;
        rt.shutdown().await.unwrap();
        drop(rt);
        RECV_CODE.store(1, Ordering::SeqCst);
        clock.advance(2 * HOUR);
        let rt = open().await;
        let info = within(wait_for_status(&rt, "changed", ExecutionStatus::Paused)).await;
        let reason = info.error_message.unwrap();
        assert!(
            reason.contains("recorded a recv_timeout on topic `go`"),
            "{reason}"
        );
        rt.shutdown().await.unwrap();
    }
);

static BLEW: AtomicU32 = AtomicU32::new(0);

#[step]
async fn blow_up() -> Result<(), AnyError> {
    BLEW.fetch_add(1, Ordering::SeqCst);
    panic!("blown up");
}

/// Answered before its deadline (its timer stays behind), then panics.
#[workflow]
async fn answered_then_panics(ctx: Context) -> Result<(), AnyError> {
    ctx.recv_timeout::<String>("answer", HOUR).await;
    blow_up().await
}

both_stores!(
    a_stale_wake_up_leaves_a_panicked_execution_to_its_restart_policy,
    |db| async move {
        BLEW.store(0, Ordering::SeqCst);
        let clock = clock();
        let rt = db
            .builder()
            .clock(clock.clone())
            .suspend_after(Duration::ZERO)
            .auto_restart(false)
            .panic_hook(false)
            .open()
            .await
            .unwrap();
        answered_then_panics::start(&rt, "stale").await.unwrap();
        wait_for_status(&rt, "stale", ExecutionStatus::Waiting).await;
        rt.send("stale", "answer", "yes").await.unwrap();
        wait_for_status(&rt, "stale", ExecutionStatus::Panicked).await;
        // The wait's timer fires at its deadline, and the sweep runs.
        clock.advance(2 * HOUR);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let info = rt.status("stale").await.unwrap();
        assert_eq!(
            info.status,
            ExecutionStatus::Panicked,
            "not replayed by a stale timer"
        );
        assert_eq!(BLEW.load(Ordering::SeqCst), 1);
        rt.shutdown().await.unwrap();
    }
);

both_stores!(
    the_pre_deploy_check_replays_waits_for_messages_and_children_without_waiting,
    |db| async move {
        let rt = db
            .builder()
            .suspend_after(Duration::ZERO)
            .open()
            .await
            .unwrap();
        adder::start(&rt, "checked-wait", 2, false).await.unwrap();
        wait_for_status(&rt, "checked-wait", ExecutionStatus::Waiting).await;
        rt.send("checked-wait", "add", &1u64).await.unwrap();
        within(async {
            while taken(&rt, "checked-wait").await.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        streamer::start(&rt, "checked-stream", 2, true)
            .await
            .unwrap();
        wait_for_status(&rt, "checked-stream", ExecutionStatus::Waiting).await;
        let report = within(rt.check()).await.unwrap();
        assert!(report.passed(), "{report}");
        assert!(report.checked >= 2, "{report}");
        rt.shutdown().await.unwrap();
    }
);

/// One branch waits for a message while another sleeps for an hour.
#[workflow]
async fn waits_and_sleeps(ctx: Context) -> Result<String, AnyError> {
    let (word, ()) = tokio::join!(
        ctx.branch(async { ctx.recv::<String>("word").await }),
        ctx.branch(async { ctx.sleep(HOUR).await }),
    );
    Ok(word)
}

both_stores!(
    a_message_reaches_a_branch_while_another_branch_sleeps_long,
    |db| async move {
        let clock = clock();
        let rt = db
            .builder()
            .clock(clock.clone())
            .suspend_after(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        let handle = waits_and_sleeps::start(&rt, "both").await.unwrap();
        // Suspended by whichever branch gave up first: waiting, or sleeping.
        wait_until(&rt, "both", |i| i.status.is_suspended()).await;
        rt.send("both", "word", "hi").await.unwrap();
        // Taken without the clock moving: the hour's sleep did not hold it.
        within(async {
            while taken_words(&rt, "both").await.is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        clock.advance(2 * HOUR);
        assert_eq!(within(handle.result()).await.unwrap(), "hi");
        rt.shutdown().await.unwrap();
    }
);

async fn taken_words(rt: &Runtime, id: &str) -> Vec<String> {
    rt.status(id)
        .await
        .unwrap()
        .steps
        .iter()
        .filter(|e| e.kind == EntryKind::Recv && e.status == StepStatus::Completed)
        .map(|e| e.output.as_ref().unwrap().decode::<String>().unwrap())
        .collect()
}

static SLOW_RUNS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn slow_work() -> Result<u32, AnyError> {
    SLOW_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    Ok(7)
}

/// One branch waits for a message while another runs a slow step.
#[workflow]
async fn waits_while_working(ctx: Context) -> Result<(String, u32), AnyError> {
    let (word, work) = tokio::join!(
        ctx.branch(async { ctx.recv::<String>("word").await }),
        ctx.branch(async { slow_work().await }),
    );
    Ok((word, work?))
}

both_stores!(
    a_suspension_waits_for_a_step_running_in_another_branch,
    |db| async move {
        SLOW_RUNS.store(0, Ordering::SeqCst);
        let rt = db
            .builder()
            .suspend_after(Duration::from_millis(50))
            .open()
            .await
            .unwrap();
        let handle = waits_while_working::start(&rt, "working").await.unwrap();
        // The wait suspends once the step has finished, not in its middle.
        wait_for_status(&rt, "working", ExecutionStatus::Waiting).await;
        rt.send("working", "word", "done").await.unwrap();
        let out = within(handle.result()).await.unwrap();
        assert_eq!(out, ("done".to_owned(), 7));
        assert_eq!(SLOW_RUNS.load(Ordering::SeqCst), 1, "the step ran once");
        rt.shutdown().await.unwrap();
    }
);
