//! The import stack of `src/`: every `crate::<module>` path in a file must name a module of a
//! lower layer (or a leaf), so the layers cannot loop. The stack (README, "Layout and docs"):
//! `cli → bench → node → api → gateways / p2p → engine → store → chain → crypto`, with `config`,
//! `metrics` and `util` as leaves that any layer may use and that use no layer themselves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Layer of each top-level module: a module may import only modules of a higher number.
const LAYERS: &[(&str, u32)] = &[
    ("cli", 1),
    ("bench", 2),
    ("node", 3),
    ("api", 4),
    ("gateways", 5),
    ("p2p", 5),
    ("engine", 6),
    ("store", 7),
    ("chain", 8),
    ("crypto", 9),
];
const LEAVES: &[&str] = &["config", "metrics", "util"];

fn rank(module: &str) -> Option<u32> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, r)| *r)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/engine/feed.rs` → `engine`, `src/node.rs` → `node`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// Every module named right after `crate::`, including the members of `crate::{a::…, b}`.
fn imported_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            for part in body.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

#[test]
fn no_module_imports_a_layer_above_itself() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under src/",
        files.len()
    );
    let mut violations = Vec::new();
    let mut edges = 0;
    for file in &files {
        let module = module_of(&src, file);
        if module == "main" || module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("read source");
        for imported in imported_modules(&text) {
            if imported == module {
                continue;
            }
            edges += 1;
            let ok = if LEAVES.contains(&module.as_str()) {
                LEAVES.contains(&imported.as_str())
            } else if LEAVES.contains(&imported.as_str()) {
                true
            } else {
                match (rank(&module), rank(&imported)) {
                    (Some(from), Some(to)) => to > from,
                    _ => false,
                }
            };
            if !ok {
                violations.push(format!(
                    "{} ({module}) imports crate::{imported}",
                    file.strip_prefix(&src).unwrap_or(file).display()
                ));
            }
        }
    }
    assert!(
        edges > 50,
        "only {edges} cross-module imports seen: is the scan broken?"
    );
    assert!(
        violations.is_empty(),
        "imports against the layer stack (or modules missing from LAYERS):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_scanner_sees_grouped_and_nested_paths() {
    let found = imported_modules(
        "use crate::{chain::Block, store};\nlet x = crate::engine::feed::open_post(t, k);",
    );
    let want: BTreeSet<String> = ["chain", "store", "engine"]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(found, want);
}
