//! The key and pattern grammar: different argument lists never share a key, an escaped text
//! matches exactly itself as a pattern, and no pattern makes the matcher panic.
#![no_main]

use cache_core::CacheKey;
use cache_keys::pattern;
use libfuzzer_sys::fuzz_target;

fn key(args: &(Vec<String>, Option<String>, (String, u8))) -> String {
    let mut out = String::from("prefix:fn");
    for part in [args.0.to_key(), args.1.to_key(), args.2.to_key()] {
        out.push(':');
        out.push_str(&part);
    }
    out
}

fuzz_target!(|input: (Vec<String>, Option<String>, (String, u8), Vec<String>, Option<String>, (String, u8), String, String)| {
    let (a0, a1, a2, b0, b1, b2, text, other) = input;
    let a = (a0, a1, a2);
    let b = (b0, b1, b2);
    assert_eq!(key(&a) == key(&b), a == b, "{a:?} and {b:?}");

    let escaped = pattern::escape(&text);
    assert!(pattern::matches(&escaped, &text));
    assert_eq!(pattern::matches(&escaped, &other), text == other);
    assert_eq!(pattern::literal_key(&escaped).as_deref(), Some(text.as_str()));

    // Any text as a pattern: validation and matching never panic.
    if pattern::validate(&text).is_ok() {
        let _ = pattern::matches(&text, &other);
    }
});
