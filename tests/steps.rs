//! Step calls: concurrent steps under `join!`, steps outside a workflow and
//! nested in other steps, inline steps, and values JSON cannot round-trip.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use replayflow::{AnyError, Context, ExecutionStatus, StepContext, StepStatus, step, workflow};
use support::{both_stores, within};

#[step]
async fn delayed(label: &str, ms: u64) -> Result<String, AnyError> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(format!("{label}@{ms}"))
}

#[workflow]
async fn fan_out(ctx: Context) -> Result<Vec<String>, AnyError> {
    // The slow step is called first: its position is 0 although it finishes last.
    let (a, b, c) = tokio::join!(delayed("slow", 150), delayed("fast", 1), delayed("mid", 40));
    if ctx.restart_attempt() == 0 {
        panic!("crash after the join");
    }
    Ok(vec![a?, b?, c?])
}

both_stores!(joined_steps_take_positions_in_call_order, |db| async move {
    let rt = db.builder().open().await.unwrap();
    let out = within(fan_out::start(&rt, "join-1").await.unwrap().result())
        .await
        .unwrap();
    assert_eq!(out, ["slow@150", "fast@1", "mid@40"]);
    let info = rt.status("join-1").await.unwrap();
    let keys: Vec<String> = info.steps.iter().map(|s| s.key.to_string()).collect();
    assert_eq!(keys, ["delayed#0", "delayed#1", "delayed#2"]);
    let outputs: Vec<serde_json::Value> = info
        .steps
        .iter()
        .map(|s| s.output.as_ref().unwrap().to_json().unwrap())
        .collect();
    assert_eq!(outputs, ["slow@150", "fast@1", "mid@40"]);
    assert!(
        info.steps.iter().all(|s| s.attempts == 1),
        "a joined step ran again on replay"
    );
});

static INNER_CALLS: AtomicU32 = AtomicU32::new(0);

#[step]
async fn inner(x: u32) -> Result<u32, AnyError> {
    INNER_CALLS.fetch_add(1, Ordering::SeqCst);
    assert!(
        StepContext::current().is_none() || x > 100,
        "a plain call outside a workflow has no step context"
    );
    Ok(x + 1)
}

#[step]
async fn outer(x: u32) -> Result<u32, AnyError> {
    // Nested: a plain call, not journaled.
    let y = inner(x + 100).await?;
    Ok(y * 2)
}

#[workflow]
async fn nesting(_ctx: Context, x: u32) -> Result<u32, AnyError> {
    outer(x).await
}

#[tokio::test]
async fn steps_outside_a_workflow_are_plain_calls() {
    assert_eq!(inner(1).await.unwrap(), 2);
    assert_eq!(outer(1).await.unwrap(), 204);
}

both_stores!(
    a_step_called_inside_another_step_is_not_journaled,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let out = within(nesting::start(&rt, "nest-1", 1).await.unwrap().result())
            .await
            .unwrap();
        assert_eq!(out, 204);
        let info = rt.status("nest-1").await.unwrap();
        assert_eq!(info.steps.len(), 1);
        assert_eq!(info.steps[0].key.name, "outer");
    }
);

static INLINE_RUNS: AtomicU32 = AtomicU32::new(0);

#[workflow]
async fn inline(ctx: Context, n: u32) -> Result<u32, AnyError> {
    let doubled = ctx
        .step("double", || async move {
            INLINE_RUNS.fetch_add(1, Ordering::SeqCst);
            Ok::<_, AnyError>(n * 2)
        })
        .await?;
    let again = ctx
        .step("double", || async move { Ok::<_, AnyError>(doubled * 2) })
        .await?;
    if ctx.restart_attempt() == 0 {
        panic!("crash after the inline steps");
    }
    Ok(again)
}

both_stores!(
    inline_steps_are_keyed_journaled_and_replayed,
    |db| async move {
        INLINE_RUNS.store(0, Ordering::SeqCst);
        let rt = db.builder().open().await.unwrap();
        let out = within(inline::start(&rt, "inline-1", 5).await.unwrap().result())
            .await
            .unwrap();
        assert_eq!(out, 20);
        assert_eq!(INLINE_RUNS.load(Ordering::SeqCst), 1);
        let info = rt.status("inline-1").await.unwrap();
        let keys: Vec<String> = info.steps.iter().map(|s| s.key.to_string()).collect();
        assert_eq!(keys, ["double#0", "double#1"]);
    }
);

#[step]
async fn lossy() -> Result<(Option<Option<u32>>, f64), AnyError> {
    // JSON writes both `Some(None)` and `None` as null, and NaN as null.
    Ok((Some(None), f64::NAN))
}

#[step]
async fn unencodable() -> Result<HashMap<(u8, u8), u8>, AnyError> {
    Ok(HashMap::from([((1, 2), 3)]))
}

#[workflow]
async fn lossy_values(_ctx: Context) -> Result<String, AnyError> {
    let (nested, nan) = lossy()
        .await
        .map_err(|e| AnyError::msg(format!("lossy: {e}")))?;
    let unencodable = match unencodable().await {
        Ok(_) => "encoded".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    Ok(format!("{nested:?} {} {unencodable}", nan.is_nan()))
}

both_stores!(
    the_first_run_sees_the_value_replay_would_see,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let handle = lossy_values::start(&rt, "lossy-1").await.unwrap();
        let out = within(handle.result()).await;
        // NaN becomes null, which does not decode as f64: the step fails for good
        // rather than hand the workflow a value replay could not reproduce.
        let err = out.unwrap_err();
        assert!(err.to_string().contains("lossy"), "{err}");
        let info = rt.status("lossy-1").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Failed);
        assert_eq!(info.steps[0].status, StepStatus::Failed);
        assert!(
            info.steps[0]
                .error
                .as_deref()
                .unwrap_or_default()
                .contains("round trip"),
            "{:?}",
            info.steps[0]
        );
    }
);

#[step]
async fn nested_none() -> Result<Option<Option<u32>>, AnyError> {
    Ok(Some(None))
}

#[workflow]
async fn sees_decoded(_ctx: Context) -> Result<String, AnyError> {
    let v = nested_none().await?;
    let refused = match unencodable().await {
        Ok(_) => "encoded".to_owned(),
        Err(e) => format!("refused: {e}"),
    };
    Ok(format!("{v:?} / {refused}"))
}

both_stores!(
    decoded_values_and_encoding_failures_reach_the_first_run,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let out = within(
            sees_decoded::start(&rt, "decoded-1")
                .await
                .unwrap()
                .result(),
        )
        .await
        .unwrap();
        assert!(
            out.starts_with(
                "None / refused: step `unencodable#0` produced a value that cannot be journaled"
            ),
            "{out}"
        );
        assert!(
            out.contains("HashMap"),
            "the encoding error names the type: {out}"
        );
    }
);

#[step(max_attempts = 1)]
async fn read_config(path: &str) -> Result<String, AnyError> {
    use anyhow::Context as _;
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config {path}"))?;
    Ok(text)
}

#[step(max_attempts = 1)]
async fn boxed_failure() -> Result<u32, AnyError> {
    let boxed: Box<dyn std::error::Error + Send + Sync> = "a boxed error".into();
    Err(boxed.into())
}

#[workflow]
async fn application_errors(ctx: Context) -> Result<Vec<String>, AnyError> {
    let anyhow_err = read_config("/definitely/not/here.toml").await.unwrap_err();
    let boxed_err = boxed_failure().await.unwrap_err();
    if ctx.restart_attempt() == 0 {
        panic!("crash: replay must hand back equivalent errors");
    }
    Ok(anyhow_err
        .chain()
        .chain(boxed_err.chain())
        .map(str::to_owned)
        .collect())
}

both_stores!(
    anyhow_and_boxed_errors_keep_their_message_chain_across_replay,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let chain = within(
            application_errors::start(&rt, "errors-1")
                .await
                .unwrap()
                .result(),
        )
        .await
        .unwrap();
        assert_eq!(chain[0], "reading config /definitely/not/here.toml");
        assert!(chain[1].contains("No such file"), "{chain:?}");
        assert_eq!(chain.last().map(String::as_str), Some("a boxed error"));
    }
);
