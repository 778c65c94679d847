//! The `apiary` binary, run as a user would: records on stdout, a summary or one error line on
//! stderr, and the exit code.

use std::path::Path;
use std::process::{Command, Output};

use apiary_host::demo::{DemoApi, DemoApiConfig};
use apiary_tests::components;

const GITHUB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/github");

fn apiary(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apiary"))
        .args(args)
        .args(["--no-cache", "--log", "warn"])
        .env_remove("GITHUB_TOKEN")
        .env_remove("RUST_LOG")
        .output()
        .expect("running apiary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_prints_one_ndjson_line_per_issue_against_a_github_compatible_server() {
    let api = DemoApi::start(DemoApiConfig {
        token: "cli-token".into(),
        items: 25,
        inject_faults: false,
        ..DemoApiConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    std::fs::write(&env_file, "GITHUB_TOKEN=cli-token\n").unwrap();
    let base_url = format!("base_url={}", api.base_url());
    let env_file = env_file.display().to_string();
    let output = tokio::task::spawn_blocking(move || {
        apiary(&[
            "run",
            GITHUB_DIR,
            "issues",
            "--input",
            r#"{"owner":"apiary","repo":"demo","per_page":10}"#,
            "--config",
            &base_url,
            "--env-file",
            &env_file,
            "--component",
            components::GITHUB_PLUGIN,
        ])
    })
    .await
    .unwrap();
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    let numbers: Vec<u64> = stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["number"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // 25 items, of which #10 and #20 are pull requests.
    let expected: Vec<u64> = (1..=25).filter(|n| n % 10 != 0).collect();
    assert_eq!(numbers, expected);
    assert!(
        stderr.contains("apiary: github issues: 23 records, 3 pages, 3 requests"),
        "{stderr}"
    );
    assert!(!stdout.contains("cli-token") && !stderr.contains("cli-token"));
    assert!(api.requests().iter().all(|r| r.authorized));
}

#[test]
fn a_missing_secret_is_one_clear_line_and_a_failure_exit() {
    let output = apiary(&[
        "run",
        GITHUB_DIR,
        "issues",
        "--input",
        r#"{"owner":"o","repo":"r"}"#,
        "--component",
        components::GITHUB_PLUGIN,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: secret `github_token` is not set: define GITHUB_TOKEN in the environment or pass --env-file\n"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn bad_input_and_bad_manifests_are_reported_with_their_place() {
    let output = apiary(&[
        "run",
        GITHUB_DIR,
        "issues",
        "--input",
        "{owner",
        "--component",
        components::GITHUB_PLUGIN,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "error: --input is not valid JSON: key must be a string at line 1 column 2\n"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        "name = \"x\"\nversion = \"1\"\ncomponent = \"x.wasm\"\n[limits]\nmemory_mib = \"big\"\n",
    )
    .unwrap();
    let output = apiary(&["inspect", &dir.path().display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    let expected = format!(
        "error: {}:5:14: limits.memory_mib: invalid type: string \"big\", expected u32\n",
        Path::new(&dir.path()).join("plugin.toml").display()
    );
    assert_eq!(text(&output.stderr), expected);
}

#[test]
fn inspect_prints_the_manifest_and_describe() {
    let output = apiary(&["inspect", GITHUB_DIR, "--component", components::GITHUB_PLUGIN]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("name:        github"), "{stdout}");
    assert!(
        stdout.contains("secret:      github_token (from $GITHUB_TOKEN)"),
        "{stdout}"
    );
    assert!(stdout.contains("describe:    github 0.1.0"), "{stdout}");
    assert!(stdout.contains("issues"), "{stdout}");
}

#[test]
fn demo_runs_the_github_plugin_against_the_bundled_api() {
    let output = apiary(&[
        "demo",
        "--component",
        components::GITHUB_PLUGIN,
        "--no-faults",
        "--items",
        "12",
    ]);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 11, "12 items, one a pull request: {stdout}");
    assert!(
        stderr.contains("the API saw 2 requests, 2 carrying the token"),
        "{stderr}"
    );
}
