//! The attributes at compile time: every error they emit, with the message the user sees
//! (`ui/fail/*.stderr`), and the forms they accept (`ui/pass`).
//!
//! Regenerate the messages with `TRYBUILD=overwrite cargo test -p cache-macros --test ui` and
//! review the diff: each message must say what is wrong and how to fix it.

#[test]
fn attributes() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
