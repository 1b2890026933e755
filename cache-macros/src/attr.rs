//! Parsing of attribute arguments into raw, spanned options: no meaning is checked here.
//!
//! Both attributes take a comma-separated list. Each option is `name`, `name = <expr>` or
//! `name(<tokens>)`; keywords (`crate`) are accepted as names. `#[invalidate_cache]` also takes
//! string patterns and calls naming a cached function (`get_user(id)`), in any order. Only the
//! *shape* is parsed here; `valid/` decides what each name and value mean, so
//! every mistake in meaning is reported together with the others.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{token, Expr, ExprCall, Ident, LitStr, Token};

/// One `name`, `name = value` or `name(...)` in an attribute's arguments.
pub(crate) struct RawOption {
    pub name: Ident,
    pub value: RawValue,
}

/// What followed an option's name.
pub(crate) enum RawValue {
    /// Nothing: a bare flag.
    Flag,
    /// `= <expr>`.
    Expr(Expr),
    /// `( ... )`.
    List(TokenStream),
}

/// The arguments of `#[cached(...)]`.
pub(crate) struct CachedArgs {
    pub options: Vec<RawOption>,
}

/// `get_user(id)` in `#[invalidate_cache(...)]`: a cached function and its key arguments.
pub(crate) struct RawTarget {
    pub call: ExprCall,
}

/// The arguments of `#[invalidate_cache("pattern", get_user(id), ..., option = value)]`.
pub(crate) struct InvalidateArgs {
    pub patterns: Vec<LitStr>,
    pub targets: Vec<RawTarget>,
    pub options: Vec<RawOption>,
}

impl Parse for RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let name = input
            .call(Ident::parse_any)
            .map_err(|e| syn::Error::new(e.span(), "expected an option such as `ttl = 60`"))?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            RawValue::Expr(input.parse()?)
        } else if input.peek(token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            RawValue::List(content.parse()?)
        } else {
            RawValue::Flag
        };
        Ok(RawOption { name, value })
    }
}

fn parse_options(input: ParseStream<'_>, options: &mut Vec<RawOption>) -> syn::Result<()> {
    while !input.is_empty() {
        options.push(input.parse()?);
        if input.is_empty() {
            break;
        }
        input.parse::<Token![,]>()?;
    }
    Ok(())
}

impl Parse for CachedArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Vec::new();
        parse_options(input, &mut options)?;
        Ok(CachedArgs { options })
    }
}

impl Parse for InvalidateArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = InvalidateArgs {
            patterns: Vec::new(),
            targets: Vec::new(),
            options: Vec::new(),
        };
        while !input.is_empty() {
            if input.peek(LitStr) {
                args.patterns.push(input.parse()?);
            } else if is_option(input) {
                args.options.push(input.parse()?);
            } else {
                let expr: Expr = input.parse()?;
                match expr {
                    Expr::Call(call) => args.targets.push(RawTarget { call }),
                    other => {
                        return Err(syn::Error::new_spanned(
                            other,
                            "expected a pattern (\"user:*\"), a cached function with its key \
                             arguments (`get_user(id)`), or an option such as `allow_all`",
                        ))
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

/// An option is a name followed by `=`, `,` or the end; anything else is a call.
fn is_option(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any).is_ok()
        && (fork.is_empty() || fork.peek(Token![=]) || fork.peek(Token![,]))
}
