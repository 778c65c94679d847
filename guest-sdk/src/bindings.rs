//! Raw bindings generated from `wit/` by `wit_bindgen::generate!`; prefer the capability modules.
//!
//! The error types are mapped (through `with`) onto the SDK's own enums of the same shape, because
//! the generated ones print their `Debug` form as their `Display`.

// Generated code does raw ABI work and documents only what the WIT documents.
#![allow(unsafe_code, missing_docs, unused_qualifications, missing_debug_implementations)]

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    with: {
        "apiary:plugin/http@0.2.0/error": crate::http::Error,
        "apiary:plugin/http@0.2.0/retries-exhausted": crate::http::RetriesExhausted,
        "apiary:plugin/secrets@0.2.0/error": crate::secrets::Error,
        "apiary:plugin/state@0.2.0/error": crate::state::Error,
        "apiary:plugin/output@0.2.0/error": crate::output::Error,
        "apiary:plugin/types@0.2.0/run-error": crate::RunError,
    },
    pub_export_macro: true,
    export_macro_name: "export_component",
    default_bindings_module: "apiary_sdk::bindings",
});
