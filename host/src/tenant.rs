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
