//! Plugins in Rust, Python and JavaScript, built by `apiary build` and run by `apiary run`, as
//! their authors would: the three GitHub plugins must make the same requests and emit the same
//! records byte for byte, and `apiary new` must write a plugin that builds and runs as written.
//!
//! The first run installs the pinned componentize-py (PyPI) and componentize-js (npm) into a
//! tools cache under the target directory; later runs reuse it and need no network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use apiary_host::authoring::Tool;
use apiary_host::demo::{DemoApi, DemoApiConfig, DemoRequest};
use apiary_tests::{TestServer, components, respond};

const TOKEN: &str = "polyglot-token-0123";
const INPUT: &str = r#"{"owner":"apiary","repo":"demo","per_page":10}"#;
const PLUGINS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins");

/// Caches shared by every run of this test binary and kept between runs (compiled components,
/// installed tools): under cargo's target directory, not the user's cache.
fn cache_home() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("polyglot-cache")
}

/// `apiary ARGS`, with the test caches and nothing inherited that would grant.
fn apiary(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apiary"))
        .args(args)
        .args(["--log", "warn"])
        .env("XDG_CACHE_HOME", cache_home())
        .env_remove("APIARY_TOOLS_DIR")
        .env_remove("APIARY_OPERATOR")
        .env_remove("RUST_LOG")
        .envs(envs.iter().copied())
        .output()
        .expect("running apiary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Installs the pinned tools into the test cache once, before any test builds, so concurrent
/// tests do not each install them.
fn tools_installed() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let tools = cache_home().join("apiary").join("tools");
        for tool in [Tool::ComponentizePy, Tool::ComponentizeJs] {
            tool.ensure(&tools).unwrap_or_else(|e| panic!("{e}"));
        }
    });
}

/// `apiary build DIR`, asserting it succeeds.
fn build(dir: &Path) {
    tools_installed();
    let output = apiary(&["build", &dir.display().to_string()], &[]);
    assert!(
        output.status.success(),
        "apiary build {}: {}",
        dir.display(),
        text(&output.stderr)
    );
}

/// A copy of `plugins/<name>` (sources only) under the test's target directory, built there:
/// tests never write into the source tree.
fn built_copy(name: &str) -> PathBuf {
    let plugin = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("polyglot-plugins")
        .join(name);
    let _ = std::fs::remove_dir_all(&plugin);
    std::fs::create_dir_all(&plugin).unwrap();
    for entry in std::fs::read_dir(Path::new(PLUGINS).join(name)).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "wasm") {
            std::fs::copy(&path, plugin.join(path.file_name().unwrap())).unwrap();
        }
    }
    build(&plugin);
    plugin
}

/// The Python and JavaScript GitHub plugins, and the JavaScript one that uses plain `fetch()`
/// (through `wasi:http`, its token attached automatically), built once for every test here.
fn github_plugins() -> &'static [(String, PathBuf)] {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    BUILT.get_or_init(|| {
        ["github-py", "github-js", "fetch-js"]
            .into_iter()
            .map(|name| (name.to_string(), built_copy(name)))
            .collect()
    })
}

/// What one plugin did against a fresh demo API: its stdout, its stderr, and the requests the
/// API saw.
struct Outcome {
    stdout: String,
    stderr: String,
    requests: Vec<DemoRequest>,
}

/// `apiary run DIR issues` against a fresh demo API (one injected 429 with `Retry-After: 1`
/// and one 503), with the token granted from a variable.
async fn run_issues(dir: &Path, component: Option<&str>, base_url: Option<&str>) -> Outcome {
    let api = DemoApi::start(DemoApiConfig {
        token: TOKEN.into(),
        items: 25,
        inject_faults: true,
        retry_after_secs: 1,
    })
    .await
    .unwrap();
    let base_url = format!("base_url={}", base_url.map_or_else(|| api.base_url(), str::to_string));
    let dir = dir.display().to_string();
    let mut args = vec![
        "run",
        &dir,
        "issues",
        "--input",
        INPUT,
        "--config",
        &base_url,
        "--secret",
        "github_token=env:POLYGLOT_TOKEN",
        "--allow-net",
        "127.0.0.0/8",
    ];
    if let Some(component) = component {
        args.extend(["--component", component]);
    }
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    let output = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        apiary(&args, &[("POLYGLOT_TOKEN", TOKEN)])
    })
    .await
    .unwrap();
    Outcome {
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
        requests: api.requests(),
    }
}

#[tokio::test]
async fn the_rust_python_js_and_fetch_github_plugins_send_the_same_requests_and_emit_the_same_bytes() {
    let rust_dir = Path::new(PLUGINS).join("github");
    let rust = run_issues(&rust_dir, Some(components::GITHUB_PLUGIN), None).await;
    // 25 items, of which two (every tenth) are pull requests the plugin leaves out.
    assert_eq!(rust.stdout.lines().count(), 23, "{}", rust.stderr);
    let statuses: Vec<u16> = rust.requests.iter().map(|r| r.status).collect();
    assert!(statuses.contains(&429) && statuses.contains(&503), "{statuses:?}");
    assert!(
        rust.requests.iter().all(|r| r.authorized),
        "the host attached the token to every request"
    );
    for (name, dir) in github_plugins() {
        let other = run_issues(dir, None, None).await;
        assert!(
            other.stdout == rust.stdout,
            "{name} emitted other bytes:\n{}\n{}",
            other.stdout,
            other.stderr
        );
        assert_eq!(other.requests, rust.requests, "{name} sent other requests");
        assert!(!other.stdout.contains(TOKEN) && !other.stderr.contains(TOKEN), "{name}");
    }
}

#[tokio::test]
async fn a_host_that_is_not_granted_is_denied_to_every_language() {
    let rust_dir = Path::new(PLUGINS).join("github");
    let elsewhere = Some("http://api.elsewhere.test");
    let rust = run_issues(&rust_dir, Some(components::GITHUB_PLUGIN), elsewhere).await;
    assert!(rust.stderr.contains("is not an allowed destination"), "{}", rust.stderr);
    for (name, dir) in github_plugins() {
        let other = run_issues(dir, None, elsewhere).await;
        assert!(other.stdout.is_empty(), "{name}: {}", other.stdout);
        assert!(other.requests.is_empty(), "{name}");
        assert!(
            other
                .stderr
                .contains("is not an allowed destination for plugin `github")
                || other.stderr.contains("HttpRequestDenied"),
            "{name}: {}",
            other.stderr
        );
    }
}

/// Two pages of items joined by a `Link` header; checks the bearer token when one is sent.
async fn items_api() -> TestServer {
    TestServer::start(|request, _| {
        let auth = request.headers.get("authorization").map(|v| v.as_bytes().to_vec());
        if auth.is_some_and(|a| a != format!("Bearer {TOKEN}").as_bytes()) {
            return respond(401, &[], "bad token");
        }
        if request.path.contains("page=2") {
            respond(200, &[("content-type", "application/json")], r#"[{"id":3}]"#)
        } else {
            let link = format!(
                "<http://{}/items?page=2>; rel=\"next\"",
                request.headers["host"].to_str().unwrap()
            );
            respond(
                200,
                &[("content-type", "application/json"), ("link", &link)],
                r#"[{"id":1},{"id":2,"name":"two"}]"#,
            )
        }
    })
    .await
}

#[tokio::test]
async fn apiary_new_writes_a_plugin_that_builds_and_runs_as_written_in_each_language() {
    let server = items_api().await;
    for lang in ["rust", "python", "js"] {
        let dir = tempfile::tempdir().unwrap();
        let plugin = dir.path().join(format!("my-{lang}-api"));
        let plugin_arg = plugin.display().to_string();
        let name = format!("my-{lang}-api");
        let output = apiary(&["new", &name, "--lang", lang, "--dir", &plugin_arg], &[]);
        assert!(output.status.success(), "{lang}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains(&format!("apiary build {plugin_arg}")));
        let guests = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("new-rust-plugins");
        tools_installed();
        let output = apiary(
            &["build", &plugin_arg],
            &[("CARGO_TARGET_DIR", guests.to_str().unwrap())],
        );
        assert!(output.status.success(), "{lang}: {}", text(&output.stderr));
        let base_url = format!("base_url={}", server.url());
        // Off the test's runtime thread, which serves the API.
        let output = tokio::task::spawn_blocking(move || {
            apiary(
                &[
                    "run",
                    &plugin_arg,
                    "list",
                    "--config",
                    &base_url,
                    "--allow-net",
                    "127.0.0.0/8",
                    "--secret",
                    "api_token=env:POLYGLOT_TOKEN",
                ],
                &[("POLYGLOT_TOKEN", TOKEN)],
            )
        })
        .await
        .unwrap();
        assert!(output.status.success(), "{lang}: {}", text(&output.stderr));
        let records: Vec<serde_json::Value> = text(&output.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            records,
            vec![
                serde_json::json!({"id": 1}),
                serde_json::json!({"id": 2, "name": "two"}),
                serde_json::json!({"id": 3})
            ],
            "{lang}"
        );
    }
    let received = server.received();
    assert_eq!(received.len(), 6);
    assert!(received.iter().all(|r| r.headers.contains_key("authorization")));
}
