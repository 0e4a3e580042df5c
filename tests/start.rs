//! Starting executions: the input is committed before `start` returns,
//! `start` is idempotent on its id, and an id of another workflow is refused.

mod support;

use std::sync::atomic::{AtomicU32, Ordering};

use replayflow::{AnyError, Context, Error, ExecutionStatus, step, workflow};
use serde::{Deserialize, Serialize};
use support::{both_stores, within};

static RUNS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Greeting {
    name: String,
    excited: bool,
}

#[step]
async fn compose(g: &Greeting) -> Result<String, AnyError> {
    if replayflow::StepContext::current().is_some_and(|s| s.execution_id().as_str() == "greet-1") {
        RUNS.fetch_add(1, Ordering::SeqCst);
    }
    Ok(format!(
        "hello {}{}",
        g.name,
        if g.excited { "!" } else { "" }
    ))
}

#[workflow]
async fn greet(_ctx: Context, greeting: Greeting, times: u32) -> Result<String, AnyError> {
    let line = compose(&greeting).await?;
    Ok(vec![line; times as usize].join(" "))
}

#[workflow]
async fn other(_ctx: Context) -> Result<(), AnyError> {
    Ok(())
}

fn ada() -> Greeting {
    Greeting {
        name: "ada".into(),
        excited: true,
    }
}

both_stores!(start_is_idempotent_on_the_id, |db| async move {
    RUNS.store(0, Ordering::SeqCst);
    let rt = db.builder().open().await.unwrap();
    let first = greet::start(&rt, "greet-1", ada(), 2).await.unwrap();
    let second = greet::start(&rt, "greet-1", ada(), 2).await.unwrap();
    assert_eq!(
        within(first.result()).await.unwrap(),
        "hello ada! hello ada!"
    );
    assert_eq!(
        within(second.result()).await.unwrap(),
        "hello ada! hello ada!"
    );
    // Even after completion, starting again attaches instead of re-running.
    let third = greet::start(&rt, "greet-1", ada(), 5).await.unwrap();
    assert_eq!(
        within(third.result()).await.unwrap(),
        "hello ada! hello ada!"
    );
    assert_eq!(RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(rt.list(Default::default()).await.unwrap().len(), 1);
});

both_stores!(an_id_of_another_workflow_is_refused, |db| async move {
    let rt = db.builder().open().await.unwrap();
    other::start(&rt, "shared-id").await.unwrap();
    let err = greet::start(&rt, "shared-id", ada(), 1).await.unwrap_err();
    assert!(
        matches!(&err, Error::IdConflict { existing, requested, .. } if existing == "other" && requested == "greet"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "execution id `shared-id` already belongs to workflow `other`, not `greet`"
    );
});

both_stores!(
    input_is_journaled_as_an_object_keyed_by_parameter_name,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        let handle = greet::start(&rt, "greet-input", ada(), 3).await.unwrap();
        within(handle.result()).await.unwrap();
        let info = rt.status("greet-input").await.unwrap();
        assert_eq!(info.status, ExecutionStatus::Completed);
        assert_eq!(
            info.input.to_json().unwrap(),
            serde_json::json!({"greeting": {"name": "ada", "excited": true}, "times": 3})
        );
    }
);

both_stores!(unknown_ids_are_reported, |db| async move {
    let rt = db.builder().open().await.unwrap();
    let err = rt.status("nope").await.unwrap_err();
    assert_eq!(err.to_string(), "no execution with id `nope`");
    let err = greet::resume(&rt, "nope").await.unwrap_err();
    assert!(matches!(err, Error::NotFound(_)), "{err}");
});

both_stores!(
    a_handle_of_the_wrong_workflow_names_the_one_the_id_belongs_to,
    |db| async move {
        let rt = db.builder().open().await.unwrap();
        within(other::start(&rt, "other-1").await.unwrap().result())
            .await
            .unwrap();
        let wrong = rt.handle::<greet>("other-1");
        match within(wrong.result()).await {
            Err(replayflow::RunError::Runtime(Error::IdConflict {
                existing,
                requested,
                ..
            })) => {
                assert_eq!(existing, "other");
                assert_eq!(requested, "greet");
            }
            other => panic!("expected an id conflict, got {other:?}"),
        }
        rt.shutdown().await.unwrap();
    }
);
