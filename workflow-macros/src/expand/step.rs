//! `#[step]`: the user's `async fn` becomes a plain `fn` returning the runtime's step
//! future. Calling it reads the workflow context right away (so a step's key is reserved at
//! call time), and the original body runs, once per attempt, as a nested `async fn`.

use super::{Cover, count, duration, flag, output_check};
use crate::validate::{Param, Step};
use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

pub(crate) fn expand_step(step: &Step) -> TokenStream {
    let Step {
        item,
        params,
        ret,
        options,
    } = step;
    let krate = &options.krate;
    let attrs = &item.attrs;
    let vis = &item.vis;
    let ident = &item.sig.ident;
    let generics = &item.sig.generics;
    let where_clause = &generics.where_clause;
    let block = &item.block;
    let ret_ty = &ret.ty;

    // The wrapper drops `mut` from its parameters; the body keeps them as written.
    let outer_params = params
        .iter()
        .map(|Param { ident, ty, .. }| quote!(#ident: #ty));
    let body_params = params.iter().map(
        |Param {
             attrs,
             mutability,
             ident,
             ty,
         }| quote!(#(#attrs)* #mutability #ident: #ty),
    );
    // Spanned over the return type, like everything that needs `T` and `E` to be serde
    // types (see `output_check`).
    let ret_cover = Cover::of(ret_ty);
    let future_ty = ret_cover.wrap(
        quote!(impl ::core::future::Future<Output =),
        ret_ty,
        quote!(>),
    );
    let step_call = ret_cover.wrap(quote!(#krate::__private::), quote!(), quote!(step_call));

    let name = &options.name;
    let max_attempts = count(options.max_attempts);
    let backoff = duration(options.backoff);
    let exponential = flag(options.exponential);
    let max_backoff = duration(options.max_backoff);
    let timeout = duration(options.timeout);

    let check = output_check(krate, ret);
    let attempt = if options.runs_once() {
        move_once(params)
    } else {
        clone_per_attempt(params)
    };

    quote! {
        #(#attrs)*
        #vis fn #ident #generics (#(#outer_params),*) -> #future_ty #where_clause {
            static __WORKFLOW_STEP: #krate::__private::StepMeta = #krate::__private::StepMeta {
                name: #name,
                max_attempts: #max_attempts,
                backoff: #backoff,
                exponential: #exponential,
                max_backoff: #max_backoff,
                timeout: #timeout,
            };

            async fn __workflow_body #generics (#(#body_params),*) -> #ret_ty #where_clause #block

            #check
            #attempt
            #step_call(
                &__WORKFLOW_STEP,
                |__workflow_failure| {
                    #[allow(unused_imports)]
                    use #krate::__private::{ConvertFailure as _, NoConvertFailure as _};
                    (&&#krate::__private::FailureProbe::<
                        <#ret_ty as #krate::__private::SplitResult>::Err,
                    >::new())
                        .__workflow_convert(__workflow_failure)
                },
                __workflow_attempt,
            )
        }
    }
}

/// Lints that the per-attempt closure can trigger on the user's argument names and types.
fn attempt_allows() -> TokenStream {
    quote! {
        #[allow(
            clippy::clone_on_copy,
            clippy::clone_on_ref_ptr,
            clippy::redundant_clone,
            clippy::used_underscore_binding
        )]
    }
}

/// A step can retry, so each attempt gets its own clone of every argument (a reference
/// clones for free). The clone is spanned on the argument's type, so a missing `Clone`
/// is reported there.
fn clone_per_attempt(params: &[Param]) -> TokenStream {
    let allows = attempt_allows();
    let clones = params.iter().map(
        |Param { ident, ty, .. }| quote_spanned!(ty.span()=> ::core::clone::Clone::clone(&#ident)),
    );
    quote! {
        #allows
        let __workflow_attempt = move || __workflow_body(#(#clones),*);
    }
}

/// With `max_attempts = 1` the runtime runs the body once, so the arguments move into
/// that attempt and need not be `Clone`.
fn move_once(params: &[Param]) -> TokenStream {
    let allows = attempt_allows();
    let idents: Vec<_> = params.iter().map(|param| &param.ident).collect();
    quote! {
        let mut __workflow_args = ::core::option::Option::Some((#(#idents,)*));
        #allows
        let __workflow_attempt = move || {
            let __workflow_taken = ::core::option::Option::take(&mut __workflow_args);
            async move {
                match __workflow_taken {
                    ::core::option::Option::Some((#(#idents,)*)) => __workflow_body(#(#idents),*).await,
                    // Unreachable: a single-attempt body is called once. A second call
                    // has no arguments to run with and never completes rather than panic.
                    ::core::option::Option::None => ::core::future::pending().await,
                }
            }
        };
    }
}
