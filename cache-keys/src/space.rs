//! Key spaces: the constant start of a cached function's keys (its *head*), the segment that
//! names its generic arguments, the rules of a `key_prefix`, the `{arg}` templates of
//! invalidation patterns, and whether two key spaces, or a pattern and a key space, can meet.
//!
//! A key is laid out as
//!
//! ```text
//! {key_prefix}:{fn}[:v{N}][:<{Self},{T}..,{N}..>]:{part}:{part}...    parts written by CacheKey
//! {key_prefix}[:v{N}][:<{Self},{T}..,{N}..>]:{key_builder output}     with a key_builder
//! ```
//!
//! Without a `key_prefix` the prefix is the function's name, written once. The generics segment
//! is there when the function has type or const parameters or a receiver: the concrete `Self`
//! type first (methods), then each type parameter's type name, then each const parameter's
//! value, in declaration order, each escaped as a text part ([`crate::key::push_text`]).

use std::fmt;

use crate::key::{push_text, ITEM_SEPARATOR, SEPARATOR};
use crate::pattern::{self, GLOB_CHARS};

/// Opens the generics segment of a key.
pub const GENERICS_OPEN: char = '<';
/// Closes the generics segment of a key.
pub const GENERICS_CLOSE: char = '>';

/// The head of a function's keys: `{prefix}:{function}[:v{version}]`, or `{function}[:v..]`
/// without a prefix; with a key builder, `{prefix}[:v{version}]` (the builder's output follows).
pub fn head(prefix: Option<&str>, function: &str, version: Option<u32>, builder: bool) -> String {
    let mut head = match (prefix, builder) {
        (Some(prefix), true) => prefix.to_owned(),
        (Some(prefix), false) => format!("{prefix}{SEPARATOR}{function}"),
        (None, _) => function.to_owned(),
    };
    if let Some(version) = version {
        head.push(SEPARATOR);
        head.push('v');
        head.push_str(&version.to_string());
    }
    head
}

/// Appends the generics segment, `:<a,b>`, each item (a type name, a const value) written
/// straight into `out` and escaped as a text part, without an intermediate string.
pub fn push_generics(out: &mut String, items: &[&dyn fmt::Display]) {
    out.push(SEPARATOR);
    out.push(GENERICS_OPEN);
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(ITEM_SEPARATOR);
        }
        // Writing to a String cannot fail.
        let _ = fmt::write(&mut Escaping(out), format_args!("{item}"));
    }
    out.push(GENERICS_CLOSE);
}

/// Escapes what is written through it as a text part ([`push_text`] works piece by piece, as
/// its escapes are per character).
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        push_text(self.0, text);
        Ok(())
    }
}

/// Checks a `key_prefix`; the error says what is wrong and how to fix it.
pub fn check_prefix(prefix: &str) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if prefix.is_empty() {
        problems.push(
            "key_prefix is empty: give a name such as `key_prefix = \"user\"`, or leave it out \
             to use the function's name"
                .to_owned(),
        );
    }
    if prefix.chars().any(char::is_whitespace) {
        problems.push(format!(
            "key_prefix `{prefix}` contains whitespace, which makes keys hard to type in \
             redis-cli: use `_` or `-`"
        ));
    }
    if let Some(c) = prefix.chars().find(|c| GLOB_CHARS.contains(c)) {
        problems.push(format!(
            "key_prefix `{prefix}` contains the glob character `{c}`, which would act as a \
             wildcard in invalidation patterns: remove it"
        ));
    }
    if prefix.ends_with(SEPARATOR) {
        problems.push(format!(
            "key_prefix `{prefix}` ends in `:`, which the key adds itself: write `{}`",
            prefix.trim_end_matches(SEPARATOR)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// One piece of an invalidation pattern template such as `"user:{id}:*"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Glob text, as written (with `{{` and `}}` turned into braces).
    Text(String),
    /// `{name}`: an argument's key part, glob-escaped where the pattern is built.
    Arg(String),
}

/// Splits a template into glob text and `{arg}` placeholders: `a{b}c{{d}}` is `Text("a")`,
/// `Arg("b")`, `Text("c{d}")`.
pub fn split_template(template: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = template.chars().peekable();
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
                        None => return Err(TemplateError::Unclosed),
                    }
                }
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Arg(name.trim().to_owned()));
            }
            '}' => return Err(TemplateError::LoneClose),
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// A `{` that no `}` closes.
    Unclosed,
    /// A `}` that no `{` opened.
    LoneClose,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TemplateError::Unclosed => {
                "a `{` is never closed: write `{arg}` for an argument or `{{` for a literal brace"
            }
            TemplateError::LoneClose => "a lone `}`: write `}}` for a literal brace",
        })
    }
}

impl std::error::Error for TemplateError {}

/// The keys of one cached function, as far as overlaps are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Space<'a> {
    /// The head: every key is the head itself or starts with `{head}:`.
    pub head: &'a str,
    /// True when the only key is the head itself (no arguments, no generics, no key builder).
    pub exact: bool,
}

impl Space<'_> {
    /// True when some key could belong to both spaces: the same head, or one head continuing
    /// the other at a `:` boundary (`user` with a key builder and `user:get_user`).
    pub fn overlaps(self, other: Space<'_>) -> bool {
        let covers = |outer: Space<'_>, inner: Space<'_>| {
            !outer.exact
                && inner
                    .head
                    .strip_prefix(outer.head)
                    .is_some_and(|rest| rest.starts_with(SEPARATOR))
        };
        self.head == other.head || covers(self, other) || covers(other, self)
    }

    /// True when the Redis glob `pattern` can match a key of this space.
    pub fn reached_by(self, pattern: &str) -> bool {
        self.reached_by_template(&[Piece::Text(pattern.to_owned())])
    }

    /// True when the pattern template (glob text and `{arg}` placeholders) can match a key of
    /// this space. A placeholder stands for one key part: any text in which every `:` is
    /// escaped, so `user:get:{id}` reaches `user:get` but not `user:get:v2`, whose keys go on
    /// with a separator after `v2`.
    pub fn reached_by_template(self, pieces: &[Piece]) -> bool {
        let steps: Vec<Step> = pieces
            .iter()
            .flat_map(|piece| match piece {
                Piece::Text(text) => pattern::tokens(text.as_bytes())
                    .into_iter()
                    .map(Step::Glob)
                    .collect(),
                Piece::Arg(_) => vec![Step::Part],
            })
            .collect();
        let mut states = closure(&steps, vec![State::at(0)]);
        for &byte in self.head.as_bytes() {
            states = advance(&steps, &states, byte);
        }
        if self.exact {
            return states.iter().any(|s| s.at == steps.len() && !s.escaped);
        }
        states = advance(&steps, &states, SEPARATOR as u8);
        // What follows `{head}:` is free, so any live state can still reach the end (a class
        // that matches no byte at all is the one exception, and a pattern author's mistake).
        !states.is_empty()
    }
}

/// One element of a template, for matching.
enum Step {
    Glob(pattern::Token),
    /// A placeholder: a key part (no unescaped `:`).
    Part,
}

/// A position in the steps; `escaped` inside a placeholder right after a `\`.
#[derive(Clone, Copy, PartialEq, Eq)]
struct State {
    at: usize,
    escaped: bool,
}

impl State {
    fn at(at: usize) -> State {
        State { at, escaped: false }
    }
}

/// The states reachable from `states` without consuming a byte: `*` and a placeholder may
/// match nothing.
fn closure(steps: &[Step], mut states: Vec<State>) -> Vec<State> {
    let mut i = 0;
    while i < states.len() {
        let state = states[i];
        let skippable = matches!(
            steps.get(state.at),
            Some(Step::Glob(pattern::Token::AnyRun) | Step::Part)
        );
        if skippable && !state.escaped && !states.contains(&State::at(state.at + 1)) {
            states.push(State::at(state.at + 1));
        }
        i += 1;
    }
    states
}

/// The states after consuming `byte` from any of `states`.
fn advance(steps: &[Step], states: &[State], byte: u8) -> Vec<State> {
    let mut next = Vec::new();
    for &state in states {
        let to = match steps.get(state.at) {
            None => continue,
            Some(Step::Part) if state.escaped => State::at(state.at),
            Some(Step::Part) if byte == b'\\' => State {
                at: state.at,
                escaped: true,
            },
            Some(Step::Part) if byte == SEPARATOR as u8 => continue,
            Some(Step::Part) | Some(Step::Glob(pattern::Token::AnyRun)) => State::at(state.at),
            Some(Step::Glob(token)) if token.matches(byte) => State::at(state.at + 1),
            Some(Step::Glob(_)) => continue,
        };
        if !next.contains(&to) {
            next.push(to);
        }
    }
    closure(steps, next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A cached function's key layout: prefix, name, version, generics and argument count.
    #[derive(Debug, Clone, PartialEq)]
    struct Layout {
        prefix: Option<String>,
        function: String,
        version: Option<u32>,
        generics: usize,
        arity: usize,
    }

    impl Layout {
        fn head(&self) -> String {
            head(self.prefix.as_deref(), &self.function, self.version, false)
        }

        fn key(&self, generics: &[String], args: &[String]) -> String {
            let mut key = self.head();
            if self.generics > 0 {
                let items: Vec<&dyn fmt::Display> =
                    generics.iter().map(|g| g as &dyn fmt::Display).collect();
                push_generics(&mut key, &items);
            }
            for arg in args {
                key.push(SEPARATOR);
                push_text(&mut key, arg);
            }
            key
        }
    }

    fn layout() -> impl Strategy<Value = Layout> {
        (
            proptest::option::of("[ab](:?[ab]){0,2}"),
            "[ab]{1,2}",
            proptest::option::of(1u32..3),
            0usize..2,
            0usize..3,
        )
            .prop_map(|(prefix, function, version, generics, arity)| Layout {
                prefix,
                function,
                version,
                generics,
                arity,
            })
    }

    /// Text made of what matters: separators, escapes, the generics brackets, and `v1`/`b`.
    fn values(n: usize) -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            "(v1|[ab:,<>\\\\])*".prop_map(|s: String| s.chars().take(4).collect()),
            n,
        )
    }

    fn call() -> impl Strategy<Value = (Layout, Vec<String>, Vec<String>)> {
        layout().prop_flat_map(|l| {
            let (g, a) = (l.generics, l.arity);
            (Just(l), values(g), values(a))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        /// Whole keys of one function: equal keys mean equal generics and arguments.
        #[test]
        fn whole_keys_are_injective(
            (l, g1, x1, g2, x2) in layout().prop_flat_map(|l| {
                let (g, a) = (l.generics, l.arity);
                (Just(l), values(g), values(a), values(g), values(a))
            })
        ) {
            let (k1, k2) = (l.key(&g1, &x1), l.key(&g2, &x2));
            prop_assert_eq!(k1 == k2, g1 == g2 && x1 == x2, "{} / {}", k1, k2);
        }

        /// Whole keys of two functions: equal keys mean the registry reports their key spaces
        /// as overlapping. The second call's values are taken from the first key's text, so
        /// collisions are common rather than lucky.
        #[test]
        fn whole_keys_of_two_functions_meet_only_where_the_registry_says(
            (a, ga, xa) in call(),
            b in layout(),
        ) {
            let ka = a.key(&ga, &xa);
            // Split what follows b's head at unescaped separators, as b's parts would be.
            let hb = b.head();
            let Some(rest) = ka.strip_prefix(hb.as_str()) else { return Ok(()) };
            let parts = split_parts(rest);
            if b.generics > 0 || parts.len() != b.arity {
                return Ok(());
            }
            let kb = b.key(&[], &parts);
            if a != b && ka == kb {
                let space = |l: &Layout, head| Space { head, exact: l.generics == 0 && l.arity == 0 };
                let ha = a.head();
                prop_assert!(space(&a, &ha).overlaps(space(&b, &hb)), "{:?} and {:?} share {}", a, b, ka);
            }
        }
    }

    /// `:a:b\\:c` -> `["a", "b:c"]`: the texts of the parts after a head.
    fn split_parts(rest: &str) -> Vec<String> {
        let mut parts = Vec::new();
        let mut chars = rest.chars();
        let mut current: Option<String> = None;
        while let Some(c) = chars.next() {
            match c {
                ':' => parts.extend(current.replace(String::new())),
                '\\' => {
                    if let (Some(part), Some(next)) = (current.as_mut(), chars.next()) {
                        part.push(next);
                    }
                }
                c => match current.as_mut() {
                    Some(part) => part.push(c),
                    None => return Vec::new(),
                },
            }
        }
        parts.extend(current);
        parts
    }

    #[test]
    fn heads() {
        assert_eq!(head(Some("user"), "get", None, false), "user:get");
        assert_eq!(head(None, "get", Some(2), false), "get:v2");
        assert_eq!(head(Some("user"), "get", Some(3), true), "user:v3");
        assert_eq!(head(None, "get", None, true), "get");
        let mut key = String::from("f");
        push_generics(&mut key, &[&"a::B<c::D, e::F>", &10]);
        assert_eq!(key, "f:<a\\:\\:B<c\\:\\:D\\, e\\:\\:F>,10>");
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("user").is_ok());
        assert_eq!(check_prefix("a b:").map_err(|e| e.len()), Err(2));
        assert!(check_prefix("").is_err());
        assert!(check_prefix("us*r").is_err());
    }

    #[test]
    fn templates() {
        assert_eq!(
            split_template("server:{id}:*{{x}}"),
            Ok(vec![
                Piece::Text("server:".into()),
                Piece::Arg("id".into()),
                Piece::Text(":*{x}".into()),
            ])
        );
        assert_eq!(split_template("a{b"), Err(TemplateError::Unclosed));
        assert_eq!(split_template("a}b"), Err(TemplateError::LoneClose));
        assert_eq!(split_template(""), Ok(vec![]));
    }

    #[test]
    fn overlaps() {
        let space = |head, exact| Space { head, exact };
        assert!(space("user:get", false).overlaps(space("user:get", false)));
        assert!(space("user", false).overlaps(space("user:get", false)));
        assert!(space("user:get", false).overlaps(space("user", false)));
        assert!(!space("user", true).overlaps(space("user:get", false)));
        assert!(!space("user:get", false).overlaps(space("user:get_all", false)));
        assert!(!space("user:get", false).overlaps(space("post:get", false)));
    }

    #[test]
    fn patterns_reach_spaces() {
        let space = |head, exact| Space { head, exact };
        let args = space("user:get_user", false);
        assert!(args.reached_by("user:get_user:*"));
        assert!(args.reached_by("user:*"));
        assert!(args.reached_by("*"));
        assert!(args.reached_by("user:get_user:42"));
        assert!(args.reached_by("user:get_?ser:[0-9]*"));
        assert!(!args.reached_by("user:get_users:*"));
        assert!(!args.reached_by("user:get_user"), "every key has arguments");
        assert!(
            args.reached_by("user:get_user:v2:*"),
            "`v2` may be an argument"
        );
        let versioned = space("user:get_user:v2", false);
        assert!(!versioned.reached_by("user:get_user:v3:*"));
        let exact = space("stats:daily", true);
        assert!(exact.reached_by("stats:daily"));
        assert!(exact.reached_by("stats:*"));
        assert!(!exact.reached_by("stats:daily:*"));
        assert!(space("a\\b", false).reached_by("a\\\\b:*"));
    }

    #[test]
    fn placeholders_stand_for_one_part() {
        let template = |t: &str| split_template(t).unwrap_or_default();
        let space = |head, exact| Space { head, exact };
        let by_id = template("user:get:{id}");
        assert!(space("user:get", false).reached_by_template(&by_id));
        assert!(
            !space("user:get:v2", false).reached_by_template(&by_id),
            "after a version bump the old layout reaches nothing"
        );
        assert!(space("user:get:v2", false).reached_by_template(&template("user:get:{id}:*")));
        assert!(space("user:get", false).reached_by_template(&template("user:{f}:{id}")));
        assert!(!space("user", true).reached_by_template(&template("user:{id}")));
    }
}
