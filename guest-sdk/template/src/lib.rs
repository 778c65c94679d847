//! The `{{name}}` plugin: lists an API's items across all pages (Link-header pagination).

use apiary_sdk::paginate::LinkPages;
use apiary_sdk::serde_json::Value;
use apiary_sdk::{OperationInfo, Plugin, PluginInfo, RunError, RunSummary, config, http, output, secrets};

struct Api;

impl Plugin for Api {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            operations: vec![OperationInfo {
                name: "list".into(),
                summary: "List every item, across all pages".into(),
            }],
        }
    }

    fn run(operation: &str, _input: Value) -> Result<RunSummary, RunError> {
        if operation != "list" {
            return Err(RunError::UnknownOperation(operation.into()));
        }
        let base = config::get("base_url").unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let mut first = http::get(format!("{}/items", base.trim_end_matches('/')));
        if secrets::available("api_token") {
            first = first.bearer("api_token");
        }
        let mut pages = LinkPages::new(first);
        for page in pages.by_ref() {
            for item in page?.json::<Vec<Value>>().map_err(apiary_sdk::json_failed)? {
                output::emit(&item)?;
            }
        }
        Ok(RunSummary {
            pages: pages.pages(),
            message: None,
        })
    }
}

apiary_sdk::export!(Api);
