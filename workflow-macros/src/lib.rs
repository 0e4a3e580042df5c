//! Procedural macros of the `workflow` crate: `#[workflow]` and `#[step]`.
//!
//! Use them through the runtime crate, which re-exports them as `replayflow::workflow` and
//! `replayflow::step`: the code they generate calls into it, through `replayflow::__private`
//! (or the path given by the `crate = "..."` option when the dependency is renamed).

#![warn(missing_docs)]

mod args;
mod errors;
mod expand;
mod lint;
mod parse;
mod renamed;
mod validate;

use errors::Errors;
use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::quote;

/// Marks the `async fn` that orchestrates a durable workflow.
///
/// Write it as `async fn name(ctx: Context, args...) -> Result<T, E>`. The first parameter
/// is the workflow's `Context` (by value); the arguments, `T` and `E` are serde types,
/// since the input is stored when the execution starts and the outcome when it ends.
/// The arguments are owned values, bound to plain names.
///
/// The function becomes a type of the same name with:
///
/// - `name::start(&rt, id, args...)`: starts execution `id` (or attaches to it if it
///   exists) and returns a `Handle` once the input is committed;
/// - `name::start_with(&rt, id, options, args...)`: the same with per-execution
///   `StartOptions`;
/// - `name::resume(&rt, id)`: resumes a sleeping, paused or interrupted execution now;
/// - `name::NAME`: the name the workflow is registered under.
///
/// The type also implements `replayflow::Workflow` (so `Handle<name>` knows `T` and `E`), and
/// the workflow registers itself at link time, so a restarted process finds it again to
/// recover unfinished executions. The body's future must be `Send + 'static`: it runs in
/// the background. The function's docs go on the type; its other attributes stay on the
/// body.
///
/// # Options
///
/// | Option | Value | Meaning |
/// |---|---|---|
/// | `name = "..."` | non-empty string | registered name (default: the function's name) |
/// | `max_restarts = N` | integer >= 0 | restarts after a panic before the execution fails |
/// | `restart_delay = "5s"` | duration | wait before each restart |
/// | `timeout = "1h"` | duration > 0 | each execution's deadline, from its start: past it, it is cancelled at its next boundary (`RunError::DeadlineExceeded`) |
/// | `allow_nondeterministic` or `allow_nondeterministic = true/false` | flag | turns the [determinism lint](#determinism-lint) off for the whole body |
/// | `crate = "path"` | path | where the runtime crate is, if renamed in `Cargo.toml` |
///
/// Durations are an integer followed by `ms`, `s`, `m` or `h`: `"200ms"`, `"5s"`, `"1m"`.
/// Options left out take the runtime's defaults (see `Runtime::builder()`).
///
/// # Determinism lint
///
/// The body runs again from the top on every replay, and must take the same path each
/// time. The macro warns, at compile time, of what the body does that replay cannot
/// repeat, pointing at the call and naming the durable alternative:
///
/// | In a workflow body | Instead |
/// |---|---|
/// | `SystemTime::now`, `Instant::now`, chrono's `Utc::now` and `Local::now` | `ctx.now().await` (journaled) |
/// | `thread_rng`, `rand::random`, `rand::rng`, `Uuid::new_v4` | `ctx.random_u64().await`, `ctx.uuid().await` (journaled) |
/// | `thread::spawn`, `tokio::spawn`, `task::spawn`, `spawn_blocking` | a `#[step]`; concurrent parts awaited in the body, in `ctx.branch` |
/// | `env::var`, `env::var_os`, `env::vars`, `env::vars_os` | a `#[step]`, or an argument of the workflow |
/// | iterating a `HashMap` or `HashSet` (`for`, `.iter()`, `.keys()`, `.values()`, `.into_iter()`, `.drain()`) | a `BTreeMap` or `BTreeSet`, or sorting |
/// | `select!` | a `#[step]` that races, or `join!` of `ctx.branch` futures |
///
/// A proc macro cannot emit a warning of its own on stable Rust, so these are rustc's
/// `deprecated` warnings, on a hidden constant whose note is the message:
///
/// ```text
/// warning: use of deprecated constant `replayflow::private::nondeterministic::SYSTEM_TIME_NOW`: `SystemTime::now` in a workflow body returns a different time on replay: use `ctx.now().await` (journaled), or call it in a `#[step]`
///  --> src/main.rs:9:27
///   |
/// 9 |     let now = SystemTime::now();
///   |                           ^^^
/// ```
///
/// `-D warnings` or `#![deny(deprecated)]` turns them into errors; `#[allow(deprecated)]` on
/// the function silences them along with every other deprecation in it.
///
/// To keep such a call on purpose, mark its statement or expression
/// `#[allow_nondeterministic]`: the lint skips it and everything inside it. The marker is
/// not a real attribute: the macro takes it out of the body before rustc sees it, so it
/// works on stable Rust wherever an attribute can be written, on any expression too
/// (`(#[allow_nondeterministic] Instant::now(), n)`), but only inside a `#[workflow]`
/// body. `#[workflow(allow_nondeterministic)]` turns the lint off for the whole body.
///
/// ```
/// use std::time::SystemTime;
/// use replayflow::{AnyError, Context, Runtime, workflow};
///
/// #[workflow]
/// async fn report(ctx: Context) -> Result<SystemTime, AnyError> {
///     // Journaled: every replay gets the time of the first run.
///     let started = ctx.now().await;
///     // The real time, for the log only: the result does not depend on it.
///     #[allow_nondeterministic]
///     println!("this run is at {:?}", SystemTime::now());
///     Ok(started)
/// }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let rt = Runtime::in_memory().await?;
/// # report::start(&rt, "report-1").await?.result().await?;
/// # Ok(())
/// # }
/// ```
///
/// The lint reads the body's own code: nested blocks, closures, async blocks, and the
/// arguments of macros whose input is a list of expressions (`println!`, `format!`,
/// `join!`, `assert!`). It matches paths by their last segments, so
/// `std::time::SystemTime::now` and an imported `SystemTime::now` are both found, and it
/// knows a name holds a `HashMap` or `HashSet` when its declaration shows it
/// (`let m: HashMap<_, _>`, `let m = HashMap::new()`, `.collect::<HashSet<_>>()`, a
/// parameter of that type). It cannot see:
///
/// - calls made by the functions and methods the body calls, and items declared in the
///   body (a helper `fn`, a `#[step]`), which are not the body;
/// - a call through a bare imported name or an alias (`use std::env::var; var("A")`),
///   except `thread_rng` and `spawn_blocking`, which are found under any path;
/// - the input of macros that is not a list of expressions (`select!`'s branches,
///   `json!`, the `%value` and `?value` fields of `tracing` macros);
/// - hash containers reached through a field, a function's result, or a type alias,
///   and whether an iteration's order matters (a sum, a sort afterwards).
///
/// It is a help, not the guarantee: replay itself checks that each step call matches the
/// journal, and parks the execution when it does not.
///
/// # Example
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use replayflow::{Context, Runtime, step, workflow};
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Order {
///     id: u64,
///     amount: u64,
/// }
///
/// #[derive(Debug, Serialize, Deserialize)]
/// struct OrderError(String);
///
/// #[step(max_attempts = 5, backoff = "200ms")]
/// async fn charge(order: &Order) -> Result<u64, OrderError> {
///     Ok(order.amount)
/// }
///
/// #[workflow(max_restarts = 2)]
/// async fn order_processing(ctx: Context, order: Order) -> Result<u64, OrderError> {
///     let charged = charge(&order).await?;
///     Ok(charged)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = Runtime::in_memory().await?;
/// let order = Order { id: 789, amount: 1200 };
/// let handle = order_processing::start(&rt, "order-789", order).await?;
/// assert_eq!(handle.result().await?, 1200);
/// # Ok(())
/// # }
/// ```
///
/// The most common mistake is leaving out the context, which must come first:
///
/// ```compile_fail
/// # use replayflow::workflow;
/// #[workflow]
/// async fn order_processing(order_id: u64) -> Result<(), String> {
///     Ok(())
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn workflow(args: TokenStream, item: TokenStream) -> TokenStream {
    workflow_attribute(args.into(), item.into()).into()
}

fn workflow_attribute(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let mut errors = Errors::new();
    let model = parse::parse_workflow(args, item.clone(), &mut errors)
        .and_then(|workflow| validate::validate_workflow(workflow, &mut errors));
    match errors.finish_with(model) {
        Ok(workflow) => expand::expand_workflow(&workflow),
        // Without its `#[allow_nondeterministic]` markers, which rustc would report as
        // unknown attributes next to the real errors.
        Err(error) => unchanged_with(lint::strip_allow(item), error),
    }
}

/// Marks an `async fn` as a durable step of a workflow.
///
/// Write it as `async fn name(args...) -> Result<T, E>`, where `T` and `E` are serde
/// types: the result is journaled, and a replay returns the journaled result instead of
/// running the body again. Called inside a workflow, each call is keyed by the step's
/// name and how many times it was called before, journaled, and retried on failure per
/// its options; called anywhere else, the step is a plain `async fn`, so it can be unit
/// tested like one.
///
/// The function keeps its name, visibility, attributes and docs, and becomes a plain `fn`
/// returning `impl Future<Output = Result<T, E>>`: a call reads the workflow context right
/// away, when the function is called rather than when its future is first polled, so
/// `join!` of several steps is deterministic.
///
/// Failures the runtime detects (a timeout, a result that cannot be encoded or is over the
/// size limit) become the step's error when `E: From<replayflow::StepFailure>`, as for
/// `replayflow::AnyError`. A step with `timeout` must have such an error type, or it does
/// not compile. Without `timeout` the conversion is optional, but then an encoding or size
/// failure ends the whole execution `failed` instead of reaching the workflow as `Err`.
/// For `anyhow::Error`, `std::io::Error` and other errors that are not serde types, return
/// `replayflow::AnyError`: `?` converts into it.
///
/// Arguments are not journaled and need no serde bound; they may borrow. Since a step can
/// retry, each attempt gets its own clone of every argument, so owned arguments must be
/// `Clone` (references clone for free), unless `max_attempts = 1` is set: then the
/// arguments move into the single attempt. A step takes no `Context`; inside its body,
/// `replayflow::StepContext::current()` gives the attempt number and an idempotency key.
///
/// # Options
///
/// | Option | Value | Meaning |
/// |---|---|---|
/// | `name = "..."` | non-empty string | journaled name (default: the function's name) |
/// | `max_attempts = N` | integer >= 1 | attempts before the error reaches the workflow |
/// | `backoff = "1s"` | duration | wait before the first retry |
/// | `exponential` or `exponential = true/false` | flag | double the wait after each retry |
/// | `at_most_once` or `at_most_once = true/false` | flag | commit each attempt's start before its body runs; an attempt found in flight after a crash (or a panic) counts as failed (`StepFailure::Interrupted`) and is left to the retry policy, so with `max_attempts = 1` the body never runs twice |
/// | `max_backoff = "30s"` | duration | cap on the wait between retries |
/// | `timeout = "5s"` | duration > 0 | limit on each attempt; `E` must implement `From<StepFailure>` |
/// | `crate = "path"` | path | where the runtime crate is, if renamed in `Cargo.toml` |
///
/// Durations are an integer followed by `ms`, `s`, `m` or `h`: `"200ms"`, `"5s"`, `"1m"`.
/// Options left out take the runtime's defaults (see `Runtime::builder()`).
///
/// # Example
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use replayflow::{StepFailure, step};
///
/// #[derive(Serialize, Deserialize)]
/// struct Receipt {
///     charged: u64,
/// }
///
/// #[derive(Debug, Serialize, Deserialize)]
/// enum PaymentError {
///     Declined,
///     /// A timeout, or a result the runtime could not journal.
///     Failed(StepFailure),
/// }
///
/// // Needed by `timeout`: a timed-out attempt reaches the workflow as this error.
/// impl From<StepFailure> for PaymentError {
///     fn from(failure: StepFailure) -> Self {
///         PaymentError::Failed(failure)
///     }
/// }
///
/// #[step(max_attempts = 5, backoff = "200ms", exponential, timeout = "10s")]
/// async fn charge(card: &str, amount: u64) -> Result<Receipt, PaymentError> {
///     if card.is_empty() {
///         return Err(PaymentError::Declined);
///     }
///     Ok(Receipt { charged: amount })
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // Outside a workflow, a step is a plain async fn.
/// let receipt = charge("4242", 1200).await.unwrap();
/// assert_eq!(receipt.charged, 1200);
/// # }
/// ```
///
/// The most common mistake is a synchronous function: a step must be `async`.
///
/// ```compile_fail
/// # use replayflow::step;
/// #[step]
/// fn charge(amount: u64) -> Result<u64, String> {
///     Ok(amount)
/// }
/// # fn main() {}
/// ```
#[proc_macro_attribute]
pub fn step(args: TokenStream, item: TokenStream) -> TokenStream {
    step_attribute(args.into(), item.into()).into()
}

fn step_attribute(args: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let mut errors = Errors::new();
    let model = parse::parse_step(args, item.clone(), &mut errors)
        .and_then(|step| validate::validate_step(step, &mut errors));
    match errors.finish_with(model) {
        Ok(step) => expand::expand_step(&step),
        Err(error) => unchanged_with(item, error),
    }
}

/// On failure, the user's item goes out unchanged next to the errors, never a half-built
/// expansion, so the errors are about the user's code and nothing else.
fn unchanged_with(item: TokenStream2, error: syn::Error) -> TokenStream2 {
    let error = error.into_compile_error();
    quote!(#item #error)
}

/// Declares that a type whose values the journal holds was renamed (or
/// moved to another module), so that values journaled under its former
/// name decode into it instead of parking their executions.
///
/// The journal records which type wrote each step's output or error (its
/// `std::any::type_name`), and a replay into a type of another name parks
/// the execution, naming both, rather than decoding one type into another
/// by luck. A rename on purpose is declared on the type with its former
/// full name, as the park message shows it:
///
/// ```ignore
/// #[derive(Serialize, Deserialize)]
/// #[replayflow::renamed_from("shop::orders::Quote")]
/// struct PriceQuote {
///     price: u32,
/// }
/// ```
///
/// Several former names may be listed. The type must not be generic (its
/// name depends on its parameters); declare a concrete alias instead.
#[proc_macro_attribute]
pub fn renamed_from(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2: TokenStream2 = item.clone().into();
    match renamed::expand(args.into(), item2.clone()) {
        Ok(out) => out.into(),
        Err(error) => {
            let error = error.to_compile_error();
            quote!(#item2 #error).into()
        }
    }
}
