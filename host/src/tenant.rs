//! Tenants: every pool, bucket, secret scope and state scope is keyed by one.

use std::fmt;
use std::sync::Arc;

/// The tenant a run belongs to. The CLI uses [`TenantId::DEFAULT_NAME`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(Arc<str>);

impl TenantId {
    /// The name of the tenant used when none is given.
    pub const DEFAULT_NAME: &'static str = "default";

    /// A tenant called `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The tenant's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new(Self::DEFAULT_NAME)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Values kept per tenant and destination host, shared by every run (circuit breakers, retry
/// budgets). Looked up by reference, so a request allocates nothing. Bounded by
/// [`MAX_TRACKED`](crate::ratelimit::MAX_TRACKED) destinations per tenant: a value that holds
/// nothing is not stored, such values make room when the map is full, and when none does, a
/// new destination goes untracked rather than growing the map (a plugin granted a wildcard
/// host cannot grow the host's memory one name at a time).
#[derive(Debug)]
pub(crate) struct PerDestination<V> {
    map: std::sync::Mutex<std::collections::HashMap<TenantId, std::collections::HashMap<String, V>>>,
}

impl<V> Default for PerDestination<V> {
    fn default() -> Self {
        Self {
            map: Default::default(),
        }
    }
}

impl<V: Default> PerDestination<V> {
    /// Calls `f` on `host`'s value for `tenant` (a fresh one when there is none, kept unless
    /// `holds_nothing` says it is still as good as none).
    pub(crate) fn with<R>(
        &self,
        tenant: &TenantId,
        host: &str,
        mut holds_nothing: impl FnMut(&mut V) -> bool,
        f: impl FnOnce(&mut V) -> R,
    ) -> R {
        let bound = crate::ratelimit::MAX_TRACKED;
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(tenant) {
            map.insert(tenant.clone(), Default::default());
        }
        let of_tenant = map.get_mut(tenant).expect("inserted above");
        if let Some(value) = of_tenant.get_mut(host) {
            return f(value);
        }
        let mut fresh = V::default();
        let result = f(&mut fresh);
        if !holds_nothing(&mut fresh) {
            if of_tenant.len() >= bound {
                of_tenant.retain(|_, value| !holds_nothing(value));
            }
            if of_tenant.len() < bound {
                of_tenant.insert(host.to_string(), fresh);
            }
        }
        result
    }

    /// How many destinations `tenant` has values for.
    #[cfg(test)]
    pub(crate) fn len(&self, tenant: &TenantId) -> usize {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(tenant).map_or(0, std::collections::HashMap::len)
    }
}
