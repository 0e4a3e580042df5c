//! Parses the annotated item into our model and checks each part of the signature on its
//! own. Checks that relate several parts (where the `Context` goes, options against
//! arguments) live in `validate`.

use crate::args::{self, AttrKind, StepConfig, WorkflowConfig};
use crate::errors::Errors;
use proc_macro2::{Span, TokenStream};
use syn::{
    FnArg, GenericArgument, GenericParam, Ident, Item, ItemFn, Pat, PatType, PathArguments,
    ReturnType, Safety, Token, Type, TypeImplTrait,
};

/// `#[step]` input: the function and its options, as written.
pub(crate) struct StepFn {
    pub(crate) func: FnModel,
    pub(crate) config: StepConfig,
}

/// `#[workflow]` input: the function and its options, as written.
pub(crate) struct WorkflowFn {
    pub(crate) func: FnModel,
    pub(crate) config: WorkflowConfig,
}

/// An `async fn` whose signature parts were each checked.
pub(crate) struct FnModel {
    pub(crate) original: ItemFn,
    pub(crate) args: Vec<ArgModel>,
    /// `None` when the return type is missing or is not a `Result` (already reported).
    pub(crate) ret: Option<RetModel>,
}

/// One typed parameter.
pub(crate) struct ArgModel {
    pub(crate) original: PatType,
    pub(crate) binding: ArgBinding,
    /// Set when the type names a `Context` (`Context`, `replayflow::Context`, `&Context`).
    pub(crate) context: Option<ContextUse>,
}

/// What the parameter's pattern binds.
pub(crate) enum ArgBinding {
    /// `name` or `mut name`.
    Ident {
        mutability: Option<Token![mut]>,
        ident: Ident,
    },
    /// `_`.
    Wild,
    /// Anything else: `(a, b)`, `Point { x, y }`, `ref a`, `a @ 1..`.
    Pattern,
}

#[derive(Clone, Copy)]
pub(crate) enum ContextUse {
    ByValue,
    /// `&Context` or `&mut Context`; the span is the `&`.
    ByRef(Span),
}

/// The return type: a path whose last segment is `Result`.
pub(crate) struct RetModel {
    pub(crate) ty: Type,
    /// `T` and `E` when written as `Result<T, E>`; `None` for an alias like `io::Result<T>`.
    pub(crate) split: Option<(Type, Type)>,
}

/// Parses `#[step(args)] item`. Bad options are recorded and replaced by defaults, so the
/// function is still checked and every problem is reported in one build.
pub(crate) fn parse_step(
    args: TokenStream,
    item: TokenStream,
    errors: &mut Errors,
) -> Option<StepFn> {
    let config = errors
        .take(args::parse_step_config(args))
        .unwrap_or_default();
    let func = parse_fn(AttrKind::Step, item, errors)?;
    Some(StepFn { func, config })
}

/// Parses `#[workflow(args)] item`, like [`parse_step`].
pub(crate) fn parse_workflow(
    args: TokenStream,
    item: TokenStream,
    errors: &mut Errors,
) -> Option<WorkflowFn> {
    let config = errors
        .take(args::parse_workflow_config(args))
        .unwrap_or_default();
    let func = parse_fn(AttrKind::Workflow, item, errors)?;
    Some(WorkflowFn { func, config })
}

fn parse_fn(attr: AttrKind, item: TokenStream, errors: &mut Errors) -> Option<FnModel> {
    let item = match syn::parse2::<Item>(item) {
        Ok(Item::Fn(item)) => item,
        Ok(other) => {
            errors.push(not_a_fn(attr, &other));
            return None;
        }
        Err(error) => {
            errors.push(error);
            return None;
        }
    };
    check_qualifiers(attr, &item, errors);
    check_generics(attr, &item, errors);
    if let Some(variadic) = &item.sig.variadic {
        errors.spanned(
            variadic,
            format_args!("{attr} functions cannot be variadic"),
        );
    }
    let args = item
        .sig
        .inputs
        .iter()
        .filter_map(|input| parse_arg(attr, input, errors))
        .collect();
    let ret = parse_ret(attr, &item, errors);
    Some(FnModel {
        original: item,
        args,
        ret,
    })
}

/// An error on the keyword of an item that is not a function.
fn not_a_fn(attr: AttrKind, item: &Item) -> syn::Error {
    let message = format!("{attr} can only be applied to an `async fn`");
    match item {
        Item::Struct(item) => syn::Error::new_spanned(item.struct_token, message),
        Item::Enum(item) => syn::Error::new_spanned(item.enum_token, message),
        Item::Union(item) => syn::Error::new_spanned(item.union_token, message),
        Item::Impl(item) => syn::Error::new_spanned(item.impl_token, message),
        Item::Trait(item) => syn::Error::new_spanned(item.trait_token, message),
        Item::Mod(item) => syn::Error::new_spanned(item.mod_token, message),
        Item::Const(item) => syn::Error::new_spanned(item.const_token, message),
        Item::Static(item) => syn::Error::new_spanned(item.static_token, message),
        Item::Type(item) => syn::Error::new_spanned(item.type_token, message),
        Item::Use(item) => syn::Error::new_spanned(item.use_token, message),
        // A function without a body (in a trait or an `extern` block) lands here.
        Item::Verbatim(tokens) => syn::Error::new_spanned(
            tokens,
            format_args!("{attr} can only be applied to an `async fn` with a body"),
        ),
        other => syn::Error::new_spanned(other, message),
    }
}

fn check_qualifiers(attr: AttrKind, item: &ItemFn, errors: &mut Errors) {
    let sig = &item.sig;
    if let Some(constness) = &sig.constness {
        errors.spanned(
            constness,
            format_args!("{attr} functions cannot be `const`"),
        );
    }
    match &sig.safety {
        Safety::Unsafe(token) => {
            errors.spanned(token, format_args!("{attr} functions cannot be `unsafe`"));
        }
        Safety::Safe(token) => {
            errors.spanned(token, format_args!("{attr} functions cannot be `safe`"));
        }
        Safety::Default => {}
    }
    if let Some(abi) = &sig.abi {
        errors.spanned(
            abi,
            format_args!("{attr} functions cannot have an `extern` ABI"),
        );
    }
    if let Some(defaultness) = &item.modifiers.defaultness {
        errors.spanned(
            defaultness,
            format_args!("{attr} functions cannot be `default`"),
        );
    }
    if sig.asyncness.is_none() {
        errors.spanned(
            sig.fn_token,
            format_args!("{attr} functions must be `async`: write `async fn`"),
        );
    }
}

fn check_generics(attr: AttrKind, item: &ItemFn, errors: &mut Errors) {
    for param in &item.sig.generics.params {
        match (attr, param) {
            (AttrKind::Step, GenericParam::Lifetime(_)) => {}
            (AttrKind::Step, GenericParam::Type(param)) => errors.spanned(
                &param.ident,
                format_args!("{attr} functions cannot have type parameters: use a concrete type"),
            ),
            (AttrKind::Step, GenericParam::Const(param)) => errors.spanned(
                &param.ident,
                format_args!("{attr} functions cannot have const parameters"),
            ),
            (AttrKind::Workflow, GenericParam::Lifetime(param)) => errors.spanned(
                &param.lifetime,
                format_args!(
                    "{attr} functions cannot have lifetime parameters: \
                     the workflow runs in the background, so it takes owned arguments"
                ),
            ),
            (AttrKind::Workflow, GenericParam::Type(param)) => errors.spanned(
                &param.ident,
                format_args!(
                    "{attr} functions cannot have type parameters: \
                     a workflow is registered once, under one name; use a concrete type"
                ),
            ),
            (AttrKind::Workflow, GenericParam::Const(param)) => errors.spanned(
                &param.ident,
                format_args!("{attr} functions cannot have const parameters"),
            ),
        }
    }
}

fn parse_arg(attr: AttrKind, input: &FnArg, errors: &mut Errors) -> Option<ArgModel> {
    let typed = match input {
        FnArg::Receiver(receiver) => {
            errors.spanned(
                receiver.self_token,
                format_args!(
                    "{attr} functions cannot take `self`: write a free function \
                     and pass what it needs as arguments"
                ),
            );
            return None;
        }
        FnArg::Typed(typed) => typed,
    };
    if let Some(impl_trait) = find_impl_trait(&typed.ty) {
        errors.spanned(
            impl_trait,
            format_args!(
                "{attr} functions cannot take `impl Trait` arguments: use a concrete type"
            ),
        );
    }
    let binding = match &*typed.pat {
        Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => ArgBinding::Ident {
            mutability: pat.mutability,
            ident: pat.ident.clone(),
        },
        Pat::Wild(_) => ArgBinding::Wild,
        _ => ArgBinding::Pattern,
    };
    Some(ArgModel {
        original: typed.clone(),
        binding,
        context: context_use(&typed.ty),
    })
}

fn parse_ret(attr: AttrKind, item: &ItemFn, errors: &mut Errors) -> Option<RetModel> {
    let ty = match &item.sig.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => {
            errors.at(
                item.sig.paren_token.span.close(),
                format_args!(
                    "{attr} functions must return a `Result`: add `-> Result<T, E>` after the parameters"
                ),
            );
            return None;
        }
    };
    let Some(segment) = result_segment(ty) else {
        errors.spanned(
            ty,
            format_args!(
                "{attr} functions must return a `Result<T, E>`, where `T` and `E` are serde types"
            ),
        );
        return None;
    };
    if let Some(impl_trait) = find_impl_trait(ty) {
        errors.spanned(
            impl_trait,
            format_args!(
                "{attr} functions cannot return `impl Trait`: the result is stored, so name a concrete type"
            ),
        );
        return None;
    }
    let split = match &segment.arguments {
        PathArguments::AngleBracketed(arguments) if arguments.args.len() == 2 => {
            match (arguments.args.first(), arguments.args.last()) {
                (Some(GenericArgument::Type(ok)), Some(GenericArgument::Type(err))) => {
                    Some((ok.clone(), err.clone()))
                }
                _ => None,
            }
        }
        _ => None,
    };
    Some(RetModel {
        ty: (**ty).clone(),
        split,
    })
}

/// Looks through the invisible groups and parentheses that macros wrap types in.
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(group) => peel(&group.elem),
        Type::Paren(paren) => peel(&paren.elem),
        other => other,
    }
}

/// The last segment of a path type named `Result`.
fn result_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match peel(ty) {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .filter(|segment| segment.ident == "Result"),
        _ => None,
    }
}

/// Whether the type names a `Context` by its last path segment.
fn context_use(ty: &Type) -> Option<ContextUse> {
    match peel(ty) {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .filter(|segment| segment.ident == "Context")
            .map(|_| ContextUse::ByValue),
        Type::Reference(reference) => {
            context_use(&reference.elem).map(|_| ContextUse::ByRef(reference.and_token.span))
        }
        _ => None,
    }
}

/// The first `impl Trait` anywhere in a type, including in generic arguments.
fn find_impl_trait(ty: &Type) -> Option<&TypeImplTrait> {
    match ty {
        Type::ImplTrait(impl_trait) => Some(impl_trait),
        Type::Array(inner) => find_impl_trait(&inner.elem),
        Type::Group(inner) => find_impl_trait(&inner.elem),
        Type::Paren(inner) => find_impl_trait(&inner.elem),
        Type::Ptr(inner) => find_impl_trait(&inner.elem),
        Type::Reference(inner) => find_impl_trait(&inner.elem),
        Type::Slice(inner) => find_impl_trait(&inner.elem),
        Type::Tuple(tuple) => tuple.elems.iter().find_map(find_impl_trait),
        Type::Path(path) => path
            .qself
            .as_ref()
            .and_then(|qself| find_impl_trait(&qself.ty))
            .or_else(|| {
                path.path
                    .segments
                    .iter()
                    .find_map(|segment| match &segment.arguments {
                        PathArguments::AngleBracketed(arguments) => {
                            arguments.args.iter().find_map(|argument| match argument {
                                GenericArgument::Type(ty) => find_impl_trait(ty),
                                GenericArgument::AssocType(assoc) => find_impl_trait(&assoc.ty),
                                _ => None,
                            })
                        }
                        _ => None,
                    })
            }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn messages(errors: Errors) -> Vec<String> {
        errors.messages()
    }

    fn step_errors(item: TokenStream) -> Vec<String> {
        let mut errors = Errors::new();
        parse_step(TokenStream::new(), item, &mut errors);
        messages(errors)
    }

    #[test]
    fn accepts_a_plain_async_fn() {
        let errors = step_errors(quote! {
            pub async fn charge<'a>(order: &'a Order, mut amount: u64) -> Result<Payment, PaymentError> {
                Ok(Payment)
            }
        });
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn splits_result_only_when_both_types_are_written() {
        let mut errors = Errors::new();
        let step = parse_step(
            TokenStream::new(),
            quote!(
                async fn a() -> std::result::Result<u8, E> {
                    todo!()
                }
            ),
            &mut errors,
        );
        assert!(
            step.and_then(|s| s.func.ret)
                .and_then(|r| r.split)
                .is_some()
        );
        let step = parse_step(
            TokenStream::new(),
            quote!(
                async fn a() -> anyhow::Result<u8> {
                    todo!()
                }
            ),
            &mut errors,
        );
        let ret = step.and_then(|s| s.func.ret);
        assert!(ret.is_some_and(|r| r.split.is_none()));
    }

    #[test]
    fn reports_every_signature_problem_at_once() {
        let errors = step_errors(quote! {
            const unsafe extern "C" fn f<T, const N: usize>(self, x: impl Display, ...) -> u8 { 0 }
        });
        assert_eq!(errors.len(), 10, "{errors:#?}");
    }

    #[test]
    fn rejects_items_that_are_not_functions() {
        let errors = step_errors(quote!(
            struct Order {}
        ));
        assert_eq!(errors, ["`#[step]` can only be applied to an `async fn`"]);
    }

    #[test]
    fn finds_nested_impl_trait() {
        let errors = step_errors(quote!(
            async fn f(x: Vec<impl Display>) -> Result<(), ()> {
                Ok(())
            }
        ));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("`impl Trait` arguments"));
    }

    #[test]
    fn workflows_reject_lifetimes() {
        let mut errors = Errors::new();
        parse_workflow(
            TokenStream::new(),
            quote!(
                async fn f<'a>(ctx: Context) -> Result<(), ()> {
                    Ok(())
                }
            ),
            &mut errors,
        );
        let errors = messages(errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("lifetime parameters"));
    }
}
