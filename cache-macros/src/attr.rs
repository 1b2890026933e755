//! Parsing of attribute arguments into raw, spanned options: no meaning is checked here.
//!
//! Both attributes take a comma-separated list; `#[invalidate_cache]` starts with string literals.
//! Each option is `name`, `name = <expr>` or `name(<tokens>)`. Keywords (`crate`) are accepted as
//! names. Only the *shape* is parsed here; `valid.rs` decides what each name and value mean, so
//! every mistake in meaning is reported together with the others.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{token, Expr, Ident, LitStr, Token};

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

/// The arguments of `#[invalidate_cache("pattern", ..., option = value)]`.
pub(crate) struct InvalidateArgs {
    pub patterns: Vec<LitStr>,
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
        let mut patterns = Vec::new();
        while input.peek(LitStr) {
            patterns.push(input.parse()?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        let mut options = Vec::new();
        parse_options(input, &mut options)?;
        Ok(InvalidateArgs { patterns, options })
    }
}
