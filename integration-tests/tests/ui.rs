//! Every compile-time error of the attributes, with the message the user sees (`ui/*.stderr`).
//!
//! Regenerate with `TRYBUILD=overwrite cargo test -p integration-tests --test ui` and review the
//! diff: each message must say what is wrong and how to fix it.

#[test]
fn attribute_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
