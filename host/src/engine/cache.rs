//! The compiled-artifact cache: compiled components on disk, keyed by the component's hash and
//! the engine's configuration, so a plugin is compiled once per host build, not once per start.
//!
//! An entry `<key>.cwasm` is written to a temporary file and renamed into place, so a crash
//! never leaves a partial entry, and it is mapped, not read, when loaded: a 35 MB interpreter
//! entry loads in milliseconds. wasmtime checks its header (format, version, engine settings)
//! and refuses one that does not fit, which is then recompiled. Nothing here stops someone who
//! can write the cache directory: it must be the host's own, like its binary.

use std::hash::Hasher;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use crate::manifest::ComponentBytes;

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

/// The cache key of a component whose SHA-256 is `component_sha256`, compiled by `engine`:
/// the bytes and everything in the engine's configuration that affects compiled code.
pub fn cache_key(engine: &Engine, component_sha256: &[u8; 32]) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    hasher.write(component_sha256);
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(hasher.0.finalize())
}

/// Loads `component` from the cache in `dir`, or compiles it and stores the result.
/// Cache failures are logged and never fatal: the cache only saves time.
///
/// # Errors
/// The compiler's error when the bytes are not a valid component.
pub fn load_or_compile(engine: &Engine, dir: Option<&Path>, component: &ComponentBytes) -> wasmtime::Result<Component> {
    let Some(dir) = dir else {
        return Component::new(engine, &component.bytes);
    };
    let path = dir.join(format!("{}.cwasm", cache_key(engine, &component.sha256)));
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
    let compiled = Component::new(engine, &component.bytes)?;
    if let Err(error) = store(&compiled, dir, &path) {
        tracing::warn!(target: "apiary::engine", path = %path.display(), %error, "could not write the compile cache");
    }
    Ok(compiled)
}

/// Maps a cache entry. Safety rests on the entry being one this host wrote (see the module docs).
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn component(wat: &str) -> ComponentBytes {
        let bytes = wat::parse_str(wat).unwrap();
        let sha256 = Sha256::digest(&bytes).into();
        ComponentBytes { bytes, sha256 }
    }

    /// An entry wasmtime refuses (cut short, or written by another engine) is recompiled and
    /// rewritten, and loading goes on.
    #[test]
    fn an_unusable_entry_is_recompiled() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = component("(component)");
        load_or_compile(&engine, Some(dir.path()), &wasm).unwrap();
        let entry = dir.path().join(format!("{}.cwasm", cache_key(&engine, &wasm.sha256)));
        assert!(deserialize(&engine, &entry).is_ok());
        let bytes = std::fs::read(&entry).unwrap();
        std::fs::write(&entry, &bytes[..bytes.len() / 2]).unwrap();
        assert!(deserialize(&engine, &entry).is_err());
        load_or_compile(&engine, Some(dir.path()), &wasm).unwrap();
        assert!(deserialize(&engine, &entry).is_ok());
    }

    #[test]
    fn the_key_changes_with_the_component_and_the_engine() {
        let engine = Engine::default();
        let a = component("(component)");
        let b = component("(component (core module))");
        assert_ne!(cache_key(&engine, &a.sha256), cache_key(&engine, &b.sha256));
        let mut config = wasmtime::Config::new();
        config.cranelift_opt_level(wasmtime::OptLevel::None);
        let other = Engine::new(&config).unwrap();
        assert_ne!(cache_key(&engine, &a.sha256), cache_key(&other, &a.sha256));
    }
}
