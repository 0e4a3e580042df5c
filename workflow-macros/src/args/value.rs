//! Checks the value of each known option and converts it.

use super::duration::{DurationError, Millis, parse_duration};
use super::keys::{AttrKind, Example, Key};
use super::{Entry, Setting};
use crate::errors::Errors;
use std::fmt;
use syn::{Expr, Lit, LitBool, LitInt, LitStr, Path};

/// One known option being checked: what messages need to name it.
pub(super) struct OptionCtx<'a> {
    pub(super) attr: AttrKind,
    pub(super) key: Key,
    pub(super) entry: &'a Entry,
}

impl OptionCtx<'_> {
    /// Stores a checked value, reporting a second occurrence of the option as a duplicate.
    pub(super) fn store<T>(
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

pub(super) fn name_value(ctx: &OptionCtx<'_>) -> syn::Result<Setting<String>> {
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
pub(super) fn count_value(ctx: &OptionCtx<'_>, min: u32) -> syn::Result<Setting<u32>> {
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
pub(super) fn duration_value(ctx: &OptionCtx<'_>, positive: bool) -> syn::Result<Setting<Millis>> {
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
pub(super) fn flag_value(ctx: &OptionCtx<'_>) -> syn::Result<Setting<bool>> {
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

pub(super) fn path_value(ctx: &OptionCtx<'_>) -> syn::Result<Setting<Path>> {
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
