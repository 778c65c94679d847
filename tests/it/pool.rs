//! The pooled client at the bottom of the pipeline: kept-alive connections, one pool per
//! tenant, and the response size cap.

use std::sync::Arc;

use apiary_host::{MemorySink, RunRequest, TenantId};
use apiary_tests::{TestServer, respond, test_guest};
use serde_json::json;

use super::{grant, run, runtime_with_clock};

/// Three pages, each linking to the next.
async fn paged_server() -> TestServer {
    TestServer::start(|request, _| {
        let page: u32 = request
            .path
            .rsplit('=')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let body = json!([page]).to_string();
        if page < 3 {
            let link = format!("</p?page={}>; rel=\"next\"", page + 1);
            respond(200, &[("link", link.as_str())], body)
        } else {
            respond(200, &[], body)
        }
    })
    .await
}

#[tokio::test]
async fn sequential_requests_reuse_one_kept_alive_connection_per_tenant() {
    let server = paged_server().await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let input = json!({"url": format!("{}/p?page=1", server.url())});

    let (result, records) = run(&runtime, &plugin, "paginate", input.clone()).await;
    assert_eq!(result.unwrap().pages, 3);
    assert_eq!(records, vec![json!(1), json!(2), json!(3)]);
    assert_eq!(server.connections(), 1, "three pages over one pooled connection");

    // Another run of the same tenant reuses the pool.
    run(&runtime, &plugin, "paginate", input.clone()).await.0.unwrap();
    assert_eq!(server.connections(), 1);

    // Another tenant never shares a connection with the first.
    let request = RunRequest::new("paginate", Arc::new(MemorySink::default()))
        .input(input.to_string())
        .tenant(TenantId::new("acme"));
    runtime.run(&plugin, request).await.unwrap();
    assert_eq!(server.connections(), 2);
    assert_eq!(server.received().len(), 9);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_body_too_large_value() {
    let server = TestServer::start(|_, _| respond(200, &[], vec![b'x'; 4096])).await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), "[limits]\nmax_response_bytes = 1024\n"));
    let (result, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    result.unwrap();
    assert_eq!(records[0]["error"], "body-too-large", "{}", records[0]);
    assert_eq!(records[0]["detail"], 1024);

    let plugin = test_guest(&runtime, &grant(&server.url(), "[limits]\nmax_response_bytes = 4096\n"));
    let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(
        records[0]["body"].as_str().unwrap().len(),
        4096,
        "a body at the limit is accepted"
    );
}
