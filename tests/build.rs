//! Builds the plugins and test guests for `wasm32-wasip2` and writes their component paths as
//! constants (`$OUT_DIR/components.rs`) for the integration tests and benchmarks.
//!
//! The nested cargo uses a target directory of its own: sharing the outer build's would wait
//! forever on its lock.

use std::path::PathBuf;
use std::process::Command;

/// (package, wasm file stem, constant name)
const GUESTS: &[(&str, &str, &str)] = &[
    ("apiary-plugin-github", "apiary_plugin_github", "GITHUB_PLUGIN"),
    ("apiary-test-guest", "apiary_test_guest", "TEST_GUEST"),
    ("apiary-stock-guest", "apiary_stock_guest", "STOCK_GUEST"),
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    for dir in [
        "wit",
        "guest-sdk",
        "plugins",
        "tests/guest",
        "tests/stock-guest",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target_dir = out_dir.join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    for (package, _, _) in GUESTS {
        command.args(["-p", package]);
    }
    // Flags and wrappers meant for the host build (coverage, clippy) must not leak into the guests.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        command.env_remove(var);
    }
    let status = command.status().expect("running cargo for the wasm guests");
    assert!(
        status.success(),
        "building the wasm guests failed; is the target installed? (rustup target add wasm32-wasip2)"
    );
    let mut constants = String::new();
    for (package, stem, constant) in GUESTS {
        let path = target_dir.join("wasm32-wasip2/release").join(format!("{stem}.wasm"));
        assert!(path.exists(), "{package} did not produce {}", path.display());
        constants.push_str(&format!(
            "/// The `{package}` component.\npub const {constant}: &str = {:?};\n",
            path.display().to_string()
        ));
    }
    std::fs::write(out_dir.join("components.rs"), constants).unwrap();
}
