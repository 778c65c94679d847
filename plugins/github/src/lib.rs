//! Apiary plugin for the GitHub REST API: lists a repository's issues across all pages.
//!
//! Config: `base_url` (default `https://api.github.com`). Secret: `github_token`, sent as a bearer
//! token when the run has it (public repositories work without one, at a lower rate limit).

use apiary_sdk::paginate::{LinkPages, PageError};
use apiary_sdk::{OperationInfo, Plugin, PluginInfo, RunError, RunSummary, config, http, output, secrets};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// GitHub's REST API, unless the `base_url` config value points elsewhere (GitHub Enterprise).
const DEFAULT_BASE_URL: &str = "https://api.github.com";
/// The REST API version the record mapping below was written against.
const API_VERSION: &str = "2022-11-28";
/// The secret holding a GitHub token.
const TOKEN_SECRET: &str = "github_token";

struct GitHub;

impl Plugin for GitHub {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "github".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            operations: vec![OperationInfo {
                name: "issues".into(),
                summary: "List a repository's issues across all pages".into(),
            }],
        }
    }

    fn run(operation: &str, input: serde_json::Value) -> Result<RunSummary, RunError> {
        match operation {
            "issues" => issues(apiary_sdk::parse_input(input)?),
            other => Err(RunError::UnknownOperation(other.into())),
        }
    }
}

apiary_sdk::export!(GitHub);

/// The input of `issues`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuesInput {
    owner: String,
    repo: String,
    #[serde(default = "open")]
    state: String,
    #[serde(default = "max_per_page")]
    per_page: u32,
    #[serde(default)]
    include_pulls: bool,
}

/// The values GitHub accepts for `state`.
const STATES: [&str; 3] = ["open", "closed", "all"];

fn open() -> String {
    "open".into()
}

/// GitHub's largest page size, and the default: fewer requests for the same issues.
fn max_per_page() -> u32 {
    100
}

/// An issue as GitHub's REST API returns it (only the fields the record needs).
#[derive(Deserialize)]
struct Issue {
    number: u64,
    title: String,
    state: String,
    user: Option<User>,
    labels: Vec<Label>,
    comments: u64,
    created_at: String,
    updated_at: String,
    closed_at: Option<String>,
    html_url: String,
    /// Present on pull requests, which GitHub lists among issues.
    pull_request: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct User {
    login: String,
}

#[derive(Deserialize)]
struct Label {
    name: String,
}

/// The record emitted for each issue.
#[derive(Serialize)]
struct IssueRecord {
    number: u64,
    title: String,
    state: String,
    user: Option<String>,
    labels: Vec<String>,
    comments: u64,
    created_at: String,
    updated_at: String,
    closed_at: Option<String>,
    html_url: String,
    is_pull_request: bool,
}

impl From<Issue> for IssueRecord {
    fn from(issue: Issue) -> Self {
        IssueRecord {
            is_pull_request: issue.pull_request.is_some(),
            number: issue.number,
            title: issue.title,
            state: issue.state,
            user: issue.user.map(|user| user.login),
            labels: issue.labels.into_iter().map(|label| label.name).collect(),
            comments: issue.comments,
            created_at: issue.created_at,
            updated_at: issue.updated_at,
            closed_at: issue.closed_at,
            html_url: issue.html_url,
        }
    }
}

fn issues(input: IssuesInput) -> Result<RunSummary, RunError> {
    let IssuesInput {
        owner,
        repo,
        state,
        per_page,
        include_pulls,
    } = input;
    check_name("owner", &owner)?;
    check_name("repo", &repo)?;
    if !STATES.contains(&state.as_str()) {
        return Err(RunError::InvalidInput(format!(
            "state must be one of {STATES:?}, not `{state}`"
        )));
    }
    if !(1..=100).contains(&per_page) {
        return Err(RunError::InvalidInput(format!(
            "per_page must be 1 to 100, not {per_page}"
        )));
    }
    let base = config::get("base_url").unwrap_or_else(|| DEFAULT_BASE_URL.into());
    let mut first = http::get(format!("{}/repos/{owner}/{repo}/issues", base.trim_end_matches('/')))
        .query("state", &state)
        .query("per_page", per_page.to_string())
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", API_VERSION);
    if secrets::available(TOKEN_SECRET) {
        first = first.bearer(TOKEN_SECRET);
    }

    let mut pages = LinkPages::new(first);
    let mut emitted = 0;
    for page in pages.by_ref() {
        let page = page.map_err(with_github_message)?;
        let issues: Vec<Issue> = page
            .json()
            .map_err(|e| RunError::Failed(format!("unexpected issue JSON from {}: {e}", page.url())))?;
        for issue in issues
            .into_iter()
            .filter(|issue| include_pulls || issue.pull_request.is_none())
        {
            output::emit(&IssueRecord::from(issue))?;
            emitted += 1;
        }
    }
    Ok(RunSummary {
        pages: pages.pages(),
        message: Some(format!("{emitted} issues from {owner}/{repo}")),
    })
}

/// Rejects what is not a GitHub account or repository name, so input cannot reshape the URL.
fn check_name(field: &str, name: &str) -> Result<(), RunError> {
    let valid = name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid && !name.is_empty() && name != "." && name != ".." {
        Ok(())
    } else {
        Err(RunError::InvalidInput(format!("{field} `{name}` is not a GitHub name")))
    }
}

/// Adds GitHub's own explanation (its error bodies carry a `message`) to a failed page.
fn with_github_message(error: PageError) -> RunError {
    #[derive(Deserialize)]
    struct GitHubError {
        message: String,
    }
    match &error {
        PageError::UnexpectedStatus(page) => match page.json::<GitHubError>() {
            Ok(body) => RunError::Failed(format!("{error}: {}", body.message)),
            Err(_) => error.into(),
        },
        _ => error.into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn input_defaults_to_open_issues_in_pages_of_100() {
        let input: IssuesInput = apiary_sdk::parse_input(json!({"owner": "o", "repo": "r"})).unwrap();
        assert_eq!(input.state, "open");
        assert_eq!(input.per_page, 100);
        assert!(!input.include_pulls);
    }

    #[test]
    fn bad_input_names_the_field() {
        let missing = apiary_sdk::parse_input::<IssuesInput>(json!({"repo": "r"}))
            .err()
            .unwrap();
        assert!(missing.to_string().contains("`owner`"), "{missing}");
        let closing = json!({"owner": "o", "repo": "r", "state": "closing"});
        let error = issues(apiary_sdk::parse_input(closing).unwrap()).unwrap_err();
        assert!(error.to_string().contains("state"), "{error}");
        let outside = json!({"owner": "o", "repo": "r", "per_page": 101});
        let error = issues(apiary_sdk::parse_input(outside).unwrap()).unwrap_err();
        assert!(error.to_string().contains("per_page"), "{error}");
        let traversal = json!({"owner": "..", "repo": "r"});
        let error = issues(apiary_sdk::parse_input(traversal).unwrap()).unwrap_err();
        assert_eq!(error, RunError::InvalidInput("owner `..` is not a GitHub name".into()));
    }

    #[test]
    fn records_flatten_user_and_labels_and_flag_pull_requests() {
        let issue: Issue = serde_json::from_value(json!({
            "number": 7, "title": "Crash", "state": "closed", "user": null,
            "labels": [{"id": 1, "name": "bug"}, {"id": 2, "name": "p1"}], "comments": 3,
            "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z",
            "closed_at": "2024-01-03T00:00:00Z", "html_url": "https://github.com/o/r/pull/7",
            "pull_request": {"url": "https://api.github.com/repos/o/r/pulls/7"}
        }))
        .unwrap();
        let record = serde_json::to_value(IssueRecord::from(issue)).unwrap();
        assert_eq!(
            record,
            json!({
                "number": 7, "title": "Crash", "state": "closed", "user": null, "labels": ["bug", "p1"],
                "comments": 3, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-02T00:00:00Z",
                "closed_at": "2024-01-03T00:00:00Z", "html_url": "https://github.com/o/r/pull/7",
                "is_pull_request": true
            })
        );
    }
}
