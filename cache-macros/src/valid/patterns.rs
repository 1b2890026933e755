//! The targets of `#[invalidate_cache]`: string patterns with `{arg}` placeholders, and calls
//! naming a cached function.

use syn::spanned::Spanned;
use syn::{Expr, Ident, LitStr};

use super::keys::{argument_names, is_argument};
use super::{Ctxt, Pattern, Piece, Target, TargetArgs};
use crate::attr::RawTarget;
use crate::sig::FnInfo;
use cache_keys::pattern;
use cache_keys::space::{self, Piece as TemplatePiece};

/// Splits a pattern into glob text and `{arg}` placeholders and checks both.
pub(super) fn parse_pattern(
    cx: &mut Ctxt,
    lit: &LitStr,
    info: &FnInfo,
    allow_all: bool,
) -> Option<Pattern> {
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

/// A cached function named in `#[invalidate_cache]`: `f(a, _)`, `path::f::<T>(a)`, `f(..)`.
pub(super) fn target(cx: &mut Ctxt, raw: RawTarget) -> Option<Target> {
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
