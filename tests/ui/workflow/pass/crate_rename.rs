// `crate = "..."` points the generated code at a renamed dependency.
extern crate replayflow as my_wf;

use my_wf::{Context, Runtime, step, workflow};

#[step(crate = "my_wf")]
async fn add(a: u32, b: u32) -> Result<u32, String> {
    Ok(a + b)
}

#[workflow(crate = "my_wf", name = "renamed")]
async fn sum(_ctx: Context, a: u32, b: u32) -> Result<u32, String> {
    add(a, b).await
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = Runtime::in_memory().await.unwrap();
    let handle = sum::start(&rt, "sum-1", 2, 3).await.unwrap();
    assert_eq!(handle.result().await.unwrap(), 5);
}
