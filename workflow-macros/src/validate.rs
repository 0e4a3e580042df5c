//! Checks that relate several parts of the input, then freezes the model that `expand`
//! turns into code. Everything `expand` receives is known to be valid.

use crate::args::{AttrKind, Key, Millis, Setting, StepConfig, WorkflowConfig};
use crate::errors::Errors;
use crate::lint::{self, Finding};
use crate::parse::{ArgBinding, ArgModel, ContextUse, RetModel, StepFn, WorkflowFn};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::{Attribute, Ident, ItemFn, Pat, PatType, Path, PathSegment, Token, Type};

/// A `#[step]` ready to expand.
pub(crate) struct Step {
    pub(crate) item: ItemFn,
    pub(crate) params: Vec<Param>,
    pub(crate) ret: RetModel,
    pub(crate) options: StepOptions,
}

/// A `#[workflow]` ready to expand.
pub(crate) struct Workflow {
    pub(crate) item: ItemFn,
    /// The `ctx: Context` parameter as written.
    pub(crate) ctx: PatType,
    /// The parameters after the context.
    pub(crate) params: Vec<Param>,
    pub(crate) ret: RetModel,
    pub(crate) options: WorkflowOptions,
    /// The body as it goes out: the block without its `#[allow_nondeterministic]` markers.
    pub(crate) body: TokenStream,
    /// What the determinism lint found in the body; empty when the option turns it off.
    pub(crate) findings: Vec<Finding>,
}

/// A parameter bound to a plain name.
pub(crate) struct Param {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) mutability: Option<Token![mut]>,
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
}

/// Frozen `#[step]` options; `None` falls through to the runtime's defaults.
pub(crate) struct StepOptions {
    pub(crate) name: String,
    pub(crate) max_attempts: Option<u32>,
    pub(crate) backoff: Option<Millis>,
    pub(crate) exponential: Option<bool>,
    pub(crate) max_backoff: Option<Millis>,
    /// With the span of its value: the step's error type must then hold a timeout.
    pub(crate) timeout: Option<Setting<Millis>>,
    /// Each attempt's start is committed before its body runs.
    pub(crate) at_most_once: bool,
    pub(crate) krate: Path,
}

impl StepOptions {
    /// `max_attempts = 1` was written, so the body runs once and its arguments move in
    /// instead of being cloned per attempt.
    pub(crate) fn runs_once(&self) -> bool {
        self.max_attempts == Some(1)
    }
}

/// Frozen `#[workflow]` options; `None` falls through to the runtime's defaults.
pub(crate) struct WorkflowOptions {
    pub(crate) name: String,
    pub(crate) max_restarts: Option<u32>,
    pub(crate) restart_delay: Option<Millis>,
    /// `timeout`: the deadline of each execution, from its start.
    pub(crate) timeout: Option<Millis>,
    /// `allow_nondeterministic`: the determinism lint is off for the whole body.
    pub(crate) allow_nondeterministic: bool,
    pub(crate) krate: Path,
}

pub(crate) fn validate_step(step: StepFn, errors: &mut Errors) -> Option<Step> {
    let attr = AttrKind::Step;
    let options = freeze_step_options(step.config, &step.func.original, errors);
    let mut params = Vec::new();
    for arg in step.func.args {
        if arg.context.is_some() {
            errors.spanned(
                &arg.original.ty,
                format_args!(
                    "{attr} functions do not take a `Context`: a step finds its workflow when it is called; \
                     inside the body, `replayflow::StepContext::current()` gives the attempt number and idempotency key"
                ),
            );
            continue;
        }
        if !options.runs_once()
            && let Type::Reference(reference) = &*arg.original.ty
            && reference.mutability.is_some()
        {
            errors.spanned(
                &arg.original.ty,
                format_args!(
                    "{attr} arguments cannot be `&mut` when the step can retry, since every attempt \
                     needs its own arguments: take `&` or an owned `Clone` value, or set `max_attempts = 1`"
                ),
            );
        }
        if let Some(param) = named_param(attr, arg, errors) {
            params.push(param);
        }
    }
    let ret = step.func.ret?;
    Some(Step {
        item: step.func.original,
        params,
        ret,
        options,
    })
}

pub(crate) fn validate_workflow(workflow: WorkflowFn, errors: &mut Errors) -> Option<Workflow> {
    let attr = AttrKind::Workflow;
    let options = freeze_workflow_options(workflow.config, &workflow.func.original);
    let any_context = workflow.func.args.iter().any(|arg| arg.context.is_some());
    let mut args = workflow.func.args.into_iter().peekable();
    let ctx = match args.next_if(|first| first.context.is_some()) {
        Some(first) => context_param(first, errors),
        // A `Context` further on is reported as misplaced below.
        None if any_context => None,
        None => {
            let message = format!(
                "{attr} functions take a `Context` as their first parameter: write `ctx: Context`"
            );
            match args.peek() {
                Some(first) => errors.spanned(&first.original, format_args!("{message} before it")),
                None => errors.at(workflow.func.original.sig.paren_token.span.join(), message),
            }
            None
        }
    };
    let mut params = Vec::new();
    for arg in args {
        if arg.context.is_some() {
            errors.spanned(
                &arg.original.ty,
                format_args!(
                    "misplaced `Context`: it must be the first parameter of a {attr} function"
                ),
            );
            continue;
        }
        if let Type::Reference(_) = &*arg.original.ty {
            errors.spanned(
                &arg.original.ty,
                format_args!(
                    "{attr} arguments must be owned, since they are stored as the execution's input: \
                     take the value instead of a reference"
                ),
            );
        }
        if let Some(param) = named_param(attr, arg, errors) {
            params.push(param);
        }
    }
    check_allow_on_fn(&workflow.func.original, errors);
    let ret = workflow.func.ret?;
    let item = workflow.func.original;
    let findings = if options.allow_nondeterministic {
        Vec::new()
    } else {
        lint::lint_body(
            &item.block,
            params.iter().map(|param| (&param.ident, &param.ty)),
        )
    };
    let body = lint::strip_allow(item.block.to_token_stream());
    Some(Workflow {
        item,
        ctx: ctx?,
        params,
        ret,
        options,
        body,
        findings,
    })
}

/// `#[allow_nondeterministic]` marks one statement or expression of the body; on the
/// function it would reach rustc as an unknown attribute, so it gets a message that
/// points to the option instead.
fn check_allow_on_fn(item: &ItemFn, errors: &mut Errors) {
    for attr in &item.attrs {
        if attr.path().is_ident(lint::ALLOW) {
            errors.spanned(
                attr,
                format_args!(
                    "`#[{allow}]` goes on a statement or expression of a {attr_kind} body; \
                     to allow the whole body, write `#[workflow({allow})]`",
                    allow = lint::ALLOW,
                    attr_kind = AttrKind::Workflow,
                ),
            );
        }
    }
}

/// The workflow's first parameter, a `Context`, which must be taken by value.
fn context_param(first: ArgModel, errors: &mut Errors) -> Option<PatType> {
    let attr = AttrKind::Workflow;
    if let Some(ContextUse::ByRef(and_span)) = first.context {
        errors.at(
            and_span,
            format_args!("{attr} functions take their `Context` by value: write `ctx: Context`"),
        );
        return None;
    }
    match first.binding {
        ArgBinding::Ident { .. } | ArgBinding::Wild => Some(first.original),
        ArgBinding::Pattern => {
            errors.spanned(
                &first.original.pat,
                format_args!(
                    "{attr} functions bind their `Context` to a name: write `ctx: Context`"
                ),
            );
            None
        }
    }
}

fn named_param(attr: AttrKind, arg: ArgModel, errors: &mut Errors) -> Option<Param> {
    match arg.binding {
        ArgBinding::Ident { mutability, ident } => Some(Param {
            attrs: arg.original.attrs,
            mutability,
            ident,
            ty: *arg.original.ty,
        }),
        ArgBinding::Wild => {
            errors.spanned(
                &arg.original.pat,
                format_args!("{attr} parameters need a name: write `_name` instead of `_`"),
            );
            None
        }
        ArgBinding::Pattern => {
            let hint = match &*arg.original.pat {
                Pat::Ident(_) => "",
                _ => ": bind the value to a name and destructure it in the body",
            };
            errors.spanned(
                &arg.original.pat,
                format_args!(
                    "{attr} parameters must be plain names like `order: Order`, not patterns{hint}"
                ),
            );
            None
        }
    }
}

fn freeze_step_options(config: StepConfig, item: &ItemFn, errors: &mut Errors) -> StepOptions {
    if let (Some(backoff), Some(max_backoff)) = (&config.backoff, &config.max_backoff)
        && max_backoff.value < backoff.value
    {
        errors.at(
            max_backoff.span,
            format_args!(
                "{} option {} must not be shorter than {}",
                AttrKind::Step,
                Key::MaxBackoff,
                Key::Backoff
            ),
        );
    }
    StepOptions {
        name: name_or_ident(config.name, item),
        max_attempts: value(config.max_attempts),
        backoff: value(config.backoff),
        exponential: value(config.exponential),
        max_backoff: value(config.max_backoff),
        timeout: config.timeout,
        at_most_once: value(config.at_most_once).unwrap_or(false),
        krate: crate_path(config.krate),
    }
}

fn freeze_workflow_options(config: WorkflowConfig, item: &ItemFn) -> WorkflowOptions {
    WorkflowOptions {
        name: name_or_ident(config.name, item),
        max_restarts: value(config.max_restarts),
        restart_delay: value(config.restart_delay),
        timeout: value(config.timeout),
        allow_nondeterministic: value(config.allow_nondeterministic).unwrap_or(false),
        krate: crate_path(config.krate),
    }
}

fn value<T>(setting: Option<Setting<T>>) -> Option<T> {
    setting.map(|setting| setting.value)
}

/// The `name` option, defaulting to the function's name (without any `r#`).
fn name_or_ident(name: Option<Setting<String>>, item: &ItemFn) -> String {
    name.map_or_else(|| item.sig.ident.unraw().to_string(), |name| name.value)
}

/// The `crate` option, defaulting to `::replayflow`.
fn crate_path(krate: Option<Setting<Path>>) -> Path {
    krate.map_or_else(
        || Path {
            leading_colon: Some(<Token![::]>::default()),
            segments: Punctuated::from_iter([PathSegment::from(Ident::new(
                "replayflow",
                Span::call_site(),
            ))]),
        },
        |krate| krate.value,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_step, parse_workflow};
    use proc_macro2::TokenStream;
    use quote::quote;

    fn messages(errors: Errors) -> Vec<String> {
        errors.messages()
    }

    fn workflow_errors(item: TokenStream) -> Vec<String> {
        let mut errors = Errors::new();
        if let Some(workflow) = parse_workflow(TokenStream::new(), item, &mut errors) {
            validate_workflow(workflow, &mut errors);
        }
        messages(errors)
    }

    fn step_errors(args: TokenStream, item: TokenStream) -> Vec<String> {
        let mut errors = Errors::new();
        if let Some(step) = parse_step(args, item, &mut errors) {
            validate_step(step, &mut errors);
        }
        messages(errors)
    }

    #[test]
    fn context_must_come_first_and_by_value() {
        assert!(
            workflow_errors(quote!(
                async fn f(ctx: Context, a: u8) -> Result<(), E> {
                    Ok(())
                }
            ))
            .is_empty()
        );
        assert!(
            workflow_errors(quote!(
                async fn f(_: wf::Context) -> Result<(), E> {
                    Ok(())
                }
            ))
            .is_empty()
        );

        let errors = workflow_errors(quote!(
            async fn f(a: u8) -> Result<(), E> {
                Ok(())
            }
        ));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].contains("first parameter"), "{errors:?}");

        let errors = workflow_errors(quote!(
            async fn f(a: u8, ctx: Context) -> Result<(), E> {
                Ok(())
            }
        ));
        assert_eq!(
            errors,
            ["misplaced `Context`: it must be the first parameter of a `#[workflow]` function"]
        );

        let errors = workflow_errors(quote!(
            async fn f(ctx: &Context) -> Result<(), E> {
                Ok(())
            }
        ));
        assert!(errors[0].contains("by value"), "{errors:?}");
    }

    #[test]
    fn workflow_arguments_are_owned() {
        let errors = workflow_errors(quote!(
            async fn f(ctx: Context, a: &str) -> Result<(), E> {
                Ok(())
            }
        ));
        assert!(errors[0].contains("must be owned"), "{errors:?}");
    }

    #[test]
    fn steps_take_no_context() {
        let errors = step_errors(
            quote!(),
            quote!(
                async fn f(ctx: Context) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(errors[0].contains("do not take a `Context`"), "{errors:?}");
    }

    #[test]
    fn mutable_references_need_a_single_attempt() {
        let item = quote!(
            async fn f(buf: &mut Vec<u8>) -> Result<(), E> {
                Ok(())
            }
        );
        let errors = step_errors(quote!(), item.clone());
        assert!(errors[0].contains("cannot be `&mut`"), "{errors:?}");
        assert!(step_errors(quote!(max_attempts = 1), item).is_empty());
    }

    #[test]
    fn max_backoff_cannot_be_below_backoff() {
        let item = quote!(
            async fn f() -> Result<(), E> {
                Ok(())
            }
        );
        let errors = step_errors(quote!(backoff = "2s", max_backoff = "1s"), item.clone());
        assert_eq!(
            errors,
            ["`#[step]` option `max_backoff` must not be shorter than `backoff`"]
        );
        assert!(step_errors(quote!(backoff = "1s", max_backoff = "1s"), item).is_empty());
    }

    #[test]
    fn names_default_to_the_function_without_raw_prefix() {
        let mut errors = Errors::new();
        let step = parse_step(
            TokenStream::new(),
            quote!(
                async fn r#match() -> Result<(), E> {
                    Ok(())
                }
            ),
            &mut errors,
        )
        .and_then(|step| validate_step(step, &mut errors));
        assert_eq!(step.map(|step| step.options.name).as_deref(), Some("match"));
    }
}
