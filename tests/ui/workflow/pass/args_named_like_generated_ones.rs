// Arguments may be called `rt`, `id` or `options` like the generated parameters.
use replayflow::{Context, Runtime, StartOptions, workflow};

#[workflow]
async fn lookup(
    _ctx: Context,
    rt: String,
    id: u64,
    options: Vec<String>,
) -> Result<String, String> {
    Ok(format!("{rt}/{id}/{}", options.len()))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let runtime = Runtime::in_memory().await.unwrap();
    let handle = lookup::start(&runtime, "lookup-1", "tokio".to_owned(), 4, vec![])
        .await
        .unwrap();
    assert_eq!(handle.result().await.unwrap(), "tokio/4/0");
    let handle = lookup::start_with(
        &runtime,
        "lookup-2",
        StartOptions::default(),
        "x".to_owned(),
        1,
        vec![],
    )
    .await
    .unwrap();
    assert_eq!(handle.result().await.unwrap(), "x/1/0");
}
