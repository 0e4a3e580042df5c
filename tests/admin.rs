//! Admin opens (CLI, dashboard) read the journal and record requests that
//! the worker applies within a second; workflows start by name with JSON.

mod support;

use std::time::{Duration, Instant};

use replayflow::{AnyError, Context, Error, ExecutionStatus, RunError, Runtime, step, workflow};
use support::{TempDb, both_stores, within};

#[workflow]
async fn parked(ctx: Context) -> Result<(), AnyError> {
    ctx.sleep(Duration::from_secs(3600)).await;
    Ok(())
}

#[step]
async fn add(a: u32, b: u32) -> Result<u32, AnyError> {
    Ok(a + b)
}

#[workflow]
async fn adder(_ctx: Context, a: u32, b: u32) -> Result<u32, AnyError> {
    add(a, b).await
}

both_stores!(
    admin_requests_are_applied_by_the_worker_within_a_second,
    |db| async move {
        let worker = db.builder().open().await.unwrap();
        let handle = parked::start(&worker, "parked-1").await.unwrap();
        within(async {
            while worker.status("parked-1").await.unwrap().status != ExecutionStatus::Sleeping {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;

        let admin = db.builder().admin().open().await.unwrap();
        assert!(admin.is_admin());
        assert_eq!(
            admin.status("parked-1").await.unwrap().status,
            ExecutionStatus::Sleeping
        );
        let asked = Instant::now();
        admin.cancel("parked-1").await.unwrap();
        assert!(matches!(
            within(handle.result()).await,
            Err(RunError::Cancelled)
        ));
        // The worker sweeps every second; allow for a loaded machine.
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "took {:?}",
            asked.elapsed()
        );
        assert_eq!(
            admin.status("parked-1").await.unwrap().status,
            ExecutionStatus::Cancelled
        );

        let err = adder::start(&admin, "from-admin", 1, 2).await.unwrap_err();
        assert!(matches!(err, Error::AdminMode(_)), "{err}");
        assert!(matches!(
            admin.cancel("nope").await,
            Err(Error::NotFound(_))
        ));
    }
);

#[tokio::test]
async fn an_admin_open_needs_an_existing_database() {
    let db = TempDb::new();
    let err = match Runtime::builder().path(db.path()).admin().open().await {
        Ok(_) => panic!("opened a missing database"),
        Err(e) => e,
    };
    assert!(matches!(err, Error::NoDatabase { .. }), "{err}");
    assert!(!db.path().exists(), "an admin open created the file");
}

both_stores!(workflows_start_by_name_with_json_input, |db| async move {
    let rt = db.builder().open().await.unwrap();
    assert!(rt.workflows().contains(&"adder"));
    let id = rt
        .start_by_name("adder", "json-1", &serde_json::json!({"a": 2, "b": 40}))
        .await
        .unwrap();
    assert_eq!(within(rt.handle::<adder>(id).result()).await.unwrap(), 42);

    let err = rt
        .start_by_name(
            "adder",
            "json-2",
            &serde_json::json!({"a": 2, "b": "forty"}),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("adder") && text.contains("b"), "{text}");
    assert!(
        matches!(rt.status("json-2").await, Err(Error::NotFound(_))),
        "nothing is written"
    );

    let err = rt
        .start_by_name("nope", "json-3", &serde_json::json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownWorkflow(_)), "{err}");
});

both_stores!(
    a_start_request_is_applied_by_a_worker_that_runs_the_workflow,
    |db| async move {
        use replayflow::RequestState;
        let worker = db.builder().open().await.unwrap();
        let admin = db.builder().admin().open().await.unwrap();
        let state = |rt: &Runtime, r| {
            let rt = rt.clone();
            async move {
                within(async {
                    loop {
                        match rt.request_state(r).await.unwrap() {
                            RequestState::Pending => {
                                tokio::time::sleep(Duration::from_millis(20)).await
                            }
                            other => return other,
                        }
                    }
                })
                .await
            }
        };

        let r = admin
            .request_start("adder", "by-request", &serde_json::json!({"a": 1, "b": 2}))
            .await
            .unwrap();
        assert_eq!(state(&admin, r).await, RequestState::Applied);
        let out = within(worker.handle::<adder>("by-request").result()).await;
        assert_eq!(out.unwrap(), 3);

        // Refused up front: an id in use, an input that is no object.
        let err = admin
            .request_start("adder", "by-request", &serde_json::json!({"a": 1, "b": 2}))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::IdConflict { .. }), "{err}");
        let err = admin
            .request_start("adder", "x", &serde_json::json!([1, 2]))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("must be a JSON object"), "{err}");

        // Refused by the worker: an input that does not fit, and (on one
        // file, which one worker runs) a workflow it does not register.
        let r = admin
            .request_start("adder", "bad-input", &serde_json::json!({"a": "one"}))
            .await
            .unwrap();
        let RequestState::Refused(reason) = state(&admin, r).await else {
            panic!("a bad input was applied")
        };
        assert!(reason.contains("adder"), "{reason}");
        assert!(matches!(
            admin.status("bad-input").await,
            Err(Error::NotFound(_))
        ));
        if !db.is_postgres() {
            let r = admin
                .request_start("nosuch", "unknown", &serde_json::json!({}))
                .await
                .unwrap();
            let RequestState::Refused(reason) = state(&admin, r).await else {
                panic!("an unknown workflow was started")
            };
            assert!(reason.contains("`nosuch` is not registered"), "{reason}");
        }
        worker.shutdown().await.unwrap();
    }
);
