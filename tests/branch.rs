//! `ctx.branch`: concurrent branches that each await several steps replay
//! deterministically, whatever the interleaving of the first run.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use replayflow::{AnyError, Context, StepContext, step, workflow};
use support::{both_stores, within};

static RUNS: Mutex<Vec<u32>> = Mutex::new(Vec::new());
static KEYS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[step]
async fn fetch(n: u32, ms: u64) -> Result<u32, AnyError> {
    RUNS.lock().unwrap().push(n);
    if let Some(s) = StepContext::current() {
        KEYS.lock().unwrap().push(s.idempotency_key());
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(n * 10)
}

#[workflow]
async fn two_branches(ctx: Context) -> Result<Vec<u32>, AnyError> {
    // Branch 0 is slow first, branch 1 fast: on the first run branch 1's
    // second step is called before branch 0's. A replay, where every step
    // returns at once, calls them in the other order.
    let (a, b) = tokio::join!(
        ctx.branch(async {
            let x = fetch(1, 150).await?;
            let y = fetch(2, 1).await?;
            Ok::<_, AnyError>(vec![x, y])
        }),
        ctx.branch(async {
            let x = fetch(3, 1).await?;
            let y = fetch(4, 1).await?;
            let z = ctx
                .step("inline", || async move { Ok::<_, AnyError>(x + y) })
                .await?;
            Ok::<_, AnyError>(vec![x, y, z])
        }),
    );
    if ctx.restart_attempt() == 0 {
        panic!("crash after the branches");
    }
    let mut out = a?;
    out.extend(b?);
    Ok(out)
}

both_stores!(branches_replay_by_their_own_keys, |db| async move {
    RUNS.lock().unwrap().clear();
    KEYS.lock().unwrap().clear();
    let rt = db.builder().open().await.unwrap();
    let out = within(
        two_branches::start(&rt, "branches-1")
            .await
            .unwrap()
            .result(),
    )
    .await
    .unwrap();
    assert_eq!(out, [10, 20, 30, 40, 70]);
    let mut runs = RUNS.lock().unwrap().clone();
    runs.sort_unstable();
    assert_eq!(runs, [1, 2, 3, 4], "a step ran again on replay");

    let keys = KEYS.lock().unwrap().clone();
    assert!(
        keys.contains(&"branches-1/0/fetch#0".to_owned()),
        "{keys:?}"
    );
    assert!(
        keys.contains(&"branches-1/1/fetch#1".to_owned()),
        "{keys:?}"
    );

    let info = rt.status("branches-1").await.unwrap();
    let mut entries: Vec<(String, String)> = info
        .steps
        .iter()
        .map(|s| (s.branch.clone(), s.key.to_string()))
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            ("0".into(), "fetch#0".into()),
            ("0".into(), "fetch#1".into()),
            ("1".into(), "fetch#0".into()),
            ("1".into(), "fetch#1".into()),
            ("1".into(), "inline#0".into()),
        ]
    );
});
