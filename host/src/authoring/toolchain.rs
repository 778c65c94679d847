//! The pinned componentize tools for Python and JavaScript plugins, installed on first use into
//! a cache and reused after, so a second build needs no network.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::BuildError;

/// The componentize-py release Python plugins are built with.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";
/// The componentize-js release JavaScript plugins are built with.
pub const COMPONENTIZE_JS_VERSION: &str = "0.23.0";

/// Where tools are cached: `$APIARY_TOOLS_DIR`, else `<user cache>/apiary/tools`.
pub fn default_tools_dir() -> PathBuf {
    std::env::var_os("APIARY_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::cache_dir().map(|d| d.join("apiary").join("tools")))
        .unwrap_or_else(|| std::env::temp_dir().join("apiary-tools"))
}

/// A pinned tool, installed in its own directory under the tools dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// componentize-py, in a Python virtual environment.
    ComponentizePy,
    /// componentize-js, in an npm prefix.
    ComponentizeJs,
}

impl Tool {
    fn dir_name(self) -> String {
        match self {
            Tool::ComponentizePy => format!("componentize-py-{COMPONENTIZE_PY_VERSION}"),
            Tool::ComponentizeJs => format!("componentize-js-{COMPONENTIZE_JS_VERSION}"),
        }
    }

    /// The file whose presence means the install finished.
    fn marker(self, dir: &Path) -> PathBuf {
        match self {
            Tool::ComponentizePy => dir.join("bin").join("componentize-py"),
            Tool::ComponentizeJs => dir.join("node_modules/@bytecodealliance/componentize-js/package.json"),
        }
    }

    /// The tool's directory, installing it first when it is not cached.
    ///
    /// # Errors
    /// [`BuildError::MissingTool`] when Python or Node is not installed, and
    /// [`BuildError::Install`] when the install fails (offline on first use, for example).
    pub fn ensure(self, tools_dir: &Path) -> Result<PathBuf, BuildError> {
        let dir = tools_dir.join(self.dir_name());
        if self.marker(&dir).exists() {
            return Ok(dir);
        }
        std::fs::create_dir_all(tools_dir).map_err(|e| BuildError::io(tools_dir, e))?;
        // Installed beside its final place and renamed, so a concurrent or interrupted install
        // never leaves a half-installed tool that looks finished.
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{}-", self.dir_name()))
            .tempdir_in(tools_dir)
            .map_err(|e| BuildError::io(tools_dir, e))?;
        eprintln!("apiary: installing {} into {} (once)", self.dir_name(), dir.display());
        match self {
            Tool::ComponentizePy => {
                let python = find_program(&["python3", "python"]).ok_or(BuildError::MissingTool {
                    tool: "python3",
                    hint: "Python plugins are built with componentize-py, which needs Python 3.10 or later \
                           (Debian: apt install python3 python3-venv)",
                })?;
                run(
                    Command::new(python).args(["-m", "venv"]).arg(staging.path()),
                    "python3 -m venv",
                )?;
                let pip = staging.path().join("bin").join("pip");
                run(
                    Command::new(pip)
                        .args(["install", "--quiet", "--disable-pip-version-check"])
                        .arg(format!("componentize-py=={COMPONENTIZE_PY_VERSION}")),
                    "pip install componentize-py",
                )?;
            }
            Tool::ComponentizeJs => {
                let npm = find_program(&["npm"]).ok_or(BuildError::MissingTool {
                    tool: "node",
                    hint: "JavaScript plugins are built with componentize-js, which needs Node.js 18 or later \
                           and npm (Debian: apt install nodejs npm)",
                })?;
                run(
                    Command::new(npm)
                        .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
                        .arg(staging.path())
                        .arg(format!("@bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION}")),
                    "npm install componentize-js",
                )?;
            }
        }
        let staged = staging.keep();
        if let Err(error) = std::fs::rename(&staged, &dir) {
            // Another build installed it first: keep theirs.
            let _ = std::fs::remove_dir_all(&staged);
            if !self.marker(&dir).exists() {
                return Err(BuildError::io(&dir, error));
            }
        }
        Ok(dir)
    }
}

/// The first of `names` that runs (`--version` exits 0).
pub(crate) fn find_program(names: &[&'static str]) -> Option<&'static str> {
    names.iter().copied().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Runs `command`, turning a failure into [`BuildError::Install`] with its output.
fn run(command: &mut Command, what: &'static str) -> Result<(), BuildError> {
    let output = command.output().map_err(|e| BuildError::Install {
        step: what,
        output: e.to_string(),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(BuildError::Install {
            step: what,
            output: super::tail(&output),
        })
    }
}
