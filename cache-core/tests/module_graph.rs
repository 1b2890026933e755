//! The modules of cache-core form layers: no module reaches, through the others, back to itself.
//!
//! Reads the sources, takes each file's `crate::...` and `super::...` paths (comments and
//! `#[cfg(test)]` items left out: tests may reach anywhere), resolves each to the module that
//! defines it, and fails on a cycle, naming it. A module and its own submodules may use each
//! other (a folder's `mod.rs` and its files are one unit to the rest of the crate); across that
//! boundary, dependencies go one way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a test fails loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`["policy", "flight"]`) for each source file under `src`.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(src).expect("under src");
            let mut parts: Vec<String> = relative
                .iter()
                .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                parts.pop();
            }
            out.insert(parts, path);
        }
    }
    out
}

/// The source without comments and without `#[cfg(test)]` items.
fn code(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]") {
            // Skip the item: up to the end of its braces, or the `;` of `mod x;`.
            let mut depth = 0i32;
            let mut opened = false;
            for line in lines.by_ref() {
                depth += line.matches('{').count() as i32 - line.matches('}').count() as i32;
                opened |= line.contains('{');
                if (opened && depth <= 0) || (!opened && line.trim_end().ends_with(';')) {
                    break;
                }
            }
            continue;
        }
        let line = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The module paths `source` names, as written after `crate::` or resolved from `super::`.
fn references(module: &[String], source: &str) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    let text = code(source);
    let bytes = text.as_bytes();
    for (start, prefix) in text
        .match_indices("crate::")
        .map(|(i, _)| (i, "crate::"))
        .chain(text.match_indices("super::").map(|(i, _)| (i, "super::")))
    {
        if start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_') {
            continue; // `$crate::`, `my_crate::`
        }
        let rest = &text[start + prefix.len()..];
        let mut base: Vec<String> = if prefix == "super::" {
            let mut parent = module.to_vec();
            parent.pop();
            parent
        } else {
            Vec::new()
        };
        // `a::b::{c, d::e}`: each path of the group.
        let head: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        base.extend(
            head.split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
        );
        if let Some(group) = rest[head.len()..].strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let mut path = base.clone();
                path.extend(
                    item.split("::")
                        .map(str::trim)
                        .filter(|s| !s.is_empty() && *s != "self")
                        .map(str::to_owned),
                );
                found.insert(path);
            }
        } else {
            found.insert(base);
        }
    }
    found
}

/// The deepest module that `path` lies in, among `known` (names re-exported at the crate root,
/// such as `crate::CacheError`, resolve through `root`).
fn owner(
    path: &[String],
    known: &BTreeMap<Vec<String>, PathBuf>,
    root: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    if let Some(first) = path.first() {
        if let Some(module) = root.get(first) {
            return Some(module.clone());
        }
    }
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| known.contains_key(p))
}

/// Names the crate root re-exports, and the module each comes from (`pub use x::{A, B}`).
fn root_exports(lib: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for line in code(lib).lines() {
        let Some(rest) = line.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let (module, names) = match rest.split_once("::{") {
            Some((module, names)) => (module, names.trim_end_matches('}')),
            None => match rest.rsplit_once("::") {
                Some((module, name)) => (module, name),
                None => continue,
            },
        };
        let module: Vec<String> = module.split("::").map(str::to_owned).collect();
        for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            out.insert(name.to_owned(), module.clone());
        }
    }
    out
}

fn related(a: &[String], b: &[String]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

#[test]
fn cache_core_has_no_module_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let root = root_exports(&lib);
    let test_only = test_modules(&known);
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, path) in &known {
        if module.is_empty() || module == &["private"] {
            // The crate root and the macros' surface sit above every layer.
            continue;
        }
        if test_only.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        let source = std::fs::read_to_string(path).expect("source");
        for reference in references(module, &source) {
            if let Some(to) = owner(&reference, &known, &root) {
                if !to.is_empty() && !related(module, &to) {
                    edges.entry(module.clone()).or_default().insert(to);
                }
            }
        }
    }
    // Edges between folders count between their top-level modules too: a file of `policy/`
    // using `backend` is `policy -> backend`.
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, tos) in &edges {
        for to in tos {
            if from[0] != to[0] {
                top.entry(from[0].clone())
                    .or_default()
                    .insert(to[0].clone());
            }
        }
    }
    if let Some(cycle) = find_cycle(&top) {
        panic!(
            "module cycle in cache-core: {}\nedges: {top:#?}",
            cycle.join(" -> ")
        );
    }
}

/// Modules declared as `#[cfg(test)] mod name;`: test code, left out like `#[cfg(test)]` items.
fn test_modules(known: &BTreeMap<Vec<String>, PathBuf>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (module, path) in known {
        let source = std::fs::read_to_string(path).expect("source");
        let mut lines = source.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let next = lines.next().unwrap_or_default();
            if let Some(name) = next
                .strip_prefix("mod ")
                .and_then(|rest| rest.strip_suffix(';'))
            {
                let mut child = module.clone();
                child.push(name.trim().to_owned());
                out.push(child);
            }
        }
    }
    out
}

/// A cycle of the graph, as its nodes in order with the first repeated at the end.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// The checker itself finds a cycle where there is one.
#[test]
fn the_checker_finds_cycles() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let module = vec!["policy".to_owned(), "flight".to_owned()];
    let refs = references(
        &module,
        "use crate::{config::X, error::Y};\n// crate::cache\nuse super::breaker::Z;\n#[cfg(test)]\nmod tests {\n    use crate::global;\n}\n",
    );
    let refs: Vec<String> = refs.iter().map(|r| r.join("::")).collect();
    assert_eq!(refs, ["config::X", "error::Y", "policy::breaker::Z"]);
}

/// Internal code names the module that defines what it uses, never a re-export of the crate
/// root (`crate::CacheError`): the root sits above every layer, and an import through it hides
/// which layer a file depends on. `lib.rs` itself, and tests, may.
#[test]
fn internal_code_does_not_import_through_the_crate_root() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&src);
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let root = root_exports(&lib);
    let test_only = test_modules(&known);
    let mut found = Vec::new();
    for (module, path) in &known {
        if module.is_empty() || test_only.iter().any(|t| module.starts_with(t)) {
            continue;
        }
        let source = std::fs::read_to_string(path).expect("source");
        for reference in references(module, &source) {
            // A root re-export is a one-segment path that `lib.rs` re-exports and that names no
            // module of its own (`crate::shutdown` is a module and a re-exported fn).
            if let [name] = reference.as_slice() {
                if root.contains_key(name) && !known.contains_key(&reference) {
                    found.push(format!("{}: crate::{name}", path.display()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "import these from the module that defines them:\n{}",
        found.join("\n")
    );
}
