//! Writing plugins: `apiary new` writes a skeleton in Rust, Python or JavaScript, and
//! `apiary build` builds a plugin of any of the three into the component its manifest names.
//!
//! The WIT contract, the Python and JavaScript SDKs and the skeletons are embedded in the
//! binary (see `build.rs`) and written out for each build, so the `apiary` binary alone can
//! build plugins. Python and JavaScript plugins are built with pinned componentize tools,
//! installed on first use (see [`Tool`]).
//!
//! ```no_run
//! use std::path::Path;
//! use apiary_host::authoring::{self, BuildOptions, Language};
//!
//! # fn main() -> Result<(), authoring::BuildError> {
//! authoring::new_plugin(Path::new("my-api"), "my-api", Language::Python)?;
//! let built = authoring::build(Path::new("my-api"), &BuildOptions::default())?;
//! println!("built {}", built.component.display());
//! # Ok(()) }
//! ```

mod toolchain;

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::str::FromStr;

pub use toolchain::{COMPONENTIZE_JS_VERSION, COMPONENTIZE_PY_VERSION, Tool, default_tools_dir};

use crate::manifest::{MANIFEST_FILE, Manifest};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}

/// The WIT world plugins implement.
pub const WORLD: &str = "plugin";
/// The Python module a Python plugin's code is in (`app.py`).
pub const PYTHON_MODULE: &str = "app";
/// The file a JavaScript plugin's code is in.
pub const JS_ENTRY: &str = "plugin.js";

/// A language plugins are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    /// Rust, with the `apiary-sdk` crate, built by cargo for `wasm32-wasip2`.
    Rust,
    /// Python, with the `apiary_sdk` package, built by componentize-py.
    Python,
    /// JavaScript (ESM), with `apiary-sdk.mjs`, built by componentize-js.
    JavaScript,
}

impl Language {
    /// The language of the plugin in `dir`, from the file its code starts in: `Cargo.toml`,
    /// `app.py` or `plugin.js`.
    ///
    /// # Errors
    /// [`BuildError::UnknownLanguage`] when none of them is there.
    pub fn detect(dir: &Path) -> Result<Self, BuildError> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Language::Rust)
        } else if dir.join(format!("{PYTHON_MODULE}.py")).is_file() {
            Ok(Language::Python)
        } else if dir.join(JS_ENTRY).is_file() {
            Ok(Language::JavaScript)
        } else {
            Err(BuildError::UnknownLanguage { dir: dir.to_path_buf() })
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Rust => "rust",
            Language::Python => "python",
            Language::JavaScript => "js",
        })
    }
}

impl FromStr for Language {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Language::Rust),
            "python" | "py" => Ok(Language::Python),
            "js" | "javascript" => Ok(Language::JavaScript),
            other => Err(format!("`{other}` is not a plugin language: use rust, python or js")),
        }
    }
}

/// Why `apiary new` or `apiary build` failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The directory holds no plugin code the builder knows.
    #[error("{}: no Cargo.toml, {PYTHON_MODULE}.py or {JS_ENTRY}: which language is this plugin in?", dir.display())]
    UnknownLanguage {
        /// The plugin directory.
        dir: PathBuf,
    },
    /// The plugin's manifest could not be read.
    #[error(transparent)]
    Manifest(#[from] crate::toml_file::ConfigError),
    /// A program the build needs is not installed.
    #[error("{tool} was not found: {hint}")]
    MissingTool {
        /// The program.
        tool: &'static str,
        /// How to install it.
        hint: &'static str,
    },
    /// Installing a pinned tool failed.
    #[error(
        "installing the build tool failed at `{step}` (the first build needs PyPI or npm; later ones reuse the cache):\n{output}"
    )]
    Install {
        /// The step that failed.
        step: &'static str,
        /// The end of its output.
        output: String,
    },
    /// The compiler rejected the plugin.
    #[error("building the {language} plugin in {} failed:\n{output}", dir.display())]
    Failed {
        /// The plugin's language.
        language: Language,
        /// The plugin directory.
        dir: PathBuf,
        /// The end of the compiler's output.
        output: String,
    },
    /// `apiary new` would overwrite files.
    #[error("{} already exists: apiary new writes a new directory", dir.display())]
    Exists {
        /// The directory.
        dir: PathBuf,
    },
    /// The plugin name is not usable as a package name.
    #[error("`{0}` is not a plugin name: use lower-case letters, digits and `-`, starting with a letter (at most 64)")]
    InvalidName(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

impl BuildError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        BuildError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Where pinned tools are installed and cached.
    pub tools_dir: PathBuf,
    /// Cargo's target directory for Rust plugins (default: cargo's own choice).
    pub cargo_target_dir: Option<PathBuf>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            tools_dir: default_tools_dir(),
            cargo_target_dir: None,
        }
    }
}

/// A built plugin.
#[derive(Debug, Clone)]
pub struct Built {
    /// The plugin's language.
    pub language: Language,
    /// The component, where the manifest's `component` says it is.
    pub component: PathBuf,
}

/// Builds the plugin in `dir` into the component its `plugin.toml` names.
///
/// # Errors
/// See [`BuildError`]; the compiler's own output is in [`BuildError::Failed`].
pub fn build(dir: &Path, options: &BuildOptions) -> Result<Built, BuildError> {
    let loaded = Manifest::load(&dir.join(MANIFEST_FILE))?;
    let component = loaded.component_path();
    let language = Language::detect(dir)?;
    let work = tempfile::tempdir().map_err(|e| BuildError::io(&std::env::temp_dir(), e))?;
    let wit = work.path().join("wit");
    write_tree(&wit, embedded::WIT, &[])?;
    let mut command = match language {
        Language::Rust => {
            let mut command = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            command
                .args([
                    "build",
                    "--release",
                    "--target",
                    "wasm32-wasip2",
                    "--message-format=json-render-diagnostics",
                ])
                .arg("--manifest-path")
                .arg(dir.join("Cargo.toml"));
            // Host-only flags (coverage, clippy wrappers) must not reach the guest build.
            for var in [
                "RUSTFLAGS",
                "CARGO_ENCODED_RUSTFLAGS",
                "RUSTC_WORKSPACE_WRAPPER",
                "RUSTC_WRAPPER",
                "CARGO_BUILD_TARGET",
            ] {
                command.env_remove(var);
            }
            if let Some(target) = &options.cargo_target_dir {
                command.env("CARGO_TARGET_DIR", target);
            }
            command
        }
        Language::Python => {
            let tool = Tool::ComponentizePy.ensure(&options.tools_dir)?;
            let sdk = work.path().join("python");
            write_tree(&sdk.join("apiary_sdk"), embedded::PYTHON_SDK, &[])?;
            // Through the environment's interpreter: the script's `#!` line names the staging
            // directory the tool was installed in before it was moved into place.
            let mut command = Command::new(tool.join("bin").join("python"));
            command
                .arg(tool.join("bin").join("componentize-py"))
                .arg("-d")
                .arg(&wit)
                .args(["-w", WORLD, "componentize", "-p"])
                .arg(dir)
                .arg("-p")
                .arg(&sdk)
                .arg(PYTHON_MODULE)
                .arg("-o")
                .arg(&component);
            command
        }
        Language::JavaScript => {
            let tool = Tool::ComponentizeJs.ensure(&options.tools_dir)?;
            let sdk = work.path().join("js");
            write_tree(&sdk, embedded::JS_SDK, &[])?;
            toolchain::find_program(&["node"]).ok_or(BuildError::MissingTool {
                tool: "node",
                hint: "JavaScript plugins are built with componentize-js, which needs Node.js 18 or later",
            })?;
            let mut command = Command::new("node");
            command
                .arg(sdk.join("build.mjs"))
                .arg("--wit")
                .arg(&wit)
                .args(["--world", WORLD, "--out"])
                .arg(&component)
                // `fetch()` works in every JavaScript plugin: its requests take the same
                // pipeline as the SDK's (see `http::wasi`).
                .arg("--stock-http")
                .arg(dir.join(JS_ENTRY))
                .env("APIARY_COMPONENTIZE_JS", tool.join("node_modules"));
            command
        }
    };
    let output = command.output().map_err(|e| BuildError::Failed {
        language,
        dir: dir.to_path_buf(),
        output: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(BuildError::Failed {
            language,
            dir: dir.to_path_buf(),
            output: tail(&output),
        });
    }
    if language == Language::Rust {
        let artifact = rust_artifact(&output.stdout).ok_or_else(|| BuildError::Failed {
            language,
            dir: dir.to_path_buf(),
            output: "cargo built no .wasm file: is the crate a `cdylib`?".into(),
        })?;
        std::fs::copy(&artifact, &component).map_err(|e| BuildError::io(&component, e))?;
    }
    Ok(Built { language, component })
}

/// The `.wasm` file in cargo's JSON messages.
fn rust_artifact(messages: &[u8]) -> Option<PathBuf> {
    String::from_utf8_lossy(messages)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .flat_map(|message| {
            message["filenames"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|f| f.as_str().map(PathBuf::from))
        })
        .rfind(|path| path.extension().is_some_and(|e| e == "wasm"))
}

/// Writes a skeleton plugin named `name` in `language` into the new directory `dir`.
///
/// # Errors
/// [`BuildError::Exists`] when `dir` exists, [`BuildError::InvalidName`] for a bad name.
pub fn new_plugin(dir: &Path, name: &str, language: Language) -> Result<Vec<PathBuf>, BuildError> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(BuildError::InvalidName(name.to_string()));
    }
    if dir.exists() {
        return Err(BuildError::Exists { dir: dir.to_path_buf() });
    }
    let sdk_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../guest-sdk");
    let sdk_path = std::fs::canonicalize(sdk_path).unwrap_or_else(|_| PathBuf::from(sdk_path));
    let tree = match language {
        Language::Rust => embedded::RUST_TEMPLATE,
        Language::Python => embedded::PYTHON_TEMPLATE,
        Language::JavaScript => embedded::JS_TEMPLATE,
    };
    let sdk_path = sdk_path.display().to_string();
    write_tree(dir, tree, &[("{{name}}", name), ("{{sdk_path}}", &sdk_path)])
}

/// Writes `files` under `dir`, replacing each placeholder with its value.
fn write_tree(dir: &Path, files: &[(&str, &str)], replace: &[(&str, &str)]) -> Result<Vec<PathBuf>, BuildError> {
    let mut written = Vec::new();
    for (relative, contents) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BuildError::io(parent, e))?;
        }
        let contents = replace
            .iter()
            .fold(contents.to_string(), |text, (from, to)| text.replace(from, to));
        std::fs::write(&path, contents).map_err(|e| BuildError::io(&path, e))?;
        written.push(path);
    }
    Ok(written)
}

/// The last lines of a command's stderr and stdout, for an error message.
pub(crate) fn tail(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    let lines: Vec<&str> = text.lines().filter(|l| !l.starts_with("{\"reason\"")).collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_trees_hold_the_contract_sdks_and_skeletons() {
        let names = |tree: &[(&str, &str)]| tree.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
        assert!(names(embedded::WIT).contains(&"world.wit".to_string()));
        assert!(names(embedded::PYTHON_SDK).contains(&"__init__.py".to_string()));
        assert!(names(embedded::RUST_TEMPLATE).contains(&"src/lib.rs".to_string()));
        for tree in [
            embedded::RUST_TEMPLATE,
            embedded::PYTHON_TEMPLATE,
            embedded::JS_TEMPLATE,
        ] {
            assert!(names(tree).contains(&"plugin.toml".to_string()), "{:?}", names(tree));
        }
    }

    #[test]
    fn the_language_is_named_and_detected() {
        assert_eq!("py".parse::<Language>(), Ok(Language::Python));
        assert_eq!("JavaScript".parse::<Language>(), Ok(Language::JavaScript));
        assert!("go".parse::<Language>().unwrap_err().contains("rust, python or js"));
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            Language::detect(dir.path()),
            Err(BuildError::UnknownLanguage { .. })
        ));
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        assert_eq!(Language::detect(dir.path()).unwrap(), Language::Python);
    }

    #[test]
    fn new_refuses_a_bad_name_and_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["My Api", "1api", "", "api/../x"] {
            assert!(matches!(
                new_plugin(&dir.path().join("x"), name, Language::Rust),
                Err(BuildError::InvalidName(_))
            ));
        }
        assert!(matches!(
            new_plugin(dir.path(), "api", Language::Rust),
            Err(BuildError::Exists { .. })
        ));
    }

    #[test]
    fn a_rust_skeleton_names_the_plugin_and_the_sdk() {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join("my-api");
        new_plugin(&plugin, "my-api", Language::Rust).unwrap();
        let cargo = std::fs::read_to_string(plugin.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"my-api\""), "{cargo}");
        assert!(!cargo.contains("{{"), "{cargo}");
        let manifest = Manifest::load(&plugin.join(MANIFEST_FILE)).unwrap();
        assert_eq!(manifest.manifest.name, "my-api");
    }
}
