//! Rate limits learned from the API, through real plugins and the injected clock: a spent
//! quota announced in any of the fields real APIs send pauses its bucket for every later
//! request, from every run and every plugin that sends the same credential; GitHub's
//! rate-limit 403s are retried after their wait, a plain 403 is not.

use std::time::Duration;

use apiary_host::{Grant, Plugin, Runtime};
use apiary_tests::{TestServer, respond, static_secret, test_guest, test_guest_granted};
use serde_json::json;

use super::{grant, run, runtime_with_clock};

/// The test guest as plugin `id`, asking for the server's host and the bearer secret `tok`,
/// granted `token`.
fn with_token(runtime: &Runtime, url: &str, id: &str, token: &str) -> Plugin {
    with_token_and(runtime, url, id, token, "")
}

/// [`with_token`], with `extra` TOML in the manifest.
fn with_token_and(runtime: &Runtime, url: &str, id: &str, token: &str, extra: &str) -> Plugin {
    let manifest = grant(
        url,
        &format!("[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\n{extra}"),
    );
    test_guest_granted(runtime, &manifest, |m| {
        let mut grant = Grant::local(m).secret("tok", static_secret(token));
        grant.plugin_id = id.into();
        grant
    })
}

fn fetch_with_token(url: &str) -> serde_json::Value {
    json!({"url": url, "secrets": [{"name": "tok", "placement": "bearer"}]})
}

#[tokio::test]
async fn a_200_that_announces_no_quota_left_pauses_the_next_run() {
    let server = TestServer::start(|_, i| {
        if i == 0 {
            respond(200, &[("ratelimit", "\"default\";r=0;t=2")], "last one")
        } else {
            respond(200, &[], "ok")
        }
    })
    .await;
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (first, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["status"], 200, "a spent quota on a 200 is not an error");
    assert_eq!(first.unwrap().learned_pauses, 1);
    assert!(clock.sleeps().is_empty());
    let (second, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["body"], "ok");
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(2)],
        "the second run waited out the pause"
    );
    assert_eq!(second.unwrap().rate_limit_waits, 1);
}

#[tokio::test]
async fn plugins_sharing_a_credential_share_its_pause_and_others_do_not() {
    // GitHub's primary limit: no requests left until the reset (the manual clock reads
    // 2019-06-03 11:00:00 UTC, epoch 1559559600).
    let server = TestServer::start(|request, _| {
        if request.path.contains("spend") {
            respond(
                200,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1559559620")],
                "spent",
            )
        } else {
            respond(200, &[], "ok")
        }
    })
    .await;
    let (runtime, clock) = runtime_with_clock();
    let spender = with_token(&runtime, &server.url(), "spender", "shared-token-0001");
    let sharer = with_token(&runtime, &server.url(), "sharer", "shared-token-0001");
    let other = with_token(&runtime, &server.url(), "other", "another-token-0002");
    let spend = format!("{}/spend", server.url());
    run(&runtime, &spender, "fetch", fetch_with_token(&spend))
        .await
        .0
        .unwrap();
    // Another plugin with another token: not paused.
    run(&runtime, &other, "fetch", fetch_with_token(&server.url()))
        .await
        .0
        .unwrap();
    assert!(clock.sleeps().is_empty());
    // Another plugin with the same token: waits until a second after the reset.
    let (result, records) = run(&runtime, &sharer, "fetch", fetch_with_token(&server.url())).await;
    result.unwrap();
    assert_eq!(records[0]["body"], "ok");
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(21)]);
}

#[tokio::test]
async fn github_rate_limit_403s_are_retried_after_their_wait_and_a_plain_403_is_final() {
    let server = TestServer::start(|request, _| {
        let again = request.path.contains("again");
        match request.path.split('?').next().unwrap() {
            "/secondary" => respond(403, &[("retry-after", "3")], "secondary rate limit"),
            "/primary" => respond(
                403,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1559559610")],
                "API rate limit exceeded",
            ),
            _ if again => respond(200, &[], "ok"),
            _ => respond(403, &[("x-ratelimit-remaining", "4999")], "forbidden"),
        }
    })
    .await;
    for (path, wait) in [("/secondary", 3), ("/primary", 11)] {
        let (runtime, clock) = runtime_with_clock();
        let plugin = test_guest(&runtime, &grant(&server.url(), "[retry]\nmax_retries = 1\n"));
        let (_, records) = run(
            &runtime,
            &plugin,
            "fetch",
            json!({"url": format!("{}{path}", server.url())}),
        )
        .await;
        // The server answers the same each time, so the one retry is spent.
        assert_eq!(records[0]["error"], "retries-exhausted", "{path}: {}", records[0]);
        assert_eq!(records[0]["detail"]["attempts"], 2, "{path}");
        assert_eq!(clock.sleeps(), vec![Duration::from_secs(wait)], "{path}");
    }
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    let (_, records) = run(
        &runtime,
        &plugin,
        "fetch",
        json!({"url": format!("{}/refused", server.url())}),
    )
    .await;
    assert_eq!(records[0]["status"], 403, "a plain 403 is the plugin's to handle");
    assert_eq!(records[0]["attempts"], 1);
    assert!(clock.sleeps().is_empty());
}

#[tokio::test]
async fn every_declared_limit_applies_and_a_shared_credential_shares_the_quota() {
    let server = TestServer::start(|_, _| respond(200, &[], "ok")).await;
    let (runtime, clock) = runtime_with_clock();
    // GitHub-like: generous per second, three an hour (per token).
    let limits = "[[ratelimit]]\nbucket = \"127.0.0.1\"\nrate = 10\nper = \"1s\"\nburst = 10\n\
                  [[ratelimit]]\nbucket = \"127.0.0.1\"\nrate = 3\nper = \"1h\"\nburst = 3\n";
    let first = with_token_and(&runtime, &server.url(), "first", "shared-token-0001", limits);
    let second = with_token_and(&runtime, &server.url(), "second", "shared-token-0001", limits);
    let other = with_token_and(&runtime, &server.url(), "other", "another-token-0002", limits);
    for _ in 0..3 {
        let (_, records) = run(&runtime, &first, "fetch", fetch_with_token(&server.url())).await;
        assert_eq!(records[0]["status"], 200);
    }
    // The hourly quota of the token is spent, whichever plugin sends it next.
    let (_, records) = run(&runtime, &second, "fetch", fetch_with_token(&server.url())).await;
    assert_eq!(records[0]["error"], "rate-limited", "{}", records[0]);
    // Another token has its own quota.
    let (_, records) = run(&runtime, &other, "fetch", fetch_with_token(&server.url())).await;
    assert_eq!(records[0]["status"], 200);
    assert_eq!(server.received().len(), 4);
    assert!(clock.sleeps().is_empty(), "{:?}", clock.sleeps());
}

#[tokio::test]
async fn a_plugin_reads_its_buckets_state_and_waits_for_capacity_in_turn() {
    let server = TestServer::start(|_, i| {
        if i == 0 {
            respond(200, &[("ratelimit", "\"default\";r=0;t=4")], "spent")
        } else {
            respond(200, &[], "ok")
        }
    })
    .await;
    let (runtime, clock) = runtime_with_clock();
    // Two a second, both at once at most.
    let limit = "[[ratelimit]]\nbucket = \"127.0.0.1\"\nrate = 2\nper = \"1s\"\nburst = 2\n";
    let plugin = with_token_and(&runtime, &server.url(), "planner", "planner-token-01", limit);
    let state = json!({"bucket": "127.0.0.1", "secret": "tok"});
    let (_, records) = run(&runtime, &plugin, "bucket", state.clone()).await;
    assert_eq!(records, vec![json!({"remaining": 2, "wait_ms": 0})], "a fresh bucket");
    // One request takes a slot, and its response announces a spent quota for 4 s.
    run(&runtime, &plugin, "fetch", fetch_with_token(&server.url()))
        .await
        .0
        .unwrap();
    let (_, records) = run(&runtime, &plugin, "bucket", state.clone()).await;
    assert_eq!(records, vec![json!({"remaining": 1, "wait_ms": 4000})]);
    // Waiting longer than allowed waits nothing and says how long it would take.
    let (_, records) = run(
        &runtime,
        &plugin,
        "bucket",
        json!({"bucket": "127.0.0.1", "secret": "tok", "wait_ms": 1000}),
    )
    .await;
    assert_eq!(records[1], json!({"refused_ms": 4000}));
    assert!(clock.sleeps().is_empty());
    // Waiting within the limit waits out the pause, on the run's clock; then it admits.
    let (_, records) = run(
        &runtime,
        &plugin,
        "bucket",
        json!({"bucket": "127.0.0.1", "secret": "tok", "wait_ms": 5000}),
    )
    .await;
    assert_eq!(records[1], json!({"waited_ms": 4000}));
    assert_eq!(records[2], json!({"remaining": 2, "wait_ms": 0}));
    assert_eq!(clock.sleeps(), vec![Duration::from_secs(4)]);
    // Without the token, the anonymous quota is untouched.
    let (_, records) = run(&runtime, &plugin, "bucket", json!({"bucket": "127.0.0.1"})).await;
    assert_eq!(records, vec![json!({"remaining": 2, "wait_ms": 0})]);
}

#[tokio::test]
async fn a_quota_announced_in_ratelimit_policy_holds_later_requests_like_a_declared_one() {
    // Two requests per ten seconds, announced on every response.
    let server = TestServer::start(|_, _| respond(200, &[("ratelimit-policy", "\"burst\";q=2;w=10")], "ok")).await;
    let (runtime, clock) = runtime_with_clock();
    let plugin = test_guest(&runtime, &grant(&server.url(), ""));
    for _ in 0..2 {
        let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
        assert_eq!(records[0]["status"], 200);
    }
    assert!(
        clock.sleeps().is_empty(),
        "the first response taught the quota; two fit in it"
    );
    let (_, records) = run(&runtime, &plugin, "fetch", json!({"url": server.url()})).await;
    assert_eq!(records[0]["status"], 200);
    assert_eq!(
        clock.sleeps(),
        vec![Duration::from_secs(5)],
        "the third waits for its slot"
    );
}

#[tokio::test]
async fn a_plugin_cannot_escape_its_declared_limit_by_switching_credentials() {
    let server = TestServer::start(|_, _| respond(200, &[], "ok")).await;
    let (runtime, _clock) = runtime_with_clock();
    let manifest = grant(
        &server.url(),
        "[permissions.secrets.tok]\nplacement = \"bearer\"\nhosts = [\"http://127.0.0.1:*\"]\n\
         [permissions.secrets.other]\nplacement = { header = \"x-api-key\" }\nhosts = [\"http://127.0.0.1:*\"]\n\
         [[ratelimit]]\nbucket = \"127.0.0.1\"\nrate = 3\nper = \"1h\"\nburst = 3\n",
    );
    let plugin = test_guest_granted(&runtime, &manifest, |m| {
        Grant::local(m)
            .secret("tok", static_secret("first-token-0001"))
            .secret("other", static_secret("second-token-0002"))
    });
    let with = |name: &str, placement: serde_json::Value| json!({"url": server.url(), "secrets": [{"name": name, "placement": placement}]});
    let mut statuses = Vec::new();
    for input in [
        with("tok", json!("bearer")),
        with("other", json!({"header": "x-api-key"})),
        json!({"url": server.url()}),
        with("other", json!({"header": "x-api-key"})),
    ] {
        let (_, records) = run(&runtime, &plugin, "fetch", input).await;
        statuses.push(records[0].get("status").cloned().unwrap_or(records[0]["error"].clone()));
    }
    assert_eq!(statuses, [json!(200), json!(200), json!(200), json!("rate-limited")]);
    assert_eq!(server.received().len(), 3);
}
