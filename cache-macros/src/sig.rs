//! What the attributes need to know about the annotated function's signature: its named
//! arguments (receivers never count), the shape of its return type, its generic parameters and
//! whether it has a receiver. The signature itself is never changed.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::spanned::Spanned;
use syn::{FnArg, GenericParam, Ident, Pat, ReturnType, Signature, Type};

/// How the return type is cached, chosen from the last segment of its path.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ReturnMode {
    /// `Result<T, E>` or an alias named `Result` (`io::Result<T>`, `anyhow::Result<T>`): `Ok` is
    /// cached. A struct merely named `SearchResult` is plain.
    Result,
    /// `Option<T>`: `Some` is cached, `None` only with `none_ttl`.
    Option,
    /// Anything else, cached as it is.
    Plain,
}

/// One typed argument of the function.
pub(crate) struct Arg {
    /// The bound name; `None` for `_` and for destructuring patterns.
    pub ident: Option<Ident>,
    /// True for a destructuring pattern (`(a, b): (i32, i32)`), which has no single name.
    pub destructured: bool,
    /// The pattern, for error spans.
    pub pat_span: Span,
    /// The declared type.
    pub ty: Type,
}

/// The facts about a signature that the expansion uses.
pub(crate) struct FnInfo {
    pub name: Ident,
    pub args: Vec<Arg>,
    pub ret: TokenStream,
    pub ret_span: Span,
    pub mode: ReturnMode,
    /// Type and const parameters, in declaration order: their concrete types and values go into
    /// the key, since `load::<User>(1)` and `load::<Post>(1)` must not share an entry.
    pub generics: Vec<Generic>,
    /// True for a method (`self`, `&self`, `self: Arc<Self>`): the concrete `Self` type goes into
    /// the key, since `Users::count()` and `Posts::count()` must not share an entry.
    pub receiver: bool,
}

/// A type or const parameter of the function.
pub(crate) enum Generic {
    Type(Ident),
    Const(Ident),
}

pub(crate) fn analyze(sig: &Signature) -> FnInfo {
    let args = sig
        .inputs
        .iter()
        .filter_map(|input| match input {
            FnArg::Receiver(_) => None,
            FnArg::Typed(typed) => {
                let (ident, destructured) = match &*typed.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() => (Some(pat.ident.clone()), false),
                    Pat::Wild(_) => (None, false),
                    _ => (None, true),
                };
                Some(Arg {
                    ident,
                    destructured,
                    pat_span: typed.pat.span(),
                    ty: (*typed.ty).clone(),
                })
            }
        })
        .collect();
    let (ret, ret_span, mode) = match &sig.output {
        ReturnType::Default => (quote!(()), sig.paren_token.span.close(), ReturnMode::Plain),
        ReturnType::Type(_, ty) => (quote!(#ty), ty.span(), mode_of(ty)),
    };
    let generics = sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => Some(Generic::Type(t.ident.clone())),
            GenericParam::Const(c) => Some(Generic::Const(c.ident.clone())),
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    let receiver = sig
        .inputs
        .iter()
        .any(|input| matches!(input, FnArg::Receiver(_)));
    FnInfo {
        name: sig.ident.clone(),
        args,
        ret,
        ret_span,
        mode,
        generics,
        receiver,
    }
}

fn mode_of(ty: &Type) -> ReturnMode {
    match ty {
        Type::Paren(inner) => mode_of(&inner.elem),
        Type::Group(inner) => mode_of(&inner.elem),
        Type::Path(path) if path.qself.is_none() => {
            match path.path.segments.last().map(|s| s.ident.to_string()) {
                Some(name) if name == "Result" => ReturnMode::Result,
                Some(name) if name == "Option" => ReturnMode::Option,
                _ => ReturnMode::Plain,
            }
        }
        _ => ReturnMode::Plain,
    }
}
