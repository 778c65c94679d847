//! Egress by resolved address: a granted host name that resolves to loopback, a private
//! network or a cloud metadata address is refused unless the operator granted that network,
//! and IP literals (however spelled) are judged the same way. Names resolve through a
//! `StaticResolver`, so no test touches real DNS.

use std::net::IpAddr;
use std::sync::Arc;

use apiary_host::{Grant, ManualClock, PooledClient, Runtime, RuntimeConfig, StaticResolver};
use apiary_tests::{TestServer, respond, test_guest_exactly, test_guest_granted, test_runtime_config};
use serde_json::{Value, json};

use super::run;

/// The manifest: the test names and the loopback literals, on any port.
const HOSTS: &str = "[permissions]\nhosts = [\"http://api.test.invalid:*\", \"http://metadata.test.invalid:*\", \
                     \"http://127.0.0.1:*\", \"http://[::ffff:127.0.0.1]:*\"]\n";

/// A runtime whose names resolve from a fixed table: `api.test.invalid` is loopback (where the
/// test server listens) and `metadata.test.invalid` is the cloud metadata address.
fn runtime() -> Runtime {
    let resolver = StaticResolver::default()
        .with("api.test.invalid", [IpAddr::from([127, 0, 0, 1])])
        .with("metadata.test.invalid", [IpAddr::from([169, 254, 169, 254])]);
    let mut config: RuntimeConfig = test_runtime_config();
    config.egress.client = PooledClient::with_resolver(Arc::new(resolver));
    config.egress.clock = Arc::new(ManualClock::new());
    Runtime::new(config).expect("runtime")
}

/// The test guest granted the hosts it asks for and no network.
fn ungranted(runtime: &Runtime) -> apiary_host::Plugin {
    test_guest_exactly(runtime, HOSTS, Grant::local)
}

/// Fetches `url` and returns the one record.
async fn fetch(runtime: &Runtime, plugin: &apiary_host::Plugin, url: &str) -> Value {
    let (result, mut records) = run(runtime, plugin, "fetch", json!({"url": url})).await;
    result.unwrap();
    records.remove(0)
}

/// Asserts `record` is a `denied` value naming `address`, its `kind` and `--allow-net`.
fn assert_refused(record: &Value, address: &str, kind: &str) {
    assert_eq!(record["error"], "denied", "{record}");
    let detail = record["detail"].as_str().unwrap();
    for needle in [address, kind, "--allow-net", "test-guest"] {
        assert!(detail.contains(needle), "{needle} missing: {detail}");
    }
    assert!(
        !detail.contains("not an allowed destination"),
        "the allowlist passed it: {detail}"
    );
}

#[tokio::test]
async fn a_granted_name_resolving_to_loopback_is_refused_without_the_network() {
    let server = TestServer::start(|_, _| respond(200, &[], "reached")).await;
    let runtime = runtime();
    let url = format!("http://api.test.invalid:{}/x", server.addr().port());
    let record = fetch(&runtime, &ungranted(&runtime), &url).await;
    assert_refused(&record, "127.0.0.1", "loopback");
    assert!(
        record["detail"].as_str().unwrap().contains("api.test.invalid"),
        "{record}"
    );
    assert_eq!(server.connections(), 0, "a refused address is never connected to");
}

#[tokio::test]
async fn the_same_name_is_reached_once_loopback_is_granted() {
    let server = TestServer::start(|_, _| respond(200, &[], "reached")).await;
    let runtime = runtime();
    let plugin = test_guest_granted(&runtime, HOSTS, Grant::local);
    let url = format!("http://api.test.invalid:{}/x", server.addr().port());
    let record = fetch(&runtime, &plugin, &url).await;
    assert_eq!(record["body"], "reached", "{record}");
    let host = format!("api.test.invalid:{}", server.addr().port());
    assert_eq!(server.received()[0].headers["host"], host.as_str());
}

#[tokio::test]
async fn the_metadata_address_is_refused_before_any_connection() {
    let runtime = runtime();
    // Granting loopback does not grant link-local.
    let plugin = test_guest_granted(&runtime, HOSTS, Grant::local);
    // A connection to 169.254.169.254 would time out or fail as `connection` here; `denied`
    // can only come from the check before connecting.
    let (result, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": "http://metadata.test.invalid/latest/meta-data/", "timeout_ms": 2000}),
    )
    .await;
    assert_refused(&records[0], "169.254.169.254", "link-local");
    assert!(records[0]["detail"].as_str().unwrap().contains("169.254.0.0/16"));
    let report = result.unwrap();
    assert_eq!(report.retries, 0, "a refused address is never retried");
}

#[tokio::test]
async fn loopback_literals_are_refused_however_spelled() {
    let server = TestServer::start(|_, _| respond(200, &[], "reached")).await;
    let runtime = runtime();
    let plugin = ungranted(&runtime);
    let port = server.addr().port();
    let record = fetch(&runtime, &plugin, &format!("http://127.0.0.1:{port}/")).await;
    assert_refused(&record, "127.0.0.1", "loopback");
    let record = fetch(&runtime, &plugin, &format!("http://[::ffff:127.0.0.1]:{port}/")).await;
    assert_refused(&record, "::ffff:127.0.0.1 (IPv4 127.0.0.1)", "loopback");
    assert_eq!(server.connections(), 0);
}

// Regression: pools were keyed by tenant only, so a plugin refused loopback could reuse a
// connection kept alive by one granted it.
#[tokio::test]
async fn a_plugin_never_reuses_a_connection_opened_under_a_wider_grant() {
    let server = TestServer::start(|_, _| respond(200, &[], "reached")).await;
    let runtime = runtime();
    let url = format!("http://api.test.invalid:{}/x", server.addr().port());
    let granted = test_guest_granted(&runtime, HOSTS, Grant::local);
    assert_eq!(fetch(&runtime, &granted, &url).await["ok"], true);
    let record = fetch(&runtime, &ungranted(&runtime), &url).await;
    assert_refused(&record, "127.0.0.1", "loopback");
    assert_eq!(server.received().len(), 1, "only the granted plugin's request arrived");
}

#[tokio::test]
async fn decimal_hex_and_octal_spellings_of_loopback_are_refused_as_loopback() {
    // `url` reads these as 127.0.0.1 (so the allowlist's `http://127.0.0.1:*` matches) but
    // hyper-util does not, so it hands them to the system resolver, whose `getaddrinfo` reads
    // them as 127.0.0.1 too, locally and without DNS. The check sees the resolved address.
    let server = TestServer::start(|_, _| respond(200, &[], "reached")).await;
    let runtime = Runtime::new(test_runtime_config()).expect("runtime");
    let plugin = test_guest_exactly(&runtime, HOSTS, Grant::local);
    let port = server.addr().port();
    for host in ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"] {
        let record = fetch(&runtime, &plugin, &format!("http://{host}:{port}/")).await;
        assert_refused(&record, "127.0.0.1", "loopback");
    }
    assert_eq!(server.connections(), 0);
    let granted = test_guest_granted(&runtime, HOSTS, Grant::local);
    let record = fetch(&runtime, &granted, &format!("http://2130706433:{port}/")).await;
    assert_eq!(record["body"], "reached", "{record}");
}
