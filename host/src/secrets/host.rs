//! The plugin's `secrets` interface: a plugin may ask whether a secret is available, never
//! for its value.

use std::collections::BTreeSet;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use super::SecretStore;
use crate::bindings::secrets as wit;
use crate::tenant::TenantId;

/// One run's view of its secrets: the names its manifest declares, in its tenant's scope.
#[derive(Debug)]
pub(crate) struct SecretsCtx {
    pub(crate) store: Arc<SecretStore>,
    pub(crate) tenant: TenantId,
    pub(crate) declared: BTreeSet<String>,
}

/// Links the `secrets` interface, reading each run's [`SecretsCtx`] through `get`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut SecretsCtx,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, HasSelf<SecretsCtx>>(linker, get)
}

impl wit::Host for SecretsCtx {
    async fn available(&mut self, name: String) -> wasmtime::Result<bool> {
        Ok(self.declared.contains(&name) && self.store.get(&self.tenant, &name).is_some())
    }
}
