//! The rule of the arrows (see `ARCHITECTURE.md`), checked on the source so
//! a change that breaks it fails `cargo test`:
//! - nothing outside `http/` imports `crate::http`;
//! - `domain/` imports no other module of the crate, and `store/` never
//!   reaches the application state;
//! - the top-level modules below the composition root (`lib`, `main`,
//!   `cli`, `startup`, `state`) import each other without a cycle.
//!
//! A module's imports are the `crate::…` paths in its files, test modules
//! (everything from the first `#[cfg(test)]`) left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules that wire everything together; they may import anything.
const COMPOSITION_ROOT: [&str; 5] = ["lib", "main", "cli", "startup", "state"];

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `crate::X` references of every file, by top-level module.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap_or(&file);
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .unwrap_or_default()
            .trim_end_matches(".rs")
            .to_owned();
        if matches!(top.as_str(), "architecture" | "fuzz") {
            continue; // test-only modules: this checker, and the parsers' fuzzing
        }
        let code = std::fs::read_to_string(&file).unwrap_or_default();
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        let edges = graph.entry(top.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != top {
                edges.insert(name);
            }
        }
    }
    graph
}

#[test]
fn nothing_outside_http_imports_http() {
    let offenders: Vec<String> = imports()
        .into_iter()
        .filter(|(module, uses)| {
            module != "http" && !COMPOSITION_ROOT.contains(&module.as_str()) && uses.contains("http")
        })
        .map(|(module, _)| module)
        .collect();
    assert!(offenders.is_empty(), "these modules import crate::http: {offenders:?}");
}

#[test]
fn the_domain_stands_alone_and_the_store_never_sees_the_state() {
    let graph = imports();
    let domain = graph.get("domain").cloned().unwrap_or_default();
    assert!(domain.is_empty(), "domain/ imports {domain:?}");
    let store = graph.get("store").cloned().unwrap_or_default();
    assert!(!store.contains("state"), "store/ imports crate::state");
    assert!(
        !store.contains("http") && !store.contains("operations"),
        "store/ imports {store:?}"
    );
}

#[test]
fn the_modules_below_the_composition_root_form_no_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = imports()
        .into_iter()
        .filter(|(module, _)| !COMPOSITION_ROOT.contains(&module.as_str()))
        .collect();
    // Depth-first search for a back edge, reporting the cycle's path.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if graph.contains_key(next)
                && let Some(cycle) = visit(next, graph, path, done)
            {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(cycle) = visit(module, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" → "));
        }
    }
}
