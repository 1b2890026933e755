//! Key planning for `#[cached]`: which arguments are key parts (all but the skipped ones),
//! and the key's constant head.

use syn::ext::IdentExt;
use syn::Ident;

use super::options::CachedOptions;
use super::{Ctxt, KeyPlan};
use crate::sig::{self, FnInfo};
use cache_keys::space;

/// The head of every key of the function and how the rest of a key is built.
pub(super) fn plan(cx: &mut Ctxt, options: &CachedOptions, info: &FnInfo) -> (String, KeyPlan) {
    check_skip(cx, &options.skip, info);
    let key_args: Vec<&sig::Arg> = info
        .args
        .iter()
        .filter(|a| !a.ident.as_ref().is_some_and(|i| options.skip.contains(i)))
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
        options.key_prefix.as_deref(),
        &fn_name,
        options.version,
        options.key_builder.is_some(),
    );
    let key = match &options.key_builder {
        Some(path) => KeyPlan::Builder {
            path: path.clone(),
            args: named.map(|(i, _)| i).collect(),
        },
        None => KeyPlan::Parts(named.collect()),
    };
    (head, key)
}

/// `skip(..)` names arguments of the function, each once, never `self`.
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

/// "the arguments of `f` are: a, b", for errors that name a missing one.
pub(super) fn argument_names(info: &FnInfo) -> String {
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

/// Whether `name` is a named argument of the function.
pub(super) fn is_argument(info: &FnInfo, name: &Ident) -> bool {
    info.args.iter().any(|a| a.ident.as_ref() == Some(name))
}
