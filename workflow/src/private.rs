//! What the generated code of `#[workflow]` and `#[step]` calls. Not a public
//! API: names and signatures change without notice.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use ::inventory;
pub use ::serde;

pub use crate::codec::Payload;
use crate::error::{CodecError, Error, StepFailure};
pub use crate::execution::{
    BoxFuture, Context, Registration, StepMeta, WorkflowDescriptor, WorkflowOutcome,
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

/// Emitted on a step's or workflow's return type so a type that cannot be
/// journaled is reported there.
pub fn assert_step_output<R>()
where
    R: SplitResult,
    R::Ok: Serialize + DeserializeOwned,
    R::Err: Serialize + DeserializeOwned + fmt::Debug,
{
}

/// Emitted on each workflow argument's type.
pub fn assert_input<T: Serialize + DeserializeOwned>() {}

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
pub fn step_call<T, E, F, Fut>(
    meta: &'static StepMeta,
    convert: fn(StepFailure) -> Option<E>,
    body: F,
) -> impl Future<Output = Result<T, E>>
where
    T: Serialize + DeserializeOwned,
    E: Serialize + DeserializeOwned + fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    crate::execution::call_step(meta, convert, body)
}

/// The body of a generated `check_input`.
pub fn check_input<I: DeserializeOwned>(input: &Payload) -> Result<(), CodecError> {
    input.decode::<I>().map(drop)
}

/// Decodes the input, runs the body and encodes its result.
pub fn run_workflow<I, T, E, Fut>(
    ctx: Context,
    input: Payload,
    f: impl FnOnce(Context, I) -> Fut + Send + 'static,
) -> BoxFuture
where
    I: DeserializeOwned + Send,
    T: Serialize,
    E: Serialize + fmt::Debug,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
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
                match codec.encode(&value, || format!("the output of workflow `{workflow}`")) {
                    Ok(bytes) => WorkflowOutcome::Completed(bytes),
                    Err(e) => WorkflowOutcome::Unrecordable(e.to_string()),
                }
            }
            Err(error) => {
                let message = format!("{error:?}");
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
