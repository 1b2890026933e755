//! Validation: raw options plus the function's signature become a plain config struct.
//!
//! Every mistake is recorded in a [`Ctxt`] and reported together, each spanned at the token it
//! concerns and saying how to fix it. Option setters refuse repeats (`Once`); `build` checks the
//! combinations. Nothing here generates code.

use std::fmt::Display;

use cache_keys::pattern::{self, GLOB_CHARS};
use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Expr, ExprLit, ExprUnary, Ident, Lit, LitInt, LitStr, Path, Signature, Token, Type, UnOp,
};

use crate::attr::{CachedArgs, InvalidateArgs, RawOption, RawValue};
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
    /// `{key_prefix}[:v{N}]`.
    pub head: String,
    pub key: KeyPlan,
    pub info: FnInfo,
}

/// One piece of an `#[invalidate_cache]` pattern.
#[derive(Debug, PartialEq)]
pub(crate) enum Piece {
    /// Glob text, as written (with `{{`/`}}` turned into braces).
    Text(String),
    /// `{arg}`: the argument's key encoding, glob-escaped at run time.
    Arg(Ident),
}

/// Everything the `#[invalidate_cache]` expansion needs, checked.
pub(crate) struct InvalidateConfig {
    pub krate: TokenStream,
    pub patterns: Vec<Vec<Piece>>,
    pub allow_all: bool,
    pub info: FnInfo,
}

const CACHED_OPTIONS: &str = "ttl, none_ttl, key_prefix, key_builder, skip, version, crate";
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
    let mut krate = Once::new();
    for RawOption { name, value } in args.options {
        match name.to_string().as_str() {
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
    // With no `key_prefix` the prefix *is* the function name: the key is `{fn_name}:{args}`
    // rather than `{fn_name}:{fn_name}:{args}`.
    let (mut head, key) = match (key_builder.value, key_prefix.value) {
        (Some(path), prefix) => (
            prefix.unwrap_or(fn_name),
            KeyPlan::Builder {
                path,
                args: named.map(|(i, _)| i).collect(),
            },
        ),
        (None, Some(prefix)) => (
            format!("{prefix}:{fn_name}"),
            KeyPlan::Parts(named.collect()),
        ),
        (None, None) => (fn_name, KeyPlan::Parts(named.collect())),
    };
    if let Some(v) = version.value {
        head.push_str(&format!(":v{v}"));
    }
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
            "allow_all" => match value {
                RawValue::Flag => allow_all.set(&mut cx, &name, true),
                RawValue::Expr(Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                })) => allow_all.set(&mut cx, &name, b.value),
                _ => cx.error(name.span(), "write `allow_all = true`"),
            },
            "crate" => set_crate(&mut cx, &name, value, &mut krate),
            other => cx.error(
                name.span(),
                format_args!(
                    "unknown option `{other}`: #[invalidate_cache] accepts patterns (\"user:*\") \
                     first, then {INVALIDATE_OPTIONS}"
                ),
            ),
        }
    }
    if args.patterns.is_empty() {
        cx.error(
            Span::call_site(),
            "#[invalidate_cache] needs at least one pattern: #[invalidate_cache(\"user:*\")]",
        );
    }
    let allow_all = allow_all.value.unwrap_or(false);
    let patterns = args
        .patterns
        .iter()
        .filter_map(|lit| parse_pattern(&mut cx, lit, &info, allow_all))
        .collect();
    cx.finish()?;
    Ok(InvalidateConfig {
        krate: krate.value.unwrap_or_else(default_crate),
        patterns,
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
    let mut ok = true;
    let mut fail = |message: String| {
        cx.error(lit.span(), message);
        ok = false;
    };
    if value.is_empty() {
        fail("key_prefix is empty: give a name such as `key_prefix = \"user\"`, or leave it out to use the function's name".into());
    }
    if value.chars().any(char::is_whitespace) {
        fail(format!(
            "key_prefix `{value}` contains whitespace, which makes keys hard to type in redis-cli: use `_` or `-`"
        ));
    }
    if let Some(c) = value.chars().find(|c| GLOB_CHARS.contains(c)) {
        fail(format!(
            "key_prefix `{value}` contains the glob character `{c}`, which would act as a wildcard in invalidation patterns: remove it"
        ));
    }
    if value.ends_with(':') {
        fail(format!(
            "key_prefix `{value}` ends in `:`, which the key adds itself: write `{}`",
            value.trim_end_matches(':')
        ));
    }
    ok.then_some(value)
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
fn parse_pattern(
    cx: &mut Ctxt,
    lit: &LitStr,
    info: &FnInfo,
    allow_all: bool,
) -> Option<Vec<Piece>> {
    let value = lit.value();
    let pieces = match split_placeholders(&value) {
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
            RawPiece::Text(t) => {
                sample.push_str(&t);
                pieces_out.push(Piece::Text(t));
            }
            RawPiece::Arg(name) => {
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
    ok.then_some(pieces_out)
}

#[derive(Debug, PartialEq)]
enum RawPiece {
    Text(String),
    Arg(String),
}

/// `a{b}c{{d}}` -> Text("a"), Arg("b"), Text("c{d}").
fn split_placeholders(s: &str) -> Result<Vec<RawPiece>, String> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(
                                "a `{` is never closed: write `{arg}` for an argument or `{{` for a literal brace"
                                    .into(),
                            )
                        }
                    }
                }
                if !text.is_empty() {
                    pieces.push(RawPiece::Text(std::mem::take(&mut text)));
                }
                pieces.push(RawPiece::Arg(name.trim().to_owned()));
            }
            '}' => {
                return Err("a lone `}`: write `}}` for a literal brace".into());
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(RawPiece::Text(text));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_escaped_braces() {
        assert_eq!(
            split_placeholders("server:{id}:*{{x}}"),
            Ok(vec![
                RawPiece::Text("server:".into()),
                RawPiece::Arg("id".into()),
                RawPiece::Text(":*{x}".into()),
            ])
        );
        assert!(split_placeholders("a{b").is_err());
        assert!(split_placeholders("a}b").is_err());
        assert_eq!(split_placeholders(""), Ok(vec![]));
    }
}
