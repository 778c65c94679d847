//! Embeds the files `apiary new` and `apiary build` write out: the WIT contract, the Python
//! and JavaScript SDKs, and the three plugin skeletons. A binary built from this repository
//! then builds plugins anywhere, with no checkout beside it.
//!
//! Writes `$OUT_DIR/embedded.rs`: one `&[(relative path, contents)]` per tree.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// (constant, directory under the repository root, file extensions to take)
const TREES: &[(&str, &str, &[&str])] = &[
    ("WIT", "wit", &["wit"]),
    ("PYTHON_SDK", "guest-sdk/python/apiary_sdk", &["py"]),
    ("JS_SDK", "guest-sdk/js", &["mjs", "json"]),
    ("RUST_TEMPLATE", "guest-sdk/template", &["toml", "rs"]),
    ("PYTHON_TEMPLATE", "guest-sdk/python/template", &["toml", "py"]),
    ("JS_TEMPLATE", "guest-sdk/js/template", &["toml", "js", "json"]),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let mut out = String::new();
    for (constant, dir, extensions) in TREES {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files = Vec::new();
        collect(&dir, &dir, extensions, &mut files);
        files.sort();
        writeln!(out, "pub(crate) const {constant}: &[(&str, &str)] = &[").unwrap();
        for (relative, path) in files {
            writeln!(
                out,
                "    ({relative:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("embedded.rs"), out).unwrap();
}

/// Every file under `dir` with one of `extensions`, skipping installed and generated trees.
fn collect(base: &Path, dir: &Path, extensions: &[&str], files: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !["node_modules", "__pycache__", "template", "test", "tests", "target"].contains(&name.as_str()) {
                collect(base, &path, extensions, files);
            }
        } else if path.extension().is_some_and(|e| extensions.iter().any(|x| e == *x)) && name != "package-lock.json" {
            let relative = path.strip_prefix(base).unwrap().to_string_lossy().replace('\\', "/");
            files.push((relative, path));
        }
    }
}
