//! The plugin's `state` interface: checkpoint values behind a small storage trait, scoped by
//! tenant and plugin, so a run can resume where an earlier one stopped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::state as wit;
use crate::tenant::TenantId;

/// Largest value one key may hold: a checkpoint is a cursor or a timestamp, not a data set.
pub const MAX_STATE_VALUE_BYTES: usize = 1024 * 1024;

/// Whose state: tenants and plugins never read each other's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateScope {
    /// The tenant.
    pub tenant: TenantId,
    /// The plugin's name.
    pub plugin: String,
}

/// A state store failed.
#[derive(Debug, thiserror::Error)]
#[error("state store: {0}")]
pub struct StateError(pub String);

/// Where checkpoint values live. Implementations must be safe to share between runs.
///
/// ```
/// use apiary_host::{MemoryStateStore, StateScope, StateStore, TenantId};
///
/// let store = MemoryStateStore::default();
/// let scope = StateScope { tenant: TenantId::default(), plugin: "github".into() };
/// store.put(&scope, "cursor", "abc").unwrap();
/// assert_eq!(store.get(&scope, "cursor").unwrap().as_deref(), Some("abc"));
/// ```
pub trait StateStore: Send + Sync + fmt::Debug + 'static {
    /// The value under `key` in `scope`, if any.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<String>, StateError>;

    /// Stores `value` under `key` in `scope`, durably before returning.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written.
    fn put(&self, scope: &StateScope, key: &str, value: &str) -> Result<(), StateError>;
}

/// State kept in memory, lost when the process ends; for tests and one-off runs.
#[derive(Debug, Default)]
pub struct MemoryStateStore {
    values: Mutex<HashMap<(StateScope, String), String>>,
}

impl StateStore for MemoryStateStore {
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<String>, StateError> {
        let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        Ok(values.get(&(scope.clone(), key.to_string())).cloned())
    }

    fn put(&self, scope: &StateScope, key: &str, value: &str) -> Result<(), StateError> {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.insert((scope.clone(), key.to_string()), value.to_string());
        Ok(())
    }
}

/// State in JSON files, one per tenant and plugin (`<dir>/<tenant>/<plugin>.json`), replaced
/// atomically on every write so a crash never leaves a half-written checkpoint.
#[derive(Debug)]
pub struct FileStateStore {
    dir: PathBuf,
    // Serialises read-modify-write cycles within the process.
    lock: Mutex<()>,
}

impl FileStateStore {
    /// A store rooted at `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            lock: Mutex::new(()),
        }
    }

    fn path(&self, scope: &StateScope) -> PathBuf {
        self.dir
            .join(file_safe(scope.tenant.as_str()))
            .join(format!("{}.json", file_safe(&scope.plugin)))
    }

    fn read(path: &Path) -> Result<BTreeMap<String, String>, StateError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                serde_json::from_str(&text).map_err(|e| StateError(format!("{} is corrupt: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StateError(format!("failed to read {}: {e}", path.display()))),
        }
    }
}

/// A name made safe as one path component: ASCII letters, digits, `-` and `_` kept, anything
/// else hex-escaped, so two different names never share a file.
fn file_safe(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
            _ => format!("_{b:02x}"),
        })
        .collect()
}

impl StateStore for FileStateStore {
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<String>, StateError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Self::read(&self.path(scope))?.remove(key))
    }

    fn put(&self, scope: &StateScope, key: &str, value: &str) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path(scope);
        let mut values = Self::read(&path)?;
        values.insert(key.to_string(), value.to_string());
        let dir = path.parent().expect("state paths have a parent");
        let fail = |e: std::io::Error| StateError(format!("failed to write {}: {e}", path.display()));
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        file.write_all(
            serde_json::to_string_pretty(&values)
                .expect("a string map serialises")
                .as_bytes(),
        )
        .map_err(fail)?;
        file.as_file().sync_all().map_err(fail)?;
        file.persist(&path).map_err(|e| fail(e.error))?;
        Ok(())
    }
}

/// One run's view of state.
#[derive(Debug)]
pub(crate) struct StateCtx {
    pub(crate) store: Arc<dyn StateStore>,
    pub(crate) scope: StateScope,
}

/// Links the `state` interface, reading each run's [`StateCtx`] through `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut StateCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<StateCtx>>(linker, get)
}

impl wit::Host for StateCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, wit::Error>> {
        Ok(self
            .store
            .get(&self.scope, &key)
            .map_err(|e| wit::Error::Storage(e.to_string())))
    }

    async fn put(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), wit::Error>> {
        if key.len() + value.len() > MAX_STATE_VALUE_BYTES {
            return Ok(Err(wit::Error::TooLarge(MAX_STATE_VALUE_BYTES as u64)));
        }
        Ok(self
            .store
            .put(&self.scope, &key, &value)
            .map_err(|e| wit::Error::Storage(e.to_string())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(tenant: &str, plugin: &str) -> StateScope {
        StateScope {
            tenant: TenantId::new(tenant),
            plugin: plugin.into(),
        }
    }

    #[test]
    fn file_store_persists_across_instances_and_scopes_apart() {
        let dir = tempfile::tempdir().unwrap();
        let a = scope("default", "github");
        FileStateStore::new(dir.path()).put(&a, "cursor", "p3").unwrap();
        let reopened = FileStateStore::new(dir.path());
        assert_eq!(reopened.get(&a, "cursor").unwrap().as_deref(), Some("p3"));
        assert_eq!(reopened.get(&scope("acme", "github"), "cursor").unwrap(), None);
        assert_eq!(reopened.get(&scope("default", "stripe"), "cursor").unwrap(), None);
        reopened.put(&a, "cursor", "p4").unwrap();
        assert_eq!(reopened.get(&a, "cursor").unwrap().as_deref(), Some("p4"));
    }

    #[test]
    fn hostile_names_stay_inside_the_directory() {
        assert_eq!(file_safe("../etc"), "_2e_2e_2fetc");
        assert_ne!(file_safe("a/b"), file_safe("a_b"));
    }

    #[test]
    fn a_corrupt_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStateStore::new(dir.path());
        let s = scope("default", "p");
        std::fs::create_dir_all(dir.path().join("default")).unwrap();
        std::fs::write(dir.path().join("default/p.json"), "{not json").unwrap();
        let err = store.get(&s, "k").unwrap_err().to_string();
        assert!(err.contains("p.json is corrupt"), "{err}");
    }
}
