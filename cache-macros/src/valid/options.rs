//! Option decoding: each raw option of an attribute becomes a typed value, set at most once.
//! What the options mean together is checked in [`keys`](super::keys) and
//! [`cached`](super::cached).

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitInt, Path, Token, UnOp};

use super::{Ctxt, Once};
use crate::attr::{RawOption, RawValue};
use cache_keys::space;

const CACHED_OPTIONS: &str =
    "ttl, none_ttl, key_prefix, key_builder, skip, version, shared_keys, key_fns, crate";
const INVALIDATE_OPTIONS: &str = "allow_all, crate";

/// The options of `#[cached]`, each decoded.
pub(super) struct CachedOptions {
    pub ttl: Option<Expr>,
    /// With the span of its name, for the check that the function returns an `Option`.
    pub none_ttl: Option<(Span, Expr)>,
    pub key_prefix: Option<String>,
    pub key_builder: Option<Path>,
    pub skip: Vec<Ident>,
    pub version: Option<u32>,
    pub shared_keys: bool,
    pub key_fns: bool,
    pub krate: TokenStream,
}

/// The options of `#[invalidate_cache]`, each decoded.
pub(super) struct InvalidateOptions {
    pub allow_all: bool,
    pub krate: TokenStream,
}

/// Decodes the options of `#[cached]`; mistakes go to `cx`.
pub(super) fn cached(cx: &mut Ctxt, options: Vec<RawOption>) -> CachedOptions {
    let mut ttl = Once::new();
    let mut none_ttl = Once::new();
    let mut key_prefix = Once::new();
    let mut key_builder = Once::new();
    let mut skip = Once::new();
    let mut version = Once::new();
    let mut shared_keys = Once::new();
    let mut key_fns = Once::new();
    let mut krate = Once::new();
    for RawOption { name, value } in options {
        match name.to_string().as_str() {
            "shared_keys" => flag(cx, &name, value, &mut shared_keys),
            "key_fns" => flag(cx, &name, value, &mut key_fns),
            "ttl" => {
                let e = expr_value(cx, &name, value, "ttl = 60");
                if let Some(e) = e.and_then(|e| seconds(cx, &name, e)) {
                    ttl.set(cx, &name, e);
                }
            }
            "none_ttl" => {
                let e = expr_value(cx, &name, value, "none_ttl = 30");
                if let Some(e) = e.and_then(|e| seconds(cx, &name, e)) {
                    none_ttl.set(cx, &name, (name.span(), e));
                }
            }
            "key_prefix" => {
                let e = expr_value(cx, &name, value, "key_prefix = \"user\"");
                if let Some(prefix) = e.and_then(|e| key_prefix_value(cx, e)) {
                    key_prefix.set(cx, &name, prefix);
                }
            }
            "key_builder" => {
                let e = expr_value(cx, &name, value, "key_builder = build_key");
                if let Some(path) = e.and_then(|e| key_builder_path(cx, e)) {
                    key_builder.set(cx, &name, path);
                }
            }
            "skip" => {
                if let Some(names) = skip_names(cx, &name, value) {
                    skip.set(cx, &name, names);
                }
            }
            "version" => {
                let e = expr_value(cx, &name, value, "version = 2");
                if let Some(n) = e.and_then(|e| version_number(cx, e)) {
                    version.set(cx, &name, n);
                }
            }
            "crate" => set_crate(cx, &name, value, &mut krate),
            other => cx.error(
                name.span(),
                format_args!("unknown option `{other}`: #[cached] accepts {CACHED_OPTIONS}"),
            ),
        }
    }
    CachedOptions {
        ttl: ttl.value,
        none_ttl: none_ttl.value,
        key_prefix: key_prefix.value,
        key_builder: key_builder.value,
        skip: skip.value.unwrap_or_default(),
        version: version.value,
        shared_keys: shared_keys.value.unwrap_or(false),
        key_fns: key_fns.value.unwrap_or(true),
        krate: krate.value.unwrap_or_else(default_crate),
    }
}

/// Decodes the options of `#[invalidate_cache]`; mistakes go to `cx`.
pub(super) fn invalidate(cx: &mut Ctxt, options: Vec<RawOption>) -> InvalidateOptions {
    let mut allow_all = Once::new();
    let mut krate = Once::new();
    for RawOption { name, value } in options {
        match name.to_string().as_str() {
            "allow_all" => flag(cx, &name, value, &mut allow_all),
            "crate" => set_crate(cx, &name, value, &mut krate),
            other => cx.error(
                name.span(),
                format_args!(
                    "unknown option `{other}`: #[invalidate_cache] accepts patterns \
                     (\"user:*\"), cached functions (`get_user(id)`) and {INVALIDATE_OPTIONS}"
                ),
            ),
        }
    }
    InvalidateOptions {
        allow_all: allow_all.value.unwrap_or(false),
        krate: krate.value.unwrap_or_else(default_crate),
    }
}

/// The path the generated code reaches cache-core by, unless `crate = ".."` says otherwise.
fn default_crate() -> TokenStream {
    quote!(::cache_core)
}

/// `key_builder = path`: the path of a function.
fn key_builder_path(cx: &mut Ctxt, e: Expr) -> Option<Path> {
    match e {
        Expr::Path(p) if p.qself.is_none() => Some(p.path),
        other => {
            cx.error(
                other.span(),
                "key_builder takes the path of a function, e.g. `key_builder = build_key`",
            );
            None
        }
    }
}

/// `skip(a, b)`: argument names (checked against the signature in [`keys`](super::keys)).
fn skip_names(cx: &mut Ctxt, name: &Ident, value: RawValue) -> Option<Vec<Ident>> {
    let RawValue::List(tokens) = value else {
        cx.error(
            name.span(),
            "skip takes a list of argument names: `skip(pool, ctx)`",
        );
        return None;
    };
    let names = |input: syn::parse::ParseStream<'_>| {
        Punctuated::<Ident, Token![,]>::parse_terminated_with(input, Ident::parse_any)
    };
    match syn::parse::Parser::parse2(names, tokens) {
        Ok(names) => Some(names.into_iter().collect()),
        Err(e) => {
            cx.error(e.span(), "skip takes argument names: `skip(pool, ctx)`");
            None
        }
    }
}

/// `version = N`: a whole number literal.
fn version_number(cx: &mut Ctxt, e: Expr) -> Option<u32> {
    let number = match &e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit.base10_parse::<u32>().ok(),
        _ => None,
    };
    if number.is_none() {
        cx.error(
            e.span(),
            "version must be a whole number literal, e.g. `version = 2`",
        );
    }
    number
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

/// `key_prefix = "..."`: a string literal that `cache_keys::space::check_prefix` accepts.
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
