//! Attribute options: `#[step(max_attempts = 5, backoff = "200ms")]`, `#[workflow(max_restarts = 2)]`.
//!
//! Option names are spelled once, in `keys`, as custom keywords. Parsing happens in two
//! passes: a syntactic one into `key [= value]` entries (a syntax error stops there), then
//! a typed one, in `value`, that collects every unknown, duplicate or bad option.

mod duration;
mod keys;
mod value;

pub(crate) use duration::Millis;
pub(crate) use keys::{AttrKind, Key};

use crate::errors::Errors;
use keys::{Example, KeyList};
use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Path, Token};
use value::{OptionCtx, count_value, duration_value, flag_value, name_value, path_value};

/// A value given to an option, with the span of its literal (or of the key for a bare flag).
#[derive(Clone, Debug)]
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// Options of `#[step(...)]` as written; `None` means "use the runtime default".
#[derive(Default, Debug)]
pub(crate) struct StepConfig {
    pub(crate) name: Option<Setting<String>>,
    pub(crate) max_attempts: Option<Setting<u32>>,
    pub(crate) backoff: Option<Setting<Millis>>,
    pub(crate) exponential: Option<Setting<bool>>,
    pub(crate) max_backoff: Option<Setting<Millis>>,
    pub(crate) timeout: Option<Setting<Millis>>,
    pub(crate) at_most_once: Option<Setting<bool>>,
    pub(crate) krate: Option<Setting<Path>>,
}

/// Options of `#[workflow(...)]` as written; `None` means "use the runtime default".
#[derive(Default, Debug)]
pub(crate) struct WorkflowConfig {
    pub(crate) name: Option<Setting<String>>,
    pub(crate) max_restarts: Option<Setting<u32>>,
    pub(crate) restart_delay: Option<Setting<Millis>>,
    /// How long an execution may take, from its start.
    pub(crate) timeout: Option<Setting<Millis>>,
    pub(crate) allow_nondeterministic: Option<Setting<bool>>,
    pub(crate) krate: Option<Setting<Path>>,
}

/// One `key` or `key = value` entry, before its key or value is checked.
struct Entry {
    /// `None` for a name that is no option of either attribute.
    key: Option<Key>,
    ident: Ident,
    value: Option<Expr>,
}

fn parse_entries(attr: AttrKind, tokens: TokenStream) -> syn::Result<Vec<Entry>> {
    let parser = |input: ParseStream<'_>| {
        let mut entries = Vec::new();
        while !input.is_empty() {
            entries.push(parse_entry(attr, input)?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(entries)
    };
    parser.parse2(tokens)
}

fn parse_entry(attr: AttrKind, input: ParseStream<'_>) -> syn::Result<Entry> {
    if !input.peek(Ident::peek_any) {
        return Err(input.error(format_args!(
            "expected a {attr} option like {}, one of {}",
            Example(attr.keys()[1]),
            KeyList(attr.keys()),
        )));
    }
    let key = Key::peek(input);
    let ident = input.call(Ident::parse_any)?;
    let value = if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        Some(input.parse::<Expr>()?)
    } else {
        None
    };
    Ok(Entry { key, ident, value })
}

/// Parses the options of `#[step(...)]`.
pub(crate) fn parse_step_config(tokens: TokenStream) -> syn::Result<StepConfig> {
    let attr = AttrKind::Step;
    let entries = parse_entries(attr, tokens)?;
    let mut errors = Errors::new();
    let mut config = StepConfig::default();
    for entry in entries {
        let Some(key) = known_key(attr, &entry, &mut errors) else {
            continue;
        };
        let ctx = OptionCtx {
            attr,
            key,
            entry: &entry,
        };
        match key {
            Key::Name => ctx.store(&mut config.name, name_value(&ctx), &mut errors),
            Key::MaxAttempts => {
                ctx.store(&mut config.max_attempts, count_value(&ctx, 1), &mut errors)
            }
            Key::Backoff => ctx.store(
                &mut config.backoff,
                duration_value(&ctx, false),
                &mut errors,
            ),
            Key::Exponential => ctx.store(&mut config.exponential, flag_value(&ctx), &mut errors),
            Key::MaxBackoff => ctx.store(
                &mut config.max_backoff,
                duration_value(&ctx, false),
                &mut errors,
            ),
            Key::Timeout => ctx.store(&mut config.timeout, duration_value(&ctx, true), &mut errors),
            Key::AtMostOnce => ctx.store(&mut config.at_most_once, flag_value(&ctx), &mut errors),
            Key::Crate => ctx.store(&mut config.krate, path_value(&ctx), &mut errors),
            Key::MaxRestarts | Key::RestartDelay | Key::AllowNondeterministic => {}
        }
    }
    errors.finish(config)
}

/// Parses the options of `#[workflow(...)]`.
pub(crate) fn parse_workflow_config(tokens: TokenStream) -> syn::Result<WorkflowConfig> {
    let attr = AttrKind::Workflow;
    let entries = parse_entries(attr, tokens)?;
    let mut errors = Errors::new();
    let mut config = WorkflowConfig::default();
    for entry in entries {
        let Some(key) = known_key(attr, &entry, &mut errors) else {
            continue;
        };
        let ctx = OptionCtx {
            attr,
            key,
            entry: &entry,
        };
        match key {
            Key::Name => ctx.store(&mut config.name, name_value(&ctx), &mut errors),
            Key::MaxRestarts => {
                ctx.store(&mut config.max_restarts, count_value(&ctx, 0), &mut errors)
            }
            Key::RestartDelay => ctx.store(
                &mut config.restart_delay,
                duration_value(&ctx, false),
                &mut errors,
            ),
            Key::AllowNondeterministic => ctx.store(
                &mut config.allow_nondeterministic,
                flag_value(&ctx),
                &mut errors,
            ),
            Key::Timeout => ctx.store(&mut config.timeout, duration_value(&ctx, true), &mut errors),
            Key::Crate => ctx.store(&mut config.krate, path_value(&ctx), &mut errors),
            Key::MaxAttempts
            | Key::Backoff
            | Key::Exponential
            | Key::MaxBackoff
            | Key::AtMostOnce => {}
        }
    }
    errors.finish(config)
}

/// The entry's key if `attr` accepts it; otherwise records an error on the key.
fn known_key(attr: AttrKind, entry: &Entry, errors: &mut Errors) -> Option<Key> {
    match entry.key {
        Some(key) if attr.keys().contains(&key) => Some(key),
        Some(key) => {
            let other = attr.other();
            errors.spanned(
                &entry.ident,
                format_args!(
                    "unknown {attr} option {key}, expected one of {}; {key} is a {other} option",
                    KeyList(attr.keys()),
                ),
            );
            None
        }
        None => {
            errors.spanned(
                &entry.ident,
                format_args!(
                    "unknown {attr} option `{}`, expected one of {}",
                    entry.ident.unraw(),
                    KeyList(attr.keys()),
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn step(tokens: TokenStream) -> Result<StepConfig, String> {
        parse_step_config(tokens).map_err(|error| {
            error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    fn workflow(tokens: TokenStream) -> Result<WorkflowConfig, String> {
        parse_workflow_config(tokens).map_err(|error| {
            error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    #[test]
    fn empty_options_leave_everything_to_the_runtime() {
        let config = step(quote!()).unwrap();
        assert!(config.name.is_none() && config.max_attempts.is_none() && config.krate.is_none());
        let config = workflow(quote!()).unwrap();
        assert!(config.name.is_none() && config.max_restarts.is_none());
    }

    #[test]
    fn parses_every_step_option() {
        let config = step(quote!(
            name = "charge_card",
            max_attempts = 5,
            backoff = "200ms",
            exponential,
            max_backoff = "30s",
            timeout = "5s",
            crate = "::my_wf",
        ))
        .unwrap();
        assert_eq!(config.name.unwrap().value, "charge_card");
        assert_eq!(config.max_attempts.unwrap().value, 5);
        assert_eq!(config.backoff.unwrap().value, Millis(200));
        assert!(config.exponential.unwrap().value);
        assert_eq!(config.max_backoff.unwrap().value, Millis(30_000));
        assert_eq!(config.timeout.unwrap().value, Millis(5_000));
        let path = config.krate.unwrap().value;
        assert_eq!(quote!(#path).to_string(), ":: my_wf");
    }

    #[test]
    fn exponential_takes_a_bool() {
        let config = step(quote!(exponential = false)).unwrap();
        assert!(!config.exponential.unwrap().value);
        let config = step(quote!(exponential = true)).unwrap();
        assert!(config.exponential.unwrap().value);
        let error = step(quote!(exponential = 1)).unwrap_err();
        assert!(error.contains("expects `true` or `false`"), "{error}");
    }

    #[test]
    fn parses_every_workflow_option() {
        let config = workflow(quote!(
            name = "orders",
            max_restarts = 0,
            restart_delay = "1m",
            crate = "my_wf"
        ))
        .unwrap();
        assert_eq!(config.name.unwrap().value, "orders");
        assert_eq!(config.max_restarts.unwrap().value, 0);
        assert_eq!(config.restart_delay.unwrap().value, Millis(60_000));
        assert!(config.krate.is_some());
    }

    #[test]
    fn unknown_option_lists_the_valid_ones() {
        let error = step(quote!(max_attempt = 3)).unwrap_err();
        assert_eq!(
            error,
            "unknown `#[step]` option `max_attempt`, expected one of `name`, `max_attempts`, \
             `backoff`, `exponential`, `max_backoff`, `timeout`, `at_most_once`, `crate`"
        );
    }

    #[test]
    fn option_of_the_other_attribute_says_where_it_belongs() {
        let error = workflow(quote!(max_attempts = 3)).unwrap_err();
        assert!(
            error.contains("`max_attempts` is a `#[step]` option"),
            "{error}"
        );
        let error = step(quote!(max_restarts = 3)).unwrap_err();
        assert!(
            error.contains("`max_restarts` is a `#[workflow]` option"),
            "{error}"
        );
    }

    #[test]
    fn duplicate_option_is_reported_once() {
        let error = step(quote!(backoff = "1s", backoff = "2s")).unwrap_err();
        assert_eq!(error, "duplicate `#[step]` option `backoff`");
    }

    #[test]
    fn bad_values_are_all_reported() {
        let error = step(quote!(max_attempts = 0, backoff = "2 parsecs", name = "")).unwrap_err();
        let lines: Vec<&str> = error.lines().collect();
        assert_eq!(lines.len(), 3, "{error}");
        assert!(
            lines[0].contains("`max_attempts` must be at least 1"),
            "{error}"
        );
        assert!(
            lines[1].contains("invalid duration \"2 parsecs\""),
            "{error}"
        );
        assert!(lines[2].contains("`name` must not be empty"), "{error}");
    }

    #[test]
    fn values_of_the_wrong_kind_show_an_example() {
        let error = step(quote!(max_attempts = "3")).unwrap_err();
        assert_eq!(
            error,
            "`#[step]` option `max_attempts` expects an integer, like `max_attempts = 5`"
        );
        let error = step(quote!(timeout = 5)).unwrap_err();
        assert!(error.contains("expects a duration string"), "{error}");
        let error = step(quote!(name = charge)).unwrap_err();
        assert!(error.contains("expects a string literal"), "{error}");
        let error = workflow(quote!(max_restarts = -1)).unwrap_err();
        assert!(error.contains("expects an integer"), "{error}");
        let error = workflow(quote!(crate = "not a path")).unwrap_err();
        assert!(error.contains("expects a path"), "{error}");
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let error = step(quote!(timeout = "0ms")).unwrap_err();
        assert_eq!(error, "`#[step]` option `timeout` must be longer than zero");
        assert!(step(quote!(backoff = "0ms")).is_ok());
    }

    #[test]
    fn option_without_value_asks_for_one() {
        let error = step(quote!(max_attempts)).unwrap_err();
        assert_eq!(
            error,
            "`#[step]` option `max_attempts` needs a value, like `max_attempts = 5`"
        );
    }

    #[test]
    fn counts_must_fit() {
        let error = step(quote!(max_attempts = 99999999999)).unwrap_err();
        assert!(error.contains("must fit in a `u32`"), "{error}");
    }

    #[test]
    fn syntax_errors_stop_early() {
        let error = step(quote!("fast")).unwrap_err();
        assert!(
            error.starts_with("expected a `#[step]` option like `max_attempts = 5`"),
            "{error}"
        );
        let error = step(quote!(max_attempts = 3 backoff = "1s")).unwrap_err();
        assert!(error.contains("expected `,`"), "{error}");
    }

    #[test]
    fn trailing_comma_is_fine() {
        assert!(step(quote!(max_attempts = 3,)).is_ok());
    }
}
