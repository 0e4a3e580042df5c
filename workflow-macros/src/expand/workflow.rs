//! `#[workflow]`: the user's `async fn` becomes a braced struct of the same name (a module
//! could not see types declared inside a function) with `start`, `start_with`, `resume`
//! and `NAME`, an input struct keyed by parameter name, the `Workflow` impl, and a
//! link-time registration.

use super::{Cover, OkErr, count, duration, parens, respan};
use crate::lint::Finding;
use crate::validate::{Param, Workflow};
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, Ident};

pub(crate) fn expand_workflow(workflow: &Workflow) -> TokenStream {
    let Workflow {
        item,
        ctx,
        params,
        ret,
        options,
        body,
        findings,
    } = workflow;
    let krate = &options.krate;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let ret_ty = &ret.ty;
    let attrs = SortedAttrs::new(&item.attrs);
    let cfgs = &attrs.cfg;
    let docs = &attrs.docs;
    let body_attrs = &attrs.rest;

    let input_ident = format_ident!("__workflow_input_{}", ident.unraw());
    let serde_crate = format!("{}::__private::serde", krate.to_token_stream());
    let field_idents: Vec<&Ident> = params.iter().map(|param| &param.ident).collect();
    // Each field is written and read through `WorkflowArg`, named with its type and
    // spanned on it, so that an argument that is not a serde type gets that trait's one
    // error (the two paths read the same there, and rustc reports it once) instead of
    // serde's errors for each place of the derived impls that needs it.
    let field_serde = params.iter().map(|param| {
        let ty = &param.ty;
        let span = ty.span();
        let ser = syn::LitStr::new(
            &quote!(<#ty as #krate::__private::WorkflowArg>::serialize_arg).to_string(),
            span,
        );
        let de = syn::LitStr::new(
            &quote!(<#ty as #krate::__private::WorkflowArg>::deserialize_arg).to_string(),
            span,
        );
        quote!(#[serde(serialize_with = #ser, deserialize_with = #de)])
    });
    let field_tys = params.iter().map(|param| &param.ty);
    let field_tys_again = params.iter().map(|param| &param.ty);
    let field_tys_input = params.iter().map(|param| &param.ty);
    let direct_call_bound = respan(
        quote!(#ident: #krate::__private::DirectCall<__WorkflowM>,),
        ident.span(),
    );
    let arg_params: Vec<TokenStream> = params
        .iter()
        .map(|Param { ident, ty, .. }| quote!(#ident: #ty))
        .collect();
    let body_params = params.iter().map(
        |Param {
             attrs,
             mutability,
             ident,
             ty,
         }| quote!(#(#attrs)* #mutability #ident: #ty),
    );

    // The generated parameters take the plain names unless an argument already has one.
    let rt = generated_name(params, "rt");
    let id = generated_name(params, "id");
    let start_options = generated_name(params, "options");

    let name = &options.name;
    let fn_name = ident.unraw().to_string();
    let max_restarts = count(options.max_restarts);
    let restart_delay = duration(options.restart_delay);
    let timeout = duration(options.timeout);

    let struct_docs = if docs.is_empty() {
        let doc = format!(
            " The `{name}` workflow. Start an execution with `{fn_name}::start` and wait for it on the returned handle."
        );
        quote!(#[doc = #doc])
    } else {
        quote!(#(#docs)*)
    };
    let handle_ty = quote!(#krate::Handle<#ident>);
    let result_ty = quote!(::core::result::Result<#handle_ty, #krate::Error>);
    let id_ty = quote!(impl ::core::convert::Into<#krate::ExecutionId>);

    // The input struct's fields are the parameters, so the derived impls check that each
    // argument is a serde type on its own type. Serde reports some of these at the span
    // of the derive itself, which is spanned over the parameter list for that reason.
    let params_cover = Cover::of(&quote!(#(#arg_params),*));
    let serialize = params_cover.wrap(
        quote!(#krate::__private::serde::),
        quote!(),
        quote!(Serialize),
    );
    let deserialize = params_cover.wrap(
        quote!(#krate::__private::serde::),
        quote!(),
        quote!(Deserialize),
    );
    // `T` and `E` are the `Workflow` impl's associated types, whose bounds are the serde
    // check of the workflow's output, reported on them. `run_workflow` takes them from the
    // impl rather than as its own parameters, so that check is not made twice.
    let OkErr {
        ok: ok_ty,
        err: err_ty,
    } = OkErr::split(krate, ret);
    // The call is spanned on the function's name, so an error about the body's future
    // (not `Send`, not `'static`, an error type without `Debug`) points at the workflow.
    let run_workflow = {
        let span = ident.span();
        let head = respan(
            quote!(#krate::__private::run_workflow::<#ident, #input_ident, _>),
            span,
        );
        let run_body = respan(
            quote! {
                |__workflow_ctx, __workflow_input: #input_ident| {
                    #ident::__workflow_body(__workflow_ctx, #(__workflow_input.#field_idents),*)
                }
            },
            span,
        );
        let args = parens(quote!(__workflow_ctx, __workflow_payload, #run_body), span);
        quote!(#head #args)
    };
    let lint = expand_lint(krate, findings, cfgs, &attrs.rest);
    quote! {
        #(#cfgs)*
        #struct_docs
        #[allow(
            non_camel_case_types,
            dead_code,
            missing_copy_implementations,
            missing_debug_implementations,
            clippy::empty_structs_with_brackets
        )]
        #vis struct #ident {}

        // The struct leaves the value namespace free, so a call `name(ctx, args)` finds this
        // function, which cannot be called: its where-clause reports how to start the
        // workflow. It returns what the workflow would, so that `.await?` adds no error.
        #(#cfgs)*
        #[doc(hidden)]
        #[allow(dead_code, clippy::too_many_arguments, clippy::arbitrary_source_item_ordering)]
        #vis fn #ident<__WorkflowM>(_: #krate::Context, #(_: #field_tys_again),*)
            -> ::core::future::Pending<#ret_ty>
        where
            #direct_call_bound
        {
            ::core::future::pending()
        }

        #(#cfgs)*
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code, clippy::arbitrary_source_item_ordering)]
        #[derive(#serialize, #deserialize)]
        #[serde(crate = #serde_crate)]
        struct #input_ident {
            #(#field_serde #field_idents: #field_tys,)*
        }

        // The generated items refer to the struct, which carries the function's
        // `#[deprecated]` if it has one: that warning is for the user's callers.
        #(#cfgs)*
        #[allow(deprecated)]
        impl #ident {
            /// The name this workflow is registered under.
            #[allow(dead_code)]
            #vis const NAME: &'static str = #name;

            /// Starts execution `id` of this workflow, or attaches to it if it already exists.
            ///
            /// The input is committed before this returns, so from then on the execution
            /// survives a crash of this process. Starting an `id` that already exists with
            /// this workflow is idempotent: it returns a handle to that execution.
            ///
            /// # Errors
            ///
            /// Fails if `id` belongs to an execution of another workflow, if this workflow
            /// is not registered with `rt`, if the input cannot be encoded or is over the
            /// size limit, or if the store cannot be written.
            #[allow(dead_code, clippy::too_many_arguments, clippy::future_not_send)]
            #vis async fn start(#rt: &#krate::Runtime, #id: #id_ty, #(#arg_params),*) -> #result_ty {
                Self::start_with(#rt, #id, ::core::default::Default::default(), #(#field_idents),*).await
            }

            /// Like [`start`](Self::start), with per-execution options that are journaled
            /// with the execution.
            ///
            /// # Errors
            ///
            /// As [`start`](Self::start).
            #[allow(dead_code, clippy::too_many_arguments, clippy::future_not_send)]
            #vis async fn start_with(
                #rt: &#krate::Runtime,
                #id: #id_ty,
                #start_options: #krate::StartOptions,
                #(#arg_params),*
            ) -> #result_ty {
                let __workflow_input = #input_ident { #(#field_idents),* };
                #krate::__private::start::<#ident, _>(
                    #rt,
                    ::core::convert::Into::into(#id),
                    #start_options,
                    &__workflow_input,
                )
                .await
            }

            /// Starts an execution of this workflow as a child of the workflow running
            /// `ctx`, durably and idempotently: the call takes its place in the parent's
            /// journal when it is made, and a replay of the parent finds the same child
            /// instead of starting another. The child's id is derived from the parent's
            /// (`parent/name-0`, `parent/name-1`, ...). Await
            /// [`ChildHandle::result`](#krate::ChildHandle::result) for its end; a
            /// cancel of the parent cancels it.
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis fn child(
                __workflow_parent: &#krate::Context,
                #(#arg_params),*
            ) -> impl ::core::future::Future<Output = #krate::ChildHandle<#ident>> + ::core::marker::Send + 'static {
                Self::child_with(__workflow_parent, ::core::default::Default::default(), #(#field_idents),*)
            }

            /// Like [`child`](Self::child), with options: the child's id, its start
            /// options, whether it outlives a cancel of its parent.
            #[allow(dead_code, clippy::too_many_arguments)]
            #vis fn child_with(
                __workflow_parent: &#krate::Context,
                __workflow_child_options: #krate::ChildOptions,
                #(#arg_params),*
            ) -> impl ::core::future::Future<Output = #krate::ChildHandle<#ident>> + ::core::marker::Send + 'static {
                let __workflow_input = #input_ident { #(#field_idents),* };
                #krate::__private::start_child::<#ident, _>(
                    __workflow_parent,
                    __workflow_child_options,
                    &__workflow_input,
                )
            }

            /// Resumes execution `id` now: a sleeping one wakes early, a paused one is
            /// unparked and an interrupted one is replayed. Running and finished executions
            /// are left as they are.
            ///
            /// # Errors
            ///
            /// Fails if there is no execution `id`, if it belongs to another workflow, or if
            /// the store cannot be read or written.
            #[allow(dead_code, clippy::future_not_send)]
            #vis async fn resume(#rt: &#krate::Runtime, #id: #id_ty) -> ::core::result::Result<(), #krate::Error> {
                #krate::__private::resume::<#ident>(#rt, ::core::convert::Into::into(#id)).await
            }

            #[doc(hidden)]
            #(#body_attrs)*
            async fn __workflow_body(#ctx, #(#body_params),*) -> #ret_ty #body

            #[doc(hidden)]
            fn __workflow_run(
                __workflow_ctx: #krate::Context,
                __workflow_payload: #krate::__private::Payload,
            ) -> #krate::__private::BoxFuture {
                #run_workflow
            }

            #[doc(hidden)]
            fn __workflow_check_input(
                __workflow_payload: &#krate::__private::Payload,
            ) -> ::core::result::Result<(), #krate::CodecError> {
                #krate::__private::check_input::<#input_ident>(__workflow_payload)
            }
        }

        #(#cfgs)*
        #[allow(deprecated)]
        impl #krate::Workflow for #ident {
            type Output = #ok_ty;
            type Error = #err_ty;

            fn descriptor() -> &'static #krate::__private::WorkflowDescriptor {
                static __WORKFLOW_DESCRIPTOR: #krate::__private::WorkflowDescriptor =
                    #krate::__private::WorkflowDescriptor {
                        name: #name,
                        module_path: ::core::module_path!(),
                        fn_name: #fn_name,
                        package_version: match ::core::option_env!("CARGO_PKG_VERSION") {
                            ::core::option::Option::Some(version) => version,
                            ::core::option::Option::None => "",
                        },
                        max_restarts: #max_restarts,
                        restart_delay: #restart_delay,
                        timeout: #timeout,
                        run: #ident::__workflow_run,
                        input_type: || ::core::any::type_name::<(#(#field_tys_input,)*)>(),
                        output_type: || ::core::any::type_name::<#ok_ty>(),
                        error_type: || ::core::any::type_name::<#err_ty>(),
                        check_input: #ident::__workflow_check_input,
                    };
                &__WORKFLOW_DESCRIPTOR
            }
        }

        #(#cfgs)*
        #[allow(deprecated)]
        const _: () = {
            #krate::__private::inventory::submit! {
                #krate::__private::Registration(<#ident as #krate::Workflow>::descriptor)
            }
        };

        #lint
    }
}

/// The determinism lint's findings as references to deprecated constants, each spanned
/// on its finding, so rustc prints the constant's note as a `deprecated` warning at the
/// user's call. They sit in a `const _` item of their own rather than in the body: the
/// body is inside the struct's impl, which allows `deprecated`, and a constant of `()`
/// costs nothing at run time. The item carries the function's `cfg`s and lint levels, so
/// `#[allow(deprecated)]` on the function silences it too.
fn expand_lint(
    krate: &syn::Path,
    findings: &[Finding],
    cfgs: &[&Attribute],
    attrs: &[&Attribute],
) -> TokenStream {
    if findings.is_empty() {
        return TokenStream::new();
    }
    let levels = attrs.iter().filter(|attr| {
        ["allow", "warn", "deny", "forbid"]
            .iter()
            .any(|level| attr.path().is_ident(level))
    });
    let uses = findings.iter().map(|finding| {
        let constant = Ident::new(finding.kind.constant(), Span::call_site());
        respan(
            quote!(const _: () = #krate::__private::nondeterministic::#constant;),
            finding.at.span(),
        )
    });
    quote! {
        #(#cfgs)*
        #(#levels)*
        const _: () = {
            #(#uses)*
        };
    }
}

/// `name`, or `__workflow_name` if one of the workflow's arguments is already called that.
fn generated_name(params: &[Param], name: &str) -> Ident {
    if params.iter().any(|param| param.ident.unraw() == name) {
        format_ident!("__workflow_{}", name)
    } else {
        Ident::new(name, Span::call_site())
    }
}

/// The user's attributes, by where they go: docs and `#[deprecated]` on the struct (what
/// callers name), `cfg` on every item, everything else (lint levels, other attribute
/// macros) on the body.
struct SortedAttrs<'a> {
    cfg: Vec<&'a Attribute>,
    docs: Vec<&'a Attribute>,
    rest: Vec<&'a Attribute>,
}

impl<'a> SortedAttrs<'a> {
    fn new(attrs: &'a [Attribute]) -> Self {
        let mut sorted = SortedAttrs {
            cfg: Vec::new(),
            docs: Vec::new(),
            rest: Vec::new(),
        };
        for attr in attrs {
            let path = attr.path();
            if path.is_ident("cfg") || path.is_ident("cfg_attr") {
                sorted.cfg.push(attr);
            } else if path.is_ident("doc") || path.is_ident("deprecated") {
                sorted.docs.push(attr);
            } else {
                sorted.rest.push(attr);
            }
        }
        sorted
    }
}
