//! Code generation: a pure function of a checked config and the function it annotates.
//!
//! The signature (attributes, visibility, generics, receiver, arguments, return type) is
//! re-emitted token for token; only the body is rewritten. Generated code names only
//! `#krate::__private::...` and absolute `::core` paths, and its locals are `__cache_`-prefixed
//! idents with `Span::mixed_site()` so the user's body can neither see nor shadow them.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt as _;
use syn::spanned::Spanned;
use syn::ItemFn;

use crate::attr::{CachedArgs, InvalidateArgs};
use crate::sig::{FnInfo, Generic, ReturnMode};
use crate::valid::{self, CachedConfig, InvalidateConfig, KeyPlan, Piece, Target, TargetArgs};

/// The one funnel: any error comes back as `compile_error!`s placed *beside* the untouched
/// function, so a mistake in the attribute does not cascade into errors in every caller.
fn funnel(item: TokenStream, run: impl FnOnce(&ItemFn) -> syn::Result<TokenStream>) -> TokenStream {
    match syn::parse2::<ItemFn>(item.clone()) {
        Ok(func) => run(&func).unwrap_or_else(|e| {
            let errors = e.to_compile_error();
            quote!(#func #errors)
        }),
        // Not a function with a body (or it does not parse yet while being typed in an IDE):
        // keep the tokens as they are so the IDE still sees them.
        Err(e) => {
            let error =
                syn::Error::new(e.span(), "this attribute goes on an `async fn` with a body")
                    .to_compile_error();
            quote!(#item #error)
        }
    }
}

pub(crate) fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    funnel(item, |func| {
        let args: CachedArgs = syn::parse2(args)?;
        let config = valid::cached(args, &func.sig)?;
        Ok(gen_cached(&config, func))
    })
}

pub(crate) fn invalidate(args: TokenStream, item: TokenStream) -> TokenStream {
    funnel(item, |func| {
        let args: InvalidateArgs = syn::parse2(args)?;
        let config = valid::invalidate(args, &func.sig)?;
        Ok(gen_invalidate(&config, func))
    })
}

fn local(name: &str) -> syn::Ident {
    syn::Ident::new(name, Span::mixed_site())
}

/// `tokens` with every token moved to `span`, so that errors about them point there.
fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut g =
                    proc_macro2::Group::new(group.delimiter(), respan(&group.stream(), span));
                g.set_span(span);
                tree = TokenTree::Group(g);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}

fn mentions_impl_trait(ret: &TokenStream) -> bool {
    ret.clone().into_iter().any(|tree| match tree {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl_trait(&group.stream()),
        _ => false,
    })
}

/// The original body inside `async move`, with a "fake return edge" spanned at the return type:
/// it fixes the block's type to the declared one, so `?` and `.into()` infer exactly as they do
/// in the unannotated function and type errors point at the user's code.
fn body_future(func: &ItemFn, info: &FnInfo) -> TokenStream {
    let block = &func.block;
    let ret = &info.ret;
    let fake = local("__cache_fake_return");
    let edge = if mentions_impl_trait(ret) {
        TokenStream::new()
    } else {
        quote_spanned! {info.ret_span=>
            #[allow(
                unknown_lints, unreachable_code, clippy::diverging_sub_expression,
                clippy::let_unit_value, clippy::unreachable, clippy::empty_loop,
                clippy::needless_return
            )]
            if false {
                let #fake: #ret = loop {};
                return #fake;
            }
        }
    };
    quote!(async move { #edge #block })
}

/// Picks at compile time what a cache error becomes when CACHE_FAIL_SILENTLY=false: for a
/// `Result<T, E>` with `E: From<CacheError>` the error itself (autoref specialization, resolved in
/// the caller's crate where the types are concrete), for anything else a log line.
fn error_route(krate: &TokenStream, info: &FnInfo) -> TokenStream {
    let ret = &info.ret;
    if mentions_impl_trait(ret) {
        return quote!(#krate::__private::log_only);
    }
    quote! {
        {
            #[allow(unused_imports)]
            use #krate::__private::{RouteViaFrom as _, RouteViaLog as _};
            (&&#krate::__private::ErrorRoute::<#ret>::new()).route()
        }
    }
}

fn mode_path(krate: &TokenStream, mode: ReturnMode) -> TokenStream {
    match mode {
        ReturnMode::Result => quote!(#krate::__private::ResultMode),
        ReturnMode::Option => quote!(#krate::__private::OptionMode),
        ReturnMode::Plain => quote!(#krate::__private::PlainMode),
    }
}

fn seconds(krate: &TokenStream, expr: Option<&syn::Expr>) -> TokenStream {
    match expr {
        None => quote!(::core::option::Option::None),
        Some(expr) => {
            let secs = format_ident!("__CACHE_SECONDS", span = Span::mixed_site());
            // Spanned at the expression: a constant that evaluates to 0 fails the build there.
            let kr = respan(krate, expr.span());
            quote_spanned! {expr.span()=>
                ::core::option::Option::Some({
                    const #secs: u64 = #kr::__private::seconds(#expr);
                    #kr::__private::Duration::from_secs(#secs)
                })
            }
        }
    }
}

/// The statements that build a key in `k` after its head: the generics segment, then the
/// argument parts or the key builder's output. Each key argument is a reference here: the
/// function's body rebinds it (`let id = &id;`, see [`rebind_key_args`]), the generated key
/// functions take it so, and both then share these tokens to the letter, so that rustc, which
/// reports an identical error once, does not report a mistake once per copy.
fn key_steps(config: &CachedConfig, k: &syn::Ident) -> TokenStream {
    let CachedConfig { krate, key, .. } = config;
    let mut steps = generics_step(config, k);
    match key {
        KeyPlan::Parts(parts) => {
            for (ident, ty) in parts {
                steps.extend(part_step(krate, k, ident, ty));
            }
        }
        KeyPlan::Builder { path, args } => {
            // Spanned at the path: a builder with the wrong arguments is an error there.
            let kr = respan(krate, path.span());
            let args = args.iter().map(|arg| {
                let mut arg = arg.clone();
                arg.set_span(path.span());
                arg
            });
            steps.extend(quote_spanned! {path.span()=>
                #kr::__private::KeyBuf::display(&mut #k, &#path(#(#args),*));
            });
        }
    }
    steps
}

/// `let id = &id;` for each key argument, in the function's body (see [`key_steps`]).
fn rebind_key_args(config: &CachedConfig) -> TokenStream {
    let idents: Vec<&syn::Ident> = match &config.key {
        KeyPlan::Parts(parts) => parts.iter().map(|(ident, _)| ident).collect(),
        KeyPlan::Builder { args, .. } => args.iter().collect(),
    };
    quote! { #(let #idents = &#idents;)* }
}

/// `&T`, with parentheses where `T` has bounds (`&(impl CacheKey + Send)`).
fn ref_type(ty: &syn::Type) -> TokenStream {
    match ty {
        syn::Type::ImplTrait(_) | syn::Type::TraitObject(_) => quote!(&(#ty)),
        ty => quote!(&#ty),
    }
}

/// `KeyBuf::part(&mut k, &*arg)`, spanned at the argument's type: "`Pool` cannot be part of a
/// cache key" points at `Pool`.
fn part_step(
    krate: &TokenStream,
    k: &syn::Ident,
    ident: &syn::Ident,
    ty: &syn::Type,
) -> TokenStream {
    let kr = respan(krate, ty.span());
    quote_spanned! {ty.span()=>
        #kr::__private::KeyBuf::part(&mut #k, &*#ident);
    }
}

/// `k.generics(&[type_name::<Self>(), type_name::<T>(), &N])` (a `KeyBuf` or a `PatternBuf`)
/// when the function has generics or a receiver; nothing otherwise.
fn generics_step(config: &CachedConfig, k: &syn::Ident) -> TokenStream {
    let CachedConfig { krate, info, .. } = config;
    if info.generics.is_empty() && !info.receiver {
        return TokenStream::new();
    }
    let receiver = info
        .receiver
        .then(|| quote!(&#krate::__private::type_name::<Self>(),));
    let generics = info.generics.iter().map(|g| match g {
        Generic::Type(t) => quote!(&#krate::__private::type_name::<#t>(),),
        Generic::Const(c) => quote!(&#c,),
    });
    quote! {
        #k.generics(&[#receiver #(#generics)*]);
    }
}

/// The registration of a key space in `cache_core::registry`, as a statement.
fn register_key_space(config: &CachedConfig) -> TokenStream {
    let CachedConfig {
        krate,
        head,
        key,
        shared_keys,
        info,
        ..
    } = config;
    let exact = config.exact();
    let builder = matches!(key, KeyPlan::Builder { .. });
    let method = info.receiver;
    let name = info.name.unraw().to_string();
    quote! {
        #krate::__private::inventory::submit! {
            #krate::registry::KeySpaceEntry::new(#krate::__private::KeySpaceDecl {
                head: #head,
                exact: #exact,
                builder: #builder,
                shared: #shared_keys,
                method: #method,
                function: ::core::concat!(::core::module_path!(), "::", #name),
                file: ::core::file!(),
                line: ::core::line!(),
            })
        }
    }
}

// Input:
//     #[cached(ttl = 600, key_prefix = "server")]
//     pub async fn get_server(pool: &Pool, id: i64) -> Option<Server> { body }
// Output (skip(pool) assumed):
//     pub async fn get_server(pool: &Pool, id: i64) -> Option<Server> {
//         <register the key space "server:get_server">
//         let __cache_key = {
//             let mut __cache_k = ::cache_core::__private::KeyBuf::new("server:get_server", 17);
//             __cache_k.part(&id);
//             __cache_k.finish()
//         };
//         ::cache_core::__private::cached::<::cache_core::__private::OptionMode, _, _>(
//             __cache_key,
//             ::cache_core::__private::Cached { ttl: Some(600 s), none_ttl: None, route: <error route> },
//             async move { body },
//         ).await
//     }
//     <key functions: see `key_functions`>
fn gen_cached(config: &CachedConfig, func: &ItemFn) -> TokenStream {
    let CachedConfig {
        krate,
        ttl,
        none_ttl,
        head,
        info,
        ..
    } = config;
    let k = local("__cache_k");
    let key_var = local("__cache_key");
    let capacity = key_capacity(config);
    let rebind = rebind_key_args(config);
    let key_steps = key_steps(config, &k);
    let register = register_key_space(config);

    let mode = mode_path(krate, info.mode);
    let ttl = seconds(krate, ttl.as_ref());
    let none_ttl = seconds(krate, none_ttl.as_ref());
    let route = error_route(krate, info);
    let body = body_future(func, info);
    // Spanned at the return type: "`Foo` does not implement Serialize" points there.
    let call = respan(
        &quote!(#krate::__private::cached::<#mode, _, _>),
        info.ret_span,
    );
    // The whole call, parentheses and `.await` included, so that no part of the bound check
    // falls back to the attribute's span.
    let call = quote_spanned! {info.ret_span=>
        #call(
            #key_var,
            #krate::__private::Cached { ttl: #ttl, none_ttl: #none_ttl, route: #route },
            #body,
        ).await
    };
    let key_functions = key_functions(config, func);

    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    quote! {
        #(#attrs)*
        #vis #sig {
            #register
            let #key_var = {
                let mut #k = #krate::__private::KeyBuf::new(#head, #capacity);
                #rebind
                #key_steps
                #k.finish()
            };
            #call
        }
        #key_functions
    }
}

/// A guess of the key's length, so that building it allocates once.
fn key_capacity(config: &CachedConfig) -> usize {
    let generics = usize::from(config.info.receiver) + config.info.generics.len();
    config.head.len()
        + 24 * generics
        + match &config.key {
            KeyPlan::Parts(parts) => 12 * parts.len(),
            KeyPlan::Builder { .. } => 32,
        }
}

// Beside a function without a receiver, `#[cached]` generates (same visibility, generics and
// where clause):
//     fn get_server__key(id: &i64) -> String                 // the key for these arguments
//     fn get_server__pattern(id: Option<&i64>) -> String     // a glob, None: any value (no key_builder)
//     fn get_server__all() -> String                         // a glob matching every key
// `#[invalidate_cache(get_server(id))]` calls them, so a typo or a rename fails the build. A
// method has none: the name of the generated function could not be told apart from the
// trait's own items in a trait impl, and its `Self` is only known where it is called.
fn key_functions(config: &CachedConfig, func: &ItemFn) -> TokenStream {
    let CachedConfig {
        krate,
        head,
        key,
        info,
        ..
    } = config;
    if info.receiver || !config.key_fns {
        return TokenStream::new();
    }
    let name = info.name.unraw().to_string();
    let vis = &func.vis;
    let generics = &func.sig.generics;
    let where_clause = &func.sig.generics.where_clause;
    let k = local("__cache_k");
    let p = local("__cache_p");
    let allow = quote! {
        #[allow(
            non_snake_case, dead_code, unused_variables, clippy::ptr_arg, clippy::ref_option_ref,
            clippy::too_many_arguments, clippy::extra_unused_type_parameters,
            clippy::needless_lifetimes, clippy::extra_unused_lifetimes,
            clippy::trivially_copy_pass_by_ref
        )]
    };
    let key_fn = format_ident!("{name}__key", span = info.name.span());
    let pattern_fn = format_ident!("{name}__pattern", span = info.name.span());
    let all_fn = format_ident!("{name}__all", span = info.name.span());
    let key_doc =
        format!("The cache key of `{name}` for these key arguments (generated by `#[cached]`).");
    let pattern_doc = format!(
        "A glob matching the keys of `{name}` whose key arguments are the given ones, `None` \
         standing for any value (generated by `#[cached]`)."
    );
    let all_doc = format!("A glob matching every key of `{name}` (generated by `#[cached]`).");
    let capacity = key_capacity(config);
    let key_steps = key_steps(config, &k);
    let key_params: Vec<TokenStream> = match key {
        KeyPlan::Parts(parts) => parts
            .iter()
            .map(|(i, ty)| {
                let ty = ref_type(ty);
                quote!(#i: #ty)
            })
            .collect(),
        KeyPlan::Builder { args, .. } => args
            .iter()
            .map(|a| {
                let ty = info
                    .args
                    .iter()
                    .find(|arg| arg.ident.as_ref() == Some(a))
                    .map(|arg| ref_type(&arg.ty));
                quote!(#a: #ty)
            })
            .collect(),
    };
    let all_glob = if config.exact() {
        cache_keys::pattern::escape(head)
    } else {
        format!("{}:*", cache_keys::pattern::escape(head))
    };
    let pattern = match key {
        KeyPlan::Parts(parts) => {
            let params = parts.iter().map(|(i, ty)| {
                let ty = ref_type(ty);
                quote!(#i: ::core::option::Option<#ty>)
            });
            let generics_step = generics_step(config, &p);
            let steps = parts.iter().map(|(i, ty)| {
                let part = part_step(krate, &k, i, ty);
                quote! {
                    match #i {
                        ::core::option::Option::Some(#i) => {
                            let mut #k = #krate::__private::KeyBuf::new("", 16);
                            #part
                            #p.key_text(&#k.finish());
                        }
                        ::core::option::Option::None => #p.text(":*"),
                    }
                }
            });
            let head_glob = cache_keys::pattern::escape(head);
            quote! {
                #allow
                #[doc = #pattern_doc]
                #vis fn #pattern_fn #generics (#(#params),*) -> #krate::__private::String #where_clause {
                    let mut #p = #krate::__private::PatternBuf::new(#capacity);
                    #p.text(#head_glob);
                    #generics_step
                    #(#steps)*
                    #p.finish()
                }
            }
        }
        KeyPlan::Builder { .. } => TokenStream::new(),
    };
    quote! {
        #allow
        #[doc = #key_doc]
        #vis fn #key_fn #generics (#(#key_params),*) -> #krate::__private::String #where_clause {
            let mut #k = #krate::__private::KeyBuf::new(#head, #capacity);
            #key_steps
            #k.finish()
        }
        #pattern
        #allow
        #[doc = #all_doc]
        #vis fn #all_fn() -> #krate::__private::String {
            #krate::__private::String::from(#all_glob)
        }
    }
}

// Input:
//     #[invalidate_cache("server:{server_id}:*", "trending:*")]
//     async fn update_server(server_id: i64) -> Result<Server, DbError> { body }
// Output:
//     async fn update_server(server_id: i64) -> Result<Server, DbError> {
//         let __cache_patterns = [
//             { let mut __cache_p = ::cache_core::__private::PatternBuf::new(..);
//               __cache_p.text("server:"); __cache_p.arg(&server_id); __cache_p.text(":*");
//               __cache_p.finish() },
//             ::cache_core::__private::String::from("trending:*"),
//         ];
//         let __cache_ret = async move { body }.await;
//         ::cache_core::__private::invalidate::<::cache_core::__private::ResultMode, _>(
//             __cache_ret, &__cache_patterns,
//             ::cache_core::__private::Invalidate { allow_all: false, route: <error route> },
//         ).await
//     }
fn gen_invalidate(config: &InvalidateConfig, func: &ItemFn) -> TokenStream {
    let InvalidateConfig {
        krate,
        patterns,
        targets,
        allow_all,
        info,
    } = config;
    let p = local("__cache_p");
    let patterns_var = local("__cache_patterns");
    let ret_var = local("__cache_ret");

    let pattern_exprs = patterns.iter().map(|pattern| match pattern.pieces.as_slice() {
        [] => quote!(#krate::__private::String::new()),
        [Piece::Text(text)] => quote!(#krate::__private::String::from(#text)),
        pieces => {
            let capacity: usize = pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(t) => t.len(),
                    Piece::Arg(_) => 16,
                })
                .sum();
            let steps = pieces.iter().map(|piece| match piece {
                Piece::Text(t) => quote!(#p.text(#t);),
                Piece::Arg(ident) => {
                    let kr = respan(krate, ident.span());
                    quote_spanned!(ident.span()=> #kr::__private::PatternBuf::arg(&mut #p, &#ident);)
                }
            });
            quote!({
                let mut #p = #krate::__private::PatternBuf::new(#capacity);
                #(#steps)*
                #p.finish()
            })
        }
    });
    let target_exprs = targets.iter().map(|target| target_pattern(krate, target));
    let registrations = patterns.iter().map(|pattern| {
        let written = &pattern.written;
        let name = info.name.unraw().to_string();
        quote! {
            #krate::__private::inventory::submit! {
                #krate::__private::InvalidationEntry {
                    pattern: #written,
                    allow_all: #allow_all,
                    function: ::core::concat!(::core::module_path!(), "::", #name),
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        }
    });
    let mode = match info.mode {
        ReturnMode::Result => mode_path(krate, ReturnMode::Result),
        ReturnMode::Option | ReturnMode::Plain => mode_path(krate, ReturnMode::Plain),
    };
    let route = error_route(krate, info);
    let body = body_future(func, info);

    let attrs = &func.attrs;
    let vis = &func.vis;
    let sig = &func.sig;
    let count = patterns.len() + targets.len();
    quote! {
        #(#attrs)*
        #vis #sig {
            #(#registrations)*
            let #patterns_var: [#krate::__private::String; #count] =
                [#(#pattern_exprs,)* #(#target_exprs,)*];
            let #ret_var = #body.await;
            #krate::__private::invalidate::<#mode, _>(
                #ret_var,
                &#patterns_var,
                #krate::__private::Invalidate { allow_all: #allow_all, route: #route },
            ).await
        }
    }
}

/// The pattern of a named cached function, from the key functions `#[cached]` generated
/// beside it: `f(a, b)` is `f__key(&a, &b)` as a literal glob, `f(a, _)` is
/// `f__pattern(Some(&a), None)`, `f(..)` is `f__all()`.
fn target_pattern(krate: &TokenStream, target: &Target) -> TokenStream {
    let Target { path, args, span } = target;
    let span = *span;
    let mut path = path.clone();
    let Some(last) = path.segments.last_mut() else {
        return TokenStream::new();
    };
    let name = last.ident.unraw().to_string();
    let generics = std::mem::replace(&mut last.arguments, syn::PathArguments::None);
    let with = |suffix: &str, path: &syn::Path| {
        let mut path = path.clone();
        if let Some(last) = path.segments.last_mut() {
            last.ident = format_ident!("{name}__{suffix}", span = span);
        }
        path
    };
    let kr = respan(krate, span);
    match args {
        TargetArgs::All => {
            let all = with("all", &path);
            quote_spanned!(span=> #all())
        }
        TargetArgs::Values(values) if values.iter().all(Option::is_some) => {
            let key = with("key", &path);
            let values = values.iter().flatten();
            quote_spanned!(span=> #kr::__private::exact(&#key #generics (#(&(#values)),*)))
        }
        TargetArgs::Values(values) => {
            let pattern = with("pattern", &path);
            let values = values.iter().map(|v| match v {
                Some(v) => quote_spanned!(span=> ::core::option::Option::Some(&(#v))),
                None => quote_spanned!(span=> ::core::option::Option::None),
            });
            quote_spanned!(span=> #pattern #generics (#(#values),*))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text of `tokens` without whitespace: what the tests compare, since how
    /// `TokenStream::to_string` spaces tokens is not part of any contract.
    pub(super) fn squash(tokens: impl ToString) -> String {
        tokens
            .to_string()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect()
    }

    fn expand_cached(args: TokenStream, item: TokenStream) -> String {
        squash(cached(args, item))
    }

    #[test]
    fn keeps_the_signature_and_rewrites_the_body() {
        let out = expand_cached(
            quote!(ttl = 60, key_prefix = "user"),
            quote! {
                /// Docs stay.
                #[inline]
                pub(crate) async fn get_user(&self, id: i64) -> Option<u8> { None }
            },
        );
        assert!(
            out.contains(&squash(
                "pub (crate) async fn get_user (& self , id : i64) -> Option < u8 >"
            )),
            "{out}"
        );
        assert!(out.contains(&squash("\"user:get_user\"")), "{out}");
        assert!(out.contains(&squash("# [inline]")), "{out}");
        assert!(out.contains(&squash("OptionMode")), "{out}");
        assert!(!out.contains(&squash("compile_error")), "{out}");
    }

    #[test]
    fn errors_come_together_beside_the_function() {
        let out = expand_cached(
            quote!(ttl = 0, key_prefix = "a b:", bogus = 1),
            quote!(
                fn f(x: i64) -> i64 {
                    x
                }
            ),
        );
        assert!(
            out.starts_with(&squash("fn f (x : i64) -> i64 { x }")),
            "{out}"
        );
        for needle in [
            "ttl = 0",
            "whitespace",
            "ends in `:`",
            "unknown option `bogus`",
            "`async fn` only",
        ] {
            assert!(out.contains(&squash(needle)), "{needle} missing in {out}");
        }
    }

    #[test]
    fn every_generic_and_self_go_into_the_key() {
        let out = expand_cached(
            quote!(),
            quote!(
                async fn load<'a, T: Clone, U, const N: usize>(id: u32, u: &'a U) -> Option<T> {
                    None
                }
            ),
        );
        for needle in ["type_name :: < T >", "type_name :: < U >", "& N ,"] {
            assert!(out.contains(&squash(needle)), "{needle} missing in {out}");
        }
        assert!(!out.contains(&squash("type_name :: < Self >")), "{out}");
        let out = expand_cached(
            quote!(),
            quote!(
                async fn count(&self) -> u64 {
                    0
                }
            ),
        );
        assert!(out.contains(&squash("type_name :: < Self >")), "{out}");
        assert!(
            !out.contains(&squash("count__key")),
            "methods get no key functions: {out}"
        );
    }
}
/// The expanded example of `docs/src/macros.md`: `cargo test -p cache-macros --lib
/// expansion_of_the_guide_example -- --nocapture` prints it (format with rustfmt).
#[cfg(test)]
mod guide_example {
    use super::tests::squash;

    #[test]
    fn expansion_of_the_guide_example() {
        let out = super::cached(
            quote::quote!(ttl = 600, key_prefix = "server", skip(db)),
            quote::quote!(
                pub async fn get_server_details(db: &Db, server_id: i64) -> Option<Server> {
                    db.server(server_id).await
                }
            ),
        );
        println!("{out}");
        let out = squash(out);
        for line in [
            "KeyBuf :: new (\"server:get_server_details\"",
            "KeyBuf :: part (& mut __cache_k , & * server_id)",
            "cached :: < :: cache_core :: __private :: OptionMode , _ , _ >",
            "seconds (600)",
        ] {
            assert!(out.contains(&squash(line)), "{line} missing from {out}");
        }
        assert!(
            !out.contains(&squash("& db")),
            "skipped arguments stay out of the key: {out}"
        );
        let out = super::invalidate(
            quote::quote!("server:get_server_details:{server_id}", "trending:*"),
            quote::quote!(
                pub async fn update_server(
                    db: &Db,
                    server_id: i64,
                    name: String,
                ) -> Result<(), DbError> {
                    db.rename(server_id, name).await
                }
            ),
        );
        println!("{out}");
        let out = squash(out);
        for line in [
            "__cache_p . text (\"server:get_server_details:\")",
            "PatternBuf :: arg (& mut __cache_p , & server_id)",
            ":: cache_core :: __private :: String :: from (\"trending:*\")",
            "invalidate :: < :: cache_core :: __private :: ResultMode , _ >",
        ] {
            assert!(out.contains(&squash(line)), "{line} missing from {out}");
        }
    }
}
