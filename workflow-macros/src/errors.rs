//! A small collector of `syn::Error`s, so one build reports every independent problem.

use proc_macro2::Span;
use quote::ToTokens;
use std::fmt::Display;

/// Accumulates errors and joins them with [`syn::Error::combine`].
#[derive(Default)]
pub(crate) struct Errors {
    combined: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error that is already built.
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.combined {
            Some(combined) => combined.combine(error),
            None => self.combined = Some(error),
        }
    }

    /// Records an error covering the tokens of `node`.
    pub(crate) fn spanned(&mut self, node: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(node, message));
    }

    /// Records an error at one span.
    pub(crate) fn at(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    /// Keeps the value of `result`, recording its error if it failed.
    pub(crate) fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(error) => {
                self.push(error);
                None
            }
        }
    }

    /// The collected messages, for tests.
    #[cfg(test)]
    pub(crate) fn messages(self) -> Vec<String> {
        match self.finish(()) {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    /// `Ok(value)` when nothing was recorded, otherwise every recorded error.
    pub(crate) fn finish<T>(self, value: T) -> syn::Result<T> {
        match self.combined {
            Some(error) => Err(error),
            None => Ok(value),
        }
    }

    /// Like [`Errors::finish`], for a value that could only be built when nothing failed.
    pub(crate) fn finish_with<T>(self, value: Option<T>) -> syn::Result<T> {
        match (self.combined, value) {
            (Some(error), _) => Err(error),
            (None, Some(value)) => Ok(value),
            // Callers only leave the value unset after recording why.
            (None, None) => Err(syn::Error::new(
                Span::call_site(),
                "internal error in replayflow-macros: a check failed without a message",
            )),
        }
    }
}
