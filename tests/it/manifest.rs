//! Manifests on disk: malformed files give errors naming the file, line and field; components
//! are checked against their declared hash.

use std::path::Path;

use apiary_host::{Grant, Manifest, Runtime};
use apiary_tests::{components, test_runtime_config};

fn load(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.toml");
    std::fs::write(&path, text).unwrap();
    let err = Manifest::load(dir.path()).unwrap_err().to_string();
    err.replace(&path.display().to_string(), "plugin.toml")
}

const HEAD: &str = "name = \"p\"\nversion = \"1.0.0\"\ncomponent = \"p.wasm\"\n";

#[test]
fn malformed_manifests_name_the_file_line_and_field() {
    assert_eq!(
        load(&format!("{HEAD}[limits]\ndeadline = \"soon\"\n")),
        "plugin.toml:5:12: limits.deadline: invalid duration `soon` (expected number at 0); write it like \"30s\", \"5m\" or \"1h\""
    );
    assert_eq!(
        load(&format!("{HEAD}colour = \"blue\"\n")),
        "plugin.toml:4:1: colour: unknown field `colour`, expected one of `name`, `version`, `description`, `component`, `sha256`, `permissions`, `config`, `limits`, `retry`, `ratelimit`, `circuit_breaker`"
    );
    assert_eq!(
        load(&format!(
            "{HEAD}[permissions]\nhosts = [\"https://ok.example\", \"gopher://old\"]\n"
        )),
        "plugin.toml:5:9: permissions.hosts[1]: invalid host pattern `gopher://old`: the scheme must be http or https"
    );
    assert_eq!(
        load(&format!(
            "{HEAD}[[ratelimit]]\nbucket = \"x\"\nrate = -1\nper = \"1s\"\n"
        )),
        "plugin.toml:6:8: ratelimit[0].rate: invalid value: integer `-1`, expected a nonzero u32"
    );
    assert!(
        load("name = \"p\"\nversion = \n").starts_with("plugin.toml:2:"),
        "syntax errors have a line too"
    );
}

#[test]
fn a_missing_manifest_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = Manifest::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("failed to read {}", dir.path().join("plugin.toml").display())),
        "{err}"
    );
}

/// The error of loading the plugin whose manifest is in `dir`.
fn load_component_error(dir: &Path) -> String {
    let runtime = Runtime::new(test_runtime_config()).unwrap();
    let manifest = Manifest::load(dir).unwrap();
    let grant = Grant::local(&manifest.manifest);
    runtime.load(manifest, grant).unwrap_err().to_string()
}

#[test]
fn a_component_with_the_wrong_hash_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"t\"\nversion = \"1\"\ncomponent = {:?}\nsha256 = \"{}\"\n",
        components::TEST_GUEST,
        "0".repeat(64)
    );
    std::fs::write(dir.path().join("plugin.toml"), text).unwrap();
    let err = load_component_error(dir.path());
    assert!(
        err.contains("sha256:") && err.contains(&format!("expected {}", "0".repeat(64))),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_component_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm").unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        "name = \"t\"\nversion = \"1\"\ncomponent = \"junk.wasm\"\n",
    )
    .unwrap();
    let err = load_component_error(dir.path());
    assert!(
        err.starts_with(&format!(
            "failed to load component {}",
            dir.path().join("junk.wasm").display()
        )),
        "{err}"
    );
}
