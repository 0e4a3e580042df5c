//! Walks a workflow body for the lint: nested blocks, closures, async blocks, and the
//! arguments of macros that read as expressions. Its [`Scope`] follows which names hold a
//! `HashMap` or `HashSet`, to find their iteration.

use super::scope::Scope;
use super::{Finding, allows, call_finding, macro_finding};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};
use syn::{
    Arm, Block, Expr, ExprClosure, ExprForLoop, ExprIf, ExprMethodCall, ExprPath, ExprWhile, Ident,
    Item, Local, Macro, Stmt, Token, Type,
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

/// Collects the findings of one body, in the order they are written.
pub(super) struct BodyVisitor {
    findings: Vec<Finding>,
    scope: Scope,
}

impl BodyVisitor {
    pub(super) fn walk<'a>(
        body: &Block,
        params: impl IntoIterator<Item = (&'a Ident, &'a Type)>,
    ) -> Vec<Finding> {
        let mut visitor = BodyVisitor {
            findings: Vec::new(),
            scope: Scope::default(),
        };
        for (name, ty) in params {
            visitor.scope.bind_typed(name, ty);
        }
        visitor.visit_block(body);
        visitor.findings
    }

    /// Runs `f` in a scope of its own: names bound inside go out of scope after it.
    fn scoped(&mut self, f: impl FnOnce(&mut Self)) {
        let depth = self.scope.depth();
        f(self);
        self.scope.truncate(depth);
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
        self.scope.bind_local(local);
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
            && let Some((kind, _)) = self.scope.hash_local(&call.receiver)
        {
            self.findings.push(Finding {
                kind,
                at: call.method.clone(),
            });
        }
        visit::visit_expr_method_call(self, call);
    }

    fn visit_expr_for_loop(&mut self, for_loop: &'ast ExprForLoop) {
        if let Some((kind, name)) = self.scope.hash_local(&for_loop.expr) {
            self.findings.push(Finding {
                kind,
                at: name.clone(),
            });
        }
        self.visit_expr(&for_loop.expr);
        self.scoped(|this| {
            this.scope.bind_plain(&for_loop.pat);
            this.visit_block(&for_loop.body);
        });
    }

    fn visit_expr_closure(&mut self, closure: &'ast ExprClosure) {
        self.scoped(|this| {
            for input in &closure.inputs {
                this.scope.bind_plain(input);
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
        self.scope.bind_plain(&expr.pat);
    }

    fn visit_arm(&mut self, arm: &'ast Arm) {
        if allows(&arm.attrs) {
            return;
        }
        self.scoped(|this| {
            this.scope.bind_plain(&arm.pat);
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
    use syn::Pat;

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
