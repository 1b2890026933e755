//! Key injectivity, by property: two argument lists give the same key exactly when they are
//! equal, and a pattern interpolating an argument matches exactly the keys of that argument.

use cache_core::__private::{KeyBuf, PatternBuf};
use cache_core::CacheKey;
use proptest::prelude::*;

type Args = (
    String,
    Option<String>,
    Vec<Option<String>>,
    (i64, String),
    Option<Option<u8>>,
);

fn key(args: &Args) -> String {
    let mut k = KeyBuf::new("p:f", 64);
    k.part(&args.0);
    k.part(&args.1);
    k.part(&args.2);
    k.part(&args.3);
    k.part(&args.4);
    k.finish()
}

/// Text full of the characters that matter: separators, escapes, brackets, globs, the None mark.
fn text() -> impl Strategy<Value = String> {
    "[a:,\\\\~()\\[\\]*?]{0,4}"
}

fn args() -> impl Strategy<Value = Args> {
    (
        text(),
        proptest::option::of(text()),
        proptest::collection::vec(proptest::option::of(text()), 0..3),
        (-2i64..3, text()),
        proptest::option::of(proptest::option::of(0u8..2)),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn keys_are_equal_only_for_equal_arguments(a in args(), b in args()) {
        prop_assert_eq!(key(&a) == key(&b), a == b, "{} / {}", key(&a), key(&b));
    }

    #[test]
    fn a_key_is_a_function_of_its_arguments(a in args()) {
        prop_assert_eq!(key(&a), key(&a.clone()));
    }

    #[test]
    fn interpolated_patterns_match_only_their_own_value(a in text(), b in text()) {
        let mut p = PatternBuf::new(32);
        p.text("p:f:");
        p.arg(&a);
        p.text(":*");
        let pattern = p.finish();
        let key_of = |v: &str| format!("p:f:{}:rest", v.to_key());
        prop_assert!(cache_keys::pattern::matches(&pattern, &key_of(&a)));
        prop_assert_eq!(cache_keys::pattern::matches(&pattern, &key_of(&b)), a == b);
    }
}

#[test]
fn near_collisions_from_the_design_notes() {
    let pair = |a: &str, b: &str| {
        let mut k = KeyBuf::new("f", 8);
        k.part(a);
        k.part(b);
        k.finish()
    };
    assert_ne!(pair("a:b", "c"), pair("a", "b:c"));
    assert_ne!(pair("a\\", ":b"), pair("a\\:", "b"));
    let one = |v: Option<&str>| {
        let mut k = KeyBuf::new("f", 8);
        k.part(&v);
        k.finish()
    };
    assert_eq!(
        [one(None), one(Some("")), one(Some("~"))],
        ["f:~", "f:", "f:\\~"]
    );
}
