//! The registry of key spaces, checked before the first request.
//!
//! Every `#[cached]` function registers its key space (its key head, whether a `key_builder`
//! writes the rest, whether it opted into `shared_keys`) and every string pattern of
//! `#[invalidate_cache]` registers itself, at link time. [`verify`] then reports the mistakes
//! that otherwise only show up in production, as entries shared by two functions or as
//! invalidations that silently delete nothing:
//!
//! - two functions whose keys can meet (one head, or a key builder's prefix covering another
//!   function's head) unless both say `shared_keys`;
//! - a pattern that matches no registered key space: a typo, a function renamed, a `version`
//!   bump, a `key_builder` added;
//! - a pattern that spans several key spaces, unless it says `allow_all`.
//!
//! `cache_core::init` logs what `verify` finds, as warnings, or fails with
//! `CACHE_VERIFY_KEYS=error`. A one-line test in the crate that defines the functions makes it a
//! build failure:
//!
//! ```no_run
//! #[test]
//! fn cache_key_spaces_are_sound() {
//!     cache_core::registry::verify().unwrap();
//! }
//! ```
//!
//! Keys written by hand (`Cache::set`) are declared with [`key_space!`](crate::key_space), so
//! that patterns over them are checked too. Invalidations that name a cached function
//! (`#[invalidate_cache(get_user(id))]`) are checked by the compiler instead.

use std::collections::BTreeSet;
use std::fmt;

use cache_keys::space::{split_template, Space};

/// A key space, registered by `#[cached]` or [`key_space!`](crate::key_space).
#[derive(Debug)]
pub struct KeySpaceEntry {
    declared: KeySpaceDecl,
}

/// What the attributes and [`key_space!`](crate::key_space) write to register a key space:
/// [`KeySpaceEntry::new`]'s argument. Not for other code.
#[doc(hidden)]
#[derive(Debug)]
pub struct KeySpaceDecl {
    pub head: &'static str,
    pub exact: bool,
    pub builder: bool,
    pub shared: bool,
    pub method: bool,
    pub function: &'static str,
    pub file: &'static str,
    pub line: u32,
}

impl KeySpaceEntry {
    /// The entry the expansion of an attribute declares. Not for other code.
    #[doc(hidden)]
    pub const fn new(declared: KeySpaceDecl) -> Self {
        KeySpaceEntry { declared }
    }

    /// The constant start of every key (`user:get_user`, `user:get_user:v2`, or the prefix of
    /// a key builder).
    pub fn head(&self) -> &'static str {
        self.declared.head
    }

    /// True when the head is the only key (a function without key arguments or generics).
    pub fn exact(&self) -> bool {
        self.declared.exact
    }

    /// True when a key builder (or hand-written code) writes what follows the head.
    pub fn builder(&self) -> bool {
        self.declared.builder
    }

    /// True when the function opted into sharing its key space (`shared_keys`).
    pub fn shared(&self) -> bool {
        self.declared.shared
    }

    /// True for a method: its keys carry the concrete `Self` type, so two methods of one name
    /// on different types never meet.
    pub fn method(&self) -> bool {
        self.declared.method
    }

    /// Where it is declared: `module::function` (or the module, for
    /// [`key_space!`](crate::key_space)).
    pub fn function(&self) -> &'static str {
        self.declared.function
    }

    /// The source file.
    pub fn file(&self) -> &'static str {
        self.declared.file
    }

    /// The line in `file`.
    pub fn line(&self) -> u32 {
        self.declared.line
    }
}

/// A string pattern of `#[invalidate_cache]`.
#[derive(Debug)]
pub struct InvalidationEntry {
    /// The pattern as written, `{arg}` placeholders included.
    pub pattern: &'static str,
    /// True when the pattern may match everything or span several key spaces (`allow_all`).
    pub allow_all: bool,
    /// The invalidating function, `module::function`.
    pub function: &'static str,
    /// The source file.
    pub file: &'static str,
    /// The line in `file`.
    pub line: u32,
}

inventory::collect!(KeySpaceEntry);
inventory::collect!(InvalidationEntry);

impl KeySpaceEntry {
    fn space(&self) -> Space<'static> {
        Space {
            head: self.head(),
            exact: self.exact(),
        }
    }

    fn site(&self) -> String {
        format!("`{}` ({}:{})", self.function(), self.file(), self.line())
    }
}

impl InvalidationEntry {
    fn site(&self) -> String {
        format!("`{}` ({}:{})", self.function, self.file, self.line)
    }
}

/// Every registered key space, sorted by head.
pub fn key_spaces() -> Vec<&'static KeySpaceEntry> {
    let mut spaces: Vec<_> = inventory::iter::<KeySpaceEntry>.into_iter().collect();
    spaces.sort_by_key(|s| (s.head(), s.function(), s.file(), s.line()));
    spaces
}

/// Every registered invalidation pattern, sorted by glob.
pub fn invalidations() -> Vec<&'static InvalidationEntry> {
    let mut patterns: Vec<_> = inventory::iter::<InvalidationEntry>.into_iter().collect();
    patterns.sort_by_key(|p| (p.pattern, p.function, p.file, p.line));
    patterns
}

/// One problem [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Two functions whose keys can meet, not both `shared_keys`.
    SharedKeySpace {
        /// The heads of the two key spaces.
        heads: (String, String),
        /// Where each is declared.
        sites: (String, String),
    },
    /// A pattern that matches no registered key space.
    UnmatchedPattern {
        /// The pattern as written.
        glob: String,
        /// The invalidating function.
        site: String,
    },
    /// A pattern that matches the keys of several key spaces, without `allow_all`.
    SpansKeySpaces {
        /// The pattern as written.
        glob: String,
        /// The heads it reaches.
        heads: Vec<String>,
        /// The invalidating function.
        site: String,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::SharedKeySpace { heads, sites } if heads.0 == heads.1 => write!(
                f,
                "{} and {} share the key space `{}`: each would read the other's entries. Give \
                 one a key_prefix of its own, or add `shared_keys` to both if that is meant",
                sites.0, sites.1, heads.0
            ),
            Finding::SharedKeySpace { heads, sites } => write!(
                f,
                "the keys of {} (`{}:...`) can land on those of {} (`{}:...`): a key builder \
                 writes free text after its prefix. Give one a key_prefix of its own, or add \
                 `shared_keys` to both if that is meant",
                sites.0, heads.0, sites.1, heads.1
            ),
            Finding::UnmatchedPattern { glob, site } => write!(
                f,
                "the pattern \"{glob}\" of {site} matches no cached function's keys (a typo, a \
                 renamed function, a `version` bump?), so it deletes nothing. Name the function \
                 instead, `#[invalidate_cache(get_user(id))]`, or declare hand-written keys with \
                 `cache_core::key_space!`"
            ),
            Finding::SpansKeySpaces { glob, heads, site } => write!(
                f,
                "the pattern \"{glob}\" of {site} deletes the keys of {} key spaces ({}): add \
                 `allow_all = true` if that is meant",
                heads.len(),
                heads.join(", ")
            ),
        }
    }
}

/// What [`verify`] found: at least one [`Finding`].
#[derive(Clone, PartialEq, Eq)]
pub struct Report {
    /// The findings, in a stable order.
    pub findings: Vec<Finding>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} problem(s) with cache key spaces:",
            self.findings.len()
        )?;
        for finding in &self.findings {
            writeln!(f, "  - {finding}")?;
        }
        Ok(())
    }
}

/// The same as `Display`, so that `verify().unwrap()` in a test prints a readable list.
impl fmt::Debug for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Report {}

/// Checks every registered key space and invalidation pattern (see the module docs).
pub fn verify() -> Result<(), Report> {
    check(&key_spaces(), &invalidations())
}

fn check(spaces: &[&KeySpaceEntry], patterns: &[&InvalidationEntry]) -> Result<(), Report> {
    let mut findings = Vec::new();
    for (i, a) in spaces.iter().enumerate() {
        for b in &spaces[i + 1..] {
            let methods_of_one_name = a.method() && b.method() && a.head() == b.head();
            if a.space().overlaps(b.space()) && !(a.shared() && b.shared()) && !methods_of_one_name
            {
                findings.push(Finding::SharedKeySpace {
                    heads: (a.head().to_owned(), b.head().to_owned()),
                    sites: (a.site(), b.site()),
                });
            }
        }
    }
    for pattern in patterns {
        if pattern.allow_all {
            continue;
        }
        // Checked at compile time: a template that does not split is not registered.
        let Ok(template) = split_template(pattern.pattern) else {
            continue;
        };
        let heads: BTreeSet<&str> = spaces
            .iter()
            .filter(|s| s.space().reached_by_template(&template))
            .map(|s| s.head())
            .collect();
        match heads.len() {
            0 => findings.push(Finding::UnmatchedPattern {
                glob: pattern.pattern.to_owned(),
                site: pattern.site(),
            }),
            1 => {}
            _ => findings.push(Finding::SpansKeySpaces {
                glob: pattern.pattern.to_owned(),
                heads: heads.into_iter().map(str::to_owned).collect(),
                site: pattern.site(),
            }),
        }
    }
    if findings.is_empty() {
        Ok(())
    } else {
        Err(Report { findings })
    }
}

/// What `init` does with the findings of [`verify`] (`CACHE_VERIFY_KEYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyCheck {
    /// Log each finding as a warning, once per process (the default).
    #[default]
    Warn,
    /// Fail `init` with [`CacheError::KeySpaces`](crate::CacheError::KeySpaces).
    Error,
    /// Do not check.
    Off,
}

/// Applies `check` to what [`verify`] finds: `init` calls it.
pub(crate) fn apply(check: KeyCheck) -> Result<(), Report> {
    static WARNED: std::sync::Once = std::sync::Once::new();
    match check {
        KeyCheck::Off => Ok(()),
        KeyCheck::Error => verify(),
        KeyCheck::Warn => {
            WARNED.call_once(|| {
                if let Err(report) = verify() {
                    for finding in &report.findings {
                        tracing::warn!("{finding}");
                    }
                }
            });
            Ok(())
        }
    }
}

/// Declares a key space written by hand (with `Cache::set`), so that the registry checks the
/// patterns that invalidate it and the cached functions it could collide with.
///
/// ```
/// cache_core::key_space!("trending");          // keys `trending:...`
/// cache_core::key_space!("stats:daily", exact); // the one key `stats:daily`
/// ```
#[macro_export]
macro_rules! key_space {
    ($head:literal) => {
        $crate::key_space!(@entry $head, false);
    };
    ($head:literal, exact) => {
        $crate::key_space!(@entry $head, true);
    };
    (@entry $head:literal, $exact:literal) => {
        $crate::__private::inventory::submit! {
            $crate::registry::KeySpaceEntry::new($crate::__private::KeySpaceDecl {
                head: $head,
                exact: $exact,
                builder: true,
                shared: false,
                method: false,
                function: ::core::module_path!(),
                file: ::core::file!(),
                line: ::core::line!(),
            })
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(head: &'static str, exact: bool, shared: bool) -> KeySpaceEntry {
        KeySpaceEntry::new(KeySpaceDecl {
            head,
            exact,
            builder: false,
            shared,
            method: false,
            function: "f",
            file: "x.rs",
            line: 1,
        })
    }

    fn pattern(pattern: &'static str, allow_all: bool) -> InvalidationEntry {
        InvalidationEntry {
            pattern,
            allow_all,
            function: "g",
            file: "x.rs",
            line: 2,
        }
    }

    #[test]
    fn reports_each_kind_of_mistake() {
        let (a, b) = (
            space("user:get", false, false),
            space("user:get", false, false),
        );
        let c = space("user:get_all", false, false);
        let findings = check(&[&a, &b, &c], &[]).err().map(|r| r.findings.len());
        assert_eq!(findings, Some(1), "one shared key space");
        let (a, b) = (
            space("user:get", false, true),
            space("user:get", false, true),
        );
        assert!(check(&[&a, &b], &[]).is_ok(), "shared_keys on both");

        let v2 = space("user:get:v2", false, false);
        let old = pattern("user:get:*", false);
        assert!(check(&[&v2], &[&old]).is_ok(), "`v2` may be an argument");
        let old = pattern("user:get:{id}", false);
        let report = check(&[&v2], &[&old]).err();
        assert!(
            matches!(
                report.as_ref().map(|r| &r.findings[..]),
                Some([Finding::UnmatchedPattern { .. }])
            ),
            "{report:?}"
        );
        let c = space("user:list", false, false);
        let wide = pattern("user:*", false);
        let report = check(&[&v2, &c], &[&wide]).err();
        assert!(
            matches!(
                report.as_ref().map(|r| &r.findings[..]),
                Some([Finding::SpansKeySpaces { .. }])
            ),
            "{report:?}"
        );
        let wide = pattern("user:*", true);
        assert!(check(&[&v2, &c], &[&wide]).is_ok(), "allow_all");
    }
}
