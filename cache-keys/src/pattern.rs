//! Redis glob patterns: parsing, validation, escaping and matching, with the semantics of Redis'
//! `SCAN ... MATCH` and `KEYS` (`stringmatchlen` in Redis 7's `util.c`), byte for byte.
//!
//! A pattern is read as a sequence of [`Token`]s, each matching a fixed part of a key:
//!
//! | pattern | token | matches |
//! |---|---|---|
//! | `*` | [`Token::AnyRun`] | any run of bytes, the empty one included |
//! | `?` | [`Token::AnyByte`] | one byte (not one character: `é` is two bytes in UTF-8) |
//! | `\x` | [`Token::Literal`] | the byte `x`, whatever it is; a `\` that ends the pattern is itself |
//! | `[...]` | [`Token::Class`] | one byte in the class; `[^...]` one byte not in it |
//! | any other byte | [`Token::Literal`] | itself (`]`, `^` and `-` outside a class included) |
//!
//! Inside a class, Redis' reading differs from POSIX brackets in ways that matter:
//! - the first `]` closes the class: `[]` is empty and matches nothing, `[^]` matches any byte, and
//!   `[]a]` is the empty class followed by `a]`;
//! - `\x` is the byte `x`; a `\` that is the last byte of the pattern is itself;
//! - `x-y` is a range whenever two more bytes follow `x`, whatever `y` is: `[a-]` is the range from
//!   `]` to `a` (not `a` and `-`), and `[a-\]]` is a class of the range from `\` to `a`, then a
//!   literal `]` (a `\` after `-` is the range's end, not an escape). An escaped byte never starts
//!   a range, so `[\a-z]` is `a`, `-` and `z`. Reversed ranges are swapped: `[z-a]` is `[a-z]`;
//! - a class that no `]` closes runs to the end of the pattern and still matches one byte: `[ab` is
//!   `[ab]`, `[a-]xy` is one class, `[` alone matches nothing and `[^` any byte;
//! - range ends are compared as C `char`s, which are signed on x86-64: a range between an ASCII
//!   byte and a byte of `0x80` or more, such as `[a-\xc3]`, holds the bytes from `0xc3` to `0xff`
//!   and from `0x00` to `a`. On a server where `char` is unsigned (ARM builds) it holds `a` to
//!   `0xc3` instead. [`validate`] refuses every range with a non-ASCII end, so the patterns it
//!   accepts mean the same on every server.
//!
//! Finally, an empty key is matched only by the empty pattern and by `*` exactly: Redis' matcher
//! never matches an empty string against a non-empty pattern, and `SCAN` and `KEYS` do not call it
//! for the pattern `*`. So `**` matches every key but the empty one.
//!
//! [`tokens`] exposes the parsed form, so that other code can reason about patterns (which keys
//! two patterns share, say) with exactly the meaning the matcher gives them; [`matches()`] and
//! [`matches_bytes`] run on those tokens. `integration-tests/tests/glob_differential.rs` checks
//! the matcher against `SCAN ... MATCH` of a real `redis-server` over random keys and patterns.

use std::fmt;

/// One element of a parsed glob pattern; see the [module documentation](self) for the syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Exactly this byte (a plain byte of the pattern, or an escaped one).
    Literal(u8),
    /// Any one byte (`?`).
    AnyByte,
    /// Any run of bytes, possibly empty (`*`). Consecutive `*` are kept as separate tokens, which
    /// only matters for the empty key (see the module documentation).
    AnyRun,
    /// One byte that is in one of `ranges` (or in none of them when `negated`). Each range is
    /// inclusive with `lo <= hi`; a single byte `b` is `(b, b)`. An empty list matches no byte, or
    /// every byte when negated.
    Class {
        /// The class started with `[^`.
        negated: bool,
        /// Inclusive `(lo, hi)` byte ranges, in pattern order, not merged.
        ranges: Vec<(u8, u8)>,
    },
}

impl Token {
    /// Whether `byte` matches this token at one position of a key; [`Token::AnyRun`] matches any.
    ///
    /// ```
    /// use cache_keys::pattern::{tokens, Token};
    ///
    /// let class = &tokens(b"[^a-c]")[0];
    /// assert!(class.matches(b'x') && !class.matches(b'b'));
    /// assert!(Token::AnyRun.matches(b'x'));
    /// ```
    pub fn matches(&self, byte: u8) -> bool {
        match self {
            Token::Literal(expected) => *expected == byte,
            Token::AnyByte | Token::AnyRun => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&byte)) != *negated
            }
        }
    }
}

/// The tokens of `pattern`, read as Redis reads it; every byte sequence is a pattern.
///
/// ```
/// use cache_keys::pattern::{tokens, Token};
///
/// assert_eq!(
///     tokens(b"u:*[a-]"),
///     [
///         Token::Literal(b'u'),
///         Token::Literal(b':'),
///         Token::AnyRun,
///         // Redis reads `a-]` as a range up to `]`, and the class runs to the end.
///         Token::Class { negated: false, ranges: vec![(b']', b'a')] },
///     ]
/// );
/// ```
pub fn tokens(pattern: &[u8]) -> Vec<Token> {
    Lexer::new(pattern).map(|lexeme| lexeme.token).collect()
}

/// Why a pattern was refused by [`validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// The pattern is the empty string.
    Empty,
    /// A `[` opens a class that no `]` closes; the index is the byte offset of the `[`.
    UnclosedClass(usize),
    /// The pattern ends in a lone `\`, which escapes nothing.
    DanglingEscape,
    /// A class is left unclosed because a range took its `]` as the range's end (`[a-]` is the
    /// range from `]` to `a` in Redis); the index is the byte offset of the `-`.
    RangeEndsInBracket(usize),
    /// A class is `[]`, which Redis closes at once: it matches no byte. The index is of the `[`.
    EmptyClass(usize),
    /// A range has a byte of `0x80` or more at one end, whose meaning depends on the server's CPU;
    /// the index is the byte offset of the range's first byte.
    NonAsciiRange(usize),
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
            PatternError::RangeEndsInBracket(at) => write!(
                f,
                "the `-` at byte {at} makes a range that ends in `]` (Redis reads `[a-]` as the \
                 bytes from `]` to `a`), so the class is never closed: write `\\-` for a literal \
                 `-`, or add the `]` that closes the class"
            ),
            PatternError::EmptyClass(at) => write!(
                f,
                "the class `[]` at byte {at} matches nothing (Redis closes a class at its first \
                 `]`): write `\\]` to put `]` in a class"
            ),
            PatternError::NonAsciiRange(at) => write!(
                f,
                "the range at byte {at} has a non-ASCII end: Redis ranges compare single bytes, \
                 ordered differently by servers on different CPUs; list the characters instead"
            ),
        }
    }
}

impl std::error::Error for PatternError {}

/// The characters that act as glob syntax in a Redis pattern.
pub const GLOB_CHARS: [char; 5] = ['*', '?', '[', ']', '\\'];

/// Checks that `pattern` is a glob that means what it appears to: not empty, every class closed
/// by a `]` (and not by a range's end, as in `[a-]`), no empty class `[]`, no range with a
/// non-ASCII end, and no trailing lone `\`.
///
/// Redis accepts every byte string as a pattern; these are refused because their meaning in Redis
/// is almost surely not the author's. [`matches()`] follows Redis for refused patterns too.
///
/// ```
/// use cache_keys::pattern::{validate, PatternError};
///
/// assert_eq!(validate("user:[0-9]*"), Ok(()));
/// assert_eq!(validate("user:[ab"), Err(PatternError::UnclosedClass(5)));
/// assert_eq!(validate("user:[a-]"), Err(PatternError::RangeEndsInBracket(7)));
/// ```
pub fn validate(pattern: &str) -> Result<(), PatternError> {
    let bytes = pattern.as_bytes();
    if bytes.is_empty() {
        return Err(PatternError::Empty);
    }
    for lexeme in Lexer::new(bytes) {
        match lexeme.class {
            Some(class) => {
                if let Some(at) = class.non_ascii_range {
                    return Err(PatternError::NonAsciiRange(at));
                }
                if !class.closed {
                    return Err(match class.range_to_bracket {
                        Some(at) => PatternError::RangeEndsInBracket(at),
                        None => PatternError::UnclosedClass(lexeme.start),
                    });
                }
                if lexeme.token
                    == (Token::Class {
                        negated: false,
                        ranges: Vec::new(),
                    })
                {
                    return Err(PatternError::EmptyClass(lexeme.start));
                }
            }
            // A `\` read as itself: only the last byte of a pattern is.
            None if lexeme.end - lexeme.start == 1 && bytes.get(lexeme.start) == Some(&b'\\') => {
                return Err(PatternError::DanglingEscape);
            }
            None => {}
        }
    }
    Ok(())
}

/// True when `pattern` has unescaped glob syntax (`*`, `?` or `[`), that is when it can match
/// more than one key.
///
/// A pattern without any is a plain key (see [`literal_key`]) and can be deleted directly.
pub fn is_glob(pattern: &str) -> bool {
    Lexer::new(pattern.as_bytes()).any(|lexeme| !matches!(lexeme.token, Token::Literal(_)))
}

/// True when `pattern` is made only of `*`: it matches every key (every non-empty key, for `**`).
pub fn matches_everything(pattern: &str) -> bool {
    !pattern.is_empty() && pattern.bytes().all(|b| b == b'*')
}

/// The one key that a pattern without glob syntax matches: its escapes removed (a trailing lone
/// `\` is kept, as Redis reads it as itself).
///
/// Returns `None` when the pattern has glob syntax (see [`is_glob`]).
///
/// ```
/// use cache_keys::pattern::literal_key;
///
/// assert_eq!(literal_key("a\\*b").as_deref(), Some("a*b"));
/// assert_eq!(literal_key("a*b"), None);
/// ```
pub fn literal_key(pattern: &str) -> Option<String> {
    let mut key = Vec::with_capacity(pattern.len());
    for lexeme in Lexer::new(pattern.as_bytes()) {
        match lexeme.token {
            Token::Literal(byte) => key.push(byte),
            _ => return None,
        }
    }
    // Always valid: only ASCII `\` bytes were removed from valid UTF-8, and an ASCII byte is never
    // part of a multi-byte character.
    String::from_utf8(key).ok()
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
///
/// ```
/// use cache_keys::pattern::{escape, matches};
///
/// let pattern = format!("user:{}:*", escape("a*[b]"));
/// assert!(matches(&pattern, "user:a*[b]:1"));
/// assert!(!matches(&pattern, "user:ax[b]:1"));
/// ```
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    out
}

/// True when `key` matches the glob `pattern` as Redis' `SCAN ... MATCH` decides, for every
/// pattern (refused ones included; see [`validate`]).
///
/// Parses the pattern on each call: to test many keys against one pattern, parse it once with
/// [`tokens`] and use [`matches_tokens`].
pub fn matches(pattern: &str, key: &str) -> bool {
    matches_bytes(pattern.as_bytes(), key.as_bytes())
}

/// [`matches()`] for patterns and keys that are any bytes, as Redis keys may be.
pub fn matches_bytes(pattern: &[u8], key: &[u8]) -> bool {
    matches_tokens(&tokens(pattern), key)
}

/// True when `key` matches the pattern whose [`tokens`] these are, as `SCAN ... MATCH` decides.
pub fn matches_tokens(tokens: &[Token], key: &[u8]) -> bool {
    if key.is_empty() {
        // Redis' matcher never matches the empty key against a non-empty pattern; SCAN and KEYS
        // skip it for the pattern `*` alone, which is the only one that reads as `[AnyRun]`.
        return matches!(tokens, [] | [Token::AnyRun]);
    }
    // Iterative, with one backtrack point: the last `*` seen, which swallows one more byte each
    // time the tokens after it fail. Giving up the earlier `*`s loses no match (the tokens between
    // two `*` have a fixed length), so this is O(tokens x key) and never exponential.
    let (mut t, mut k) = (0usize, 0usize);
    let mut last_run: Option<(usize, usize)> = None;
    while let Some(&byte) = key.get(k) {
        match tokens.get(t) {
            Some(Token::AnyRun) => {
                last_run = Some((t + 1, k));
                t += 1;
            }
            Some(token) if token.matches(byte) => {
                t += 1;
                k += 1;
            }
            _ => match last_run {
                Some((after, from)) => {
                    last_run = Some((after, from + 1));
                    t = after;
                    k = from + 1;
                }
                None => return false,
            },
        }
    }
    tokens
        .get(t..)
        .is_some_and(|rest| rest.iter().all(|token| *token == Token::AnyRun))
}

/// One token with where it sits in the pattern.
struct Lexeme {
    token: Token,
    /// Byte offset of the token's first byte.
    start: usize,
    /// Byte offset just past the token.
    end: usize,
    /// For a class, what [`validate`] needs to know about how it was read.
    class: Option<ClassFacts>,
}

/// How a class was read, beyond its token.
struct ClassFacts {
    /// A `]` closed it (rather than the end of the pattern).
    closed: bool,
    /// The offset of the `-` of the first range whose end is `]`.
    range_to_bracket: Option<usize>,
    /// The offset of the first range with a byte of `0x80` or more at one end.
    non_ascii_range: Option<usize>,
}

/// Reads a pattern token by token, as Redis' matcher walks it.
struct Lexer<'a> {
    pattern: &'a [u8],
    at: usize,
}

impl<'a> Lexer<'a> {
    fn new(pattern: &'a [u8]) -> Self {
        Lexer { pattern, at: 0 }
    }

    /// The class whose body (after the `[`) starts at `body`, and the offset just past it.
    fn class(&self, body: usize) -> (Token, usize, ClassFacts) {
        let pattern = self.pattern;
        let mut at = body;
        let negated = pattern.get(at) == Some(&b'^');
        if negated {
            at += 1;
        }
        let mut ranges = Vec::new();
        let mut facts = ClassFacts {
            closed: false,
            range_to_bracket: None,
            non_ascii_range: None,
        };
        // Without a closing `]` the class takes the rest of the pattern.
        while let Some(&byte) = pattern.get(at) {
            match (byte, pattern.get(at + 1), pattern.get(at + 2)) {
                (b'\\', Some(&escaped), _) => {
                    ranges.push((escaped, escaped));
                    at += 2;
                }
                (b']', _, _) => {
                    facts.closed = true;
                    at += 1;
                    break;
                }
                // A range needs two more bytes, and takes the second whatever it is.
                (from, Some(b'-'), Some(&to)) => {
                    if to == b']' {
                        facts.range_to_bracket.get_or_insert(at + 1);
                    }
                    if !from.is_ascii() || !to.is_ascii() {
                        facts.non_ascii_range.get_or_insert(at);
                    }
                    push_range(&mut ranges, from, to);
                    at += 3;
                }
                (single, _, _) => {
                    ranges.push((single, single));
                    at += 1;
                }
            }
        }
        (Token::Class { negated, ranges }, at, facts)
    }
}

impl Iterator for Lexer<'_> {
    type Item = Lexeme;

    fn next(&mut self) -> Option<Lexeme> {
        let start = self.at;
        let &byte = self.pattern.get(start)?;
        let (token, end, class) = match byte {
            b'*' => (Token::AnyRun, start + 1, None),
            b'?' => (Token::AnyByte, start + 1, None),
            b'\\' => match self.pattern.get(start + 1) {
                Some(&escaped) => (Token::Literal(escaped), start + 2, None),
                None => (Token::Literal(b'\\'), start + 1, None),
            },
            b'[' => {
                let (token, end, facts) = self.class(start + 1);
                (token, end, Some(facts))
            }
            other => (Token::Literal(other), start + 1, None),
        };
        self.at = end;
        Some(Lexeme {
            token,
            start,
            end,
            class,
        })
    }
}

/// Adds the bytes between `a` and `b` (in either order) to `ranges`, compared as Redis compares
/// them on x86-64: as signed `char`s, so that a range from an ASCII byte to one of `0x80` or more
/// wraps around (`[a-\xc3]` is `0xc3..=0xff` and `0x00..=b'a'`).
fn push_range(ranges: &mut Vec<(u8, u8)>, a: u8, b: u8) {
    let (a, b) = (a as i8, b as i8);
    let (lo, hi) = (a.min(b), a.max(b));
    if lo < 0 && hi >= 0 {
        ranges.push((lo as u8, u8::MAX));
        ranges.push((0, hi as u8));
    } else {
        ranges.push((lo as u8, hi as u8));
    }
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
        assert_eq!(validate("a["), Err(PatternError::UnclosedClass(1)));
        assert_eq!(validate("a[^"), Err(PatternError::UnclosedClass(1)));
        assert_eq!(validate("a[b-]"), Err(PatternError::RangeEndsInBracket(3)));
        assert_eq!(validate("[a-]x"), Err(PatternError::RangeEndsInBracket(2)));
        assert_eq!(validate("a[]]"), Err(PatternError::EmptyClass(1)));
        assert_eq!(validate("[a-é]"), Err(PatternError::NonAsciiRange(1)));
        assert_eq!(validate("[é-a]"), Err(PatternError::NonAsciiRange(2)));
        for ok in [
            "user:*", "a[bc]d", "a\\[b", "a[^x]?", "\\\\", "a[\\]]", "[a-]]", "[^]", "[z-a]",
            "[-a]", "[a\\-]", "]", "[é]", "\\[",
        ] {
            assert_eq!(validate(ok), Ok(()), "{ok}");
        }
    }

    /// Each case was checked against `SCAN 0 MATCH` of redis-server 7.0.15 (x86-64).
    #[test]
    fn matching_follows_redis() {
        let cases: &[(&[u8], &[u8], bool)] = &[
            (b"user:*", b"user:1", true),
            (b"user:*", b"users:1", false),
            (b"a?c", b"abc", true),
            (b"a?c", b"ac", false),
            (b"a[bc]d", b"acd", true),
            (b"a[^bc]d", b"acd", false),
            (b"a[^bc]d", b"aed", true),
            (b"a[a-c]d", b"abd", true),
            (b"a[c-a]d", b"abd", true),
            (b"a\\*b", b"a*b", true),
            (b"a\\*b", b"axb", false),
            (b"*:x:*", b"p:q:x:y", true),
            (b"*a*b*c", b"xaybzc", true),
            (b"*a*b*c", b"xaybzcd", false),
            (b"h[\\]]", b"h]", true),
            // `a-]` is a range from `]` to `a`, and the class runs to the end of the pattern.
            (b"[a-]", b"-", false),
            (b"[a-]", b"]", true),
            (b"[a-]", b"_", true),
            (b"[a-]", b"a", true),
            (b"[a-]xy", b"x", true),
            (b"[a-]xy", b"ax", false),
            (b"[a-]]", b"_", true),
            (b"[a-\\]]", b"_]", true),
            (b"[a-\\]]", b"]", false),
            (b"[\\a-z]", b"-", true),
            (b"[\\a-z]", b"m", false),
            (b"[-a]", b"-", true),
            (b"[--a]", b"0", true),
            // Empty and unclosed classes.
            (b"[]", b"]", false),
            (b"[]]", b"]", false),
            (b"[]a]", b"a]", false),
            (b"[^]", b"x", true),
            (b"[^]]", b"x]", true),
            (b"[", b"[", false),
            (b"a[", b"a", false),
            (b"[^", b"x", true),
            (b"[ab", b"b", true),
            (b"[ab", b"ab", false),
            (b"[\\]", b"]", true),
            (b"[a\\", b"\\", true),
            // Escapes outside a class; a trailing `\` is itself.
            (b"a\\", b"a\\", true),
            (b"a\\", b"a", false),
            (b"\\\\", b"\\", true),
            // The empty key, and `*` alone as SCAN's shortcut.
            (b"*", b"", true),
            (b"**", b"", false),
            (b"", b"", true),
            (b"", b"a", false),
            (b"?", b"", false),
            (b"**", b"a", true),
            // Bytes, not characters; ranges as signed chars.
            (b"?", "é".as_bytes(), false),
            (b"??", "é".as_bytes(), true),
            (b"[a-\xc3]", b"\xff", true),
            (b"[a-\xc3]", b"\x00", true),
            (b"[a-\xc3]", b"a", true),
            (b"[a-\xc3]", b"b", false),
            (b"[a-\xc3]", b"\x80", false),
            (b"[\x80-\xff]", b"\x90", true),
        ];
        for &(pattern, key, expected) in cases {
            assert_eq!(
                matches_bytes(pattern, key),
                expected,
                "{} ~ {}",
                pattern.escape_ascii(),
                key.escape_ascii()
            );
        }
    }

    #[test]
    fn tokens_spell_out_each_construct() {
        use Token::*;
        let class = |negated, ranges: &[(u8, u8)]| Class {
            negated,
            ranges: ranges.to_vec(),
        };
        assert_eq!(
            tokens(b"a*?\\*"),
            [Literal(b'a'), AnyRun, AnyByte, Literal(b'*')]
        );
        assert_eq!(tokens(b"**"), [AnyRun, AnyRun]);
        assert_eq!(
            tokens(b"[^z-a\\]x]y"),
            [
                class(true, &[(b'a', b'z'), (b']', b']'), (b'x', b'x')]),
                Literal(b'y')
            ]
        );
        assert_eq!(tokens(b"[a-]]"), [class(false, &[(b']', b'a')])]);
        assert_eq!(
            tokens(b"[a-\\]]"),
            [class(false, &[(b'\\', b'a')]), Literal(b']')]
        );
        assert_eq!(tokens(b"[]"), [class(false, &[])]);
        assert_eq!(tokens(b"["), [class(false, &[])]);
        assert_eq!(tokens(b"[^"), [class(true, &[])]);
        assert_eq!(tokens(b"x\\"), [Literal(b'x'), Literal(b'\\')]);
        assert_eq!(
            tokens(b"[a-\xc3]"),
            [class(false, &[(0xc3, 0xff), (0, b'a')])]
        );
        assert_eq!(tokens(b""), []);
    }

    #[test]
    fn literal_patterns_are_keys() {
        assert_eq!(literal_key("user:1"), Some("user:1".to_owned()));
        assert_eq!(literal_key("a\\*b\\\\"), Some("a*b\\".to_owned()));
        assert_eq!(literal_key("a\\"), Some("a\\".to_owned()));
        assert_eq!(literal_key("\\é]"), Some("é]".to_owned()));
        assert_eq!(literal_key("user:*"), None);
        assert_eq!(literal_key("user:["), None);
        assert!(matches_everything("**"));
        assert!(!matches_everything("a*"));
        assert!(!is_glob("a\\[b]"));
        assert!(is_glob("a\\\\[b]"));
    }

    /// Glob semantics by definition, exponential but obviously right: what the iterative matcher
    /// must agree with on every non-empty key.
    fn by_definition(tokens: &[Token], key: &[u8]) -> bool {
        match tokens.split_first() {
            None => key.is_empty(),
            Some((Token::AnyRun, rest)) => (0..=key.len()).any(|i| by_definition(rest, &key[i..])),
            Some((token, rest)) => key
                .split_first()
                .is_some_and(|(byte, tail)| token.matches(*byte) && by_definition(rest, tail)),
        }
    }

    /// Patterns heavy in syntax, and keys over the bytes those patterns name.
    const PATTERN_BYTES: &str = "[ab*?\\[\\]\\\\^:-]{0,10}";
    const KEY_BYTES: &str = "[ab*?\\[\\]\\\\^:-]{1,10}";

    proptest! {
        #[test]
        fn escaped_text_matches_only_itself(text in "[a-c*?\\[\\]\\\\:éø€]{0,12}", other in "[a-c*?\\[\\]\\\\:éø€]{0,12}") {
            let pattern = escape(&text);
            prop_assert_eq!(validate(&pattern).is_ok(), !text.is_empty());
            prop_assert!(!is_glob(&pattern));
            prop_assert!(tokens(pattern.as_bytes()).iter().all(|t| matches!(t, Token::Literal(_))));
            prop_assert!(matches(&pattern, &text));
            prop_assert_eq!(matches(&pattern, &other), text == other);
            prop_assert_eq!(literal_key(&pattern), Some(text));
        }

        #[test]
        fn escaped_prefix_star_matches_exactly_the_extensions(prefix in "[a-b*?\\[\\\\é]{0,6}", key in "[a-b*?\\[\\\\é]{0,8}") {
            let pattern = format!("{}*", escape(&prefix));
            prop_assert_eq!(matches(&pattern, &key), key.starts_with(&prefix) && !(key.is_empty() && pattern != "*"));
        }

        #[test]
        fn the_matcher_agrees_with_the_definition(pattern in PATTERN_BYTES, key in KEY_BYTES) {
            let parsed = tokens(pattern.as_bytes());
            prop_assert_eq!(matches_tokens(&parsed, key.as_bytes()), by_definition(&parsed, key.as_bytes()));
        }

        #[test]
        fn a_pattern_accepted_by_validate_has_only_closed_nonempty_classes(pattern in PATTERN_BYTES) {
            if validate(&pattern).is_ok() {
                let mut lexer = Lexer::new(pattern.as_bytes());
                prop_assert!(lexer.all(|l| l.class.is_none_or(|c| c.closed)));
            }
        }
    }
}
