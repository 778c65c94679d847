//! Generated bindings for the `apiary:plugin` world, quarantined here. Host functions are
//! async (they await the egress pipeline) and trappable (a host bug or a broken limit traps
//! the guest instead of returning a value it must handle).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async | trappable },
    exports: { default: async },
    with: { "apiary:plugin/http.batch": crate::http::StreamingBatch },
});

pub(crate) use apiary::plugin::{config, http, log, output, ratelimit, secrets, state, types};
