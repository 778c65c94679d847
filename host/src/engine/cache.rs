//! The compiled-artifact cache: compiled components on disk, keyed by the component's hash and
//! the engine's configuration, so a plugin is compiled once per host build, not once per start.

use std::hash::Hasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The default cache directory: `$XDG_CACHE_HOME/apiary/compiled` or the platform equivalent.
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("apiary").join("compiled"))
}

/// Feeds a `Hash` value's bytes into SHA-256, so the key is stable across processes (unlike
/// `DefaultHasher`'s output, which is only promised stable within one build).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        unreachable!("only the digest is read")
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// The cache key of `component` compiled by `engine`: both the bytes and everything in the
/// engine's configuration that affects compiled code.
pub fn cache_key(engine: &Engine, component: &[u8]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(&Sha256::digest(component));
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(hasher.0.finalize())
}

/// Loads `component` from the cache in `dir`, or compiles it and stores the result.
/// Cache failures are logged and never fatal: the cache only saves time.
///
/// # Errors
/// The compiler's error when the bytes are not a valid component.
pub fn load_or_compile(engine: &Engine, dir: Option<&Path>, component: &[u8]) -> wasmtime::Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, component);
    };
    let path = dir.join(format!("{}.cwasm", cache_key(engine, component)));
    if path.exists() {
        match deserialize(engine, &path) {
            Ok(component) => {
                tracing::debug!(target: "apiary::engine", path = %path.display(), "loaded compiled component from cache");
                return Ok(component);
            }
            Err(error) => {
                tracing::warn!(target: "apiary::engine", path = %path.display(), %error, "ignoring unusable cache entry")
            }
        }
    }
    let compiled = Component::new(engine, component)?;
    if let Err(error) = store(&compiled, dir, &path) {
        tracing::warn!(target: "apiary::engine", path = %path.display(), %error, "could not write the compile cache");
    }
    Ok(compiled)
}

#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file is one this host wrote into its own cache directory, named by the hash
    // of the source component and of the engine configuration, and replaced only atomically;
    // wasmtime additionally checks that it was produced by a compatible engine.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store(component: &Component, dir: &Path, path: &Path) -> wasmtime::Result<()> {
    let bytes = component.serialize()?;
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(&bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}
