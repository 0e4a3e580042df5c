//! One execution's life: the [`Context`] a workflow body gets, a step call
//! ([`step`], [`attempt`]), the replay cursor ([`replay`]), driving
//! ([`drive`]), the operator's controls ([`control`]), timers and the sweep
//! ([`scheduler`]), recovery on open ([`recovery`]), panics ([`panic`](mod@panic)) and
//! the pruning of old finished executions ([`retention`]).
//! Everything here shares one [`Engine`] and writes through the store's
//! typed operations.

mod attempt;
mod check;
mod child;
mod context;
mod control;
mod descriptor;
mod drive;
mod engine;
mod inbox;
pub(crate) mod panic;
mod recovery;
mod replay;
pub(crate) mod retention;
mod scheduler;
mod state;
mod step;

pub use attempt::{StepContext, permanent};
pub(crate) use child::start_child;
pub use child::{ChildHandle, ChildOptions};
pub use context::Context;
pub use descriptor::{BoxFuture, Registration, TypeRename, WorkflowDescriptor, WorkflowOutcome};
pub(crate) use engine::{Defaults, Ended, Engine, Registry, WatchGuard};
pub(crate) use state::DEADLINE_EXCEEDED;
pub use step::StepMeta;
pub(crate) use step::call_step;
