//! Redis glob patterns: validation, escaping and matching with the semantics of Redis' `SCAN MATCH`.
//!
//! Redis matches bytes, not characters: `?` is one byte, and `[a-z]` compares bytes. The matcher
//! here does the same so that the in-process backend removes exactly the keys Redis would.

use std::fmt;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern is the empty string.
    Empty,
    /// A `[` opens a class that no `]` closes; the index is the byte offset of the `[`.
    UnclosedClass(usize),
    /// The pattern ends in a lone `\`, which escapes nothing.
    DanglingEscape,
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::Empty => f.write_str("the pattern is empty"),
            PatternError::UnclosedClass(at) => write!(
                f,
                "the `[` at byte {at} is never closed: close it with `]` or escape it as `\\[`"
            ),
            PatternError::DanglingEscape => {
                f.write_str("the pattern ends in a lone `\\`: escape it as `\\\\` or remove it")
            }
        }
    }
}

impl std::error::Error for PatternError {}

/// The characters that act as glob syntax in a Redis pattern.
pub const GLOB_CHARS: [char; 5] = ['*', '?', '[', ']', '\\'];

/// Checks that `pattern` is a well-formed glob: not empty, every `[` closed, no trailing lone `\`.
pub fn validate(pattern: &str) -> Result<(), PatternError> {
    if pattern.is_empty() {
        return Err(PatternError::Empty);
    }
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if i + 1 == bytes.len() => return Err(PatternError::DanglingEscape),
            b'\\' => i += 2,
            b'[' => {
                let close = class_end(bytes, i + 1).ok_or(PatternError::UnclosedClass(i))?;
                i = close + 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// True when `pattern` has unescaped glob syntax, that is when it can match more than one key.
///
/// A pattern without any is a plain key (after unescaping) and can be deleted directly.
pub fn is_glob(pattern: &str) -> bool {
    let bytes = pattern.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'*' | b'?' | b'[' => return true,
            _ => i += 1,
        }
    }
    false
}

/// True when `pattern` matches every key: it is made only of `*`.
pub fn matches_everything(pattern: &str) -> bool {
    !pattern.is_empty() && pattern.bytes().all(|b| b == b'*')
}

/// The key that a pattern without glob syntax stands for: its escapes removed.
///
/// Returns `None` when the pattern has glob syntax (see [`is_glob`]).
pub fn literal_key(pattern: &str) -> Option<String> {
    if is_glob(pattern) {
        return None;
    }
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    Some(out)
}

/// Appends `text` to `out` with every glob character escaped, so that it matches only itself.
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        if GLOB_CHARS.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// `text` with every glob character escaped, so that as a pattern it matches only itself.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    out
}

/// The index of the `]` that closes a class whose body starts at `start`, with Redis' rules: a
/// `\` escapes the next byte, and the class is at least one byte long after an optional `^`.
fn class_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    if bytes.get(i) == Some(&b'^') {
        i += 1;
    }
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b']' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// True when `key` matches the glob `pattern`, byte for byte as Redis' `stringmatchlen` does.
///
/// Patterns are assumed valid (see [`validate`]); an unclosed class never matches.
pub fn matches(pattern: &str, key: &str) -> bool {
    matches_bytes(pattern.as_bytes(), key.as_bytes())
}

fn matches_bytes(pattern: &[u8], key: &[u8]) -> bool {
    // Iterative matcher with one backtrack point for the last `*`: linear in practice and never
    // exponential, unlike the recursive textbook version.
    let (mut p, mut k) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while k < key.len() {
        let step = if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, k));
                    p += 1;
                    continue;
                }
                b'?' => Some(p + 1),
                b'[' => match class_end(pattern, p + 1) {
                    Some(end) if class_matches(&pattern[p + 1..end], key[k]) => Some(end + 1),
                    _ => None,
                },
                b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == key[k]).then_some(p + 2),
                byte => (byte == key[k]).then_some(p + 1),
            }
        } else {
            None
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                k += 1;
            }
            (None, Some((star_p, star_k))) => {
                // Let the last `*` swallow one more byte and retry from just after it.
                star = Some((star_p, star_k + 1));
                p = star_p + 1;
                k = star_k + 1;
            }
            (None, None) => return false,
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Whether `byte` is in the class body `class` (the bytes between `[` and `]`).
fn class_matches(class: &[u8], byte: u8) -> bool {
    let (negated, body) = match class.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut found = false;
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' && i + 1 < body.len() {
            found |= body[i + 1] == byte;
            i += 2;
        } else if i + 2 < body.len() && body[i + 1] == b'-' {
            let (lo, hi) = (body[i].min(body[i + 2]), body[i].max(body[i + 2]));
            found |= (lo..=hi).contains(&byte);
            i += 3;
        } else {
            found |= body[i] == byte;
            i += 1;
        }
    }
    found != negated
}

/// One element of a glob, as the matcher reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A byte that must appear as it is (after an escape, too).
    Literal(u8),
    /// `?`: any one byte.
    AnyByte,
    /// `*`: any run of bytes, the empty one included.
    AnyRun,
    /// `[...]`: one byte in (or, negated, not in) the inclusive ranges.
    Class {
        /// `[^...]`.
        negated: bool,
        /// Inclusive byte ranges; a single byte is a range of one.
        ranges: Vec<(u8, u8)>,
    },
}

impl Token {
    /// Whether `byte` can stand at this token (`*` takes any byte).
    pub fn matches(&self, byte: u8) -> bool {
        match self {
            Token::Literal(b) => *b == byte,
            Token::AnyByte | Token::AnyRun => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&byte)) != *negated
            }
        }
    }
}

/// The tokens of a glob.
pub fn tokens(pattern: &[u8]) -> Vec<Token> {
    let mut out = Vec::new();
    let mut p = 0;
    while p < pattern.len() {
        match pattern[p] {
            b'*' => out.push(Token::AnyRun),
            b'?' => out.push(Token::AnyByte),
            b'\\' if p + 1 < pattern.len() => {
                p += 1;
                out.push(Token::Literal(pattern[p]));
            }
            b'[' => {
                if let Some(end) = class_end(pattern, p + 1) {
                    out.push(class_token(&pattern[p + 1..end]));
                    p = end;
                } else {
                    out.push(Token::Literal(b'['));
                }
            }
            byte => out.push(Token::Literal(byte)),
        }
        p += 1;
    }
    out
}

fn class_token(class: &[u8]) -> Token {
    let (negated, body) = match class.split_first() {
        Some((b'^', rest)) => (true, rest),
        _ => (false, class),
    };
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'\\' && i + 1 < body.len() {
            ranges.push((body[i + 1], body[i + 1]));
            i += 2;
        } else if i + 2 < body.len() && body[i + 1] == b'-' {
            ranges.push((body[i].min(body[i + 2]), body[i].max(body[i + 2])));
            i += 3;
        } else {
            ranges.push((body[i], body[i]));
            i += 1;
        }
    }
    Token::Class { negated, ranges }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validation_names_each_mistake() {
        assert_eq!(validate(""), Err(PatternError::Empty));
        assert_eq!(validate("user:[ab"), Err(PatternError::UnclosedClass(5)));
        assert_eq!(validate("user:\\"), Err(PatternError::DanglingEscape));
        assert_eq!(validate("a[\\]"), Err(PatternError::UnclosedClass(1)));
        for ok in ["user:*", "a[bc]d", "a\\[b", "a[^x]?", "\\\\", "a[]]"] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn matching_follows_redis() {
        let cases = [
            ("user:*", "user:1", true),
            ("user:*", "users:1", false),
            ("*", "", true),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("a[bc]d", "acd", true),
            ("a[^bc]d", "acd", false),
            ("a[^bc]d", "aed", true),
            ("a[a-c]d", "abd", true),
            ("a[c-a]d", "abd", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "axb", false),
            ("*:x:*", "p:q:x:y", true),
            ("*a*b*c", "xaybzc", true),
            ("*a*b*c", "xaybzcd", false),
            ("h[\\]]", "h]", true),
        ];
        for (pattern, key, expected) in cases {
            assert_eq!(matches(pattern, key), expected, "{pattern} ~ {key}");
        }
    }

    #[test]
    fn literal_patterns_are_keys() {
        assert_eq!(literal_key("user:1"), Some("user:1".to_owned()));
        assert_eq!(literal_key("a\\*b\\\\"), Some("a*b\\".to_owned()));
        assert_eq!(literal_key("user:*"), None);
        assert!(matches_everything("**"));
        assert!(!matches_everything("a*"));
    }

    proptest! {
        #[test]
        fn escaped_text_matches_only_itself(text in "[a-c*?\\[\\]\\\\:]{0,12}", other in "[a-c*?\\[\\]\\\\:]{0,12}") {
            let pattern = escape(&text);
            prop_assert_eq!(validate(&pattern).is_ok(), !text.is_empty());
            prop_assert!(!is_glob(&pattern));
            prop_assert!(matches(&pattern, &text));
            prop_assert_eq!(matches(&pattern, &other), text == other);
            prop_assert_eq!(literal_key(&pattern), Some(text));
        }

        #[test]
        fn escaped_prefix_star_matches_exactly_the_extensions(prefix in "[a-b*?\\[\\\\]{0,6}", key in "[a-b*?\\[\\\\]{0,8}") {
            let pattern = format!("{}*", escape(&prefix));
            prop_assert_eq!(matches(&pattern, &key), key.starts_with(&prefix));
        }
    }
}
