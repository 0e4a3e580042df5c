//! Durable workflows as ordinary async Rust.
//!
//! Mark the orchestrating `async fn` `#[workflow]` and the side-effecting ones
//! `#[step]`: every step result is journaled in an embedded SQLite database
//! before the workflow sees it, so a crashed or restarted process resumes each
//! workflow where it stopped without running completed steps again. Failing
//! steps are retried with backoff; panics restart the workflow by replay.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use replayflow::{step, workflow, AnyError, Context, Runtime};
//!
//! #[derive(Debug, Clone, Serialize, Deserialize)]
//! struct Order { id: u32, amount: u64 }
//!
//! #[step]
//! async fn reserve_stock(order: &Order) -> Result<u32, AnyError> {
//!     Ok(order.id * 10) // real I/O goes here
//! }
//!
//! #[step(max_attempts = 5, backoff = "200ms", exponential)]
//! async fn charge(order: &Order) -> Result<String, AnyError> {
//!     Ok(format!("payment-{}", order.id))
//! }
//!
//! #[workflow]
//! async fn process_order(ctx: Context, order: Order) -> Result<String, AnyError> {
//!     let reservation = reserve_stock(&order).await?;
//!     let payment = charge(&order).await?;
//!     Ok(format!("{} reserved as {reservation}, paid by {payment}", ctx.execution_id()))
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = Runtime::in_memory().await?; // or Runtime::open("workflow.db")
//! let handle = process_order::start(&rt, "order-7", Order { id: 7, amount: 120 }).await?;
//! assert_eq!(handle.result().await?, "order-7 reserved as 70, paid by payment-7");
//!
//! let info = rt.status("order-7").await?;
//! assert_eq!(info.steps.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors of steps and workflows
//!
//! A step's `Result<T, E>` is journaled, `Err` included, so `T` and `E` are
//! serde types (and `E: Debug`, for the journal's readable message):
//!
//! - an error type that derives `Serialize` and `Deserialize` replays as the
//!   same value, so a workflow can match on its variants;
//! - for `anyhow::Error`, `std::io::Error`, boxed errors and the like, return
//!   [`AnyError`]: `?` converts into it and it keeps the message chain;
//!   replay returns an equivalent `AnyError`.
//!
//! A step marks an error permanent (no retry) with [`permanent`]. Failures the
//! runtime detects (a timeout, a result that cannot be encoded or is over the
//! size limit) are [`StepFailure`]s: they reach the workflow as the step's
//! error when `E: From<StepFailure>` (as [`AnyError`] is), and otherwise end
//! the execution as failed.
//!
//! # Determinism
//!
//! A workflow body must make the same calls in the same order when replayed:
//! each step call takes the next position in the journal, keyed by the step's
//! name and occurrence. Read time and randomness through [`Context::now`],
//! [`Context::random_u64`] and [`Context::uuid`], which are journaled. Step
//! calls combined with `tokio::join!` are deterministic (positions are taken
//! when the steps are called, not when first polled). Concurrent branches that
//! each await several steps must run in [`Context::branch`]es, which key their
//! steps by branch: plain `tokio::join!`/`select!` of multi-step async blocks
//! may replay in another order than they first ran.
//!
//! `#[workflow]` checks a body at compile time: reading the wall or monotonic
//! clock, a random generator, a thread or task spawn, an environment read,
//! iterating a `HashMap` or `HashSet`, or `select!` gets a warning on the call
//! that names the durable alternative. Mark a statement or expression
//! `#[allow_nondeterministic]` to keep such a call on purpose, or write
//! `#[workflow(allow_nondeterministic)]` to turn the check off for a whole
//! body; the [`workflow`](macro@workflow) attribute's docs say what the check
//! sees and what it cannot.
#![warn(missing_docs)]
// A build without the `sqlite` feature has no store until the PostgreSQL one
// lands: it compiles (so that `--no-default-features --features postgres`
// keeps `libsqlite3-sys` out of the tree), opening fails with an error that
// names the feature, and everything past opening is unreachable.
#![cfg_attr(
    not(feature = "sqlite"),
    allow(unused_variables, unreachable_code, dead_code, unused_imports)
)]

mod builder;
pub mod check;
mod clock;
mod codec;
mod error;
mod execution;
mod handle;
mod messages;
mod options;
mod record;
mod retry;
mod runtime;
mod status;
mod store;
pub mod testing;

#[doc(hidden)]
pub mod private;

#[cfg(feature = "http")]
pub mod http;

#[doc(hidden)]
pub use private as __private;

pub use builder::RuntimeBuilder;
pub use clock::{Clock, ManualClock, SystemClock};
pub use codec::{Codec, Payload};
pub use error::{AnyError, CodecError, DatabaseError, Error, Result, RunError, StepFailure};
pub use execution::{ChildHandle, ChildOptions, Context, StepContext, permanent};
pub use handle::Handle;
pub use messages::{Delivery, EventRecord, SendOptions};
pub use options::{StartOptions, StepOptions};
pub use record::{
    AttemptRecord, ChildSummary, ExecutionId, ExecutionInfo, ExecutionSummary, ListFilter,
    PruneReport, RequestId, RequestState, StepKey, StepRecord, SupersededStep, WorkerInfo,
};
pub use replayflow_macros::{renamed_from, step, workflow};
pub use retry::RetryPolicy;
pub use runtime::{Runtime, Workflow};
pub use status::{AdminAction, AttemptStatus, EntryKind, ExecutionStatus, PauseCause, StepStatus};
pub use store::{Durability, IntegrityCheck};
pub use uuid::Uuid;
