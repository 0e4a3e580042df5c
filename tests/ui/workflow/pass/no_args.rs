// A workflow whose only parameter is its context, in each spelling of the context.
use replayflow::{Context, Runtime, workflow};

#[workflow]
async fn ping(ctx: Context) -> Result<String, String> {
    Ok(ctx.workflow_name().to_owned())
}

#[workflow]
async fn ping_qualified(_ctx: replayflow::Context) -> Result<u32, String> {
    Ok(1)
}

#[workflow]
async fn ping_ignored(_: Context) -> Result<u32, String> {
    Ok(2)
}

#[workflow]
async fn ping_mut(mut ctx: Context) -> Result<u32, String> {
    let ctx = &mut ctx;
    Ok(ctx.restart_attempt())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let rt = Runtime::in_memory().await.unwrap();
    let handle = ping::start(&rt, "ping-1").await.unwrap();
    assert_eq!(handle.result().await.unwrap(), "ping");
    assert_eq!(
        ping_qualified::start(&rt, "ping-2")
            .await
            .unwrap()
            .result()
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        ping_ignored::start(&rt, "ping-3")
            .await
            .unwrap()
            .result()
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        ping_mut::start(&rt, "ping-4")
            .await
            .unwrap()
            .result()
            .await
            .unwrap(),
        0
    );
}
