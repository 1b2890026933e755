//! The key and glob-pattern grammar of the cache, in one place.
//!
//! `cache-macros` checks attribute patterns with it at compile time and `cache-core` uses it at run
//! time (key building, pattern interpolation, the in-process backend's `clear_pattern`), so the two
//! can never disagree about what a key or a pattern means.
#![deny(missing_docs)]

pub mod key;
pub mod pattern;
pub mod space;
