//! Type fingerprints: a stable 64-bit hash of a value's Rust type, stored in every value header so
//! that bytes written as one type are never decoded as another.
//!
//! The fingerprint hashes `std::any::type_name` after folding the spellings that serde encodes
//! identically by construction: references (`&T`, `&mut T`), `str` and `String`, slices and
//! `Vec`, and the `Box`/`Rc`/`Arc`/`Cow` wrappers. So `cache.set(key, "text")` is read back by
//! `cache.get::<String>(key)`, while a `u64` is never read as an `i64` or a `Server` as a `User`.
//! Moving or renaming a type changes its fingerprint: its old entries become misses, never garbage.

use std::cell::RefCell;
use std::collections::HashMap;

/// The fingerprint of `V`; computed once per type and thread, then a table lookup.
pub(crate) fn of<V: ?Sized>() -> u64 {
    let name = std::any::type_name::<V>();
    // Keyed by the name's address: one `&'static str` per type in a binary.
    let id = name.as_ptr() as usize ^ name.len().rotate_left(48);
    KNOWN.with(|known| {
        if let Some(&fingerprint) = known.borrow().get(&id) {
            return fingerprint;
        }
        let fingerprint = fnv1a(canonical(name).as_bytes());
        known.borrow_mut().insert(id, fingerprint);
        fingerprint
    })
}

thread_local! {
    static KNOWN: RefCell<HashMap<usize, u64>> = RefCell::new(HashMap::new());
}

/// FNV-1a, 64 bits: tiny, stable across builds and platforms.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Wrappers that serde serializes exactly as the type they hold.
const TRANSPARENT: [&str; 4] = [
    "alloc::boxed::Box",
    "alloc::rc::Rc",
    "alloc::sync::Arc",
    "alloc::borrow::Cow",
];

/// `name` with the serde-equivalent spellings folded into one (see the module docs).
fn canonical(name: &str) -> String {
    let name = name.trim();
    if let Some(rest) = name
        .strip_prefix("&mut ")
        .or_else(|| name.strip_prefix('&'))
    {
        return canonical(rest);
    }
    if let Some(body) = name.strip_prefix('(').and_then(|n| n.strip_suffix(')')) {
        let parts: Vec<String> = split_top_level(body, ',')
            .into_iter()
            .map(canonical)
            .collect();
        return format!("({})", parts.join(", "));
    }
    if let Some(body) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        return match split_top_level(body, ';').as_slice() {
            [element, length] => format!("[{}; {}]", canonical(element), length.trim()),
            _ => format!("alloc::vec::Vec<{}>", canonical(body)),
        };
    }
    if name == "str" {
        return "alloc::string::String".to_owned();
    }
    let Some((path, rest)) = name.split_once('<') else {
        return name.to_owned();
    };
    let Some(args) = rest.strip_suffix('>') else {
        return name.to_owned();
    };
    // Lifetimes (`Cow<'_, str>`) say nothing about the encoding.
    let args: Vec<&str> = split_top_level(args, ',')
        .into_iter()
        .filter(|a| !a.trim_start().starts_with('\''))
        .collect();
    if let [inner] = args.as_slice() {
        if TRANSPARENT.contains(&path) {
            return canonical(inner);
        }
    }
    let args: Vec<String> = args.into_iter().map(canonical).collect();
    format!("{path}<{}>", args.join(", "))
}

/// Splits `text` at each `separator` outside `<>`, `()` and `[]`; empty input gives no parts.
fn split_top_level(text: &str, separator: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' | ')' | ']' => depth = depth.saturating_sub(1),
            c if c == separator && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() {
        parts.push(&text[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::collections::BTreeMap;
    use std::rc::Rc;
    use std::sync::Arc;

    #[test]
    fn spellings_serde_encodes_alike_share_a_fingerprint() {
        assert_eq!(of::<str>(), of::<String>());
        assert_eq!(of::<&str>(), of::<String>());
        assert_eq!(of::<[u8]>(), of::<Vec<u8>>());
        assert_eq!(of::<&[String]>(), of::<Vec<String>>());
        assert_eq!(of::<Vec<&str>>(), of::<Vec<String>>());
        assert_eq!(of::<Option<&str>>(), of::<Option<String>>());
        assert_eq!(of::<(&str, &[u8])>(), of::<(String, Vec<u8>)>());
        assert_eq!(of::<Box<str>>(), of::<String>());
        assert_eq!(of::<Arc<Vec<u8>>>(), of::<Vec<u8>>());
        assert_eq!(of::<Rc<String>>(), of::<String>());
        assert_eq!(of::<Cow<'static, str>>(), of::<String>());
        assert_eq!(
            of::<&mut BTreeMap<&str, u8>>(),
            of::<BTreeMap<String, u8>>()
        );
    }

    #[test]
    fn different_types_differ() {
        let all = [
            of::<u64>(),
            of::<i64>(),
            of::<u32>(),
            of::<String>(),
            of::<Vec<u8>>(),
            of::<[u8; 4]>(),
            of::<Option<String>>(),
            of::<(String, u8)>(),
            of::<(u8, String)>(),
            of::<BTreeMap<String, u8>>(),
            of::<()>(),
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn fingerprints_are_stable() {
        // Stored in Redis: changing these strands every cached value, so it must be deliberate.
        assert_eq!(
            canonical("&[&str]"),
            "alloc::vec::Vec<alloc::string::String>"
        );
        assert_eq!(canonical("(u8, [u16; 3])"), "(u8, [u16; 3])");
        assert_eq!(
            canonical("alloc::borrow::Cow<'_, str>"),
            "alloc::string::String"
        );
        assert_eq!(fnv1a(b"u64"), 5_563_585_020_063_213_298);
        assert_eq!(of::<u64>(), fnv1a(b"u64"));
    }
}
