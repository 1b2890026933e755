//! Key parts: the escaping grammar that makes a cache key injective.
//!
//! A key is `{key_prefix}:{fn_name}:{part}:{part}...`. Each part is the encoding of one argument,
//! written by `cache_core::CacheKey` with the helpers here, so that two different argument lists of
//! one function can never produce the same key:
//!
//! | value                      | encoding            |
//! |----------------------------|---------------------|
//! | text (`str`, `char`, ...)  | the text, with `\ : , ) ] ~` escaped by a `\` |
//! | integer, bool              | `42`, `-7`, `true`  |
//! | `None` / `Some(v)`         | `~` / `v` (`~v` when `v` itself starts with `~`) |
//! | tuple `(a, b)`             | `(a,b)`             |
//! | list `[a, b]` / `[]`       | `[a,b]` / `[]`; a lone empty item is `[\e]` |
//!
//! Why this is injective: decoding is driven by the argument types, which are fixed for a
//! function. A text part ends at the first *unescaped* `:`, `,`, `)` or `]` (or the key's end),
//! so it never runs into its neighbour; `~` is escaped in text, so a bare `~` can only be `None`;
//! `\e` is never produced by text escaping, so it can only be the lone empty item. The tests below
//! hold a type-directed decoder and check `decode(encode(v)) == v` over random values.
//!
//! Keys stay readable in `redis-cli` for the usual ids, slugs and e-mail addresses, which need no
//! escaping at all. Glob characters (`*`, `?`, `[`) are *not* escaped here: a key is not a
//! pattern. Interpolating a part into a pattern escapes it a second time with
//! [`crate::pattern::push_escaped`].

/// Separates the segments of a key: prefix, function name, version and argument parts.
pub const SEPARATOR: char = ':';

/// Escapes the character that follows it in a text part.
pub const ESCAPE: char = '\\';

/// The encoding of `None`.
pub const NONE: &str = "~";

/// The encoding of a list holding exactly one item whose own encoding is empty (`vec![""]`), which
/// would otherwise read as the empty list `[]`.
pub const LONE_EMPTY_ITEM: &str = "\\e";

/// Opens a tuple.
pub const TUPLE_OPEN: char = '(';
/// Closes a tuple.
pub const TUPLE_CLOSE: char = ')';
/// Opens a list.
pub const LIST_OPEN: char = '[';
/// Closes a list.
pub const LIST_CLOSE: char = ']';
/// Separates the items of a tuple or a list.
pub const ITEM_SEPARATOR: char = ',';

/// The characters a text part escapes with a `\`: the escape itself, the separators, the closing
/// brackets and the `None` marker.
pub const ESCAPED: [char; 6] = ['\\', ':', ',', ')', ']', '~'];

/// True when `c` is escaped in a text part.
pub const fn needs_escape(c: char) -> bool {
    matches!(c, '\\' | ':' | ',' | ')' | ']' | '~')
}

/// Appends `text` to `out` as a text part: each character of [`ESCAPED`] gets a `\` before it.
///
/// Text without any of them (the usual id, slug or e-mail address) is copied in one piece.
pub fn push_text(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some((at, c)) = rest.char_indices().find(|&(_, c)| needs_escape(c)) {
        let (head, tail) = rest.split_at(at);
        out.push_str(head);
        out.push(ESCAPE);
        out.push(c);
        rest = tail.get(c.len_utf8()..).unwrap_or_default();
    }
    out.push_str(rest);
}

/// `text` as a text part (see [`push_text`]).
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    push_text(&mut out, text);
    out
}

/// Completes the encoding of `Some(v)` after `v` has been written to `out` from byte `start` on:
/// when that encoding starts with the `None` marker (so `v` is itself a `None` or a `Some` of
/// one), a `~` goes in front, keeping `None`, `Some(None)` and `Some(Some(None))` apart.
pub fn finish_some(out: &mut String, start: usize) {
    if out
        .get(start..)
        .is_some_and(|inner| inner.starts_with(NONE))
    {
        out.insert_str(start, NONE);
    }
}

/// Writes a list: `[` then `write_item` for each item with `,` between, then `]`.
///
/// A single item that wrote nothing becomes [`LONE_EMPTY_ITEM`], so `[""]` and `[]` differ.
pub fn push_list<I, F>(out: &mut String, items: I, mut write_item: F)
where
    I: IntoIterator,
    F: FnMut(&mut String, I::Item),
{
    out.push(LIST_OPEN);
    let start = out.len();
    let mut count = 0usize;
    for item in items {
        if count > 0 {
            out.push(ITEM_SEPARATOR);
        }
        write_item(out, item);
        count += 1;
    }
    if count == 1 && out.len() == start {
        out.push_str(LONE_EMPTY_ITEM);
    }
    out.push(LIST_CLOSE);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_escapes_only_structural_characters() {
        assert_eq!(escape_text("user-42@example.com"), "user-42@example.com");
        assert_eq!(escape_text("a:b"), "a\\:b");
        assert_eq!(escape_text("\\"), "\\\\");
        assert_eq!(escape_text("~x,y)z]"), "\\~x\\,y\\)z\\]");
        assert_eq!(escape_text("*?[é]"), "*?[é\\]");
        assert_eq!(escape_text(""), "");
    }

    #[test]
    fn colon_inside_a_part_cannot_move_the_boundary() {
        let key = |a: &str, b: &str| format!("f:{}:{}", escape_text(a), escape_text(b));
        assert_ne!(key("a:b", "c"), key("a", "b:c"));
        assert_ne!(key("a\\", ":b"), key("a\\:", "b"));
    }

    /// A value of the model, and the type that drives its decoding.
    #[derive(Debug, Clone, PartialEq)]
    enum Value {
        Text(String),
        Int(i64),
        Opt(Option<Box<Value>>),
        Tuple(Vec<Value>),
        List(Vec<Value>),
    }

    #[derive(Debug, Clone)]
    enum Shape {
        Text,
        Int,
        Opt(Box<Shape>),
        Tuple(Vec<Shape>),
        List(Box<Shape>),
    }

    fn encode(out: &mut String, value: &Value) {
        match value {
            Value::Text(t) => push_text(out, t),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Opt(None) => out.push_str(NONE),
            Value::Opt(Some(v)) => {
                let start = out.len();
                encode(out, v);
                finish_some(out, start);
            }
            Value::Tuple(items) => {
                out.push(TUPLE_OPEN);
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(ITEM_SEPARATOR);
                    }
                    encode(out, item);
                }
                out.push(TUPLE_CLOSE);
            }
            Value::List(items) => push_list(out, items, encode),
        }
    }

    /// The type-directed decoder: if it inverts `encode`, `encode` is injective.
    fn decode(shape: &Shape, s: &str) -> Option<(Value, usize)> {
        match shape {
            Shape::Text => {
                let mut text = String::new();
                let mut chars = s.char_indices();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            let (_, next) = chars.next()?;
                            if !needs_escape(next) {
                                return None;
                            }
                            text.push(next);
                        }
                        ':' | ',' | ')' | ']' => return Some((Value::Text(text), i)),
                        '~' => return None,
                        c => text.push(c),
                    }
                }
                Some((Value::Text(text), s.len()))
            }
            Shape::Int => {
                let end = s
                    .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                    .unwrap_or(s.len());
                Some((Value::Int(s.get(..end)?.parse().ok()?), end))
            }
            Shape::Opt(inner) => {
                if let Some(rest) = s.strip_prefix(NONE) {
                    if rest.starts_with(NONE) {
                        // `~` + an inner encoding that itself starts with `~`.
                        let (v, n) = decode(inner, rest)?;
                        return Some((Value::Opt(Some(Box::new(v))), n + 1));
                    }
                    return Some((Value::Opt(None), 1));
                }
                let (v, n) = decode(inner, s)?;
                Some((Value::Opt(Some(Box::new(v))), n))
            }
            Shape::Tuple(shapes) => {
                let mut at = 1;
                if !s.starts_with(TUPLE_OPEN) {
                    return None;
                }
                let mut items = Vec::new();
                for (i, shape) in shapes.iter().enumerate() {
                    if i > 0 {
                        if !s.get(at..)?.starts_with(ITEM_SEPARATOR) {
                            return None;
                        }
                        at += 1;
                    }
                    let (v, n) = decode(shape, s.get(at..)?)?;
                    items.push(v);
                    at += n;
                }
                s.get(at..)?.starts_with(TUPLE_CLOSE).then_some(())?;
                Some((Value::Tuple(items), at + 1))
            }
            Shape::List(shape) => {
                let body = s.strip_prefix(LIST_OPEN)?;
                if body.starts_with(LIST_CLOSE) {
                    return Some((Value::List(Vec::new()), 2));
                }
                if let Some(rest) = body.strip_prefix(LONE_EMPTY_ITEM) {
                    rest.starts_with(LIST_CLOSE).then_some(())?;
                    let (v, _) = decode(shape, "")?;
                    return Some((Value::List(vec![v]), 2 + LONE_EMPTY_ITEM.len()));
                }
                let mut at = 1;
                let mut items = Vec::new();
                loop {
                    let (v, n) = decode(shape, s.get(at..)?)?;
                    items.push(v);
                    at += n;
                    let rest = s.get(at..)?;
                    if rest.starts_with(LIST_CLOSE) {
                        return Some((Value::List(items), at + 1));
                    }
                    rest.starts_with(ITEM_SEPARATOR).then_some(())?;
                    at += 1;
                }
            }
        }
    }

    fn shape() -> impl Strategy<Value = Shape> {
        let leaf = prop_oneof![Just(Shape::Text), Just(Shape::Int)];
        leaf.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                inner.clone().prop_map(|s| Shape::Opt(Box::new(s))),
                prop::collection::vec(inner.clone(), 1..3).prop_map(Shape::Tuple),
                inner.prop_map(|s| Shape::List(Box::new(s))),
            ]
        })
    }

    fn value(shape: Shape) -> BoxedStrategy<Value> {
        match shape {
            Shape::Text => "[a~:,\\\\)(\\]\\[e]{0,4}".prop_map(Value::Text).boxed(),
            Shape::Int => (-3i64..30).prop_map(Value::Int).boxed(),
            Shape::Opt(inner) => prop::option::of(value(*inner))
                .prop_map(|v| Value::Opt(v.map(Box::new)))
                .boxed(),
            Shape::Tuple(shapes) => shapes
                .into_iter()
                .map(value)
                .collect::<Vec<_>>()
                .prop_map(Value::Tuple)
                .boxed(),
            Shape::List(inner) => prop::collection::vec(value(*inner), 0..3)
                .prop_map(Value::List)
                .boxed(),
        }
    }

    fn key(values: &[Value]) -> String {
        let mut out = String::from("p:f");
        for v in values {
            out.push(SEPARATOR);
            encode(&mut out, v);
        }
        out
    }

    fn decode_key(shapes: &[Shape], key: &str) -> Option<Vec<Value>> {
        let mut rest = key.strip_prefix("p:f")?;
        let mut values = Vec::new();
        for shape in shapes {
            rest = rest.strip_prefix(SEPARATOR)?;
            let (v, n) = decode(shape, rest)?;
            values.push(v);
            rest = rest.get(n..)?;
        }
        rest.is_empty().then_some(values)
    }

    fn args() -> impl Strategy<Value = (Vec<Shape>, Vec<Value>, Vec<Value>)> {
        prop::collection::vec(shape(), 1..4).prop_flat_map(|shapes| {
            let one: Vec<_> = shapes.iter().cloned().map(value).collect();
            let two: Vec<_> = shapes.iter().cloned().map(value).collect();
            (Just(shapes), one, two)
        })
    }

    #[test]
    fn nested_options_and_lone_empty_items_stay_apart() {
        let none = Value::Opt(None);
        let some_none = Value::Opt(Some(Box::new(Value::Opt(None))));
        let some_empty = Value::Opt(Some(Box::new(Value::Text(String::new()))));
        let some_tilde = Value::Opt(Some(Box::new(Value::Text("~".into()))));
        let keys =
            [&none, &some_none, &some_empty, &some_tilde].map(|v| key(std::slice::from_ref(v)));
        assert_eq!(keys, ["p:f:~", "p:f:~~", "p:f:", "p:f:\\~"]);
        let empty = Value::List(vec![]);
        let lone = Value::List(vec![Value::Text(String::new())]);
        let two = Value::List(vec![Value::Text(String::new()), Value::Text(String::new())]);
        assert_eq!(
            [empty, lone, two].map(|v| key(&[v])),
            ["p:f:[]", "p:f:[\\e]", "p:f:[,]"]
        );
    }

    proptest! {
        #[test]
        fn decoding_inverts_encoding((shapes, one, _two) in args()) {
            let encoded = key(&one);
            prop_assert_eq!(decode_key(&shapes, &encoded), Some(one));
        }

        #[test]
        fn different_argument_lists_give_different_keys((_shapes, one, two) in args()) {
            prop_assert_eq!(key(&one) == key(&two), one == two);
        }
    }
}
