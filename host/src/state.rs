//! The plugin's `state` interface: checkpoint values behind a small storage trait, scoped by
//! tenant and plugin, so a run can resume where an earlier one stopped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::state as wit;
use crate::output::RecordSink;
use crate::tenant::TenantId;

/// Largest value one key may hold: a checkpoint is a cursor or a timestamp, not a data set.
pub const MAX_STATE_VALUE_BYTES: usize = 1024 * 1024;
/// Most keys one scope (a tenant's plugin) may hold.
pub const MAX_STATE_KEYS: usize = 256;
/// Most bytes of keys and values one scope may hold, together.
pub const MAX_STATE_SCOPE_BYTES: usize = 4 * 1024 * 1024;

/// What one scope may hold; a store refuses a `put` that would take the scope past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateQuota {
    /// Most keys.
    pub keys: usize,
    /// Most bytes of keys and values together.
    pub bytes: usize,
}

impl Default for StateQuota {
    fn default() -> Self {
        Self {
            keys: MAX_STATE_KEYS,
            bytes: MAX_STATE_SCOPE_BYTES,
        }
    }
}

impl StateQuota {
    /// Checks that `values` with `key` set to `value` stays within the quota.
    ///
    /// # Errors
    /// [`StateError::QuotaExceeded`] naming the limit.
    pub fn check<'a>(
        &self,
        values: impl Iterator<Item = (&'a str, &'a str)>,
        key: &str,
        value: &str,
    ) -> Result<(), StateError> {
        // The value being replaced does not count: only what the scope would hold after.
        let (mut keys, mut bytes) = (0usize, 0usize);
        for (k, v) in values.filter(|(k, _)| *k != key) {
            keys += 1;
            bytes += k.len() + v.len();
        }
        if keys + 1 > self.keys {
            return Err(StateError::QuotaExceeded {
                what: "keys".into(),
                limit: self.keys as u64,
            });
        }
        if bytes + key.len() + value.len() > self.bytes {
            return Err(StateError::QuotaExceeded {
                what: "bytes".into(),
                limit: self.bytes as u64,
            });
        }
        Ok(())
    }
}

/// Whose state: tenants and plugins never read each other's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StateScope {
    /// The tenant.
    pub tenant: TenantId,
    /// The plugin's name.
    pub plugin: String,
}

/// Why state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The store failed.
    #[error("state store: {0}")]
    Storage(String),
    /// The write would take the scope past its quota.
    #[error("the plugin's state would hold more than {limit} {what}")]
    QuotaExceeded {
        /// `keys` or `bytes`.
        what: String,
        /// The quota.
        limit: u64,
    },
}

/// Where checkpoint values live. Implementations must be safe to share between runs.
///
/// ```
/// use apiary_host::{MemoryStateStore, StateQuota, StateScope, StateStore, TenantId};
///
/// let store = MemoryStateStore::default();
/// let scope = StateScope { tenant: TenantId::default(), plugin: "github".into() };
/// store.put(&scope, "cursor", "abc", StateQuota::default()).unwrap();
/// assert_eq!(store.get(&scope, "cursor").unwrap().as_deref(), Some("abc"));
/// ```
pub trait StateStore: Send + Sync + fmt::Debug + 'static {
    /// The value under `key` in `scope`, if any.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    fn get(&self, scope: &StateScope, key: &str) -> Result<Option<String>, StateError>;

    /// Stores `value` under `key` in `scope`, durably before returning, unless the scope would
    /// then exceed `quota` (checked atomically with the write).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be written or the quota would be exceeded.
    fn put(&self, scope: &StateScope, key: &str, value: &str, quota: StateQuota) -> Result<(), StateError>;
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

    fn put(&self, scope: &StateScope, key: &str, value: &str, quota: StateQuota) -> Result<(), StateError> {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        let in_scope = values
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|((_, k), v)| (k.as_str(), v.as_str()));
        quota.check(in_scope, key, value)?;
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
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| StateError::Storage(format!("{} is corrupt: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
            Err(e) => Err(StateError::Storage(format!("failed to read {}: {e}", path.display()))),
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

    fn put(&self, scope: &StateScope, key: &str, value: &str, quota: StateQuota) -> Result<(), StateError> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.path(scope);
        let mut values = Self::read(&path)?;
        quota.check(values.iter().map(|(k, v)| (k.as_str(), v.as_str())), key, value)?;
        values.insert(key.to_string(), value.to_string());
        let dir = path.parent().expect("state paths have a parent");
        let fail = |e: std::io::Error| StateError::Storage(format!("failed to write {}: {e}", path.display()));
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

/// One run's view of state; `None` for `describe()`, which has no state.
#[derive(Debug)]
pub(crate) struct StateCtx {
    pub(crate) store: Option<Arc<dyn StateStore>>,
    pub(crate) scope: StateScope,
    /// The run's records, flushed before a checkpoint is stored: a checkpoint never gets ahead
    /// of the records it stands for.
    pub(crate) records: Arc<dyn RecordSink>,
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
        let Some(store) = self.store.clone() else {
            return Ok(Err(no_state()));
        };
        let scope = self.scope.clone();
        // A store may do file I/O: off the async threads.
        let result = tokio::task::spawn_blocking(move || store.get(&scope, &key)).await?;
        Ok(result.map_err(to_wit_error))
    }

    async fn put(&mut self, key: String, value: String) -> wasmtime::Result<Result<(), wit::Error>> {
        if key.len() + value.len() > MAX_STATE_VALUE_BYTES {
            return Ok(Err(wit::Error::TooLarge(MAX_STATE_VALUE_BYTES as u64)));
        }
        let Some(store) = self.store.clone() else {
            return Ok(Err(no_state()));
        };
        let scope = self.scope.clone();
        let records = self.records.clone();
        let result = tokio::task::spawn_blocking(move || {
            records.flush().map_err(|e| {
                StateError::Storage(format!("the records before this checkpoint could not be written: {e}"))
            })?;
            store.put(&scope, &key, &value, StateQuota::default())
        })
        .await?;
        Ok(result.map_err(to_wit_error))
    }
}

fn no_state() -> wit::Error {
    wit::Error::Storage("describe() has no state".into())
}

fn to_wit_error(error: StateError) -> wit::Error {
    match error {
        StateError::QuotaExceeded { limit, .. } => wit::Error::TooLarge(limit),
        StateError::Storage(message) => wit::Error::Storage(message),
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
        FileStateStore::new(dir.path())
            .put(&a, "cursor", "p3", StateQuota::default())
            .unwrap();
        let reopened = FileStateStore::new(dir.path());
        assert_eq!(reopened.get(&a, "cursor").unwrap().as_deref(), Some("p3"));
        assert_eq!(reopened.get(&scope("acme", "github"), "cursor").unwrap(), None);
        assert_eq!(reopened.get(&scope("default", "stripe"), "cursor").unwrap(), None);
        reopened.put(&a, "cursor", "p4", StateQuota::default()).unwrap();
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

    /// Regression: 600 state keys of 1 MiB each were all accepted (615 MiB in memory).
    #[test]
    fn both_stores_hold_a_scope_to_its_quota() {
        let dir = tempfile::tempdir().unwrap();
        let file = FileStateStore::new(dir.path());
        let memory = MemoryStateStore::default();
        let quota = StateQuota { keys: 3, bytes: 100 };
        for store in [&file as &dyn StateStore, &memory] {
            let a = scope("default", "crm");
            for key in ["a", "b", "c"] {
                store.put(&a, key, "v", quota).unwrap();
            }
            store.put(&a, "a", "replaced", quota).unwrap();
            let err = store.put(&a, "d", "v", quota).unwrap_err();
            assert_eq!(err.to_string(), "the plugin's state would hold more than 3 keys");
            let err = store.put(&a, "a", &"x".repeat(100), quota).unwrap_err();
            assert_eq!(err.to_string(), "the plugin's state would hold more than 100 bytes");
            // Another scope has its own quota.
            store.put(&scope("default", "other"), "d", "v", quota).unwrap();
        }
    }
}
