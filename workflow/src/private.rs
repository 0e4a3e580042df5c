//! What the generated code of `#[workflow]` and `#[step]` calls. Not a public
//! API: names and signatures change without notice.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub mod nondeterministic;

pub use ::inventory;
pub use ::serde;

pub use crate::codec::Payload;
use crate::error::{CodecError, Error, StepFailure};
pub use crate::execution::{
    BoxFuture, Context, Registration, StepMeta, TypeRename, WorkflowDescriptor, WorkflowOutcome,
};
use crate::handle::Handle;
use crate::options::StartOptions;
use crate::record::ExecutionId;
use crate::runtime::{Runtime, Workflow};

/// Splits a step's or workflow's `Result<T, E>` (or an alias of it).
pub trait SplitResult {
    type Ok;
    type Err;
}

impl<T, E> SplitResult for Result<T, E> {
    type Ok = T;
    type Err = E;
}

/// Picks the impl of a check trait (such as [`StepOutput`]) that real types can have.
pub enum Serde {}

/// Picks the other impl of a check trait, which needs [`NoType`].
pub enum Unreachable {}

/// Implemented by no type. Each check trait has a second impl that needs it, so the
/// compiler weighs two impls and, when neither applies, reports the check trait with its
/// message once, instead of every serde trait the type lacks, each with serde's notes.
pub trait NoType {}

/// A step's `T`: the result is journaled, and replay decodes it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be journaled: a step's output must be a serde type",
    label = "`{Self}` is not `Serialize` and `Deserialize`",
    note = "the output of a `#[step]` is journaled, and a replay decodes it instead of running the step again",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or return a serde type that holds what the workflow needs"
)]
pub trait StepOutput<M>: Serialize + DeserializeOwned {}

impl<T: Serialize + DeserializeOwned> StepOutput<Serde> for T {}

impl<T: NoType + Serialize + DeserializeOwned> StepOutput<Unreachable> for T {}

/// A step's `E`: the last error is journaled, and replay decodes it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be journaled: a step's error must be a serde type",
    label = "`{Self}` is not `Serialize` and `Deserialize`",
    note = "the error of a `#[step]` is journaled, and a replay decodes it instead of running the step again",
    note = "return `replayflow::AnyError`: `?` converts `anyhow::Error`, `std::io::Error`, boxed errors and strings into it; or derive `serde::Serialize` and `serde::Deserialize` for your own error type"
)]
pub trait StepError<M>: Serialize + DeserializeOwned {}

impl<E: Serialize + DeserializeOwned> StepError<Serde> for E {}

impl<E: NoType + Serialize + DeserializeOwned> StepError<Unreachable> for E {}

/// A step with a `timeout`: a timed-out attempt reaches the workflow as `E::from(failure)`.
#[diagnostic::on_unimplemented(
    message = "`#[step]` option `timeout` needs the step's error type `{Self}` to implement `From<replayflow::StepFailure>`",
    label = "a timed-out attempt must become a `{Self}`",
    note = "a timeout reaches the workflow as the step's error, converted from `replayflow::StepFailure`; without that conversion the whole execution would end `failed`",
    note = "implement `From<replayflow::StepFailure>` for `{Self}` (a variant that holds the failure), or return `replayflow::AnyError`, which has it"
)]
pub trait HoldsTimeout<M> {}

impl<E: From<StepFailure>> HoldsTimeout<Serde> for E {}

impl<E: NoType + From<StepFailure>> HoldsTimeout<Unreachable> for E {}

/// Emitted, on the `timeout` option, for a step that has one.
pub fn assert_holds_timeout<E: HoldsTimeout<M>, M>() {}

/// The where-clause of the function generated next to a workflow's type, under the
/// workflow's name: a call `name(ctx, args)` is reported with this message. Neither impl
/// applies to any type.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is a `#[workflow]`: it is started, not called",
    label = "start an execution with `{Self}::start(&rt, id, ...)` instead",
    note = "`{Self}::start(&rt, id, args...)` commits the input and runs the workflow in the background; `.result().await` on the returned handle waits for its output",
    note = "to share code between workflows, put it in a `#[step]` or a plain `async fn` that both call"
)]
pub trait DirectCall<M> {}

impl<W: NoType> DirectCall<Serde> for W {}

impl<W: NoType> DirectCall<Unreachable> for W {}

// The workflow checks below are traits without supertraits whose one impl, for serde
// types, is `do_not_recommend`: a type that is not a serde type is reported as not
// implementing the check trait, with its message, once, instead of once for `Serialize`
// and once for `Deserialize` (and again for each place that needs them), each with
// serde's notes. Supertraits would be required on their own and reported as before, so
// the traits carry serde's two methods instead, and the crate reaches them through
// `AsOutput`, `AsError` and the input's generated impls.

/// A workflow argument: the arguments are the execution's input, committed before it
/// starts and decoded on every run.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be journaled: a workflow's arguments must be serde types",
    label = "`{Self}` is not `Serialize` and `Deserialize`",
    note = "the arguments of a `#[workflow]` are its input, journaled when it starts and decoded on every run",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or take a serde type that holds what the workflow needs"
)]
pub trait WorkflowArg: Sized {
    #[doc(hidden)]
    fn serialize_arg<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    #[doc(hidden)]
    fn deserialize_arg<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> WorkflowArg for T {
    fn serialize_arg<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }

    fn deserialize_arg<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer)
    }
}

/// A workflow's `T`: its output is journaled, and handles decode it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be journaled: a workflow's output must be a serde type",
    label = "`{Self}` is not `Serialize` and `Deserialize`",
    note = "the output of a `#[workflow]` is journaled when it completes, and `Handle::result` decodes it, in this process or another",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it, or return a serde type that holds what the caller needs"
)]
pub trait WorkflowOutput: Sized {
    #[doc(hidden)]
    fn serialize_output<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    #[doc(hidden)]
    fn deserialize_output<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> WorkflowOutput for T {
    fn serialize_output<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }

    fn deserialize_output<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer)
    }
}

/// A workflow's `E`: its error is journaled, and handles decode it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be journaled: a workflow's error must be a serde type",
    label = "`{Self}` is not `Serialize` and `Deserialize`",
    note = "the error of a `#[workflow]` is journaled when it fails, and `Handle::result` decodes it, in this process or another",
    note = "return `replayflow::AnyError`: `?` converts `anyhow::Error`, `std::io::Error`, boxed errors and strings into it; or derive `serde::Serialize` and `serde::Deserialize` for your own error type"
)]
pub trait WorkflowError: Sized {
    #[doc(hidden)]
    fn serialize_error<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error>;
    #[doc(hidden)]
    fn deserialize_error<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error>;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned> WorkflowError for T {
    fn serialize_error<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize(serializer)
    }

    fn deserialize_error<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer)
    }
}

/// A workflow's output as a serde value (the same encoding as the output's own).
pub(crate) struct AsOutput<T>(pub(crate) T);

impl<T: WorkflowOutput> Serialize for AsOutput<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_output(serializer)
    }
}

impl<'de, T: WorkflowOutput> Deserialize<'de> for AsOutput<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize_output(deserializer).map(AsOutput)
    }
}

/// A workflow's error as a serde value (the same encoding as the error's own).
pub(crate) struct AsError<E>(pub(crate) E);

impl<E: WorkflowError> Serialize for AsError<E> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize_error(serializer)
    }
}

impl<'de, E: WorkflowError> Deserialize<'de> for AsError<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        E::deserialize_error(deserializer).map(AsError)
    }
}

/// Autoref probe: `(&&FailureProbe::<E>::new()).__workflow_convert(f)` picks
/// [`ConvertFailure`] when `E: From<StepFailure>` and [`NoConvertFailure`] otherwise.
pub struct FailureProbe<E>(PhantomData<fn() -> E>);

impl<E> FailureProbe<E> {
    #[allow(clippy::new_without_default)]
    pub const fn new() -> Self {
        FailureProbe(PhantomData)
    }
}

pub trait ConvertFailure<E> {
    fn __workflow_convert(&self, failure: StepFailure) -> Option<E>;
}

impl<E: From<StepFailure>> ConvertFailure<E> for &FailureProbe<E> {
    fn __workflow_convert(&self, failure: StepFailure) -> Option<E> {
        Some(E::from(failure))
    }
}

pub trait NoConvertFailure<E> {
    fn __workflow_convert(&self, failure: StepFailure) -> Option<E>;
}

impl<E> NoConvertFailure<E> for FailureProbe<E> {
    fn __workflow_convert(&self, _failure: StepFailure) -> Option<E> {
        None
    }
}

/// Calls a step: inside a workflow body the call reserves its journal
/// position now (synchronously) and is replayed or journaled when awaited;
/// anywhere else it is a plain call of the body.
///
/// `T` and `E` are bound by the check traits, whose `M` is inferred, so that a type that
/// cannot be journaled gets one error that says so.
#[track_caller]
pub fn step_call<T, E, F, Fut, MT, ME>(
    meta: &'static StepMeta,
    convert: fn(StepFailure) -> Option<E>,
    body: F,
) -> impl Future<Output = Result<T, E>>
where
    T: StepOutput<MT>,
    E: StepError<ME> + fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    crate::execution::call_step(meta, convert, body)
}

/// The body of a generated `check_input`.
pub fn check_input<I: DeserializeOwned>(input: &Payload) -> Result<(), CodecError> {
    input.decode::<I>().map(drop)
}

/// Decodes the input, runs the body and encodes its result. `T` and `E` are `W`'s, whose
/// bounds make them serde types.
pub fn run_workflow<W, I, Fut>(
    ctx: Context,
    input: Payload,
    f: impl FnOnce(Context, I) -> Fut + Send + 'static,
) -> BoxFuture
where
    W: Workflow,
    W::Error: fmt::Debug,
    I: DeserializeOwned + Send,
    Fut: Future<Output = Result<W::Output, W::Error>> + Send + 'static,
{
    Box::pin(async move {
        let codec = input.codec();
        let workflow = ctx.workflow_name().to_owned();
        let decoded: Result<I, _> = codec.decode(input.bytes(), || {
            format!("the input of workflow `{workflow}`")
        });
        let input = match decoded {
            Ok(i) => i,
            Err(e) => return WorkflowOutcome::Undecodable(e.to_string()),
        };
        match f(ctx, input).await {
            Ok(value) => {
                let value = AsOutput(value);
                match codec.encode(&value, || format!("the output of workflow `{workflow}`")) {
                    Ok(bytes) => WorkflowOutcome::Completed(bytes),
                    Err(e) => WorkflowOutcome::Unrecordable(e.to_string()),
                }
            }
            Err(error) => {
                let message = format!("{error:?}");
                let error = AsError(error);
                match codec.encode(&error, || format!("the error of workflow `{workflow}`")) {
                    Ok(bytes) => WorkflowOutcome::Failed {
                        error: bytes,
                        message,
                    },
                    Err(e) => WorkflowOutcome::Unrecordable(format!("{message} ({e})")),
                }
            }
        }
    })
}

/// `name::start_with`.
pub async fn start<W: Workflow, I: Serialize>(
    rt: &Runtime,
    id: ExecutionId,
    options: StartOptions,
    input: &I,
) -> Result<Handle<W>, Error> {
    rt.start::<W, I>(id, options, input).await
}

/// `name::child_with`: starts `W` as a child of the workflow running
/// `ctx`; the call takes its place in the parent's journal now.
pub fn start_child<W: Workflow, I: Serialize>(
    ctx: &crate::Context,
    options: crate::ChildOptions,
    input: &I,
) -> impl Future<Output = crate::ChildHandle<W>> + Send + use<W, I> {
    crate::execution::start_child::<W, I>(ctx, options, input)
}

/// `name::resume`: resumes `id`, which must be an execution of `W`.
pub async fn resume<W: Workflow>(rt: &Runtime, id: ExecutionId) -> Result<(), Error> {
    let name = W::descriptor().name;
    let info = rt.status(id.clone()).await?;
    if info.workflow != name {
        return Err(Error::IdConflict {
            id,
            existing: info.workflow,
            requested: name.to_owned(),
        });
    }
    rt.resume(id).await
}
