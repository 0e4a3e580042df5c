//! `#[step]`: the user's `async fn` becomes a plain `fn` returning the runtime's step
//! future. Calling it reads the workflow context right away (so a step's key is reserved at
//! call time), and the original body runs, once per attempt, as a nested `async fn`.

use super::{Cover, OkErr, count, duration, flag, parens, respan};
use crate::args::{Millis, Setting};
use crate::parse::RetModel;
use crate::validate::{Param, Step};
use proc_macro2::{Ident, TokenStream};
use quote::quote;

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

    // The signature's `impl Future` needs the runtime's bounds on `T` and `E` too, so it is
    // spanned over the return type like the call (see `step_call`). Its `impl` resolves as
    // this macro's code, so it captures the arguments' lifetimes by the 2024 rules even in
    // a crate on an older edition.
    let ret_cover = Cover::of(ret_ty).as_macro_code();
    let future_ty = ret_cover.wrap(
        quote!(impl ::core::future::Future<Output =),
        ret_ty,
        quote!(>),
    );

    let name = &options.name;
    let max_attempts = count(options.max_attempts);
    let backoff = duration(options.backoff);
    let exponential = flag(options.exponential);
    let max_backoff = duration(options.max_backoff);
    let timeout = duration(options.timeout.as_ref().map(|timeout| timeout.value));
    let timeout_check = timeout_check(krate, ret, options.timeout.as_ref());
    let at_most_once = options.at_most_once;

    let (retry_arg_trait, attempt) = if options.runs_once() {
        (TokenStream::new(), move_once(params))
    } else if params.is_empty() {
        (
            TokenStream::new(),
            quote!(let __workflow_attempt = __workflow_body;),
        )
    } else {
        (retry_arg_trait(), clone_per_attempt(params))
    };
    let step_call = step_call(krate, ret_cover, OkErr::projected(krate, ret, ret_cover));

    // `#[track_caller]`: a determinism check that fails at this call names
    // the line of the workflow body that made it.
    quote! {
        #(#attrs)*
        #[track_caller]
        #vis fn #ident #generics (#(#outer_params),*) -> #future_ty #where_clause {
            static __WORKFLOW_STEP: #krate::__private::StepMeta = #krate::__private::StepMeta {
                name: #name,
                max_attempts: #max_attempts,
                backoff: #backoff,
                exponential: #exponential,
                max_backoff: #max_backoff,
                timeout: #timeout,
                slow: ::core::sync::atomic::AtomicBool::new(false),
                at_most_once: #at_most_once,
            };

            async fn __workflow_body #generics (#(#body_params),*) -> #ret_ty #where_clause #block

            #retry_arg_trait
            #timeout_check
            #attempt
            #step_call
        }
    }
}

/// `step_call::<R::Ok, R::Err, _, _, _, _>(&__WORKFLOW_STEP, convert, __workflow_attempt)`.
///
/// Every bound of `step_call` on `T` and `E` is reported at one span, the return type: the
/// explicit type arguments are projections spanned over it, and so are the call and the
/// signature's `impl Future`, whose checks repeat the bounds. The compiler reports a
/// repeated error at one span once, so a type that cannot be journaled gets one error.
fn step_call(krate: &syn::Path, ret_cover: Cover, types: OkErr) -> TokenStream {
    let OkErr { ok, err } = types;
    // Runtime failures (a timeout, an unencodable result) become the step's error when
    // `E: From<StepFailure>`, picked by autoref on the probe.
    let convert = quote! {
        |__workflow_failure| {
            #[allow(unused_imports)]
            use #krate::__private::{ConvertFailure as _, NoConvertFailure as _};
            (&&#krate::__private::FailureProbe::<#err>::new())
                .__workflow_convert(__workflow_failure)
        }
    };
    let path = ret_cover.wrap(
        quote!(#krate::__private::step_call::<),
        quote!(#ok, #err),
        quote!(, _, _, _, _>),
    );
    let args = parens(
        quote!(&__WORKFLOW_STEP, #convert, __workflow_attempt),
        ret_cover.last,
    );
    quote!(#path #args)
}

/// With a `timeout`, the runtime hands a timed-out attempt to the workflow as the step's
/// error, which must then convert from `StepFailure`. Without this check the step would
/// compile and its execution end `failed` at the first timeout. Spanned on the option's
/// value.
fn timeout_check(
    krate: &syn::Path,
    ret: &RetModel,
    timeout: Option<&Setting<Millis>>,
) -> TokenStream {
    let Some(timeout) = timeout else {
        return TokenStream::new();
    };
    let cover = Cover {
        first: timeout.span,
        last: timeout.span,
    };
    let OkErr { err, .. } = OkErr::projected(krate, ret, cover);
    cover.wrap(
        quote!(#krate::__private::assert_holds_timeout::<),
        err,
        quote!(, _>();),
    )
}

/// A local trait through which arguments are cloned, so that a missing `Clone` is reported
/// with why the step needs it.
fn retry_arg_trait() -> TokenStream {
    quote! {
        #[diagnostic::on_unimplemented(
            message = "`#[step]` argument type `{Self}` is not `Clone`, but the step can retry and each attempt gets its own copy of the arguments",
            label = "not `Clone`",
            note = "derive or implement `Clone`, take the argument by reference, or set `max_attempts = 1` to move it into the only attempt"
        )]
        trait __WorkflowRetryArg: ::core::marker::Sized {
            fn __workflow_clone(&self) -> Self;
        }

        impl<__WorkflowT: ::core::clone::Clone> __WorkflowRetryArg for __WorkflowT {
            fn __workflow_clone(&self) -> Self {
                ::core::clone::Clone::clone(self)
            }
        }
    }
}

/// A step can retry, so each attempt gets its own clone of every argument (a reference
/// clones for free). Each clone is spanned on its parameter, so a missing `Clone` points
/// at the parameter's type.
fn clone_per_attempt(params: &[Param]) -> TokenStream {
    let clones = params.iter().map(|Param { ident, ty, .. }| {
        let cover = Cover::of(ty);
        let path = respan(quote!(__WorkflowRetryArg::__workflow_clone), ident.span());
        // `&name` spans the type, where "not `Clone`" belongs; the call spans the name.
        let ampersand = respan(quote!(&), cover.first);
        let mut name = ident.clone();
        name.set_span(cover.last);
        let arg = parens(quote!(#ampersand #name), ident.span());
        quote!(#path #arg)
    });
    quote! {
        #[allow(clippy::used_underscore_binding)]
        let __workflow_attempt = move || __workflow_body(#(#clones),*);
    }
}

/// With `max_attempts = 1` the runtime runs the body once, so the arguments move into
/// that attempt and need not be `Clone`.
fn move_once(params: &[Param]) -> TokenStream {
    let idents: Vec<&Ident> = params.iter().map(|param| &param.ident).collect();
    quote! {
        let mut __workflow_args = ::core::option::Option::Some((#(#idents,)*));
        // The arguments are bound again, under their own names, inside the attempt.
        #[allow(
            clippy::used_underscore_binding,
            clippy::shadow_reuse,
            clippy::shadow_same,
            clippy::shadow_unrelated
        )]
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
