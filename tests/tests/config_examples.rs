//! Every example config in the repository loads with the binary it is meant for.
//!
//! A new example file must be added to `loader_for`, so none goes untested.

use std::path::{Path, PathBuf};

fn examples() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut found = Vec::new();
    for dir in ["config", "deploy"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            } else if path.is_dir() {
                if let Ok(inner) = std::fs::read_dir(&path) {
                    found.extend(
                        inner
                            .flatten()
                            .map(|e| e.path())
                            .filter(|p| p.extension().is_some_and(|e| e == "toml")),
                    );
                }
            }
        }
    }
    found.sort();
    found
}

/// Loads `path` with the binary its file name names (`edge*.toml`, ...).
fn load(path: &Path) -> Result<(), String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    if name.starts_with("edge") {
        hasip_edge::config::EdgeConfig::load(path)
            .map(drop)
            .map_err(|e| e.to_string())
    } else if name.starts_with("dbsync") {
        hasip_dbsync::config::Config::load(path)
            .map(drop)
            .map_err(|e| e.to_string())
    } else if name.starts_with("registrar") {
        hasip_registrar::config::RegistrarConfig::load(path)
            .map(drop)
            .map_err(|e| e.to_string())
    } else {
        Err(format!(
            "no loader for {}: add one to tests/tests/config_examples.rs",
            path.display()
        ))
    }
}

#[test]
fn every_example_config_loads() {
    let examples = examples();
    assert!(
        ["edge", "registrar", "dbsync"].iter().all(|name| examples
            .iter()
            .any(|p| p.ends_with(format!("config/{name}.toml")))),
        "the examples were not found: {examples:?}"
    );
    let failures: Vec<String> = examples
        .iter()
        .filter_map(|path| load(path).err().map(|e| format!("{}: {e}", path.display())))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}
