//! Turns a validated model into code. Nothing here can find a user error.
//!
//! Generated code reaches the runtime only through `<crate>::__private` and the runtime's
//! public paths, where `<crate>` is `::replayflow` or the `crate = "..."` option. Bound checks
//! are spanned on the user's types so their errors point there.

mod step;
mod workflow;

pub(crate) use step::expand_step;
pub(crate) use workflow::expand_workflow;

use crate::args::Millis;
use crate::parse::RetModel;
use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::Path;

/// `Some(value)` or `None`, spelled with absolute paths.
fn option(value: Option<TokenStream>) -> TokenStream {
    match value {
        Some(value) => quote!(::core::option::Option::Some(#value)),
        None => quote!(::core::option::Option::None),
    }
}

fn count(value: Option<u32>) -> TokenStream {
    // Unsuffixed, so the literal takes whatever integer type the runtime's field has.
    option(value.map(|value| Literal::u32_unsuffixed(value).into_token_stream()))
}

fn duration(value: Option<Millis>) -> TokenStream {
    option(value.map(|Millis(millis)| {
        let millis = Literal::u64_unsuffixed(millis);
        quote!(::core::time::Duration::from_millis(#millis))
    }))
}

fn flag(value: Option<bool>) -> TokenStream {
    option(value.map(|value| value.into_token_stream()))
}

/// Gives every token of `tokens` the same span, so an error on the expression they form
/// points at `span` (the crate path would otherwise carry the attribute's span).
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// The first and last spans of a piece of user syntax. Generated tokens that start with
/// `first` and end with `last` form an expression or type whose span is exactly that
/// syntax, so errors on it underline the user's code. (A single span cannot cover several
/// tokens on stable, where `Span::join` returns `None`.)
#[derive(Clone, Copy)]
struct Cover {
    first: Span,
    last: Span,
}

impl Cover {
    fn of(node: &impl ToTokens) -> Cover {
        let mut tokens = node.to_token_stream().into_iter();
        let first = tokens
            .next()
            .map_or_else(Span::call_site, |token| match token {
                TokenTree::Group(group) => group.span_open(),
                other => other.span(),
            });
        let last = tokens.last().map_or(first, |token| match token {
            TokenTree::Group(group) => group.span_close(),
            other => other.span(),
        });
        Cover { first, last }
    }

    /// The same locations, resolved as code written by this macro: such tokens keep the
    /// macro crate's edition whatever the user's crate is on.
    fn as_macro_code(self) -> Cover {
        Cover {
            first: Span::call_site().located_at(self.first),
            last: Span::call_site().located_at(self.last),
        }
    }

    /// `head`, then `middle` untouched, then `tail`, spanned from `first` to `last`.
    fn wrap(self, head: TokenStream, middle: impl ToTokens, tail: TokenStream) -> TokenStream {
        let head = respan(head, self.first);
        let tail = respan(tail, self.last);
        quote!(#head #middle #tail)
    }
}

/// `T` and `E` of the return type, as generated code should write them.
struct OkErr {
    ok: TokenStream,
    err: TokenStream,
}

impl OkErr {
    /// The user's own tokens when the return type is spelled `Result<T, E>`, so that an
    /// unsatisfied bound on one of them is reported on it; otherwise (`io::Result<T>` and
    /// other aliases) the projections of [`OkErr::projected`].
    fn split(krate: &Path, ret: &RetModel) -> OkErr {
        match &ret.split {
            Some((ok, err)) => OkErr {
                ok: ok.to_token_stream(),
                err: err.to_token_stream(),
            },
            None => OkErr::projected(krate, ret, Cover::of(&ret.ty)),
        }
    }

    /// `<R as SplitResult>::Ok` and `::Err`, spanned by `cover` (over the return type `R`).
    fn projected(krate: &Path, ret: &RetModel, cover: Cover) -> OkErr {
        let ty = &ret.ty;
        let project = |assoc: TokenStream| {
            cover.wrap(
                quote!(<),
                ty,
                quote!(as #krate::__private::SplitResult>::#assoc),
            )
        };
        OkErr {
            ok: project(quote!(Ok)),
            err: project(quote!(Err)),
        }
    }
}

/// `( inner )` whose parentheses carry `span`, leaving the spans inside alone.
fn parens(inner: TokenStream, span: Span) -> TokenStream {
    let mut group = Group::new(Delimiter::Parenthesis, inner);
    group.set_span(span);
    TokenTree::Group(group).into()
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    /// Expands `#[step(args)] item` and checks the output is a well-formed file.
    fn step(args: TokenStream, item: TokenStream) -> String {
        let out = crate::step_attribute(args, item);
        syn::parse2::<syn::File>(out.clone()).expect("the expansion parses as items");
        out.to_string()
    }

    fn workflow(args: TokenStream, item: TokenStream) -> String {
        let out = crate::workflow_attribute(args, item);
        syn::parse2::<syn::File>(out.clone()).expect("the expansion parses as items");
        out.to_string()
    }

    #[test]
    fn step_becomes_a_plain_fn_around_the_runtime_call() {
        let out = step(
            quote!(max_attempts = 5, backoff = "200ms"),
            quote! {
                /// Charges.
                pub async fn charge<'a>(order: &'a Order, mut amount: u64) -> Result<Payment, PaymentError> {
                    amount += 1;
                    Ok(Payment)
                }
            },
        );
        assert!(out.contains("pub fn charge < 'a >"), "{out}");
        assert!(!out.contains("pub async fn"), "{out}");
        assert!(
            out.contains("max_attempts : :: core :: option :: Option :: Some (5)"),
            "{out}"
        );
        assert!(
            out.contains(":: core :: time :: Duration :: from_millis (200)"),
            "{out}"
        );
        assert!(
            out.contains("async fn __workflow_body < 'a > (order : & 'a Order , mut amount : u64)"),
            "{out}"
        );
        assert!(
            out.contains(":: replayflow :: __private :: step_call"),
            "{out}"
        );
        assert!(out.contains("__workflow_clone"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
    }

    #[test]
    fn timeout_requires_an_error_that_holds_a_step_failure() {
        let item = quote!(
            async fn a() -> Result<(), E> {
                Ok(())
            }
        );
        let out = step(quote!(timeout = "5s"), item.clone());
        assert!(out.contains("__private :: assert_holds_timeout"), "{out}");
        let out = step(quote!(), item);
        assert!(!out.contains("assert_holds_timeout"), "{out}");
    }

    #[test]
    fn single_attempt_step_moves_its_arguments() {
        let out = step(
            quote!(max_attempts = 1),
            quote!(
                async fn send(conn: Conn) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains("__workflow_args"), "{out}");
        assert!(!out.contains("__workflow_clone"), "{out}");
    }

    #[test]
    fn crate_option_replaces_the_runtime_path() {
        let out = step(
            quote!(crate = "my_wf"),
            quote!(
                async fn a() -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(out.contains("my_wf :: __private :: StepMeta"), "{out}");
        assert!(!out.contains(":: replayflow ::"), "{out}");
    }

    #[test]
    fn workflow_becomes_a_struct_with_start_and_resume() {
        let out = workflow(
            quote!(max_restarts = 2, name = "orders"),
            quote! {
                pub async fn order_processing(ctx: Context, order: Order, n: u32) -> Result<Receipt, OrderError> {
                    Ok(Receipt)
                }
            },
        );
        for expected in [
            "pub struct order_processing { }",
            "struct __workflow_input_order_processing { # [serde (serialize_with = \"< Order as :: replayflow :: __private :: WorkflowArg > :: serialize_arg\" , deserialize_with = \"< Order as :: replayflow :: __private :: WorkflowArg > :: deserialize_arg\")] order : Order ,",
            "pub const NAME : & 'static str = \"orders\"",
            "pub async fn start (rt : & :: replayflow :: Runtime",
            "pub async fn start_with",
            "pub async fn resume",
            "async fn __workflow_body (ctx : Context , order : Order , n : u32)",
            "impl :: replayflow :: Workflow for order_processing",
            "fn_name : \"order_processing\"",
            "inventory :: submit !",
            "fn order_processing < __WorkflowM > (_ : :: replayflow :: Context , _ : Order , _ : u32)",
            "serde (crate = \":: replayflow::__private::serde\")",
        ] {
            assert!(out.contains(expected), "missing {expected:?} in {out}");
        }
    }

    #[test]
    fn generated_parameters_avoid_the_arguments_names() {
        let out = workflow(
            quote!(),
            quote!(
                async fn f(ctx: Context, id: u64, rt: u8) -> Result<(), E> {
                    Ok(())
                }
            ),
        );
        assert!(
            out.contains("__workflow_rt : & :: replayflow :: Runtime"),
            "{out}"
        );
        assert!(out.contains("__workflow_id : impl"), "{out}");
        assert!(
            out.contains("options : :: replayflow :: StartOptions"),
            "{out}"
        );
    }

    #[test]
    fn lint_findings_refer_to_deprecated_constants_outside_the_body() {
        let item = quote! {
            #[allow(deprecated)]
            async fn f(ctx: Context) -> Result<(), E> {
                let a = std::time::SystemTime::now();
                #[allow_nondeterministic]
                let b = std::time::Instant::now();
                Ok(())
            }
        };
        let out = workflow(quote!(), item.clone());
        let lint = "# [allow (deprecated)] const _ : () = { \
                    const _ : () = :: replayflow :: __private :: nondeterministic :: SYSTEM_TIME_NOW ; }";
        assert!(out.contains(lint), "{out}");
        assert!(!out.contains("INSTANT_NOW"), "{out}");
        assert!(!out.contains("allow_nondeterministic"), "{out}");
        assert!(
            out.contains("let b = std :: time :: Instant :: now ()"),
            "{out}"
        );

        let out = workflow(quote!(crate = "my_wf"), item.clone());
        assert!(
            out.contains("my_wf :: __private :: nondeterministic :: SYSTEM_TIME_NOW"),
            "{out}"
        );

        let out = workflow(quote!(allow_nondeterministic), item);
        assert!(!out.contains("nondeterministic ::"), "{out}");
        assert!(!out.contains("allow_nondeterministic"), "{out}");
    }

    #[test]
    fn failure_drops_the_lint_markers_from_the_item() {
        let out = workflow(
            quote!(),
            quote!(
                async fn f(a: u8) -> Result<(), E> {
                    #[allow_nondeterministic]
                    let t = SystemTime::now();
                    Ok(())
                }
            ),
        );
        assert!(out.contains("compile_error"), "{out}");
        assert!(!out.contains("allow_nondeterministic"), "{out}");
    }

    #[test]
    fn failure_keeps_the_item_next_to_the_errors() {
        let out = step(
            quote!(max_attempts = 0),
            quote!(
                fn charge(amount: u64) -> Result<u64, E> {
                    Ok(amount)
                }
            ),
        );
        assert!(out.starts_with("fn charge (amount : u64)"), "{out}");
        assert_eq!(out.matches("compile_error").count(), 2, "{out}");
        assert!(!out.contains("__private"), "{out}");
    }
}
