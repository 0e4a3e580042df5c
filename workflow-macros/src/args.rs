//! Attribute options: `#[step(max_attempts = 5, backoff = "200ms")]`, `#[workflow(max_restarts = 2)]`.
//!
//! Option names are spelled once, in `option_keys!` below, as custom keywords. Parsing
//! happens in two passes: a syntactic one into `key [= value]` entries (a syntax error
//! stops there), then a typed one that collects every unknown, duplicate or bad option.

use crate::errors::Errors;
use proc_macro2::{Span, TokenStream};
use std::fmt;
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, Lit, LitBool, LitInt, LitStr, Path, Token};

/// The attribute being expanded; error messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AttrKind {
    Step,
    Workflow,
}

impl AttrKind {
    /// The options this attribute accepts, in the order the docs list them.
    fn keys(self) -> &'static [Key] {
        match self {
            AttrKind::Step => &[
                Key::Name,
                Key::MaxAttempts,
                Key::Backoff,
                Key::Exponential,
                Key::MaxBackoff,
                Key::Timeout,
                Key::Crate,
            ],
            AttrKind::Workflow => &[Key::Name, Key::MaxRestarts, Key::RestartDelay, Key::Crate],
        }
    }

    fn other(self) -> AttrKind {
        match self {
            AttrKind::Step => AttrKind::Workflow,
            AttrKind::Workflow => AttrKind::Step,
        }
    }
}

impl fmt::Display for AttrKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttrKind::Step => "`#[step]`",
            AttrKind::Workflow => "`#[workflow]`",
        })
    }
}

/// Defines the custom keywords of the option names and the `Key` enum over them, so each
/// name is written exactly once.
macro_rules! option_keys {
    ($($keyword:ident => $variant:ident),* $(,)?) => {
        pub(crate) mod kw {
            $(syn::custom_keyword!($keyword);)*
        }

        /// One option name. `crate` is a Rust keyword rather than a custom one.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Key {
            $($variant,)*
            Crate,
        }

        impl Key {
            /// The option at the front of `input`, if it is one we know.
            fn peek(input: ParseStream<'_>) -> Option<Key> {
                $(
                    if input.peek(kw::$keyword) {
                        return Some(Key::$variant);
                    }
                )*
                if input.peek(Token![crate]) {
                    return Some(Key::Crate);
                }
                None
            }

            fn as_str(self) -> &'static str {
                match self {
                    $(Key::$variant => stringify!($keyword),)*
                    Key::Crate => "crate",
                }
            }
        }
    };
}

option_keys! {
    name => Name,
    max_attempts => MaxAttempts,
    backoff => Backoff,
    exponential => Exponential,
    max_backoff => MaxBackoff,
    timeout => Timeout,
    max_restarts => MaxRestarts,
    restart_delay => RestartDelay,
}

impl Key {
    /// A typical value, shown in error messages.
    fn example_value(self) -> &'static str {
        match self {
            Key::Name => "\"charge_card\"",
            Key::MaxAttempts => "5",
            Key::Backoff => "\"200ms\"",
            Key::Exponential => "false",
            Key::MaxBackoff => "\"30s\"",
            Key::Timeout => "\"5s\"",
            Key::MaxRestarts => "3",
            Key::RestartDelay => "\"5s\"",
            Key::Crate => "\"my_workflow\"",
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`", self.as_str())
    }
}

/// An example of `key = value`, for messages.
struct Example(Key);

impl fmt::Display for Example {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{} = {}`", self.0.as_str(), self.0.example_value())
    }
}

/// A list of keys, for messages: `` `name`, `max_restarts`, `restart_delay`, `crate` ``.
struct KeyList(&'static [Key]);

impl fmt::Display for KeyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, key) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{key}")?;
        }
        Ok(())
    }
}

/// A value given to an option, with the span of its literal (or of the key for a bare flag).
#[derive(Clone, Debug)]
pub(crate) struct Setting<T> {
    pub(crate) value: T,
    pub(crate) span: Span,
}

/// A duration in whole milliseconds, as written in `"200ms"` or `"2s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Millis(pub(crate) u64);

/// Options of `#[step(...)]` as written; `None` means "use the runtime default".
#[derive(Default, Debug)]
pub(crate) struct StepConfig {
    pub(crate) name: Option<Setting<String>>,
    pub(crate) max_attempts: Option<Setting<u32>>,
    pub(crate) backoff: Option<Setting<Millis>>,
    pub(crate) exponential: Option<Setting<bool>>,
    pub(crate) max_backoff: Option<Setting<Millis>>,
    pub(crate) timeout: Option<Setting<Millis>>,
    pub(crate) krate: Option<Setting<Path>>,
}

/// Options of `#[workflow(...)]` as written; `None` means "use the runtime default".
#[derive(Default, Debug)]
pub(crate) struct WorkflowConfig {
    pub(crate) name: Option<Setting<String>>,
    pub(crate) max_restarts: Option<Setting<u32>>,
    pub(crate) restart_delay: Option<Setting<Millis>>,
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
            Key::Crate => ctx.store(&mut config.krate, path_value(&ctx), &mut errors),
            Key::MaxRestarts | Key::RestartDelay => {}
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
            Key::Crate => ctx.store(&mut config.krate, path_value(&ctx), &mut errors),
            Key::MaxAttempts | Key::Backoff | Key::Exponential | Key::MaxBackoff | Key::Timeout => {
            }
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

/// One known option being checked: what messages need to name it.
struct OptionCtx<'a> {
    attr: AttrKind,
    key: Key,
    entry: &'a Entry,
}

impl OptionCtx<'_> {
    /// Stores a checked value, reporting a second occurrence of the option as a duplicate.
    fn store<T>(
        &self,
        slot: &mut Option<Setting<T>>,
        value: syn::Result<Setting<T>>,
        errors: &mut Errors,
    ) {
        if slot.is_some() {
            errors.spanned(
                &self.entry.ident,
                format_args!("duplicate {} option {}", self.attr, self.key),
            );
            return;
        }
        if let Some(value) = errors.take(value) {
            *slot = Some(value);
        }
    }

    /// The value expression, or an error on the key if the option was written bare.
    fn value(&self) -> syn::Result<&Expr> {
        self.entry.value.as_ref().ok_or_else(|| {
            syn::Error::new_spanned(
                &self.entry.ident,
                format_args!(
                    "{} option {} needs a value, like {}",
                    self.attr,
                    self.key,
                    Example(self.key)
                ),
            )
        })
    }

    fn error(&self, node: impl quote::ToTokens, what: impl fmt::Display) -> syn::Error {
        syn::Error::new_spanned(
            node,
            format_args!("{} option {} {what}", self.attr, self.key),
        )
    }

    /// An error saying which kind of literal was expected, with an example.
    fn expected(&self, node: impl quote::ToTokens, kind: &str) -> syn::Error {
        self.error(
            node,
            format_args!("expects {kind}, like {}", Example(self.key)),
        )
    }

    fn lit_str(&self) -> syn::Result<LitStr> {
        match self.value()? {
            Expr::Lit(expr) => match &expr.lit {
                Lit::Str(lit) => Ok(lit.clone()),
                other => Err(self.expected(other, "a string literal")),
            },
            other => Err(self.expected(other, "a string literal")),
        }
    }

    fn lit_int(&self) -> syn::Result<LitInt> {
        match self.value()? {
            Expr::Lit(expr) => match &expr.lit {
                Lit::Int(lit) => Ok(lit.clone()),
                other => Err(self.expected(other, "an integer")),
            },
            other => Err(self.expected(other, "an integer")),
        }
    }
}

fn name_value(ctx: &OptionCtx<'_>) -> syn::Result<Setting<String>> {
    let lit = ctx.lit_str()?;
    let value = lit.value();
    if value.trim().is_empty() {
        return Err(ctx.error(&lit, "must not be empty"));
    }
    if value.trim() != value {
        return Err(ctx.error(&lit, "must not start or end with whitespace"));
    }
    Ok(Setting {
        value,
        span: lit.span(),
    })
}

/// A non-negative integer of at least `min`.
fn count_value(ctx: &OptionCtx<'_>, min: u32) -> syn::Result<Setting<u32>> {
    let lit = ctx.lit_int()?;
    let value = lit.base10_parse::<u32>().map_err(|_| {
        ctx.error(
            &lit,
            format_args!("must fit in a `u32`, like {}", Example(ctx.key)),
        )
    })?;
    if value < min {
        let why = match ctx.key {
            Key::MaxAttempts => " (it counts the first attempt)",
            _ => "",
        };
        return Err(ctx.error(
            &lit,
            format_args!("must be at least {min}{why}, got {value}"),
        ));
    }
    Ok(Setting {
        value,
        span: lit.span(),
    })
}

/// A duration string; `positive` rejects zero.
fn duration_value(ctx: &OptionCtx<'_>, positive: bool) -> syn::Result<Setting<Millis>> {
    let lit = match ctx.lit_str() {
        Ok(lit) => lit,
        Err(_) if matches!(ctx.entry.value, Some(Expr::Lit(_))) => {
            let node = ctx.entry.value.as_ref();
            return Err(ctx.error(
                node,
                format_args!(
                    "expects a duration string: an integer followed by `ms`, `s`, `m` or `h`, like {}",
                    Example(ctx.key)
                ),
            ));
        }
        Err(error) => return Err(error),
    };
    let text = lit.value();
    match parse_duration(&text) {
        Ok(Millis(0)) if positive => Err(ctx.error(&lit, "must be longer than zero")),
        Ok(value) => Ok(Setting { value, span: lit.span() }),
        Err(DurationError::Malformed) => Err(ctx.error(
            &lit,
            format_args!(
                "has an invalid duration {text:?}: expected an integer followed by `ms`, `s`, `m` or `h`, like {}",
                ctx.key.example_value()
            ),
        )),
        Err(DurationError::TooLong) => Err(ctx.error(
            &lit,
            format_args!("has a duration {text:?} that is too long to represent"),
        )),
    }
}

/// A bare flag means `true`; otherwise `true` or `false`.
fn flag_value(ctx: &OptionCtx<'_>) -> syn::Result<Setting<bool>> {
    match &ctx.entry.value {
        None => Ok(Setting {
            value: true,
            span: ctx.entry.ident.span(),
        }),
        Some(Expr::Lit(expr)) => match &expr.lit {
            Lit::Bool(LitBool { value, span }) => Ok(Setting {
                value: *value,
                span: *span,
            }),
            other => Err(ctx.expected(other, "`true` or `false`")),
        },
        Some(other) => Err(ctx.expected(other, "`true` or `false`")),
    }
}

fn path_value(ctx: &OptionCtx<'_>) -> syn::Result<Setting<Path>> {
    let lit = ctx.lit_str()?;
    let path = lit.parse_with(Path::parse_mod_style).map_err(|_| {
        ctx.error(
            &lit,
            format_args!("expects a path, like {}", Example(ctx.key)),
        )
    })?;
    Ok(Setting {
        value: path,
        span: lit.span(),
    })
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not an integer followed by one of the units.
    Malformed,
    /// More milliseconds than fit in a `u64`.
    TooLong,
}

/// Parses `"200ms"`, `"2s"`, `"1m"` or `"3h"`: digits immediately followed by a unit.
pub(crate) fn parse_duration(text: &str) -> Result<Millis, DurationError> {
    let text = text.trim();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(DurationError::Malformed);
    }
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(DurationError::Malformed),
    };
    // Only digits remain, so the only way to fail is overflow.
    let count: u64 = digits.parse().map_err(|_| DurationError::TooLong)?;
    count
        .checked_mul(millis_per_unit)
        .map(Millis)
        .ok_or(DurationError::TooLong)
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
    fn parses_every_duration_unit() {
        assert_eq!(parse_duration("200ms"), Ok(Millis(200)));
        assert_eq!(parse_duration("2s"), Ok(Millis(2_000)));
        assert_eq!(parse_duration("1m"), Ok(Millis(60_000)));
        assert_eq!(parse_duration("3h"), Ok(Millis(10_800_000)));
        assert_eq!(parse_duration("0s"), Ok(Millis(0)));
        assert_eq!(parse_duration(" 5s "), Ok(Millis(5_000)));
    }

    #[test]
    fn rejects_malformed_durations() {
        for text in [
            "",
            "s",
            "5",
            "2 parsecs",
            "2 s",
            "1.5s",
            "-1s",
            "5sec",
            "5S",
            "ms5",
            "1h30m",
        ] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError::Malformed),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rejects_durations_that_overflow() {
        assert_eq!(
            parse_duration("99999999999999999999ms"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("18446744073709551615h"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("18446744073709551615ms"),
            Ok(Millis(u64::MAX))
        );
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
             `backoff`, `exponential`, `max_backoff`, `timeout`, `crate`"
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
