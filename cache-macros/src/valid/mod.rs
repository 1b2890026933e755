//! Validation: raw options plus the function's signature become a plain config struct.
//!
//! Every mistake is recorded in a [`Ctxt`] and reported together, each spanned at the token it
//! concerns and saying how to fix it. [`options`] decodes each option (setters refuse repeats,
//! `Once`), [`keys`] plans the key, [`patterns`] checks what `#[invalidate_cache]` names, and
//! [`cached`] and [`invalidate`] check the combinations. Nothing here generates code.

mod keys;
mod options;
mod patterns;

use std::fmt::Display;

use proc_macro2::{Span, TokenStream};
use syn::{Expr, Ident, Path, Signature, Type};

use crate::attr::{CachedArgs, InvalidateArgs};
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

pub(crate) fn cached(args: CachedArgs, sig: &Signature) -> Result<CachedConfig, syn::Error> {
    let mut cx = Ctxt::default();
    let info = sig::analyze(sig);
    require_async(&mut cx, sig, "cached");
    let options = options::cached(&mut cx, args.options);
    let (head, key) = keys::plan(&mut cx, &options, &info);
    let none_ttl = options.none_ttl.and_then(|(span, e)| {
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
        krate: options.krate,
        ttl: options.ttl,
        none_ttl,
        head,
        key,
        shared_keys: options.shared_keys,
        key_fns: options.key_fns,
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
    let options = options::invalidate(&mut cx, args.options);
    if args.patterns.is_empty() && args.targets.is_empty() {
        cx.error(
            Span::call_site(),
            "#[invalidate_cache] needs at least one cached function or pattern: \
             #[invalidate_cache(get_user(id))] or #[invalidate_cache(\"user:*\")]",
        );
    }
    let patterns = args
        .patterns
        .iter()
        .filter_map(|lit| patterns::parse_pattern(&mut cx, lit, &info, options.allow_all))
        .collect();
    let targets = args
        .targets
        .into_iter()
        .filter_map(|raw| patterns::target(&mut cx, raw))
        .collect();
    cx.finish()?;
    Ok(InvalidateConfig {
        krate: options.krate,
        patterns,
        targets,
        allow_all: options.allow_all,
        info,
    })
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
