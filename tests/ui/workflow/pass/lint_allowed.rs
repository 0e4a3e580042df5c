// Durable alternatives and `#[allow_nondeterministic]` keep the determinism lint quiet,
// even where its warnings are errors.
#![deny(deprecated, warnings)]
use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime};

use replayflow::{Context, Runtime, step, workflow};

#[step]
async fn stamp() -> Result<SystemTime, String> {
    // Steps are not linted: their results are journaled.
    Ok(SystemTime::now())
}

#[workflow]
async fn durable(ctx: Context, prices: BTreeMap<String, u64>) -> Result<u64, String> {
    let _now = ctx.now().await;
    let _uuid = ctx.uuid().await;
    let _stamped = stamp().await?;
    let mut total = ctx.random_u64().await % 2;
    for (_, price) in &prices {
        total += price;
    }
    let lookup: HashMap<&str, u64> = HashMap::from([("a", 1)]);
    total += lookup.get("a").copied().unwrap_or(0) + lookup.len() as u64;
    Ok(total)
}

#[workflow]
async fn allowed_one_by_one(_ctx: Context) -> Result<u64, String> {
    // A log line may show the real time: the workflow does not depend on it.
    #[allow_nondeterministic]
    let started = Instant::now();
    #[allow_nondeterministic]
    println!("replaying at {:?}", SystemTime::now());
    #[allow_nondeterministic]
    {
        let _ = std::env::var("TRACE");
    }
    let pair = (
        #[allow_nondeterministic]
        Instant::now(),
        1u64,
    );
    let counts = HashMap::from([("a", 1u64), ("b", 2)]);
    #[allow_nondeterministic]
    let mut sorted: Vec<_> = counts.iter().collect();
    sorted.sort();
    let _ = started.elapsed() + pair.0.elapsed();
    Ok(sorted.len() as u64 + pair.1)
}

#[workflow(allow_nondeterministic)]
async fn allowed_everywhere(_ctx: Context) -> Result<bool, String> {
    let now = SystemTime::now();
    let verbose = std::env::var_os("VERBOSE").is_some();
    Ok(verbose || now > SystemTime::UNIX_EPOCH)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = Runtime::in_memory().await.unwrap();
    let prices = BTreeMap::from([("a".to_owned(), 2), ("b".to_owned(), 3)]);
    let total = durable::start(&rt, "d-1", prices)
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert!(total >= 7);
    let one_by_one = allowed_one_by_one::start(&rt, "a-1")
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert_eq!(one_by_one, 3);
    let everywhere = allowed_everywhere::start(&rt, "a-2")
        .await
        .unwrap()
        .result()
        .await
        .unwrap();
    assert!(everywhere);
}
