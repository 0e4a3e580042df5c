//! The workflows of `v1.rs` after a round of changes (see
//! `tests/evolve.rs`): each case changes its workflow in one way.

#[path = "harness.rs"]
mod harness;

use harness::{NAP, step};
use replayflow::{AnyError, Context, Runtime, workflow};
use serde::{Deserialize, Serialize};

/// A step inserted before the point the executions sleep at: parks them.
#[workflow]
async fn inserted_before(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    let x = step(&ctx, "x").await?;
    ctx.sleep(NAP).await;
    Ok(a + &x + &step(&ctx, "b").await?)
}

/// A step inserted after it: runs.
#[workflow]
async fn inserted_after(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    ctx.sleep(NAP).await;
    let x = step(&ctx, "x").await?;
    Ok(a + &x + &step(&ctx, "b").await?)
}

/// `b` removed: parks.
#[workflow]
async fn removed(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    ctx.sleep(NAP).await;
    Ok(a)
}

/// `b` renamed `b2`: parks.
#[workflow]
async fn renamed(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    let b = step(&ctx, "b2").await?;
    ctx.sleep(NAP).await;
    Ok(a + &b)
}

/// `a` and `b` swapped: parks.
#[workflow]
async fn reordered(ctx: Context) -> Result<String, AnyError> {
    let b = step(&ctx, "b").await?;
    let a = step(&ctx, "a").await?;
    ctx.sleep(NAP).await;
    Ok(a + &b)
}

/// The same type as the old build's `Quote`; the two builds here are two
/// crates, so its full name changed too, which the journal would otherwise
/// refuse.
#[derive(Serialize, Deserialize)]
#[replayflow::renamed_from("evolve_v1::Quote")]
struct Quote {
    price: u32,
    #[serde(default)]
    currency: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct TextQuote {
    price: String,
}

/// The quote gained an optional field: the old journal still decodes; runs.
#[workflow]
async fn output_compatible(ctx: Context) -> Result<u32, AnyError> {
    let quote = ctx
        .step("quote", || async {
            Ok::<_, AnyError>(Quote {
                price: 12,
                currency: None,
            })
        })
        .await?;
    ctx.sleep(NAP).await;
    Ok(quote.price + u32::from(quote.currency.is_some()))
}

/// The quote became another type (its price text): parks, naming both.
#[workflow]
async fn output_incompatible(ctx: Context) -> Result<u32, AnyError> {
    let quote = ctx
        .step("quote", || async {
            Ok::<_, AnyError>(TextQuote { price: "12".into() })
        })
        .await?;
    ctx.sleep(NAP).await;
    Ok(quote.price.parse()?)
}

/// The argument became text: the journaled input no longer decodes; parks.
#[workflow]
async fn argument_changed(ctx: Context, count: String) -> Result<u32, AnyError> {
    ctx.sleep(NAP).await;
    Ok(count.len() as u32)
}

/// `b` changed behind a patch: executions that passed it keep `b`; runs.
#[workflow]
async fn patched(ctx: Context) -> Result<String, AnyError> {
    let a = step(&ctx, "a").await?;
    let b = if ctx.patched("b-to-b2").await {
        step(&ctx, "b2").await?
    } else {
        step(&ctx, "b").await?
    };
    ctx.sleep(NAP).await;
    Ok(a + &b + &step(&ctx, "c").await?)
}

// `retired` is gone: its execution is left as it is.

/// Its output became a `u64`: the result journaled as a `u32` is refused
/// rather than decoded by luck.
#[workflow]
async fn finished(_ctx: Context) -> Result<u64, AnyError> {
    Ok(7)
}

fn read(rt: &Runtime) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
    Box::pin(async move {
        let result = rt.handle::<finished>("finished-1").result().await;
        let line = serde_json::json!({ "result": "finished-1", "error": format!("{}", result.unwrap_err()) });
        println!("{line}");
    })
}

fn start_new(rt: &Runtime) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + '_>> {
    Box::pin(async move {
        // Started on this build: the sleep is short of the manual clock, so
        // it wakes at once.
        patched::start(rt, "patched-2").await.unwrap();
    })
}

#[tokio::main]
async fn main() {
    harness::main(harness::nothing, start_new, read).await;
}
