//! Sealed secrets, tried as an attacker would: attached by the host only where declared and
//! bound, never visible to the plugin in any encoding, scrubbed from everything the plugin
//! writes, read from real sources (a `pass` store), rotated mid-run, and audited.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apiary_host::{
    CommandSource, DEFAULT_COMMAND_TIMEOUT, DEFAULT_SECRET_TTL, Grant, RunError, SecretGrant, SourceSpec,
};
use apiary_tests::{PassStore, TestServer, json as json_response, respond, static_secret, test_guest_granted};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::{CapturedLogs, grant, run, runtime_with_clock};

/// A value with characters every encoding treats differently: `/`, `+`, `=`, `&`, `~`.
const SECRET: &str = "tok3n/Val+ue=42&x~y-0123";

/// Echoes the request's headers and path back in the body, as a careless API might.
async fn echo_server() -> TestServer {
    TestServer::start(|request, _| {
        let headers: serde_json::Map<String, Value> = request
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(String::from_utf8_lossy(v.as_bytes()).into()),
                )
            })
            .collect();
        let mut response = json_response(&json!({"headers": headers, "path": request.path}));
        if let Some(auth) = request.headers.get("authorization") {
            response.headers_mut().insert("x-echo-authorization", auth.clone());
        }
        response
    })
    .await
}

/// What the plugin really received (headers, a blank line, the body), undoing the test guest's
/// XOR, which hides it from the host's scrubbing of records.
fn seen_by_plugin(record: &Value) -> String {
    let hex = record["seen_xor"]
        .as_str()
        .unwrap_or_else(|| panic!("no seen_xor: {record}"));
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap() ^ 0x5a)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A manifest asking for `url`'s host and the secret `tok` at `placement` (TOML), bound to loopback.
fn secret_manifest(url: &str, placement: &str) -> String {
    grant(
        url,
        &format!("[permissions.secrets.tok]\nplacement = {placement}\nhosts = [\"http://127.0.0.1:*\"]\n"),
    )
}

/// The test guest asking for `tok` at `placement`, granted `value` for it.
fn guest_with_secret(runtime: &apiary_host::Runtime, url: &str, placement: &str, value: &str) -> apiary_host::Plugin {
    test_guest_granted(runtime, &secret_manifest(url, placement), |m| {
        Grant::local(m).secret("tok", static_secret(value))
    })
}

#[tokio::test]
async fn the_bearer_secret_reaches_the_server_but_never_the_guest() {
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = guest_with_secret(&runtime, &server.url(), "\"bearer\"", SECRET);
    let input = json!({"url": format!("{}/echo", server.url()), "secrets": [{"name": "tok", "placement": "bearer"}]});
    let (result, records) = run(&runtime, &plugin, "fetch", input).await;
    result.unwrap();

    let received = server.received();
    assert_eq!(
        received[0].headers["authorization"],
        format!("Bearer {SECRET}").as_str()
    );
    assert_eq!(
        received[0].headers["accept-encoding"], "identity",
        "a run that holds secrets asks for bodies it can scan"
    );

    let record = &records[0];
    assert_eq!(record["ok"], true, "{record}");
    let seen = seen_by_plugin(record);
    assert!(!seen.contains(SECRET), "the guest saw the secret: {seen}");
    assert!(seen.contains("Bearer [REDACTED]"), "{seen}");
    let body: Value = serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["headers"]["authorization"], "Bearer [REDACTED]");
    let echoed = record["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "x-echo-authorization")
        .unwrap();
    assert_eq!(echoed[1], "Bearer [REDACTED]");
}

#[tokio::test]
async fn every_placement_goes_where_declared_and_is_scrubbed_back() {
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    for (declared, asked) in [
        ("{ query = \"api_key\" }", json!({"query": "api_key"})),
        ("{ basic = \"me\" }", json!({"basic": "me"})),
        ("{ header = \"X-Api-Key\" }", json!({"header": "x-api-key"})),
        (
            "{ header = \"Authorization\", prefix = \"token \" }",
            json!({"header": "Authorization"}),
        ),
    ] {
        let plugin = guest_with_secret(&runtime, &server.url(), declared, SECRET);
        let input = json!({"url": format!("{}/q?a=1", server.url()), "secrets": [{"name": "tok", "placement": asked}]});
        let (result, records) = run(&runtime, &plugin, "fetch", input).await;
        result.unwrap();
        let everything = seen_by_plugin(&records[0]);
        assert_eq!(records[0]["ok"], true, "{declared}: {everything}");
        assert!(everything.contains("[REDACTED]"), "{declared}: {everything}");
        for form in [
            SECRET.to_string(),
            url::form_urlencoded::byte_serialize(SECRET.as_bytes()).collect::<String>(),
        ] {
            assert!(!everything.contains(&form), "{declared} leaked {form}: {everything}");
        }
    }
    let received = server.received();
    assert!(
        received[0].path.ends_with("api_key=tok3n%2FVal%2Bue%3D42%26x%7Ey-0123"),
        "{}",
        received[0].path
    );
    assert_eq!(
        received[1].headers["authorization"],
        format!("Basic {}", STANDARD.encode(format!("me:{SECRET}"))).as_str()
    );
    assert_eq!(received[2].headers["x-api-key"].as_bytes(), SECRET.as_bytes());
    assert_eq!(received[3].headers["authorization"], format!("token {SECRET}").as_str());
}

/// Regression: a plugin attached its secret as an arbitrary header (`x-note`) to a bound API that
/// stores the field, then read it back.
#[tokio::test]
async fn a_plugin_cannot_attach_a_secret_anywhere_but_its_declared_placement() {
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = guest_with_secret(&runtime, &server.url(), "\"bearer\"", SECRET);
    for asked in [
        json!({"header": "x-note"}),
        json!({"query": "note"}),
        json!({"basic": "me"}),
    ] {
        let input = json!({"url": server.url(), "secrets": [{"name": "tok", "placement": asked}]});
        let (_, records) = run(&runtime, &plugin, "fetch", input).await;
        assert_eq!(records[0]["error"], "secret", "{asked}: {}", records[0]);
        assert_eq!(records[0]["detail"]["kind"], "invalid-placement");
        let message = records[0]["detail"]["message"].as_str().unwrap();
        assert!(message.contains("declared for bearer"), "{message}");
    }
    assert!(
        server.received().is_empty(),
        "nothing may be sent when a secret is refused"
    );
}

#[tokio::test]
async fn a_secret_is_sent_only_where_asked_for_and_granted() {
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    // The plugin binds the secret to loopback; the operator narrows it to a port nobody uses.
    let plugin = test_guest_granted(&runtime, &secret_manifest(&server.url(), "\"bearer\""), |m| {
        let mut secret = static_secret(SECRET);
        secret.hosts = Some(vec!["http://127.0.0.1:1".parse().unwrap()]);
        Grant::local(m).secret("tok", secret)
    });
    let input = json!({"url": server.url(), "secrets": [{"name": "tok", "placement": "bearer"}]});
    let (_, records) = run(&runtime, &plugin, "fetch", input).await;
    assert_eq!(records[0]["error"], "secret", "{}", records[0]);
    assert_eq!(records[0]["detail"]["kind"], "not-bound");
    // A secret the manifest does not ask for is unknown.
    let input = json!({"url": server.url(), "secrets": [{"name": "other", "placement": "bearer"}]});
    let (_, records) = run(&runtime, &plugin, "fetch", input).await;
    assert_eq!(records[0]["detail"]["kind"], "unknown");
    assert!(
        server.received().is_empty(),
        "nothing may be sent when a secret is refused"
    );
}

#[tokio::test]
async fn a_required_secret_that_is_not_granted_stops_the_run_before_the_plugin_starts() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest_granted(
        &runtime,
        &secret_manifest("http://127.0.0.1:1", "\"bearer\""),
        Grant::local,
    );
    let (result, records) = run(&runtime, &plugin, "emit-many", json!({"count": 1})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::NotGranted(_)), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("plugin `test-guest` requires the secret `tok`, which is not granted: pass --secret tok="),
        "{err}"
    );
    assert!(records.is_empty(), "the plugin must not have started");
}

#[tokio::test]
async fn an_optional_secret_that_is_not_granted_is_unavailable() {
    let (runtime, _clock) = runtime_with_clock();
    let body = grant(
        "http://127.0.0.1:1",
        "[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\nrequired = false\n",
    );
    let plugin = test_guest_granted(&runtime, &body, Grant::local);
    let (result, records) = run(&runtime, &plugin, "available", json!({"name": "tok"})).await;
    result.unwrap();
    assert_eq!(records, vec![json!({"available": false})]);
    let plugin = test_guest_granted(&runtime, &body, |m| {
        Grant::local(m).secret("tok", static_secret(SECRET))
    });
    let (_, records) = run(&runtime, &plugin, "available", json!({"name": "tok"})).await;
    assert_eq!(records, vec![json!({"available": true})]);
}

/// Regression: a 1–3 byte secret turned every occurrence into `[REDACTED]`, corrupting JSON.
#[tokio::test]
async fn a_secret_shorter_than_eight_bytes_is_refused_before_the_run() {
    let (runtime, _clock) = runtime_with_clock();
    let plugin = guest_with_secret(&runtime, "http://127.0.0.1:1", "\"bearer\"", "abc");
    let (result, records) = run(&runtime, &plugin, "noop", json!({})).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RunError::SecretUnavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("secret `tok`") && text.contains("shorter than the minimum of 8 bytes"),
        "{text}"
    );
    assert!(!text.contains("abc"), "the error shows the value: {text}");
    assert!(records.is_empty());
}

/// Every encoding a bound API might hand a stored value back in.
fn encodings(value: &str) -> Vec<(&'static str, String)> {
    let pct_lower: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    let html: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("&#x{b:x};")
            }
        })
        .collect();
    let hex: String = value.bytes().map(|b| format!("{b:02x}")).collect();
    let half = value.len() / 2;
    vec![
        ("raw", value.to_string()),
        ("base64", STANDARD.encode(value)),
        ("base64_unpadded", STANDARD_NO_PAD.encode(value)),
        ("base64url", URL_SAFE_NO_PAD.encode(value)),
        ("base64_embedded", STANDARD.encode(format!("{{\"token\":\"{value}\"}}"))),
        ("hex", hex.clone()),
        ("HEX", hex.to_uppercase()),
        ("percent_lower", pct_lower),
        ("html", html),
        ("split_a", value[..half].to_string()),
        ("split_b", value[half..].to_string()),
    ]
}

/// The reverse of [`encodings`], as the plugin would decode a field.
fn decode(encoding: &str, text: &str) -> Vec<u8> {
    let hex = |t: &str| {
        (0..t.len() / 2)
            .filter_map(|i| u8::from_str_radix(t.get(2 * i..2 * i + 2)?, 16).ok())
            .collect::<Vec<u8>>()
    };
    match encoding {
        "base64" | "base64_embedded" => STANDARD.decode(text).unwrap_or_default(),
        "base64_unpadded" => STANDARD_NO_PAD.decode(text).unwrap_or_default(),
        "base64url" => URL_SAFE_NO_PAD.decode(text).unwrap_or_default(),
        "hex" | "HEX" => hex(text),
        "percent_lower" => percent_encoding::percent_decode_str(text).collect(),
        "html" => {
            let mut out = String::new();
            let mut rest = text;
            while let Some(at) = rest.find("&#x") {
                out.push_str(&rest[..at]);
                let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
                if let Ok(b) = u8::from_str_radix(&rest[at + 3..end], 16) {
                    out.push(b as char);
                }
                rest = &rest[(end + 1).min(rest.len())..];
            }
            out.push_str(rest);
            out.into_bytes()
        }
        _ => text.as_bytes().to_vec(),
    }
}

/// The body a storing API returns: every stored value in every encoding, hand-written JSON with
/// `\/` and `\u002b` escapes, gzip-compressed when `gzip`.
fn readback_body(stored: &str, gzip: bool) -> (Vec<(&'static str, &'static str)>, Vec<u8>) {
    let mut fields: Vec<String> = encodings(stored)
        .into_iter()
        .map(|(name, value)| format!("\"{name}\":{}", serde_json::to_string(&value).unwrap()))
        .collect();
    let json_escaped = stored.replace('/', "\\/").replace('+', "\\u002b");
    fields.push(format!("\"json_escaped\":\"{json_escaped}\""));
    let body = format!("{{{}}}", fields.join(","));
    if !gzip {
        return (vec![("content-type", "application/json")], body.into_bytes());
    }
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(body.as_bytes()).unwrap();
    (
        vec![("content-type", "application/json"), ("content-encoding", "gzip")],
        encoder.finish().unwrap(),
    )
}

/// Stores the `authorization` of requests to `/store`, and hands it back on `/readback` (with no
/// secret attached) in every encoding, compressed when the path says `gzip`, whatever the
/// request's `accept-encoding`.
async fn storing_server() -> TestServer {
    let stored: Arc<Mutex<String>> = Arc::default();
    TestServer::start(move |request, _| {
        if request.path.starts_with("/store") {
            let auth = request
                .headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string());
            *stored.lock().unwrap() = auth.unwrap_or_default().trim_start_matches("Bearer ").to_string();
            return respond(204, &[], "");
        }
        let (headers, body) = readback_body(&stored.lock().unwrap(), request.path.contains("gzip"));
        respond(200, &headers, body)
    })
    .await
}

/// Regression: a bound host that re-encoded the value (base64 without padding or base64url,
/// hex, lowercase `%2f`, JSON escaping, HTML entities, gzip, a value split across fields) got it
/// past the redactor, in a later request that carried no secret.
#[tokio::test]
async fn no_encoding_of_a_stored_secret_reaches_the_plugin() {
    let server = storing_server().await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = guest_with_secret(&runtime, &server.url(), "\"bearer\"", SECRET);
    for path in ["/readback", "/readback?gzip"] {
        let store = json!({"url": format!("{}/store", server.url()), "method": "PUT", "secrets": [{"name": "tok", "placement": "bearer"}]});
        let (result, records) = run(&runtime, &plugin, "fetch", store).await;
        result.unwrap();
        assert_eq!(records[0]["status"], 204, "{}", records[0]);
        // The plugin asks for gzip itself, meaning to decompress the body on its own.
        let readback = json!({"url": format!("{}{path}", server.url()), "headers": [["accept-encoding", "gzip"]]});
        let (result, records) = run(&runtime, &plugin, "fetch", readback).await;
        result.unwrap();
        let record = &records[0];
        assert_eq!(record["ok"], true, "{record}");
        // The body parses: the host decoded the gzip, and scrubbing kept the JSON valid.
        let seen = seen_by_plugin(record);
        let (_, body) = seen.split_once("\n\n").unwrap();
        let body: Value = serde_json::from_str(body)
            .unwrap_or_else(|e| panic!("{path}: the plugin got an unreadable body ({e}): {seen}"));
        let body = body.as_object().unwrap();
        assert_eq!(body.len(), 12, "{path}: every encoding came back: {body:?}");
        for (encoding, value) in body {
            let text = value.as_str().unwrap();
            let decoded = String::from_utf8_lossy(&decode(encoding, text)).into_owned();
            assert!(
                !decoded.contains(SECRET) && !text.contains(SECRET),
                "{path}: {encoding} leaked the secret: {text}"
            );
            assert!(
                text.contains("[REDACTED]"),
                "{path}: {encoding} was not scrubbed: {text}"
            );
        }
        let headers = record["headers"].to_string();
        assert!(
            !headers.contains("content-encoding"),
            "{path}: the host decoded the body: {headers}"
        );
    }
}

/// Regression: the plugin's own log calls, records, failure messages and stderr were not scrubbed.
#[tokio::test]
async fn what_the_plugin_writes_is_scrubbed_everywhere() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let (runtime, _clock) = runtime_with_clock();
    let plugin = guest_with_secret(&runtime, "http://127.0.0.1:1", "\"bearer\"", SECRET);
    // As if the plugin had learned the value some other way and tried every way out.
    let leaked = format!("k={SECRET} b64={}", STANDARD.encode(SECRET));

    let (result, records) = run(&runtime, &plugin, "leak", json!({"text": leaked, "fail": "failed"})).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("failed: k=[REDACTED]") && !err.contains(SECRET), "{err}");
    assert_eq!(records.len(), 1);
    assert!(!records[0].to_string().contains(SECRET), "{}", records[0]);
    assert!(records[0]["text"].as_str().unwrap().starts_with("k=[REDACTED] b64="));

    let (result, _) = run(&runtime, &plugin, "leak", json!({"text": leaked, "fail": "panic"})).await;
    let err = result.unwrap_err().to_string();
    assert!(err.contains("guest stderr: k=[REDACTED]"), "{err}");
    assert!(
        !err.contains(SECRET) && !err.contains(&STANDARD.encode(SECRET)),
        "{err}"
    );

    let text = logs.text();
    assert!(
        !text.contains(SECRET) && !text.contains(&STANDARD.encode(SECRET)),
        "{text}"
    );
    let guest_lines: Vec<Value> = logs
        .events()
        .into_iter()
        .filter(|e| e["target"] == "apiary::guest")
        .collect();
    assert_eq!(guest_lines.len(), 2, "{text}");
    assert!(
        guest_lines[0]["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("k=[REDACTED]")
    );
    assert!(
        guest_lines[0]["fields"]["fields"]
            .as_str()
            .unwrap()
            .contains("[REDACTED]")
    );
}

/// Guest text is data: a plugin cannot forge a log line or send terminal escapes.
#[tokio::test]
async fn a_plugin_cannot_forge_log_lines_or_send_escape_sequences() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest_granted(&runtime, "", Grant::local);
    let forged = "done\n2026-11-28T00:00:00Z  INFO apiary: all clear\x1b[2J\x1b]0;pwned\x07";
    let (result, _) = run(&runtime, &plugin, "leak", json!({"text": forged, "fail": "failed"})).await;
    let err = result.unwrap_err().to_string();
    assert!(
        !err.contains('\n') && !err.contains('\x1b') && !err.contains('\x07'),
        "{err:?}"
    );
    assert!(
        err.contains("done\\n2026-11-28T00:00:00Z  INFO apiary: all clear\\u{1b}[2J"),
        "{err}"
    );
    let (result, _) = run(&runtime, &plugin, "leak", json!({"text": forged, "fail": "panic"})).await;
    let err = result.unwrap_err().to_string();
    assert!(!err.contains('\n') && !err.contains('\x1b'), "{err:?}");
    let message = logs
        .events()
        .into_iter()
        .find(|e| e["target"] == "apiary::guest")
        .unwrap()["fields"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!message.contains('\n') && !message.contains('\x1b'), "{message:?}");
    assert!(message.starts_with("done\\n2026"), "{message}");
}

#[tokio::test]
async fn every_use_of_a_secret_is_one_audit_event_without_the_value() {
    let logs = CapturedLogs::default();
    let _guard = logs.install(tracing::Level::INFO);
    let server = echo_server().await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = guest_with_secret(&runtime, &server.url(), "\"bearer\"", SECRET);
    for asked in [json!("bearer"), json!({"header": "x-note"})] {
        let input = json!({"url": format!("{}/a?x=1", server.url()), "secrets": [{"name": "tok", "placement": asked}]});
        run(&runtime, &plugin, "fetch", input).await.0.unwrap();
    }
    let text = logs.text();
    assert!(!text.contains(SECRET), "{text}");
    let audit: Vec<Value> = logs
        .events()
        .into_iter()
        .filter(|e| e["target"] == "apiary::audit")
        .map(|e| e["fields"].clone())
        .collect();
    assert_eq!(audit.len(), 2, "{text}");
    let destination = format!("http://{}", server.addr());
    assert_eq!(audit[0]["tenant"], "default");
    assert_eq!(audit[0]["plugin"], "test-guest");
    assert_eq!(audit[0]["secret"], "tok");
    assert_eq!(audit[0]["destination"], destination);
    assert_eq!(audit[0]["placement"], "bearer");
    assert_eq!(audit[0]["outcome"], "attached");
    assert_eq!(audit[1]["outcome"], "refused-placement");
    assert_eq!(
        audit[1]["placement"], "bearer",
        "the declared placement is what is audited"
    );
}

/// Regression: a `query` placement appended a second parameter when a `Link` URL already carried one.
#[tokio::test]
async fn a_query_placement_replaces_the_parameter_a_link_url_carries() {
    let server = TestServer::start(|request, i| {
        let mut response = json_response(&json!([{"page": i}]));
        if i == 0 {
            // The API echoes the key into its next link, as some do.
            let next = format!(
                "<{}?page=2&api_key=stale>; rel=\"next\"",
                request.path.split('?').next().unwrap()
            );
            response.headers_mut().insert("link", next.parse().unwrap());
        }
        response
    })
    .await;
    let (runtime, _clock) = runtime_with_clock();
    let plugin = guest_with_secret(&runtime, &server.url(), "{ query = \"api_key\" }", SECRET);
    let input = json!({"url": format!("{}/items", server.url()), "secrets": [{"name": "tok", "placement": {"query": "api_key"}}]});
    let (result, records) = run(&runtime, &plugin, "paginate", input).await;
    result.unwrap();
    assert_eq!(records.len(), 2);
    let second = &server.received()[1].path;
    let keys: Vec<String> = url::form_urlencoded::parse(second.split_once('?').unwrap().1.as_bytes())
        .filter(|(k, _)| k == "api_key")
        .map(|(_, v)| v.into_owned())
        .collect();
    assert_eq!(keys, vec![SECRET.to_string()], "{second}");
}

/// A grant of `tok` from `pass show apiary/tok` in `store`, re-read after the default TTL.
fn pass_grant(store: &PassStore) -> SecretGrant {
    let SourceSpec::Command(argv) = "cmd:pass show apiary/tok".parse().unwrap() else {
        unreachable!()
    };
    let source = store.env().into_iter().fold(
        CommandSource::new(argv, DEFAULT_COMMAND_TIMEOUT),
        |source, (key, value)| source.env(key, value),
    );
    SecretGrant::new(source)
}

/// The command source against a real secret manager: `pass`, with a throwaway GnuPG key. The
/// entry is changed mid-run; once the TTL is past, the next request carries the new value, and
/// both values stay scrubbed.
#[tokio::test]
async fn a_key_rotated_in_pass_mid_run_reaches_the_next_request() {
    const FIRST: &str = "ghp_first_value_0123456789";
    const SECOND: &str = "ghp_second_value_9876543210";
    let Some(store) = PassStore::create() else { return };
    store.insert("apiary/tok", FIRST);
    let store = Arc::new(store);
    let (runtime, clock) = runtime_with_clock();
    let rotate = (store.clone(), clock.clone());
    let server = TestServer::start(move |request, i| {
        let auth = request.headers["authorization"].to_str().unwrap().to_string();
        let mut response = json_response(&json!([{"page": i, "auth": auth}]));
        if i == 0 {
            // Rotate between the first page and the second, and let the cached value expire.
            rotate.0.insert("apiary/tok", SECOND);
            rotate.1.advance(DEFAULT_SECRET_TTL + Duration::from_secs(1));
            response
                .headers_mut()
                .insert("link", "</items?page=2>; rel=\"next\"".parse().unwrap());
        }
        response
    })
    .await;
    let plugin = test_guest_granted(&runtime, &secret_manifest(&server.url(), "\"bearer\""), |m| {
        Grant::local(m).secret("tok", pass_grant(&store))
    });
    let input = json!({"url": format!("{}/items", server.url()), "secrets": [{"name": "tok", "placement": "bearer"}]});
    let (result, records) = run(&runtime, &plugin, "paginate", input).await;
    result.unwrap();
    let sent: Vec<String> = server
        .received()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(sent, vec![format!("Bearer {FIRST}"), format!("Bearer {SECOND}")]);
    // Both values stay scrubbed: the records are the pages' items as the plugin parsed them.
    assert_eq!(records[0]["auth"], "Bearer [REDACTED]");
    assert_eq!(records[1]["auth"], "Bearer [REDACTED]");
}

#[tokio::test]
async fn a_failing_credential_helper_is_one_clear_error_without_a_value() {
    let Some(store) = PassStore::create() else { return };
    let (runtime, _clock) = runtime_with_clock();
    let plugin = test_guest_granted(&runtime, &secret_manifest("http://127.0.0.1:1", "\"bearer\""), |m| {
        Grant::local(m).secret("tok", pass_grant(&store))
    });
    let (result, _) = run(&runtime, &plugin, "noop", json!({})).await;
    let err = result.unwrap_err().to_string();
    assert!(
        err.starts_with("secret `tok` from cmd:pass show apiary/tok: command exited with status 1: ")
            && err.contains("is not in the password store"),
        "{err}"
    );
}
