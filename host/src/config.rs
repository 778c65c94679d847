//! The plugin's `config` interface: the manifest's `[config]` defaults overridden by the run's
//! values.

use std::collections::BTreeMap;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::config as wit;

/// One run's configuration values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConfigCtx {
    values: BTreeMap<String, String>,
}

impl ConfigCtx {
    /// `defaults` (from the manifest) with `overrides` (from the run) applied on top.
    pub fn new(defaults: &BTreeMap<String, String>, overrides: &BTreeMap<String, String>) -> Self {
        let mut values = defaults.clone();
        values.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self { values }
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Links the `config` interface, reading each run's [`ConfigCtx`] through `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut ConfigCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<ConfigCtx>>(linker, get)
}

impl wit::Host for ConfigCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.values.get(&key).cloned())
    }

    async fn get_all(&mut self) -> wasmtime::Result<Vec<(String, String)>> {
        Ok(self.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_values_override_manifest_defaults() {
        let defaults = BTreeMap::from([("a".to_string(), "1".to_string()), ("b".to_string(), "2".to_string())]);
        let overrides = BTreeMap::from([("b".to_string(), "3".to_string())]);
        let ctx = ConfigCtx::new(&defaults, &overrides);
        assert_eq!(ctx.get("a"), Some("1"));
        assert_eq!(ctx.get("b"), Some("3"));
        assert_eq!(ctx.get("c"), None);
    }
}
