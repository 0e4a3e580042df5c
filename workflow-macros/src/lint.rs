//! The determinism lint of `#[workflow]`: finds what a workflow body does that replay
//! cannot repeat (reading a clock, drawing random numbers, spawning work outside the
//! workflow, reading the environment, iterating a hash container, `select!`).
//!
//! A proc macro cannot emit a warning on stable Rust, so each finding becomes, in
//! `expand`, a reference to a `#[deprecated]` constant of `__private::nondeterministic`
//! spanned on the user's call: rustc then prints the constant's note as a `deprecated`
//! warning there. This module only finds; it never fails the build.
//!
//! `#[allow_nondeterministic]` on a statement or expression keeps it out of the lint.
//! It is not a real attribute, so [`strip_allow`] takes it out of the body before rustc
//! sees it.

mod scope;
mod visitor;

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};
use syn::{Attribute, Block, Ident, Path};

/// The name of the marker attribute, in the body and in messages.
pub(crate) const ALLOW: &str = "allow_nondeterministic";

/// Something in a workflow body that replay cannot repeat, and where it is written.
#[derive(Clone, Debug)]
pub(crate) struct Finding {
    pub(crate) kind: Nondeterminism,
    /// The user's token the warning points at: the last segment of the path (`now` of
    /// `SystemTime::now`), the method, or the iterated name. rustc reports a deprecated
    /// path at its last segment, so the reference to the constant takes this token's span.
    pub(crate) at: Ident,
}

/// The kinds of finding, one per note in `__private::nondeterministic`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nondeterminism {
    SystemTimeNow,
    InstantNow,
    UtcNow,
    LocalNow,
    ThreadRng,
    RandRng,
    RandRandom,
    UuidNewV4,
    ThreadSpawn,
    TokioSpawn,
    TaskSpawn,
    SpawnBlocking,
    EnvVar,
    EnvVarOs,
    EnvVars,
    EnvVarsOs,
    HashMapIter,
    HashSetIter,
    Select,
}

impl Nondeterminism {
    /// The deprecated constant whose note explains this finding.
    pub(crate) fn constant(self) -> &'static str {
        match self {
            Nondeterminism::SystemTimeNow => "SYSTEM_TIME_NOW",
            Nondeterminism::InstantNow => "INSTANT_NOW",
            Nondeterminism::UtcNow => "UTC_NOW",
            Nondeterminism::LocalNow => "LOCAL_NOW",
            Nondeterminism::ThreadRng => "THREAD_RNG",
            Nondeterminism::RandRng => "RAND_RNG",
            Nondeterminism::RandRandom => "RAND_RANDOM",
            Nondeterminism::UuidNewV4 => "UUID_NEW_V4",
            Nondeterminism::ThreadSpawn => "THREAD_SPAWN",
            Nondeterminism::TokioSpawn => "TOKIO_SPAWN",
            Nondeterminism::TaskSpawn => "TASK_SPAWN",
            Nondeterminism::SpawnBlocking => "SPAWN_BLOCKING",
            Nondeterminism::EnvVar => "ENV_VAR",
            Nondeterminism::EnvVarOs => "ENV_VAR_OS",
            Nondeterminism::EnvVars => "ENV_VARS",
            Nondeterminism::EnvVarsOs => "ENV_VARS_OS",
            Nondeterminism::HashMapIter => "HASH_MAP_ITER",
            Nondeterminism::HashSetIter => "HASH_SET_ITER",
            Nondeterminism::Select => "SELECT",
        }
    }
}

/// Paths that replay cannot repeat, by their last segments: a path matches when it ends
/// with these (`std::time::SystemTime::now` and `SystemTime::now` both end with
/// `SystemTime::now`). Single segments are only names too distinctive to be anything else.
const CALLS: &[(&[&str], Nondeterminism)] = &[
    (&["SystemTime", "now"], Nondeterminism::SystemTimeNow),
    (&["Instant", "now"], Nondeterminism::InstantNow),
    (&["Utc", "now"], Nondeterminism::UtcNow),
    (&["Local", "now"], Nondeterminism::LocalNow),
    (&["thread_rng"], Nondeterminism::ThreadRng),
    (&["rand", "rng"], Nondeterminism::RandRng),
    (&["rand", "random"], Nondeterminism::RandRandom),
    (&["Uuid", "new_v4"], Nondeterminism::UuidNewV4),
    (&["thread", "spawn"], Nondeterminism::ThreadSpawn),
    (&["tokio", "spawn"], Nondeterminism::TokioSpawn),
    (&["task", "spawn"], Nondeterminism::TaskSpawn),
    (&["spawn_blocking"], Nondeterminism::SpawnBlocking),
    (&["env", "var"], Nondeterminism::EnvVar),
    (&["env", "var_os"], Nondeterminism::EnvVarOs),
    (&["env", "vars"], Nondeterminism::EnvVars),
    (&["env", "vars_os"], Nondeterminism::EnvVarsOs),
];

/// The finding for a path in an expression, if it names one of [`CALLS`].
fn call_finding(path: &Path) -> Option<Finding> {
    let last = path.segments.last()?;
    let (_, kind) = CALLS.iter().find(|(suffix, _)| ends_with(path, suffix))?;
    Some(Finding {
        kind: *kind,
        at: last.ident.clone(),
    })
}

/// The finding for a macro invocation: `select!` under any path (`tokio::select!`,
/// `futures::select!`).
fn macro_finding(path: &Path) -> Option<Finding> {
    let last = path.segments.last()?;
    (last.ident == "select").then(|| Finding {
        kind: Nondeterminism::Select,
        at: last.ident.clone(),
    })
}

fn ends_with(path: &Path, suffix: &[&str]) -> bool {
    path.segments.len() >= suffix.len()
        && path
            .segments
            .iter()
            .rev()
            .zip(suffix.iter().rev())
            .all(|(segment, name)| segment.ident == name)
}

/// The hash container a type names at its top (`HashMap<K, V>`, `&std::collections::HashSet<T>`),
/// as the finding its iteration makes.
fn hash_kind_of_path(path: &Path) -> Option<Nondeterminism> {
    path.segments
        .iter()
        .find_map(|segment| hash_kind_of_ident(&segment.ident))
}

fn hash_kind_of_ident(ident: &Ident) -> Option<Nondeterminism> {
    if ident == "HashMap" {
        Some(Nondeterminism::HashMapIter)
    } else if ident == "HashSet" {
        Some(Nondeterminism::HashSetIter)
    } else {
        None
    }
}

/// Whether `attrs` hold `#[allow_nondeterministic]`.
fn allows(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| attr.path().is_ident(ALLOW))
}

/// Every finding in `body`, a workflow's block, whose parameters are `params` (name and
/// type, after the context).
pub(crate) fn lint_body<'a>(
    body: &Block,
    params: impl IntoIterator<Item = (&'a Ident, &'a syn::Type)>,
) -> Vec<Finding> {
    visitor::BodyVisitor::walk(body, params)
}

/// `tokens` without any `#[allow_nondeterministic]`, wherever it is: on a statement, an
/// expression, an item, or inside a macro's input. Working on tokens reaches every place
/// an attribute can sit, which a syntax tree spreads over dozens of node types.
pub(crate) fn strip_allow(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut tokens = tokens.into_iter().peekable();
    while let Some(token) = tokens.next() {
        match token {
            TokenTree::Punct(pound)
                if pound.as_char() == '#' && tokens.peek().is_some_and(is_allow_brackets) =>
            {
                // The `[allow_nondeterministic]` that follows goes too.
                tokens.next();
            }
            TokenTree::Group(group) => {
                let mut stripped = Group::new(group.delimiter(), strip_allow(group.stream()));
                stripped.set_span(group.span());
                out.push(TokenTree::Group(stripped));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

/// `[allow_nondeterministic ...]`: the bracketed part of the attribute.
fn is_allow_brackets(token: &TokenTree) -> bool {
    match token {
        TokenTree::Group(group) if group.delimiter() == Delimiter::Bracket => {
            matches!(group.stream().into_iter().next(), Some(TokenTree::Ident(ident)) if ident == ALLOW)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn strips_the_marker_everywhere_and_nothing_else() {
        let body = quote! {{
            #[allow_nondeterministic]
            let t = SystemTime::now();
            let u = (#[allow_nondeterministic] Instant::now(), 1);
            println!("{:?}", #[allow_nondeterministic] t);
            #[allow(unused)]
            let v = 1;
            #[cfg(test)] #[allow_nondeterministic] let w = 2;
        }};
        let out = strip_allow(body).to_string();
        assert!(!out.contains(ALLOW), "{out}");
        assert!(out.contains("# [allow (unused)] let v = 1"), "{out}");
        assert!(out.contains("# [cfg (test)] let w = 2"), "{out}");
        assert!(out.contains("let u = (Instant :: now () , 1)"), "{out}");
    }

    #[test]
    fn paths_match_by_their_last_segments() {
        let kind = |path: Path| call_finding(&path).map(|finding| finding.kind);
        assert_eq!(
            kind(syn::parse_quote!(std::time::SystemTime::now)),
            Some(Nondeterminism::SystemTimeNow)
        );
        assert_eq!(
            kind(syn::parse_quote!(SystemTime::now)),
            Some(Nondeterminism::SystemTimeNow)
        );
        assert_eq!(
            kind(syn::parse_quote!(::rand::thread_rng)),
            Some(Nondeterminism::ThreadRng)
        );
        assert_eq!(
            kind(syn::parse_quote!(tokio::task::spawn)),
            Some(Nondeterminism::TaskSpawn)
        );
        assert_eq!(
            kind(syn::parse_quote!(tokio::task::spawn_blocking)),
            Some(Nondeterminism::SpawnBlocking)
        );
        assert_eq!(kind(syn::parse_quote!(now)), None);
        assert_eq!(kind(syn::parse_quote!(spawn)), None);
        assert_eq!(kind(syn::parse_quote!(random)), None);
        assert_eq!(kind(syn::parse_quote!(my::env::variable)), None);
    }
}
