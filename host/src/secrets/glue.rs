//! The plugin's `secrets` interface: a plugin may ask whether a secret is available, never
//! for its value.

use std::collections::BTreeSet;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::secrets as wit;

/// One run's view of its secrets: the names granted whose source gave a value at the start.
#[derive(Debug, Default)]
pub(crate) struct SecretsCtx {
    pub(crate) available: BTreeSet<String>,
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
        Ok(self.available.contains(&name))
    }
}
