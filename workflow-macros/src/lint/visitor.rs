//! Walks a workflow body for the lint: nested blocks, closures, async blocks, and the
//! arguments of macros that read as expressions. It keeps the names in scope that hold a
//! `HashMap` or `HashSet`, as far as their declarations show, to find their iteration.

use super::{Finding, Nondeterminism, allows, call_finding, hash_kind_of_ident, macro_finding};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{
    Arm, Block, Expr, ExprClosure, ExprForLoop, ExprIf, ExprMethodCall, ExprPath, ExprWhile, Ident,
    Item, Local, Macro, Pat, PatIdent, Stmt, Token, Type,
};

/// Methods of `HashMap` and `HashSet` that visit the entries in the container's order.
const ITERATING_METHODS: &[&str] = &[
    "iter",
    "iter_mut",
    "into_iter",
    "keys",
    "values",
    "values_mut",
    "into_keys",
    "into_values",
    "drain",
];

/// A name in scope, with what iterating it makes, if it holds a hash container.
struct Binding {
    name: Ident,
    hash: Option<Nondeterminism>,
}

pub(super) struct BodyVisitor {
    findings: Vec<Finding>,
    /// Innermost last; a block truncates it back when it ends.
    bindings: Vec<Binding>,
}

impl BodyVisitor {
    pub(super) fn walk<'a>(
        body: &Block,
        params: impl IntoIterator<Item = (&'a Ident, &'a Type)>,
    ) -> Vec<Finding> {
        let mut visitor = BodyVisitor {
            findings: Vec::new(),
            bindings: Vec::new(),
        };
        for (name, ty) in params {
            visitor.bind(name, hash_kind_of_type(ty));
        }
        visitor.visit_block(body);
        visitor.findings
    }

    fn bind(&mut self, name: &Ident, hash: Option<Nondeterminism>) {
        self.bindings.push(Binding {
            name: name.clone(),
            hash,
        });
    }

    /// Binds every name of `pat` as holding no hash container: a new binding shadows any
    /// earlier one of the same name.
    fn bind_plain(&mut self, pat: &Pat) {
        let mut names = PatNames(Vec::new());
        names.visit_pat(pat);
        for name in names.0 {
            self.bind(name, None);
        }
    }

    /// What iterating `expr` makes, when it is a name (or a reference to one) bound to a
    /// hash container.
    fn hash_local<'e>(&self, expr: &'e Expr) -> Option<(Nondeterminism, &'e Ident)> {
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
                Expr::Path(func) => super::hash_kind_of_path(&func.path),
                _ => None,
            },
            Expr::MethodCall(call) if call.method == "collect" => {
                let turbofish = call.turbofish.as_ref()?;
                turbofish.args.iter().find_map(|arg| match arg {
                    syn::GenericArgument::Type(ty) => hash_kind_of_type(ty),
                    _ => None,
                })
            }
            Expr::MethodCall(call) if call.method == "clone" => {
                self.hash_local(&call.receiver).map(|(kind, _)| kind)
            }
            other => self.hash_local(other).map(|(kind, _)| kind),
        }
    }

    /// Runs `f` in a scope of its own: names bound inside go out of scope after it.
    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        let depth = self.bindings.len();
        f(self);
        self.bindings.truncate(depth);
    }
}

impl<'ast> Visit<'ast> for BodyVisitor {
    /// Items declared in the body (a helper `fn`, a `#[step]`) are not the workflow's
    /// body: they run when called, and a step may read the clock.
    fn visit_item(&mut self, _: &'ast Item) {}

    fn visit_block(&mut self, block: &'ast Block) {
        self.scoped(|this| visit::visit_block(this, block));
    }

    fn visit_stmt(&mut self, stmt: &'ast Stmt) {
        match stmt {
            Stmt::Macro(stmt) if allows(&stmt.attrs) => {}
            other => visit::visit_stmt(self, other),
        }
    }

    fn visit_local(&mut self, local: &'ast Local) {
        if let Some(init) = &local.init
            && !allows(&local.attrs)
        {
            self.visit_expr(&init.expr);
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        // Even an allowed `let` binds its names, for the statements after it.
        match &local.pat {
            Pat::Type(typed) if matches!(*typed.pat, Pat::Ident(_)) => {
                if let Pat::Ident(PatIdent { ident, .. }) = &*typed.pat {
                    self.bind(ident, hash_kind_of_type(&typed.ty));
                }
            }
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

    fn visit_expr(&mut self, expr: &'ast Expr) {
        if !allows(expr_attrs(expr)) {
            visit::visit_expr(self, expr);
        }
    }

    fn visit_expr_path(&mut self, expr: &'ast ExprPath) {
        if expr.qself.is_none()
            && let Some(finding) = call_finding(&expr.path)
        {
            self.findings.push(finding);
        }
    }

    fn visit_expr_method_call(&mut self, call: &'ast ExprMethodCall) {
        if ITERATING_METHODS.iter().any(|method| call.method == method)
            && let Some((kind, _)) = self.hash_local(&call.receiver)
        {
            self.findings.push(Finding {
                kind,
                at: call.method.clone(),
            });
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_for_loop(&mut self, for_loop: &'ast ExprForLoop) {
        if let Some((kind, name)) = self.hash_local(&for_loop.expr) {
            self.findings.push(Finding {
                kind,
                at: name.clone(),
            });
        }
        self.visit_expr(&for_loop.expr);
        self.scoped(|this| {
            this.bind_plain(&for_loop.pat);
            this.visit_block(&for_loop.body);
        });
    }

    fn visit_expr_closure(&mut self, closure: &'ast ExprClosure) {
        self.scoped(|this| {
            for input in &closure.inputs {
                this.bind_plain(input);
            }
            this.visit_expr(&closure.body);
        });
    }

    /// `if let` binds for its first branch only.
    fn visit_expr_if(&mut self, expr: &'ast ExprIf) {
        self.scoped(|this| {
            this.visit_expr(&expr.cond);
            this.visit_block(&expr.then_branch);
        });
        if let Some((_, else_branch)) = &expr.else_branch {
            self.visit_expr(else_branch);
        }
    }

    fn visit_expr_while(&mut self, expr: &'ast ExprWhile) {
        self.scoped(|this| {
            this.visit_expr(&expr.cond);
            this.visit_block(&expr.body);
        });
    }

    fn visit_expr_let(&mut self, expr: &'ast syn::ExprLet) {
        self.visit_expr(&expr.expr);
        self.bind_plain(&expr.pat);
    }

    fn visit_arm(&mut self, arm: &'ast Arm) {
        if allows(&arm.attrs) {
            return;
        }
        self.scoped(|this| {
            this.bind_plain(&arm.pat);
            // A guard is part of the pattern: `Some(t) if t < SystemTime::now()`.
            this.visit_pat(&arm.pat);
            this.visit_expr(&arm.body);
        });
    }

    /// `select!` is a finding. Other macros are read when their input is a list of
    /// expressions (`println!`, `format!`, `join!`, `assert_eq!`, `vec![..]`); any other
    /// input (`select!` itself, `json!`, custom syntax) is not looked at.
    fn visit_macro(&mut self, mac: &'ast Macro) {
        if let Some(finding) = macro_finding(&mac.path) {
            self.findings.push(finding);
            return;
        }
        if let Ok(args) = mac.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated) {
            for arg in &args {
                self.visit_expr(arg);
            }
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
    fn visit_pat_guard(&mut self, pat: &'ast syn::PatGuard) {
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

/// The outer attributes of an expression.
fn expr_attrs(expr: &Expr) -> &[syn::Attribute] {
    match expr {
        Expr::Array(e) => &e.attrs,
        Expr::Assign(e) => &e.attrs,
        Expr::Async(e) => &e.attrs,
        Expr::Await(e) => &e.attrs,
        Expr::Binary(e) => &e.attrs,
        Expr::Block(e) => &e.attrs,
        Expr::Break(e) => &e.attrs,
        Expr::Call(e) => &e.attrs,
        Expr::Cast(e) => &e.attrs,
        Expr::Closure(e) => &e.attrs,
        Expr::Const(e) => &e.attrs,
        Expr::Continue(e) => &e.attrs,
        Expr::Field(e) => &e.attrs,
        Expr::ForLoop(e) => &e.attrs,
        Expr::Group(e) => &e.attrs,
        Expr::If(e) => &e.attrs,
        Expr::Index(e) => &e.attrs,
        Expr::Infer(e) => &e.attrs,
        Expr::Let(e) => &e.attrs,
        Expr::Lit(e) => &e.attrs,
        Expr::Loop(e) => &e.attrs,
        Expr::Macro(e) => &e.attrs,
        Expr::Match(e) => &e.attrs,
        Expr::MethodCall(e) => &e.attrs,
        Expr::Paren(e) => &e.attrs,
        Expr::Path(e) => &e.attrs,
        Expr::Range(e) => &e.attrs,
        Expr::RawAddr(e) => &e.attrs,
        Expr::Reference(e) => &e.attrs,
        Expr::Repeat(e) => &e.attrs,
        Expr::Return(e) => &e.attrs,
        Expr::Struct(e) => &e.attrs,
        Expr::Try(e) => &e.attrs,
        Expr::TryBlock(e) => &e.attrs,
        Expr::Tuple(e) => &e.attrs,
        Expr::Unary(e) => &e.attrs,
        Expr::Unsafe(e) => &e.attrs,
        Expr::While(e) => &e.attrs,
        Expr::Yield(e) => &e.attrs,
        // `Verbatim`, and variants a later syn adds: nothing to allow there.
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::super::lint_body;
    use super::*;
    use proc_macro2::TokenStream;
    use quote::quote;

    /// The findings in `body`, as (constant, spanned source text).
    fn findings(params: TokenStream, body: TokenStream) -> Vec<(&'static str, String)> {
        let params: Punctuated<syn::PatType, Token![,]> =
            syn::parse::Parser::parse2(Punctuated::parse_terminated, params).expect("params");
        let params: Vec<(Ident, Type)> = params
            .into_iter()
            .filter_map(|param| match *param.pat {
                Pat::Ident(pat) => Some((pat.ident, *param.ty)),
                _ => None,
            })
            .collect();
        let block: Block = syn::parse2(body).expect("a block");
        lint_body(&block, params.iter().map(|(name, ty)| (name, ty)))
            .into_iter()
            .map(|finding| (finding.kind.constant(), finding.at.to_string()))
            .collect()
    }

    fn kinds(body: TokenStream) -> Vec<&'static str> {
        findings(quote!(), body)
            .into_iter()
            .map(|(kind, _)| kind)
            .collect()
    }

    #[test]
    fn finds_clock_random_spawn_and_environment_calls() {
        let found = kinds(quote! {{
            let a = std::time::SystemTime::now();
            let b = Instant::now();
            let c = chrono::Utc::now();
            let d = Local::now();
            let e = rand::thread_rng().next_u32();
            let f = rand::random::<u64>();
            let g = rand::rng();
            let h = Uuid::new_v4();
            std::thread::spawn(|| {});
            tokio::spawn(async {});
            tokio::task::spawn(async {});
            tokio::task::spawn_blocking(|| {});
            let i = std::env::var("A");
            let j = env::var_os("A");
            let k = env::vars();
            let l = env::vars_os();
        }});
        assert_eq!(
            found,
            [
                "SYSTEM_TIME_NOW",
                "INSTANT_NOW",
                "UTC_NOW",
                "LOCAL_NOW",
                "THREAD_RNG",
                "RAND_RANDOM",
                "RAND_RNG",
                "UUID_NEW_V4",
                "THREAD_SPAWN",
                "TOKIO_SPAWN",
                "TASK_SPAWN",
                "SPAWN_BLOCKING",
                "ENV_VAR",
                "ENV_VAR_OS",
                "ENV_VARS",
                "ENV_VARS_OS",
            ]
        );
    }

    #[test]
    fn looks_into_blocks_closures_async_blocks_and_expression_macros() {
        let found = kinds(quote! {{
            {
                let a = SystemTime::now();
            }
            let f = |x: u8| Instant::now();
            let g = async move { rand::random::<u8>() };
            let (a, b) = tokio::join!(ctx.branch(async { SystemTime::now() }), other());
            println!("{:?}", Instant::now());
            if cond { env::var("A") } else { env::vars() };
            match x { Some(y) if y < Instant::now() => thread_rng(), None => 0 };
        }});
        assert_eq!(
            found,
            [
                "SYSTEM_TIME_NOW",
                "INSTANT_NOW",
                "RAND_RANDOM",
                "SYSTEM_TIME_NOW",
                "INSTANT_NOW",
                "ENV_VAR",
                "ENV_VARS",
                "INSTANT_NOW",
                "THREAD_RNG",
            ]
        );
    }

    #[test]
    fn select_is_found_and_its_input_is_not_read() {
        let found = kinds(quote! {{
            tokio::select! {
                a = one() => SystemTime::now(),
                b = two() => 0,
            }
            let x = futures::select!(a, b);
        }});
        assert_eq!(found, ["SELECT", "SELECT"]);
    }

    #[test]
    fn allowed_statements_and_expressions_are_skipped() {
        let found = kinds(quote! {{
            #[allow_nondeterministic]
            let a = SystemTime::now();
            #[allow_nondeterministic]
            tokio::spawn(async {});
            #[allow_nondeterministic]
            {
                Instant::now();
            }
            let b = (#[allow_nondeterministic] Instant::now(), env::var("A"));
            #[allow_nondeterministic]
            tokio::select! { _ = a => {} }
            println!("{:?}", #[allow_nondeterministic] SystemTime::now());
            match x {
                #[allow_nondeterministic]
                Some(_) => thread_rng(),
                None => 0,
            };
        }});
        assert_eq!(found, ["ENV_VAR"]);
    }

    #[test]
    fn items_in_the_body_are_not_the_body() {
        let found = kinds(quote! {{
            #[step]
            async fn stamp() -> Result<SystemTime, E> {
                Ok(SystemTime::now())
            }
            fn helper() -> Instant { Instant::now() }
            let a = stamp().await;
        }});
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn finds_iteration_of_hash_containers_it_can_see() {
        let found = findings(
            quote!(input: HashMap<String, u32>, list: Vec<u32>),
            quote! {{
                let m: HashMap<u8, u8> = build();
                let s = HashSet::new();
                let t = std::collections::HashSet::<u8>::with_capacity(4);
                let c = pairs.into_iter().collect::<HashMap<_, _>>();
                let n = m.clone();
                for (k, v) in &m {}
                for x in s.iter() {}
                let keys: Vec<_> = c.keys().collect();
                let total: u32 = input.values().sum();
                for x in t {}
                for y in n.into_iter() {}
                for x in &list {}
                let got = m.get(&1);
                let len = s.len();
            }},
        );
        assert_eq!(
            found,
            [
                ("HASH_MAP_ITER", "m".to_owned()),
                ("HASH_SET_ITER", "iter".to_owned()),
                ("HASH_MAP_ITER", "keys".to_owned()),
                ("HASH_MAP_ITER", "values".to_owned()),
                ("HASH_SET_ITER", "t".to_owned()),
                ("HASH_MAP_ITER", "into_iter".to_owned()),
            ]
        );
    }

    #[test]
    fn shadowing_and_scopes_hide_hash_containers() {
        let found = kinds(quote! {{
            let m = HashMap::new();
            let m: Vec<_> = m.into_iter().collect();
            for x in &m {}
            {
                let s = HashSet::new();
            }
            for x in s.iter() {}
            let t = HashSet::new();
            let f = |t: Vec<u8>| for x in &t {};
            for t in [1, 2] {
                for x in t.iter() {}
            }
            let sorted = { let mut v: Vec<_> = t.into_iter().collect(); v.sort(); v };
            for x in sorted {}
        }});
        // Only the iterations that feed a `Vec`: the lint cannot tell that one is sorted.
        assert_eq!(found, ["HASH_MAP_ITER", "HASH_SET_ITER"]);
    }
}
