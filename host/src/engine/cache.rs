//! The compiled-artifact cache: compiled components on disk, keyed by the component's hash and
//! the engine's configuration, so a plugin is compiled once per host build, not once per start.
//!
//! Each entry `<key>.cwasm` has a digest beside it (`<key>.sha256`), checked before the bytes
//! are handed to wasmtime: a truncated or corrupted entry is recompiled, never loaded. (The
//! digest guards against accidents; whoever can write the cache directory can write both.)

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

fn digest_path(path: &Path) -> PathBuf {
    path.with_extension("sha256")
}

fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let bytes = std::fs::read(path)?;
    let expected = std::fs::read_to_string(digest_path(path))?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if expected.trim() != actual {
        wasmtime::bail!("its digest is {actual}, the cache recorded {}", expected.trim());
    }
    deserialize_checked(engine, &bytes)
}

#[allow(unsafe_code)]
fn deserialize_checked(engine: &Engine, bytes: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: the bytes are an entry this host wrote into its own cache directory, named by the
    // hash of the source component and of the engine configuration, replaced only atomically,
    // and matching the digest written with it; wasmtime additionally checks that they were
    // produced by a compatible engine.
    unsafe { Component::deserialize(engine, bytes) }
}

fn store(component: &Component, dir: &Path, path: &Path) -> wasmtime::Result<()> {
    let bytes = component.serialize()?;
    std::fs::create_dir_all(dir)?;
    // The digest first: an entry without its digest is never loaded, so a crash between the
    // two writes leaves a miss, not a bad load.
    write_atomically(dir, &digest_path(path), hex::encode(Sha256::digest(&bytes)).as_bytes())?;
    write_atomically(dir, path, &bytes)
}

fn write_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> wasmtime::Result<()> {
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(bytes)?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A corrupted entry whose bytes wasmtime might still accept is caught by its digest.
    #[test]
    fn an_entry_that_does_not_match_its_digest_is_recompiled() {
        let engine = Engine::default();
        let dir = tempfile::tempdir().unwrap();
        let wasm = wat::parse_str("(component)").unwrap();
        load_or_compile(&engine, Some(dir.path()), &wasm).unwrap();
        let entry = dir.path().join(format!("{}.cwasm", cache_key(&engine, &wasm)));
        assert!(deserialize(&engine, &entry).is_ok());
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&entry, &bytes).unwrap();
        let err = deserialize(&engine, &entry).unwrap_err().to_string();
        assert!(err.starts_with("its digest is"), "{err}");
        // Loading goes on: the entry is recompiled and rewritten.
        load_or_compile(&engine, Some(dir.path()), &wasm).unwrap();
        assert!(deserialize(&engine, &entry).is_ok());
    }
}
