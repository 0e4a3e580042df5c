//! The names in scope at a point of a workflow body, and which of them hold a `HashMap`
//! or `HashSet` as far as their declarations show: `let m: HashMap<_, _> = ..`,
//! `let m = HashMap::new()`, `let s = it.collect::<HashSet<_>>()`, a parameter of such a
//! type, or a copy of one of those (`let n = m.clone()`). A later binding of the same
//! name shadows it; a name bound in a block goes out of scope when the block ends.

use super::{Nondeterminism, hash_kind_of_ident, hash_kind_of_path};
use syn::visit::{self, Visit};
use syn::{Expr, GenericArgument, Ident, Local, Pat, PatGuard, PatIdent, Type};

/// A name in scope, with what iterating it makes, if it holds a hash container.
struct Binding {
    name: Ident,
    hash: Option<Nondeterminism>,
}

/// The bindings in scope, innermost last.
#[derive(Default)]
pub(super) struct Scope {
    bindings: Vec<Binding>,
}

impl Scope {
    /// How many bindings are in scope, to [`truncate`](Scope::truncate) back to.
    pub(super) fn depth(&self) -> usize {
        self.bindings.len()
    }

    /// Ends the bindings made since [`depth`](Scope::depth) returned `depth`.
    pub(super) fn truncate(&mut self, depth: usize) {
        self.bindings.truncate(depth);
    }

    fn bind(&mut self, name: &Ident, hash: Option<Nondeterminism>) {
        self.bindings.push(Binding {
            name: name.clone(),
            hash,
        });
    }

    /// Binds a name declared with a type: a parameter, or `let name: Type`.
    pub(super) fn bind_typed(&mut self, name: &Ident, ty: &Type) {
        self.bind(name, hash_kind_of_type(ty));
    }

    /// Binds the names of a `let`, by its declared type or else by its initializer.
    pub(super) fn bind_local(&mut self, local: &Local) {
        match &local.pat {
            Pat::Type(typed) => match &*typed.pat {
                Pat::Ident(PatIdent { ident, .. }) => self.bind_typed(ident, &typed.ty),
                other => self.bind_plain(other),
            },
            Pat::Ident(PatIdent { ident, .. }) => {
                let hash = local
                    .init
                    .as_ref()
                    .and_then(|init| self.hash_kind_of_init(&init.expr));
                self.bind(ident, hash);
            }
            other => self.bind_plain(other),
        }
    }

    /// Binds every name of `pat` as holding no hash container: a new binding shadows any
    /// earlier one of the same name.
    pub(super) fn bind_plain(&mut self, pat: &Pat) {
        let mut names = PatNames(Vec::new());
        names.visit_pat(pat);
        for name in names.0 {
            self.bind(name, None);
        }
    }

    /// What iterating `expr` makes, when it is a name (or a reference to one) bound to a
    /// hash container; with that name, where a warning points.
    pub(super) fn hash_local<'e>(&self, expr: &'e Expr) -> Option<(Nondeterminism, &'e Ident)> {
        let ident = plain_name(expr)?;
        let binding = self
            .bindings
            .iter()
            .rev()
            .find(|binding| binding.name == *ident)?;
        binding.hash.map(|kind| (kind, ident))
    }

    /// What iterating the value of `init` makes: a hash container built by a constructor
    /// (`HashMap::new()`, `HashSet::from(..)`), collected into one (`collect::<HashMap<_, _>>()`),
    /// or taken from a name bound to one (`m`, `m.clone()`).
    fn hash_kind_of_init(&self, init: &Expr) -> Option<Nondeterminism> {
        match peel(init) {
            Expr::Call(call) => match peel(&call.func) {
                Expr::Path(func) => hash_kind_of_path(&func.path),
                _ => None,
            },
            Expr::MethodCall(call) if call.method == "collect" => {
                let turbofish = call.turbofish.as_ref()?;
                turbofish.args.iter().find_map(|arg| match arg {
                    GenericArgument::Type(ty) => hash_kind_of_type(ty),
                    _ => None,
                })
            }
            Expr::MethodCall(call) if call.method == "clone" => {
                self.hash_local(&call.receiver).map(|(kind, _)| kind)
            }
            other => self.hash_local(other).map(|(kind, _)| kind),
        }
    }
}

/// Collects the names a pattern binds.
struct PatNames<'ast>(Vec<&'ast Ident>);

impl<'ast> Visit<'ast> for PatNames<'ast> {
    fn visit_pat_ident(&mut self, pat: &'ast PatIdent) {
        self.0.push(&pat.ident);
        visit::visit_pat_ident(self, pat);
    }

    /// The guard binds nothing.
    fn visit_pat_guard(&mut self, pat: &'ast PatGuard) {
        self.visit_pat(&pat.pat);
    }
}

/// What iterating a value of `ty` makes, when `ty` is (a reference to) a hash container.
fn hash_kind_of_type(ty: &Type) -> Option<Nondeterminism> {
    match ty {
        Type::Reference(reference) => hash_kind_of_type(&reference.elem),
        Type::Paren(paren) => hash_kind_of_type(&paren.elem),
        Type::Group(group) => hash_kind_of_type(&group.elem),
        Type::Path(path) if path.qself.is_none() => {
            let last = path.path.segments.last()?;
            hash_kind_of_ident(&last.ident)
        }
        _ => None,
    }
}

/// `expr` without parentheses and references around it.
fn peel(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => peel(&paren.expr),
        Expr::Group(group) => peel(&group.expr),
        Expr::Reference(reference) => peel(&reference.expr),
        other => other,
    }
}

/// The name `expr` is, once peeled: `m`, `&m`, `(&mut m)`.
fn plain_name(expr: &Expr) -> Option<&Ident> {
    match peel(expr) {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => path.path.get_ident(),
        _ => None,
    }
}
