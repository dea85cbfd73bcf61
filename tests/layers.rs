//! The layers of `src/`, checked from the code's own imports: every `crate::MODULE` a module
//! names must sit on a lower layer than its own, and no two files of one module import each
//! other, directly or round a circle. ARCHITECTURE.md draws the same picture.
//!
//! It reads `use` paths as text (outside `#[cfg(test)]` blocks), which is what a person
//! reviewing an import would look at; a new top-level module must be given its layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer: a module may import only from lower ones.
const LAYERS: &[(&str, u32)] = &[
    // What everything may use.
    ("limits", 0),
    ("clock", 0),
    ("log_context", 0),
    // The pure core and the descriptions it is driven by.
    ("domain", 1),
    ("pb", 1),
    ("config", 1),
    ("prompt", 1),
    // What the core looks like at the edges.
    ("error", 2),
    ("json", 2),
    ("wire", 2),
    ("pki", 2),
    ("https", 2),
    // Consensus below the node; the client, which talks to nodes only through the wire.
    ("consensus", 3),
    ("client", 3),
    ("server", 4),
    ("local_cluster", 4),
    // The front half: the assistant answers through the client; the session runs the
    // booking commands (and asks the assistant); scripts and the page sit on the session;
    // the shell on scripts; the binary's subcommands wire it all.
    ("assistant", 5),
    ("session", 6),
    ("script", 7),
    ("web", 7),
    ("shell", 8),
    ("cli", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of a file without its `#[cfg(test)]` module (tests may reach anywhere).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read source");
    match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Every `PREFIX::name` in `text`, as `name`.
fn names_after(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        // `super::` inside `crate::super::` does not occur; `xsuper::` is another name.
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = text[at + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if !name.is_empty() {
            names.insert(name);
        }
    }
    names
}

/// The top-level module a file of `src/` belongs to (`lib` and `main` are above all).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(src()).expect("under src");
    let first = relative.components().next().expect("a component");
    let first = first.as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let layers: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let module = module_of(file);
        if module == "lib" || module == "main" || module == "build" {
            continue;
        }
        let Some(&own) = layers.get(module.as_str()) else {
            wrong.push(format!("src/{module}: give it a layer in tests/layers.rs"));
            continue;
        };
        for used in names_after(&code(file), "crate::") {
            if used == module {
                continue;
            }
            match layers.get(used.as_str()) {
                Some(&layer) if layer < own => {}
                Some(&layer) => wrong.push(format!(
                    "{} (layer {own}) imports crate::{used} (layer {layer})",
                    file.strip_prefix(src()).unwrap_or(file).display()
                )),
                None => {}
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

/// Sibling files of one module (not its `mod.rs`, which declares them) must not import each
/// other round a circle.
#[test]
fn no_two_files_of_a_module_import_each_other_round_a_circle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    // file -> the sibling files it names, for files in a directory module.
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in &files {
        let Some(dir) = file.parent() else { continue };
        if dir == src() || file.file_name().is_some_and(|n| n == "mod.rs") {
            continue;
        }
        let module = module_of(file);
        let text = code(file);
        let mut named = names_after(&text, "super::");
        named.extend(names_after(&text, &format!("crate::{module}::")));
        let siblings: BTreeSet<PathBuf> = named
            .iter()
            .map(|name| dir.join(format!("{name}.rs")))
            .filter(|sibling| sibling != file && sibling.exists())
            .collect();
        edges.insert(file.clone(), siblings);
    }
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if let Some(circle) = circle_from(start, &edges, &mut path) {
            let names: Vec<String> = circle
                .iter()
                .map(|f| f.strip_prefix(src()).unwrap_or(f).display().to_string())
                .collect();
            panic!("an import circle: {}", names.join(" -> "));
        }
    }
}

fn circle_from(
    start: &PathBuf,
    edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    path: &mut Vec<PathBuf>,
) -> Option<Vec<PathBuf>> {
    let last = path.last()?.clone();
    for next in edges.get(&last).into_iter().flatten() {
        if next == start {
            let mut circle = path.clone();
            circle.push(next.clone());
            return Some(circle);
        }
        if path.contains(next) {
            continue;
        }
        path.push(next.clone());
        if let Some(circle) = circle_from(start, edges, path) {
            return Some(circle);
        }
        path.pop();
    }
    None
}
