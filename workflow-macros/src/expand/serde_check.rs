//! The serde checks of a `#[workflow]`'s signature: each argument, the output and the
//! error type must be `Serialize` and `Deserialize`, since the runtime journals them.
//!
//! A type that is not would otherwise fail the bounds of the input struct's derived impls,
//! of `Workflow::Output` and `Workflow::Error`, and of every function that encodes or decodes
//! them: a cascade of serde errors pointing into generated code. Instead, one constant runs
//! a check per type, spanned on that type in the signature, whose message names the
//! argument (or the output, or the error) and the workflow. The serde impls of the input
//! struct and the `Workflow` impl name that constant in their where-clauses, so when a
//! check fails the compiler checks nothing under them and the check's error stands alone.
//!
//! Each type gets two checks, `Serialize` then `Deserialize`. The second takes the type
//! from the first through `__private::Checked`, which nothing can infer when the first
//! failed, so a type with neither impl gets one error, not two.

use super::{Cover, parens};
use crate::validate::Param;
use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::Ident;

/// What a checked type is in the signature; it picks the wording of the errors.
#[derive(Clone, Copy)]
enum Role {
    Argument,
    Output,
    Error,
}

/// One type of the signature to check.
struct Checked<'a> {
    role: Role,
    /// "the argument `order` of workflow `checkout`".
    what: String,
    ty: &'a dyn ToTokens,
}

impl Checked<'_> {
    fn ty(&self) -> TokenStream {
        self.ty.to_token_stream()
    }
}

/// The constant `name` that checks every argument type and `ok` and `err` (the output and
/// error types, as generated code writes them).
pub(super) fn expand_serde_checks(
    krate: &syn::Path,
    name: &Ident,
    fn_name: &str,
    params: &[Param],
    ok: &TokenStream,
    err: &TokenStream,
) -> TokenStream {
    let mut checked: Vec<Checked<'_>> = params
        .iter()
        .map(|param| Checked {
            role: Role::Argument,
            what: format!(
                "the argument `{}` of workflow `{fn_name}`",
                syn::ext::IdentExt::unraw(&param.ident)
            ),
            ty: &param.ty,
        })
        .collect();
    checked.push(Checked {
        role: Role::Output,
        what: format!("the output of workflow `{fn_name}`"),
        ty: ok,
    });
    checked.push(Checked {
        role: Role::Error,
        what: format!("the error type of workflow `{fn_name}`"),
        ty: err,
    });
    let checks = checked
        .iter()
        .enumerate()
        .map(|(index, checked)| expand_check(krate, index, checked));
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, dead_code)]
        const #name: usize = {
            #(#checks)*
            0
        };
    }
}

/// The two check traits of one type, their `const fn`s, and the calls, spanned on the type.
fn expand_check(krate: &syn::Path, index: usize, checked: &Checked<'_>) -> TokenStream {
    let private = quote!(#krate::__private);
    let serde = quote!(#private::serde);
    let ser_trait = format_ident!("__WorkflowSerialize{}", index);
    let de_trait = format_ident!("__WorkflowDeserialize{}", index);
    let ser_fn = format_ident!("__workflow_serialize_{}", index);
    let de_fn = format_ident!("__workflow_deserialize_{}", index);
    let Wording {
        ser_fix,
        de_fix,
        label,
        note,
    } = Wording::of(checked.role);
    let what = &checked.what;
    let ser_message = format!(
        "{what} must be serializable: `{{Self}}` does not implement `serde::Serialize`; {ser_fix}"
    );
    let de_message = format!(
        "{what} must be deserializable: `{{Self}}` does not implement `serde::Deserialize`; {de_fix}"
    );

    // `ser::<Ty, _>()` spans the type; `de::<_, _>(..)` too, around it.
    let ty = checked.ty();
    let cover = Cover::of(&ty);
    let ser_call = cover.wrap(quote!(#ser_fn::<), ty, quote!(, _>()));
    let de_path = cover.wrap(quote!(#de_fn::<_, _), TokenStream::new(), quote!(>));
    let de_args = parens(ser_call, cover.last);
    // The generic names are the same in every check, so build them once.
    let t = Ident::new("__WorkflowT", Span::call_site());
    let m = Ident::new("__WorkflowM", Span::call_site());
    quote! {
        #[diagnostic::on_unimplemented(
            message = #ser_message,
            label = #label,
            note = #note
        )]
        trait #ser_trait<#m> {
            type Checked;
        }
        impl<#t: #serde::Serialize> #ser_trait<#private::Serde> for #t {
            type Checked = #t;
        }
        impl<#t: #private::NoType + #serde::Serialize> #ser_trait<#private::Unreachable> for #t {
            type Checked = #t;
        }
        #[diagnostic::on_unimplemented(
            message = #de_message,
            label = #label,
            note = #note
        )]
        trait #de_trait<#m> {}
        impl<#t: #serde::de::DeserializeOwned> #de_trait<#private::Serde> for #t {}
        impl<#t: #private::NoType + #serde::de::DeserializeOwned> #de_trait<#private::Unreachable>
            for #t {}
        const fn #ser_fn<#t: #ser_trait<#m>, #m>() -> #private::Checked<<#t as #ser_trait<#m>>::Checked> {
            #private::Checked::new()
        }
        const fn #de_fn<#t: #de_trait<#m>, #m>(_: #private::Checked<#t>) {}
        #de_path #de_args;
    }
}

/// The parts of the messages that depend on the role. The `Deserialize` check only runs
/// once `Serialize` passed, so its fix names `Deserialize` alone.
struct Wording {
    ser_fix: &'static str,
    de_fix: &'static str,
    label: &'static str,
    note: &'static str,
}

impl Wording {
    fn of(role: Role) -> Wording {
        const DERIVE: &str = "add `#[derive(Serialize, Deserialize)]`";
        const DERIVE_DE: &str = "add `#[derive(Deserialize)]`";
        match role {
            Role::Argument => Wording {
                ser_fix: DERIVE,
                de_fix: DERIVE_DE,
                label: "journaled when the workflow starts, and decoded by every replay",
                note: "for a type of another crate, enable its `serde` feature if it has one, or take a serde type that holds what the workflow needs",
            },
            Role::Output => Wording {
                ser_fix: DERIVE,
                de_fix: DERIVE_DE,
                label: "journaled when the workflow completes, and decoded by `Handle::result`",
                note: "for a type of another crate, enable its `serde` feature if it has one, or return a serde type that holds what the caller needs",
            },
            Role::Error => Wording {
                ser_fix: "return `replayflow::AnyError`, or derive `Serialize` and `Deserialize` for your own error type",
                de_fix: "return `replayflow::AnyError`, or add `#[derive(Deserialize)]`",
                label: "journaled when the workflow fails, and decoded by `Handle::result`",
                note: "`?` converts `anyhow::Error`, `std::io::Error`, boxed errors and strings into `replayflow::AnyError`",
            },
        }
    }
}
