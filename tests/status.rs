//! What `Runtime::status` and `Runtime::list` report.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use replayflow::{
    AnyError, AttemptStatus, Context, EntryKind, ExecutionStatus, ListFilter, ManualClock,
    RunError, StepStatus, step, workflow,
};
use support::{both_stores, with_clock_running, within};

#[step]
async fn lookup(sku: &str) -> Result<u32, AnyError> {
    Ok(sku.len() as u32)
}

#[step(max_attempts = 2, backoff = "1ms")]
async fn reserve(sku: &str, qty: u32) -> Result<u32, AnyError> {
    if sku == "missing" {
        return Err(AnyError::msg(format!("no stock of {sku}")));
    }
    Ok(qty)
}

#[workflow]
async fn stock(_ctx: Context, sku: String, qty: u32) -> Result<u32, AnyError> {
    let n = lookup(&sku).await?;
    let reserved = reserve(&sku, qty).await?;
    Ok(n + reserved)
}

both_stores!(
    status_reports_input_output_steps_attempts_and_errors,
    |db| async move {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();

        let ok = stock::start(&rt, "stock-ok", "apple".into(), 3)
            .await
            .unwrap();
        assert_eq!(within(ok.result()).await.unwrap(), 8);
        let info = rt.status("stock-ok").await.unwrap();
        assert_eq!(info.workflow, "stock");
        assert_eq!(info.status, ExecutionStatus::Completed);
        assert_eq!(
            info.output.as_ref().unwrap().to_json().unwrap(),
            serde_json::json!(8)
        );
        assert_eq!(
            info.created_at,
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert!(info.completed_at.is_some());
        assert!(info.error_message.is_none());
        assert_eq!(info.steps.len(), 2);
        let s = &info.steps[1];
        assert_eq!(
            (s.position, s.kind, s.key.to_string()),
            (1, EntryKind::Step, "reserve#0".into())
        );
        assert_eq!(s.status, StepStatus::Completed);
        assert_eq!(s.output.as_ref().unwrap().decode::<u32>().unwrap(), 3);

        clock.advance(Duration::from_secs(60));
        let failed = stock::start(&rt, "stock-missing", "missing".into(), 1)
            .await
            .unwrap();
        let err = with_clock_running(&clock, failed.result())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, RunError::Workflow(e) if e.message() == "no stock of missing"),
            "{err:?}"
        );
        let info = rt.status("stock-missing").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Failed);
        assert!(
            info.error_message
                .as_deref()
                .unwrap()
                .contains("no stock of missing")
        );
        assert!(
            info.error.is_some(),
            "the workflow's error value is journaled"
        );
        let s = &info.steps[1];
        assert_eq!(s.status, StepStatus::Failed);
        assert_eq!(s.attempts, 2);
        assert_eq!(s.error.as_deref(), Some("no stock of missing"));
        assert!(
            s.attempt_log
                .iter()
                .all(|a| a.status == AttemptStatus::Failed)
        );
        assert!(s.attempt_log.iter().all(|a| a.ended_at.is_some()));
    }
);

both_stores!(
    list_filters_by_status_and_workflow_newest_first,
    |db| async move {
        let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
        let rt = db.builder().clock(clock.clone()).open().await.unwrap();
        for (i, sku) in ["a", "missing", "b"].iter().enumerate() {
            clock.advance(Duration::from_secs(1));
            let h = stock::start(&rt, format!("list-{i}"), sku.to_string(), 1)
                .await
                .unwrap();
            let _ = with_clock_running(&clock, h.result()).await;
        }
        let all = rt.list(ListFilter::new()).await.unwrap();
        let ids: Vec<&str> = all.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids, ["list-2", "list-1", "list-0"]);

        let failed = rt
            .list(ListFilter::new().status(ExecutionStatus::Failed))
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].id.as_str(), "list-1");
        assert!(failed[0].error_message.is_some());

        assert_eq!(
            rt.list(ListFilter::new().workflow("stock").limit(2))
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(
            rt.list(ListFilter::new().workflow("nothing"))
                .await
                .unwrap()
                .is_empty()
        );
        let mut since = ListFilter::new();
        since.created_after = Some(UNIX_EPOCH + Duration::from_secs(1_002));
        assert_eq!(rt.list(since).await.unwrap().len(), 2);
    }
);
