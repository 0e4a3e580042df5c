//! The build the executions start on (see `tests/evolve.rs`); `v2.rs` is
//! the same workflows after a round of changes.

#[path = "harness.rs"]
mod harness;

use harness::{NAP, step};
use replayflow::{AnyError, Context, Runtime, workflow};
use serde::{Deserialize, Serialize};

#[workflow]
async fn inserted_before(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    ctx.sleep(NAP).await;
    Ok(a + &step(&ctx, "b").await?)
}

#[workflow]
async fn inserted_after(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    ctx.sleep(NAP).await;
    Ok(a + &step(&ctx, "b").await?)
}

#[workflow]
async fn removed(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    let b = step(&ctx, "b").await?;
    ctx.sleep(NAP).await;
    Ok(a + &b)
}

#[workflow]
async fn renamed(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    let b = step(&ctx, "b").await?;
    ctx.sleep(NAP).await;
    Ok(a + &b)
}

#[workflow]
async fn reordered(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    let b = step(&ctx, "b").await?;
    ctx.sleep(NAP).await;
    Ok(a + &b)
}

#[derive(Serialize, Deserialize)]
struct Quote {
    price: u32,
}

#[workflow]
async fn output_compatible(ctx: Context) -> Result<u32, AnyError> {
    let quote = ctx
        .step("quote", || async { Ok::<_, AnyError>(Quote { price: 12 }) })
        .await?;
    ctx.sleep(NAP).await;
    Ok(quote.price)
}

#[workflow]
async fn output_incompatible(ctx: Context) -> Result<u32, AnyError> {
    let quote = ctx
        .step("quote", || async { Ok::<_, AnyError>(Quote { price: 12 }) })
        .await?;
    ctx.sleep(NAP).await;
    Ok(quote.price)
}

#[workflow]
async fn argument_changed(ctx: Context, count: u32) -> Result<u32, AnyError> {
    ctx.sleep(NAP).await;
    Ok(count)
}

#[workflow]
async fn patched(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    let b = step(&ctx, "b").await?;
    ctx.sleep(NAP).await;
    Ok(a + &b + &step(&ctx, "c").await?)
}

/// Finishes on this build; the new build reads its result.
#[workflow]
async fn finished(_ctx: Context) -> Result<u32, AnyError> {
    Ok(7)
}

#[workflow]
async fn retired(ctx: Context) -> Result<(), AnyError> {
    ctx.sleep(NAP).await;
    Ok(())
}

fn start(rt: &Runtime) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
    Box::pin(async move {
        inserted_before::start(rt, "inserted_before-1")
            .await
            .unwrap();
        inserted_after::start(rt, "inserted_after-1").await.unwrap();
        removed::start(rt, "removed-1").await.unwrap();
        renamed::start(rt, "renamed-1").await.unwrap();
        reordered::start(rt, "reordered-1").await.unwrap();
        output_compatible::start(rt, "output_compatible-1")
            .await
            .unwrap();
        output_incompatible::start(rt, "output_incompatible-1")
            .await
            .unwrap();
        argument_changed::start(rt, "argument_changed-1", 3)
            .await
            .unwrap();
        patched::start(rt, "patched-1").await.unwrap();
        retired::start(rt, "retired-1").await.unwrap();
        let done = finished::start(rt, "finished-1").await.unwrap();
        assert_eq!(done.result().await.unwrap(), 7);
    })
}

#[tokio::main]
async fn main() {
    harness::main(start, harness::nothing, harness::nothing).await;
}
