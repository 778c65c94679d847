//! The `apiary` binary, run as a user and as an operator would: records on stdout, a summary or
//! one error line on stderr, and the exit code.

use std::path::Path;
use std::process::{Command, Output};

use apiary_host::demo::{DemoApi, DemoApiConfig};
use apiary_tests::components;

const GITHUB_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/github");
const TOKEN: &str = "cli-token-0123";
const INPUT: &str = r#"{"owner":"apiary","repo":"demo","per_page":10}"#;

/// `apiary ARGS --no-cache --log warn`, with `envs` set and nothing inherited that would grant.
fn apiary_with(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_apiary"))
        .args(args)
        .args(["--no-cache"])
        .env_remove("GITHUB_TOKEN")
        .env_remove("RUST_LOG")
        .env_remove("APIARY_OPERATOR")
        .envs(envs.iter().copied())
        .output()
        .expect("running apiary")
}

fn apiary(args: &[&str]) -> Output {
    apiary_with(&[args, &["--log", "warn"]].concat(), &[])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn demo_api(items: u32) -> DemoApi {
    DemoApi::start(DemoApiConfig {
        token: TOKEN.into(),
        items,
        inject_faults: false,
        ..DemoApiConfig::default()
    })
    .await
    .unwrap()
}

/// The issue numbers of NDJSON records.
fn numbers(stdout: &str) -> Vec<u64> {
    stdout
        .lines()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).unwrap()["number"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// `run plugins/github issues` against `api` (on loopback, so granted with `--allow-net`), with
/// `extra` arguments.
fn github_run(api: &DemoApi, extra: &[&str]) -> Vec<String> {
    github_run_without_network(api, &[&["--allow-net", "127.0.0.0/8"], extra].concat())
}

/// `run plugins/github issues` against `api`, with `extra` arguments and no network granted.
fn github_run_without_network(api: &DemoApi, extra: &[&str]) -> Vec<String> {
    let base_url = format!("base_url={}", api.base_url());
    let args = [
        "run",
        GITHUB_DIR,
        "issues",
        "--input",
        INPUT,
        "--config",
        &base_url,
        "--component",
        components::GITHUB_PLUGIN,
    ];
    args.iter().chain(extra).map(|a| a.to_string()).collect()
}

/// Runs `apiary` off the async runtime (the demo API lives on it).
async fn spawn_apiary(args: Vec<String>, envs: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        apiary_with(&args, &envs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_an_env_file_of_secret_names_prints_one_ndjson_line_per_issue() {
    let api = demo_api(25).await;
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    std::fs::write(&env_file, format!("github_token={TOKEN}\nUNRELATED=not-read-value\n")).unwrap();
    let args = github_run(&api, &["--env-file", &env_file.display().to_string(), "--log", "warn"]);
    let output = spawn_apiary(args, vec![]).await;
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{stderr}");
    // 25 items, of which #10 and #20 are pull requests.
    let expected: Vec<u64> = (1..=25).filter(|n| n % 10 != 0).collect();
    assert_eq!(numbers(&stdout), expected);
    assert!(
        stderr.contains("apiary: github issues: 23 records, 3 pages, 3 requests"),
        "{stderr}"
    );
    assert!(!stdout.contains(TOKEN) && !stderr.contains(TOKEN));
    assert!(api.requests().iter().all(|r| r.authorized));
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_flags_grant_from_a_variable_or_a_command_and_every_use_is_audited_as_json() {
    let api = demo_api(5).await;
    for source in ["env:APIARY_CLI_TEST_TOKEN", &format!("cmd:printf {TOKEN}")] {
        let secret = format!("github_token={source}");
        let args = github_run(
            &api,
            &[
                "--secret",
                &secret,
                "--log",
                "apiary::audit=info",
                "--log-format",
                "json",
            ],
        );
        let envs = vec![("APIARY_CLI_TEST_TOKEN".to_string(), TOKEN.to_string())];
        let output = spawn_apiary(args, envs).await;
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        assert!(output.status.success(), "{source}: {stderr}");
        assert_eq!(numbers(&stdout), vec![1, 2, 3, 4, 5], "{source}");
        assert!(!stderr.contains(TOKEN), "{stderr}");
        let audit: Vec<serde_json::Value> = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["target"] == "apiary::audit")
            .collect();
        assert_eq!(audit.len(), 1, "one request, one use: {stderr}");
        let fields = &audit[0]["fields"];
        assert_eq!(fields["secret"], "github_token");
        assert_eq!(fields["plugin"], "github");
        assert_eq!(fields["outcome"], "attached");
        assert_eq!(fields["placement"], "bearer");
        assert_eq!(fields["destination"], api.base_url());
    }
}

#[test]
fn a_secret_that_is_not_granted_is_one_clear_line_and_a_failure_exit() {
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
        "error: plugin `github` requires the secret `github_token`, which is not granted: pass --secret \
         github_token=SOURCE (env:VAR, dotenv:FILE or cmd:PROGRAM ARGS...) or an --env-file with a `github_token=` line\n"
    );
    assert!(output.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_api_without_allow_net_is_one_line_naming_the_address_and_the_flag() {
    let api = demo_api(3).await;
    let secret = "github_token=env:APIARY_CLI_TEST_TOKEN";
    let args = github_run_without_network(&api, &["--secret", secret, "--log", "error"]);
    let envs = vec![("APIARY_CLI_TEST_TOKEN".to_string(), TOKEN.to_string())];
    let output = spawn_apiary(args, envs).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    for needle in ["127.0.0.1 is a loopback address", "--allow-net 127.0.0.0/8"] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert!(api.requests().is_empty(), "nothing reached the API");
}

/// Regression: the host read whatever variable the plugin's manifest named. Now it reads only
/// what the person running it points at, and says what is wrong with the rest.
#[test]
fn the_host_reads_no_variable_or_key_it_was_not_pointed_at() {
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join(".env");
    std::fs::write(&env_file, "GITHUB_TOKEN=old-style-variable\n").unwrap();
    let run = |extra: &[&str], envs: &[(&str, &str)]| {
        let args = [
            &[
                "run",
                GITHUB_DIR,
                "issues",
                "--component",
                components::GITHUB_PLUGIN,
                "--log",
                "warn",
            ][..],
            extra,
        ]
        .concat();
        apiary_with(&args, envs)
    };
    // The variable the old manifest named is set, and ignored.
    let output = run(&[], &[("GITHUB_TOKEN", "from-the-environment")]);
    assert!(text(&output.stderr).contains("requires the secret `github_token`, which is not granted"));
    let output = run(&["--env-file", &env_file.display().to_string()], &[]);
    assert_eq!(
        text(&output.stderr),
        format!(
            "error: {}: the key `GITHUB_TOKEN` is an environment-variable name; the keys of --env-file are secret names: write `github_token=...`\n",
            env_file.display()
        )
    );
    let output = run(&["--secret", "aws_key=env:AWS_SECRET_ACCESS_KEY"], &[]);
    assert_eq!(
        text(&output.stderr),
        "error: --secret aws_key: plugin `github` does not ask for a secret named `aws_key` (it asks for: github_token)\n"
    );
    let output = run(&["--secret", "github_token=vault:x"], &[]);
    assert!(
        text(&output.stderr).contains("is not a secret source"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_manifest_that_names_a_secret_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("plugin.toml"),
        "name = \"x\"\nversion = \"1\"\ncomponent = \"x.wasm\"\n[permissions]\nhosts = [\"https://collector.example\"]\n\
         [permissions.secrets.x]\nplacement = \"bearer\"\nhosts = [\"https://collector.example\"]\nenv = \"AWS_SECRET_ACCESS_KEY\"\n",
    )
    .unwrap();
    let output = apiary(&["run", &dir.path().display().to_string(), "op"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("plugin.toml:9:7: permissions.secrets.x.env: a plugin cannot say where a secret's value comes from: the operator configures sources"),
        "{stderr}"
    );
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

/// An operator file installing the github plugin as `gh`, granting only `hosts`, loopback (where
/// the demo API listens) and the token from a `.env` file beside it.
fn operator_file(dir: &Path, hosts: &str, extra: &str) -> String {
    std::fs::write(dir.join("secrets.env"), format!("GH_TOKEN={TOKEN}\n")).unwrap();
    let text = format!(
        "[plugins.gh]\npath = {GITHUB_DIR:?}\ncomponent = {:?}\nhosts = {hosts}\nallow_net = [\"127.0.0.0/8\"]\n{extra}\n\
         [plugins.gh.secrets.github_token]\nsource = \"dotenv:secrets.env#GH_TOKEN\"\n\
         [plugins.gh.limits]\nmemory_mib = 64\n",
        components::GITHUB_PLUGIN
    );
    let path = dir.join("apiary.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_file_installs_and_grants_and_is_found_by_flag_or_variable() {
    let api = demo_api(3).await;
    let dir = tempfile::tempdir().unwrap();
    let operator = operator_file(dir.path(), "[\"http://127.0.0.1:*\"]", "");
    let base_url = format!("base_url={}", api.base_url());
    let run = [
        "run", "gh", "issues", "--input", INPUT, "--config", &base_url, "--log", "warn",
    ]
    .map(String::from);
    let by_flag = [&["--operator".to_string(), operator.clone()][..], &run].concat();
    let output = spawn_apiary(by_flag, vec![]).await;
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(numbers(&text(&output.stdout)), vec![1, 2, 3]);
    assert!(
        stderr.contains("apiary: gh issues: 3 records"),
        "the install's id names the run: {stderr}"
    );

    let by_variable = spawn_apiary(run.to_vec(), vec![("APIARY_OPERATOR".into(), operator.clone())]).await;
    assert!(by_variable.status.success(), "{}", text(&by_variable.stderr));

    // The directory of an installed plugin is the same install; one that is not installed is refused.
    let by_path = [
        &[
            "--operator".to_string(),
            operator.clone(),
            "run".into(),
            GITHUB_DIR.into(),
        ][..],
        &run[2..],
    ]
    .concat();
    assert!(spawn_apiary(by_path, vec![]).await.status.success());
    let other = spawn_apiary(
        ["--operator", &operator, "run", "crm", "sync", "--log", "warn"]
            .map(String::from)
            .to_vec(),
        vec![],
    )
    .await;
    assert_eq!(
        text(&other.stderr),
        format!(
            "error: {operator}: plugins: `crm` is not installed (installed: gh); add `[plugins.<id>] path = \"crm\"`\n"
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_the_operator_did_not_grant_is_denied_and_a_wrong_pin_refused() {
    let api = demo_api(3).await;
    let dir = tempfile::tempdir().unwrap();
    let operator = operator_file(dir.path(), "[\"https://api.github.com\"]", "");
    let base_url = format!("base_url={}", api.base_url());
    let args = [
        "--operator",
        &operator,
        "run",
        "gh",
        "issues",
        "--input",
        INPUT,
        "--config",
        &base_url,
        "--log",
        "warn",
    ]
    .map(String::from);
    let output = spawn_apiary(args.to_vec(), vec![]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains(&format!(
            "{} is not an allowed destination for plugin `gh`",
            api.base_url()
        )),
        "{stderr}"
    );
    assert!(api.requests().is_empty(), "nothing reached the API");

    let pinned = operator_file(
        dir.path(),
        "[\"http://127.0.0.1:*\"]",
        &format!("sha256 = \"{}\"", "0".repeat(64)),
    );
    let args = [
        "--operator",
        &pinned,
        "run",
        "gh",
        "issues",
        "--input",
        INPUT,
        "--log",
        "warn",
    ]
    .map(String::from);
    let output = spawn_apiary(args.to_vec(), vec![]).await;
    let stderr = text(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: {pinned}: plugins.gh.sha256: {} has sha256 ",
            components::GITHUB_PLUGIN
        )),
        "{stderr}"
    );
}

#[test]
fn inspect_prints_what_is_requested_beside_what_is_granted() {
    let dir = tempfile::tempdir().unwrap();
    let operator = operator_file(dir.path(), "[\"https://api.github.com\"]", "");
    let output = apiary(&["--operator", &operator, "inspect", "gh"]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let line = |needle: &str| {
        stdout
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no `{needle}` in {stdout}"))
            .to_string()
    };
    assert!(line("plugin id:").ends_with("gh"), "{stdout}");
    assert!(line("granted by:").ends_with(&operator), "{stdout}");
    assert!(
        line("https://api.github.com:443").trim_end().ends_with("yes"),
        "{stdout}"
    );
    assert!(line("http://127.0.0.1:*").trim_end().ends_with("no"), "{stdout}");
    assert!(line("github_token").contains("from dotenv:"), "{stdout}");
    assert_eq!(line("networks:"), "networks:    127.0.0.0/8", "{stdout}");
    assert!(
        line("memory_mib").split_whitespace().collect::<Vec<_>>() == ["memory_mib", "128", "64", "64"],
        "{stdout}"
    );
    assert!(stdout.contains("describe:    github 0.1.0"), "{stdout}");
    assert!(!stdout.contains(TOKEN));

    // Without an operator file nor flags, inspect still shows what is missing.
    let output = apiary(&["inspect", GITHUB_DIR, "--component", components::GITHUB_PLUGIN]);
    let stdout = text(&output.stdout);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(stdout.contains("NO: the plugin cannot run"), "{stdout}");
    assert!(stdout.contains("the command line (no operator file)"), "{stdout}");
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
