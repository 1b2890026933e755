//! Validation: raw options plus the function's signature become a plain config struct.
//!
//! Every mistake is recorded in a [`Ctxt`] and reported together, each spanned at the token it
//! concerns and saying how to fix it. Option setters refuse repeats (`Once`); `build` checks the
//! combinations. Nothing here generates code.

use std::fmt::Display;

use cache_keys::pattern;
use cache_keys::space::{self, Piece as TemplatePiece};
use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, ExprUnary, Ident, Lit, LitInt, LitStr, Path, Signature, Token, Type, UnOp,
};

use crate::attr::{CachedArgs, InvalidateArgs, RawOption, RawTarget, RawValue};
use crate::sig::{self, FnInfo, ReturnMode};

/// Collects errors so that all of them are reported at once.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Option<syn::Error>,
}

impl Ctxt {
    pub fn error(&mut self, span: Span, message: impl Display) {
        self.push(syn::Error::new(span, message));
    }

    pub fn push(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    pub fn finish(self) -> Result<(), syn::Error> {
        self.errors.map_or(Ok(()), Err)
    }
}

/// An option that may be given at most once; repeats are errors at the repeated name.
struct Once<T> {
    value: Option<T>,
}

impl<T> Once<T> {
    fn new() -> Self {
        Once { value: None }
    }

    fn set(&mut self, cx: &mut Ctxt, name: &Ident, value: T) {
        if self.value.is_some() {
            cx.error(
                name.span(),
                format_args!("`{name}` is given more than once: keep one"),
            );
        } else {
            self.value = Some(value);
        }
    }
}

/// How the key of a `#[cached]` function is built.
pub(crate) enum KeyPlan {
    /// `{head}:{arg}:{arg}...` through `CacheKey`: each argument's name and type.
    Parts(Vec<(Ident, Type)>),
    /// `{head}:{builder(&arg, ...)}`.
    Builder { path: Path, args: Vec<Ident> },
}

/// Everything the `#[cached]` expansion needs, checked.
pub(crate) struct CachedConfig {
    pub krate: TokenStream,
    pub ttl: Option<Expr>,
    pub none_ttl: Option<Expr>,
    /// The constant start of every key: `{key_prefix}:{fn_name}[:v{N}]`, or with a key builder
    /// `{key_prefix}[:v{N}]` (`cache_keys::space::head`).
    pub head: String,
    pub key: KeyPlan,
    /// Whether another function may share this key space on purpose (`shared_keys`).
    pub shared_keys: bool,
    /// Whether to generate the key functions beside it (`key_fns = false` turns them off).
    pub key_fns: bool,
    pub info: FnInfo,
}

impl CachedConfig {
    /// True when the only key is the head itself: no key arguments, no generics, no receiver.
    pub fn exact(&self) -> bool {
        matches!(&self.key, KeyPlan::Parts(parts) if parts.is_empty())
            && self.info.generics.is_empty()
            && !self.info.receiver
    }
}

/// One piece of an `#[invalidate_cache]` pattern.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece {
    /// Glob text, as written (with `{{`/`}}` turned into braces).
    Text(String),
    /// `{arg}`: the argument's key encoding, glob-escaped at run time.
    Arg(Ident),
}

/// A string pattern of `#[invalidate_cache]`, checked.
pub(crate) struct Pattern {
    pub pieces: Vec<Piece>,
    /// The pattern as written, for the registry.
    pub written: String,
}

/// A cached function named by `#[invalidate_cache(get_user(id))]`: its keys are computed by the
/// functions `#[cached]` generates beside it (`get_user__key`, `get_user__pattern`,
/// `get_user__all`), so a typo, a rename or a changed key argument fails the build.
pub(crate) struct Target {
    /// The function's path, generic arguments included (`repo::load::<User>`).
    pub path: Path,
    pub args: TargetArgs,
    pub span: Span,
}

/// Which keys of a target are deleted.
pub(crate) enum TargetArgs {
    /// `f(..)`: every key of the function.
    All,
    /// `f(a, _, c)`: the key for these values, `_` standing for any value.
    Values(Vec<Option<Expr>>),
}

/// Everything the `#[invalidate_cache]` expansion needs, checked.
pub(crate) struct InvalidateConfig {
    pub krate: TokenStream,
    pub patterns: Vec<Pattern>,
    pub targets: Vec<Target>,
    pub allow_all: bool,
    pub info: FnInfo,
}

const CACHED_OPTIONS: &str =
    "ttl, none_ttl, key_prefix, key_builder, skip, version, shared_keys, key_fns, crate";
const INVALIDATE_OPTIONS: &str = "allow_all, crate";

pub(crate) fn cached(args: CachedArgs, sig: &Signature) -> Result<CachedConfig, syn::Error> {
    let mut cx = Ctxt::default();
    let info = sig::analyze(sig);
    require_async(&mut cx, sig, "cached");

    let mut ttl = Once::new();
    let mut none_ttl = Once::new();
    let mut key_prefix = Once::new();
    let mut key_builder = Once::new();
    let mut skip = Once::new();
    let mut version = Once::new();
    let mut shared_keys = Once::new();
    let mut key_fns = Once::new();
    let mut krate = Once::new();
    for RawOption { name, value } in args.options {
        match name.to_string().as_str() {
            "shared_keys" => flag(&mut cx, &name, value, &mut shared_keys),
            "key_fns" => flag(&mut cx, &name, value, &mut key_fns),
            "ttl" => {
                if let Some(e) = expr_value(&mut cx, &name, value, "ttl = 60") {
                    if let Some(e) = seconds(&mut cx, &name, e) {
                        ttl.set(&mut cx, &name, e);
                    }
                }
            }
            "none_ttl" => {
                if let Some(e) = expr_value(&mut cx, &name, value, "none_ttl = 30") {
                    if let Some(e) = seconds(&mut cx, &name, e) {
                        none_ttl.set(&mut cx, &name, (name.span(), e));
                    }
                }
            }
            "key_prefix" => {
                if let Some(e) = expr_value(&mut cx, &name, value, "key_prefix = \"user\"") {
                    if let Some(lit) = key_prefix_value(&mut cx, e) {
                        key_prefix.set(&mut cx, &name, lit);
                    }
                }
            }
            "key_builder" => {
                if let Some(e) = expr_value(&mut cx, &name, value, "key_builder = build_key") {
                    match e {
                        Expr::Path(p) if p.qself.is_none() => {
                            key_builder.set(&mut cx, &name, p.path);
                        }
                        other => cx.error(
                            other.span(),
                            "key_builder takes the path of a function, e.g. `key_builder = build_key`",
                        ),
                    }
                }
            }
            "skip" => match value {
                RawValue::List(tokens) => {
                    let names = |input: syn::parse::ParseStream<'_>| {
                        Punctuated::<Ident, Token![,]>::parse_terminated_with(
                            input,
                            Ident::parse_any,
                        )
                    };
                    match syn::parse::Parser::parse2(names, tokens) {
                        Ok(names) => skip.set(&mut cx, &name, names.into_iter().collect()),
                        Err(e) => {
                            cx.error(e.span(), "skip takes argument names: `skip(pool, ctx)`")
                        }
                    }
                }
                _ => cx.error(
                    name.span(),
                    "skip takes a list of argument names: `skip(pool, ctx)`",
                ),
            },
            "version" => {
                if let Some(e) = expr_value(&mut cx, &name, value, "version = 2") {
                    let number = match &e {
                        Expr::Lit(ExprLit {
                            lit: Lit::Int(lit), ..
                        }) => lit.base10_parse::<u32>().ok(),
                        _ => None,
                    };
                    match number {
                        Some(n) => version.set(&mut cx, &name, n),
                        None => cx.error(
                            e.span(),
                            "version must be a whole number literal, e.g. `version = 2`",
                        ),
                    }
                }
            }
            "crate" => set_crate(&mut cx, &name, value, &mut krate),
            other => cx.error(
                name.span(),
                format_args!("unknown option `{other}`: #[cached] accepts {CACHED_OPTIONS}"),
            ),
        }
    }

    // Combinations and the arguments.
    let skip: Vec<Ident> = skip.value.unwrap_or_default();
    check_skip(&mut cx, &skip, &info);
    let key_args: Vec<&sig::Arg> = info
        .args
        .iter()
        .filter(|a| !a.ident.as_ref().is_some_and(|i| skip.contains(i)))
        .collect();
    for arg in &key_args {
        if arg.destructured {
            cx.error(
                arg.pat_span,
                "#[cached] builds the key from named arguments: bind this argument to a name \
                 and destructure it in the body",
            );
        }
    }
    let named = key_args
        .iter()
        .filter_map(|a| a.ident.as_ref().map(|ident| (ident.clone(), a.ty.clone())));
    let fn_name = info.name.unraw().to_string();
    let head = space::head(
        key_prefix.value.as_deref(),
        &fn_name,
        version.value,
        key_builder.value.is_some(),
    );
    let key = match key_builder.value {
        Some(path) => KeyPlan::Builder {
            path,
            args: named.map(|(i, _)| i).collect(),
        },
        None => KeyPlan::Parts(named.collect()),
    };
    let none_ttl = none_ttl.value.and_then(|(span, e)| {
        if info.mode == ReturnMode::Option {
            Some(e)
        } else {
            cx.error(
                span,
                "none_ttl caches `None`, so it needs a function returning `Option<T>`: \
                 remove it or change the return type",
            );
            None
        }
    });
    cx.finish()?;
    Ok(CachedConfig {
        krate: krate.value.unwrap_or_else(default_crate),
        ttl: ttl.value,
        none_ttl,
        head,
        key,
        shared_keys: shared_keys.value.unwrap_or(false),
        key_fns: key_fns.value.unwrap_or(true),
        info,
    })
}

pub(crate) fn invalidate(
    args: InvalidateArgs,
    sig: &Signature,
) -> Result<InvalidateConfig, syn::Error> {
    let mut cx = Ctxt::default();
    let info = sig::analyze(sig);
    require_async(&mut cx, sig, "invalidate_cache");

    let mut allow_all = Once::new();
    let mut krate = Once::new();
    for RawOption { name, value } in args.options {
        match name.to_string().as_str() {
            "allow_all" => flag(&mut cx, &name, value, &mut allow_all),
            "crate" => set_crate(&mut cx, &name, value, &mut krate),
            other => cx.error(
                name.span(),
                format_args!(
                    "unknown option `{other}`: #[invalidate_cache] accepts patterns \
                     (\"user:*\"), cached functions (`get_user(id)`) and {INVALIDATE_OPTIONS}"
                ),
            ),
        }
    }
    if args.patterns.is_empty() && args.targets.is_empty() {
        cx.error(
            Span::call_site(),
            "#[invalidate_cache] needs at least one cached function or pattern: \
             #[invalidate_cache(get_user(id))] or #[invalidate_cache(\"user:*\")]",
        );
    }
    let allow_all = allow_all.value.unwrap_or(false);
    let patterns = args
        .patterns
        .iter()
        .filter_map(|lit| parse_pattern(&mut cx, lit, &info, allow_all))
        .collect();
    let targets = args
        .targets
        .into_iter()
        .filter_map(|raw| target(&mut cx, raw))
        .collect();
    cx.finish()?;
    Ok(InvalidateConfig {
        krate: krate.value.unwrap_or_else(default_crate),
        patterns,
        targets,
        allow_all,
        info,
    })
}

fn default_crate() -> TokenStream {
    quote!(::cache_core)
}

fn require_async(cx: &mut Ctxt, sig: &Signature, attr: &str) {
    if sig.asyncness.is_none() {
        cx.error(
            sig.fn_token.span,
            format_args!(
                "#[{attr}] works on `async fn` only: make this function `async` \
                 (or use `Cache::get`/`Cache::set` directly in synchronous code)"
            ),
        );
    }
}

/// The `= value` of an option that needs one; errors name the expected form.
fn expr_value(cx: &mut Ctxt, name: &Ident, value: RawValue, example: &str) -> Option<Expr> {
    match value {
        RawValue::Expr(e) => Some(e),
        RawValue::Flag | RawValue::List(_) => {
            cx.error(
                name.span(),
                format_args!("`{name}` needs a value: `{example}`"),
            );
            None
        }
    }
}

/// A number of seconds: a positive integer literal, or an expression left to const evaluation.
fn seconds(cx: &mut Ctxt, name: &Ident, e: Expr) -> Option<Expr> {
    let hint = format_args!(
        "`{name}` is a whole number of seconds, at least 1, e.g. `{name} = 60` or a `const` of type u64"
    )
    .to_string();
    match &e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => match lit.base10_parse::<u64>() {
            Ok(0) => {
                cx.error(
                    lit.span(),
                    format_args!(
                        "`{name} = 0` would expire entries at once: give at least 1 second{}",
                        if name == "ttl" {
                            " (or leave ttl out for CACHE_TTL_DEFAULT)"
                        } else {
                            ""
                        }
                    ),
                );
                None
            }
            Ok(n) => Some(Expr::Lit(ExprLit {
                attrs: Vec::new(),
                lit: Lit::Int(LitInt::new(&n.to_string(), lit.span())),
            })),
            Err(_) => {
                cx.error(lit.span(), hint);
                None
            }
        },
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => {
            cx.error(
                e.span(),
                format_args!(
                    "`{name}` cannot be negative: give a whole number of seconds, at least 1, e.g. `{name} = 60`"
                ),
            );
            None
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            cx.error(s.span(), format_args!("{hint}; write it without quotes"));
            None
        }
        Expr::Path(_)
        | Expr::Binary(_)
        | Expr::Call(_)
        | Expr::MethodCall(_)
        | Expr::Paren(_)
        | Expr::Group(_)
        | Expr::Cast(_)
        | Expr::Block(_)
        | Expr::Macro(_)
        | Expr::Field(_) => Some(e),
        _ => {
            cx.error(e.span(), hint);
            None
        }
    }
}

fn key_prefix_value(cx: &mut Ctxt, e: Expr) -> Option<String> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(lit), ..
    }) = e
    else {
        cx.error(
            e.span(),
            "key_prefix is a string literal: `key_prefix = \"user\"`",
        );
        return None;
    };
    let value = lit.value();
    match space::check_prefix(&value) {
        Ok(()) => Some(value),
        Err(problems) => {
            for problem in problems {
                cx.error(lit.span(), problem);
            }
            None
        }
    }
}

/// A boolean option: `name` alone or `name = true|false`, set once.
fn flag(cx: &mut Ctxt, name: &Ident, value: RawValue, slot: &mut Once<bool>) {
    match value {
        RawValue::Flag => slot.set(cx, name, true),
        RawValue::Expr(Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        })) => slot.set(cx, name, b.value),
        _ => cx.error(
            name.span(),
            format_args!("write `{name}` or `{name} = true`"),
        ),
    }
}

/// A cached function named in `#[invalidate_cache]`: `f(a, _)`, `path::f::<T>(a)`, `f(..)`.
fn target(cx: &mut Ctxt, raw: RawTarget) -> Option<Target> {
    let RawTarget { call } = raw;
    let span = call.span();
    let Expr::Path(func) = *call.func else {
        cx.error(
            span,
            "name a cached function and its key arguments: `get_user(id)`, `get_user(_)` or `get_user(..)`",
        );
        return None;
    };
    if func.qself.is_some() {
        cx.error(
            span,
            "name the cached function by its path: `Repo::load(id)`",
        );
        return None;
    }
    let args: Vec<Expr> = call.args.into_iter().collect();
    let args = match args.as_slice() {
        [Expr::Range(range)] if range.start.is_none() && range.end.is_none() => TargetArgs::All,
        _ => {
            let mut values = Vec::with_capacity(args.len());
            for arg in args {
                match arg {
                    Expr::Infer(_) => values.push(None),
                    Expr::Range(r) if r.start.is_none() && r.end.is_none() => {
                        cx.error(
                            r.span(),
                            "`..` stands for every key: write it alone, `f(..)`",
                        );
                        return None;
                    }
                    other => values.push(Some(other)),
                }
            }
            TargetArgs::Values(values)
        }
    };
    Some(Target {
        path: func.path,
        args,
        span,
    })
}

/// `crate = "path"`, shared by both attributes: a path in a string, set once.
fn set_crate(cx: &mut Ctxt, name: &Ident, value: RawValue, krate: &mut Once<TokenStream>) {
    const EXAMPLE: &str = "crate = \"my_crate::cache\"";
    let Some(e) = expr_value(cx, name, value, EXAMPLE) else {
        return;
    };
    let path = match &e {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => lit.parse::<Path>().ok(),
        _ => None,
    };
    match path {
        Some(path) => krate.set(cx, name, path.into_token_stream()),
        None => cx.error(
            e.span(),
            format_args!("crate takes a path in a string: `{EXAMPLE}`"),
        ),
    }
}

fn argument_names(info: &FnInfo) -> String {
    let names: Vec<String> = info
        .args
        .iter()
        .filter_map(|a| a.ident.as_ref().map(ToString::to_string))
        .collect();
    if names.is_empty() {
        format!("`{}` has no named arguments", info.name)
    } else {
        format!("the arguments of `{}` are: {}", info.name, names.join(", "))
    }
}

fn is_argument(info: &FnInfo, name: &Ident) -> bool {
    info.args.iter().any(|a| a.ident.as_ref() == Some(name))
}

fn check_skip(cx: &mut Ctxt, skip: &[Ident], info: &FnInfo) {
    for (i, name) in skip.iter().enumerate() {
        if name == "self" {
            cx.error(
                name.span(),
                "the receiver is never part of the key: remove `self` from skip(..)",
            );
        } else if !is_argument(info, name) {
            cx.error(
                name.span(),
                format_args!(
                    "skip names `{name}`, which is not an argument; {}",
                    argument_names(info)
                ),
            );
        } else if skip.get(..i).is_some_and(|before| before.contains(name)) {
            cx.error(
                name.span(),
                format_args!("`{name}` is skipped twice: keep one"),
            );
        }
    }
}

/// Splits a pattern into glob text and `{arg}` placeholders and checks both.
fn parse_pattern(cx: &mut Ctxt, lit: &LitStr, info: &FnInfo, allow_all: bool) -> Option<Pattern> {
    let value = lit.value();
    let pieces = match space::split_template(&value) {
        Ok(pieces) => pieces,
        Err(message) => {
            cx.error(
                lit.span(),
                format_args!("in pattern \"{value}\": {message}"),
            );
            return None;
        }
    };
    let mut ok = true;
    let mut sample = String::new();
    let mut pieces_out = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match piece {
            TemplatePiece::Text(t) => {
                sample.push_str(&t);
                pieces_out.push(Piece::Text(t));
            }
            TemplatePiece::Arg(name) => {
                // A placeholder stands for escaped text: a plain letter is a faithful sample.
                sample.push('x');
                let ident = syn::parse_str::<Ident>(&name)
                    .ok()
                    .filter(|i| is_argument(info, i));
                match ident {
                    Some(ident) => {
                        pieces_out.push(Piece::Arg(Ident::new(&ident.to_string(), lit.span())))
                    }
                    None => {
                        cx.error(
                            lit.span(),
                            format_args!(
                                "the placeholder `{{{name}}}` names no argument; {} \
                                 (write `{{{{` and `}}}}` for literal braces)",
                                argument_names(info)
                            ),
                        );
                        ok = false;
                    }
                }
            }
        }
    }
    if let Err(e) = pattern::validate(&sample) {
        cx.error(lit.span(), format_args!("in pattern \"{value}\": {e}"));
        ok = false;
    } else if pattern::matches_everything(&sample) && !allow_all {
        cx.error(
            lit.span(),
            format_args!(
                "the pattern \"{value}\" matches every key and would delete the whole database \
                 on each call: narrow it (\"user:*\"), or add `allow_all = true` if that is meant"
            ),
        );
        ok = false;
    }
    ok.then_some(Pattern {
        pieces: pieces_out,
        written: value,
    })
}
