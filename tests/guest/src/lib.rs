//! A test-only Apiary plugin whose operations exercise the host's limits and pipeline.
//!
//! Each operation is listed, with its input and records, in [`OPERATIONS`]; the integration tests
//! run them against loopback servers. Request outcomes are emitted as records rather than returned
//! as errors, so a test can assert on every case of the WIT `http.error`.

use std::time::Duration;

use apiary_sdk::http::{self, Response};
use apiary_sdk::paginate::LinkPages;
use apiary_sdk::secrets::{self, SecretAttachment};
use apiary_sdk::{OperationInfo, Plugin, PluginInfo, RunError, RunSummary, config, log, output, state};
use serde::Deserialize;
use serde_json::{Value, json};

/// Every operation as (name, summary); `describe` reports them.
const OPERATIONS: &[(&str, &str)] = &[
    ("noop", "Returns at once with no records"),
    ("spin", "Loops forever, for CPU limits (fuel, epochs, deadlines)"),
    ("alloc", "Allocates 1 MiB chunks forever, for the memory limit"),
    (
        "fetch",
        "Sends {url, method?, headers?, body?, secrets?, max_retries?, idempotent?, \
         timeout_ms?, bucket?} and emits {ok: true, status, headers, body, attempts, seen_xor} \
         (seen_xor: the headers and body the plugin received, each byte XOR 0x5a, in hex) or \
         {ok: false, error, detail}",
    ),
    (
        "batch",
        "Sends GET {urls} through send-batch and emits one fetch-shaped record per URL, in order",
    ),
    (
        "stream",
        "Starts GET {urls} as one streaming batch and emits {index, status} or {index, error} as each \
         completes; after the first, sends GET {release} if given",
    ),
    (
        "numbered",
        "Fetches {url}?page=N for N in {first}..={last}, {width} at a time, and emits each page's \
         JSON array items in page order",
    ),
    ("config", "Emits {config: {key: value}} from config get-all"),
    ("state", "Replaces {key}'s state with {value} and emits {old, new}"),
    ("log", "Logs one info line with a field and emits {logged: true}"),
    (
        "emit-many",
        "Emits {count} records {i} for i from 0, one call each or all in one call when {at_once}; \
         or emits each JSON text of {raw} as it is",
    ),
    ("panic", "Panics with \"test-guest panicked on purpose\""),
    (
        "chatty",
        "Writes {bytes} to stderr and to stdout in 64-byte lines, then panics with \
         \"chatty guest: last words\"",
    ),
    (
        "paginate",
        "Follows Link rel=next from {url} (attaching {secrets?} to every page), emits every item \
         of each page's JSON array",
    ),
    (
        "leak",
        "Writes {text} everywhere a plugin can: a log message and field, stderr, a record \
         {text}, then fails with it when {fail} is \"failed\" or panics with it when \"panic\"",
    ),
    ("available", "Emits {available} = secrets::available({name})"),
    (
        "attack",
        "Tries one attack on the host's bounds, {attack} with {count} and {bytes}: headers (one GET \
         to {url} with {count} headers), attachments ({count} copies of secret {name}), \
         batch ({count} GETs to {url} in one send-batch, emitting {ok, bytes} or the error of each), log ({count} log \
         lines of {bytes} bytes with {count} fields), state ({count} keys of {bytes} bytes; emits \
         {stored, error} at the first refusal); emits what happened",
    ),
    (
        "wasi",
        "Probes what plain WASI grants and emits {env, args, filesystem, tcp}; {tcp} is an address to try",
    ),
    (
        "bench-loop",
        "Sends {count} GETs to {url} one after another and emits nothing (or each body as a \
         record, with {emit}); fails on the first error or non-2xx status",
    ),
    (
        "bench-batch",
        "Sends {count} GETs to {url} as streaming batches of {width} requests (the host keeps the \
         manifest's max_concurrency in flight) and emits nothing; fails on the first error or non-2xx status",
    ),
];

/// The size of each `alloc` chunk.
const CHUNK_BYTES: usize = 1024 * 1024;

struct TestGuest;

impl Plugin for TestGuest {
    fn describe() -> PluginInfo {
        // A plugin that tries to act while describing itself: the host grants it nothing here,
        // and the outcome is reported as a pseudo-operation for the tests to read.
        let state = match state::get("describe-probe") {
            Ok(_) => "state: allowed".to_string(),
            Err(error) => format!("state: {error}"),
        };
        let http = match http::get("http://127.0.0.1:9/describe-probe").send() {
            Ok(_) => "http: allowed".to_string(),
            Err(error) => format!("http: {error}"),
        };
        let probe = OperationInfo {
            name: "describe-probe".into(),
            summary: format!("{state}; {http}; secret available: {}", secrets::available("tok")),
        };
        PluginInfo {
            name: "test-guest".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            operations: OPERATIONS
                .iter()
                .map(|&(name, summary)| OperationInfo {
                    name: name.into(),
                    summary: summary.into(),
                })
                .chain([probe])
                .collect(),
        }
    }

    fn run(operation: &str, input: Value) -> Result<RunSummary, RunError> {
        match operation {
            "noop" => Ok(summary(0)),
            "spin" => spin(),
            "alloc" => alloc(),
            "fetch" => fetch(apiary_sdk::parse_input(input)?),
            "batch" => batch(apiary_sdk::parse_input(input)?),
            "stream" => stream(apiary_sdk::parse_input(input)?),
            "numbered" => numbered(apiary_sdk::parse_input(input)?),
            "config" => emit_config(),
            "state" => replace_state(apiary_sdk::parse_input(input)?),
            "log" => log_line(),
            "emit-many" => emit_many(apiary_sdk::parse_input(input)?),
            "panic" => panic!("test-guest panicked on purpose"),
            "chatty" => chatty(apiary_sdk::parse_input(input)?),
            "paginate" => paginate(apiary_sdk::parse_input(input)?),
            "wasi" => probe_wasi(apiary_sdk::parse_input(input)?),
            "leak" => leak(apiary_sdk::parse_input(input)?),
            "available" => available(apiary_sdk::parse_input(input)?),
            "bucket" => bucket(apiary_sdk::parse_input(input)?),
            "attack" => attack(apiary_sdk::parse_input(input)?),
            "bench-loop" => bench_loop(apiary_sdk::parse_input(input)?),
            "bench-batch" => bench_batch(apiary_sdk::parse_input(input)?),
            other => Err(RunError::UnknownOperation(other.into())),
        }
    }
}

apiary_sdk::export!(TestGuest);

fn summary(pages: u32) -> RunSummary {
    RunSummary { pages, message: None }
}

fn spin() -> ! {
    let mut counter: u64 = 0;
    loop {
        // black_box keeps the optimiser from proving the loop pointless and removing it.
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn alloc() -> ! {
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        // Filled with ones, not zeros, so every page is written rather than lazily zeroed.
        chunks.push(vec![1; CHUNK_BYTES]);
        std::hint::black_box(&chunks);
    }
}

/// The input of `fetch`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchInput {
    url: String,
    #[serde(default = "get_method")]
    method: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
    #[serde(default)]
    secrets: Vec<SecretInput>,
    max_retries: Option<u32>,
    idempotent: Option<bool>,
    timeout_ms: Option<u64>,
    bucket: Option<String>,
}

fn get_method() -> String {
    "GET".into()
}

/// A secret attachment: `{"name": "tok", "placement": "bearer" | {"basic": "user"} | ...}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretInput {
    name: String,
    placement: PlacementInput,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum PlacementInput {
    Bearer,
    Basic(String),
    Header(String),
    Query(String),
}

impl SecretInput {
    fn attachment(&self) -> SecretAttachment {
        match &self.placement {
            PlacementInput::Bearer => secrets::bearer(&self.name),
            PlacementInput::Basic(username) => secrets::basic(&self.name, username),
            PlacementInput::Header(header) => secrets::header(&self.name, header),
            PlacementInput::Query(param) => secrets::query(&self.name, param),
        }
    }
}

fn fetch(input: FetchInput) -> Result<RunSummary, RunError> {
    let mut request = http::request(input.method.as_str().into(), input.url);
    for (name, value) in input.headers {
        request = request.header(name, value);
    }
    if let Some(body) = input.body {
        request = request.body(body);
    }
    for secret in &input.secrets {
        request = request.secret(secret.attachment());
    }
    if let Some(max_retries) = input.max_retries {
        request = request.max_retries(max_retries);
    }
    if let Some(idempotent) = input.idempotent {
        request = request.idempotent(idempotent);
    }
    if let Some(timeout_ms) = input.timeout_ms {
        request = request.timeout(Duration::from_millis(timeout_ms));
    }
    if let Some(bucket) = input.bucket {
        request = request.bucket(bucket);
    }
    output::emit(&outcome(request.send()))?;
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchInput {
    urls: Vec<String>,
}

fn batch(input: BatchInput) -> Result<RunSummary, RunError> {
    for result in http::send_all(input.urls.into_iter().map(http::get)) {
        output::emit(&outcome(result))?;
    }
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamInput {
    urls: Vec<String>,
    #[serde(default)]
    release: Option<String>,
}

fn stream(input: StreamInput) -> Result<RunSummary, RunError> {
    let mut release = input.release;
    for (index, result) in http::Batch::start(input.urls.into_iter().map(http::get)) {
        match result {
            Ok(response) => output::emit(&json!({"index": index, "status": response.status()}))?,
            Err(error) => output::emit(&json!({"index": index, "error": error.to_string()}))?,
        }
        if let Some(url) = release.take() {
            http::get(url).send()?;
        }
    }
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberedInput {
    url: String,
    first: u32,
    last: u32,
    width: u32,
}

fn numbered(input: NumberedInput) -> Result<RunSummary, RunError> {
    let pages = apiary_sdk::paginate::NumberedPages::new(input.first..=input.last, |page| {
        http::get(&input.url).query("page", page.to_string())
    })
    .width(input.width);
    let mut count = 0;
    for (_, response) in pages {
        for item in response?.json::<Vec<Value>>().map_err(apiary_sdk::json_failed)? {
            output::emit(&item)?;
        }
        count += 1;
    }
    Ok(summary(count))
}

/// A request's outcome as a record: the response, or the error case (kebab-case) and its payload.
fn outcome(result: Result<Response, http::Error>) -> Value {
    let (case, detail) = match result {
        Ok(response) => {
            // What the plugin really holds, hidden from the host's scrubbing of records the way a
            // hostile plugin would hide it: every byte XOR 0x5a, as hex.
            let headers: String = response.headers().iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
            let xor = |bytes: &[u8]| bytes.iter().map(|b| format!("{:02x}", b ^ 0x5a)).collect::<String>();
            return json!({
                "ok": true,
                "status": response.status(),
                "headers": response.headers(),
                "body": response.text(),
                "attempts": response.attempts(),
                "seen_xor": xor(format!("{headers}\n").as_bytes().iter().chain(response.body()).copied().collect::<Vec<u8>>().as_slice()),
            });
        }
        Err(http::Error::Denied(destination)) => ("denied", json!(destination)),
        Err(http::Error::InvalidRequest(reason)) => ("invalid-request", json!(reason)),
        Err(http::Error::Timeout(ms)) => ("timeout", json!(ms)),
        Err(http::Error::RateLimited(ms)) => ("rate-limited", json!(ms)),
        Err(http::Error::RetriesExhausted(last)) => (
            "retries-exhausted",
            json!({"attempts": last.attempts, "last_status": last.last_status, "message": last.message}),
        ),
        Err(http::Error::BodyTooLarge(limit)) => ("body-too-large", json!(limit)),
        Err(http::Error::Connection(reason)) => ("connection", json!(reason)),
        Err(http::Error::Secret(error)) => {
            let (kind, message) = match error {
                secrets::Error::Unknown(message) => ("unknown", message),
                secrets::Error::NotBound(message) => ("not-bound", message),
                secrets::Error::InvalidPlacement(message) => ("invalid-placement", message),
                secrets::Error::Unavailable(message) => ("unavailable", message),
            };
            ("secret", json!({"kind": kind, "message": message}))
        }
    };
    json!({"ok": false, "error": case, "detail": detail})
}

fn emit_config() -> Result<RunSummary, RunError> {
    let config: serde_json::Map<String, Value> = config::all()
        .into_iter()
        .map(|(key, value)| (key, Value::String(value)))
        .collect();
    output::emit(&json!({ "config": config }))?;
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateInput {
    key: String,
    value: String,
}

fn replace_state(input: StateInput) -> Result<RunSummary, RunError> {
    let old = state::get(&input.key)?;
    state::put(&input.key, &input.value)?;
    output::emit(&json!({"old": old, "new": input.value}))?;
    Ok(summary(0))
}

fn log_line() -> Result<RunSummary, RunError> {
    log::info("test-guest log operation", &[("answer", "42")]);
    output::emit(&json!({"logged": true}))?;
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeakInput {
    text: String,
    #[serde(default)]
    fail: Option<String>,
}

/// What a plugin that learned a secret (or wants to forge log lines) would do with it.
fn leak(input: LeakInput) -> Result<RunSummary, RunError> {
    let text = input.text;
    log::warn(&text, &[("leaked", text.as_str())]);
    eprintln!("{text}");
    output::emit(&json!({ "text": text }))?;
    match input.fail.as_deref() {
        Some("failed") => Err(RunError::Failed(text)),
        Some("panic") => panic!("{text}"),
        _ => Ok(summary(0)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AttackInput {
    attack: String,
    #[serde(default)]
    count: usize,
    #[serde(default)]
    bytes: usize,
    #[serde(default)]
    url: String,
    #[serde(default)]
    name: String,
}

/// One attack on the host's bounds; see `OPERATIONS`.
fn attack(input: AttackInput) -> Result<RunSummary, RunError> {
    let filler = "x".repeat(input.bytes);
    match input.attack.as_str() {
        "headers" => {
            let request = (0..input.count).fold(http::get(&input.url), |r, i| r.header(format!("x-h{i}"), ""));
            output::emit(&outcome(request.send()))?;
        }
        "attachments" => {
            let request = (0..input.count).fold(http::get(&input.url), |r, _| r.bearer(&input.name));
            output::emit(&outcome(request.send()))?;
        }
        "batch" => {
            // Light records: what is measured is what the host holds, not the records' size.
            for result in http::send_all((0..input.count).map(|_| http::get(&input.url))) {
                match result {
                    Ok(response) => output::emit(&json!({"ok": true, "bytes": response.body().len()}))?,
                    Err(error) => output::emit(&outcome(Err(error)))?,
                }
            }
        }
        "log" => {
            let fields: Vec<(String, String)> = (0..input.count).map(|i| (format!("f{i}"), filler.clone())).collect();
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            for _ in 0..input.count {
                log::info(&filler, &fields);
            }
            output::emit(&json!({"logged": input.count}))?;
        }
        "state" => {
            for i in 0..input.count {
                if let Err(error) = state::put(&format!("key-{i}"), &filler) {
                    output::emit(&json!({"stored": i, "error": error.to_string()}))?;
                    return Ok(summary(0));
                }
            }
            output::emit(&json!({"stored": input.count}))?;
        }
        other => return Err(RunError::InvalidInput(format!("unknown attack `{other}`"))),
    }
    Ok(summary(0))
}

/// `{"bucket": "127.0.0.1", "secret": "tok", "wait_ms": 5000}`: emits the bucket's state, then
/// (with `wait_ms`) waits for capacity and emits the outcome and the state after.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BucketInput {
    bucket: String,
    secret: Option<String>,
    wait_ms: Option<u64>,
}

fn bucket(input: BucketInput) -> Result<RunSummary, RunError> {
    let secret = input.secret.as_deref();
    let describe = |state: apiary_sdk::ratelimit::BucketState| json!({ "remaining": state.remaining, "wait_ms": state.wait.as_millis() as u64 });
    output::emit(&describe(apiary_sdk::ratelimit::state(&input.bucket, secret)))?;
    if let Some(max) = input.wait_ms {
        let waited = apiary_sdk::ratelimit::wait(&input.bucket, secret, Duration::from_millis(max));
        output::emit(&match waited {
            Ok(waited) => json!({ "waited_ms": waited.as_millis() as u64 }),
            Err(needed) => json!({ "refused_ms": needed.as_millis() as u64 }),
        })?;
        output::emit(&describe(apiary_sdk::ratelimit::state(&input.bucket, secret)))?;
    }
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailableInput {
    name: String,
}

fn available(input: AvailableInput) -> Result<RunSummary, RunError> {
    output::emit(&json!({ "available": secrets::available(&input.name) }))?;
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitManyInput {
    #[serde(default)]
    count: u64,
    #[serde(default)]
    at_once: bool,
    #[serde(default)]
    raw: Vec<String>,
}

fn emit_many(input: EmitManyInput) -> Result<RunSummary, RunError> {
    if !input.raw.is_empty() {
        for record in &input.raw {
            output::emit_json(record)?;
        }
        return Ok(summary(0));
    }
    if input.at_once {
        let records: Vec<Value> = (0..input.count).map(|i| json!({ "i": i })).collect();
        output::emit_all(&records).map_err(|(index, error)| RunError::Failed(format!("record {index}: {error}")))?;
        return Ok(summary(0));
    }
    for i in 0..input.count {
        output::emit(&json!({ "i": i }))?;
    }
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChattyInput {
    bytes: usize,
}

fn chatty(input: ChattyInput) -> ! {
    let line = format!("{:063}\n", 0);
    for _ in 0..input.bytes / line.len() {
        // `eprint!` panics when a write fails: a full stderr would hide the real panic below.
        eprint!("{line}");
        print!("{line}");
    }
    panic!("chatty guest: last words");
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PaginateInput {
    url: String,
    #[serde(default)]
    secrets: Vec<SecretInput>,
}

fn paginate(input: PaginateInput) -> Result<RunSummary, RunError> {
    let mut first = http::get(input.url);
    for secret in &input.secrets {
        first = first.secret(secret.attachment());
    }
    let mut pages = LinkPages::new(first);
    for page in pages.by_ref() {
        for item in page?.json::<Vec<Value>>().map_err(apiary_sdk::json_failed)? {
            output::emit(&item)?;
        }
    }
    Ok(summary(pages.pages()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WasiInput {
    tcp: String,
}

/// Tries the ambient authority a WASI program could have, bypassing Apiary's interfaces: the
/// host grants none of it, so every probe should come back empty or refused.
fn probe_wasi(input: WasiInput) -> Result<RunSummary, RunError> {
    let filesystem = std::fs::read_dir("/").is_ok() || std::fs::read_dir(".").is_ok();
    let tcp = std::net::TcpStream::connect(input.tcp.as_str()).is_ok();
    output::emit(&json!({
        "env": std::env::vars().count(),
        "args": std::env::args().count(),
        "filesystem": filesystem,
        "tcp": tcp,
    }))?;
    Ok(summary(0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BenchInput {
    url: String,
    count: u32,
    /// Requests per streaming batch (`bench-batch` only).
    #[serde(default)]
    width: Option<u32>,
    /// Emit every response body as a record (`bench-loop` only).
    #[serde(default)]
    emit: bool,
}

/// The load of `apiary-bench`'s "runs" mode: one request at a time, nothing emitted, so what is
/// measured is the request path and not the record sink.
fn bench_loop(input: BenchInput) -> Result<RunSummary, RunError> {
    for _ in 0..input.count {
        let response = http::get(&input.url).send()?;
        if input.emit {
            output::emit_json(&response.text())?;
        }
        expect_success(response)?;
    }
    Ok(summary(0))
}

/// The load of `apiary-bench`'s "batch" mode: the host caps one batch at 256 requests, so a
/// larger count goes as consecutive batches of `width`.
fn bench_batch(input: BenchInput) -> Result<RunSummary, RunError> {
    let width = input.width.unwrap_or(input.count).max(1);
    let mut left = input.count;
    while left > 0 {
        let this_batch = left.min(width);
        for (_, result) in http::Batch::start((0..this_batch).map(|_| http::get(&input.url))) {
            expect_success(result?)?;
        }
        left -= this_batch;
    }
    Ok(summary(0))
}

/// A benchmark that counted error pages as requests would measure the wrong thing.
fn expect_success(response: Response) -> Result<(), RunError> {
    match response.status() {
        200..=299 => Ok(()),
        status => Err(RunError::Failed(format!("{} answered {status}", response.url()))),
    }
}
