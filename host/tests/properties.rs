//! Property tests: every parser whose input a plugin author, an operator or a remote server
//! controls returns `Ok` or `Err` on arbitrary input and never panics; where a parser promises
//! more (a bound, a round trip, a scrubbed secret), the property checks that promise.
//!
//! New properties go here, one `proptest!` block per parser. Case counts stay modest so the
//! whole file runs in seconds in a debug build.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use apiary_host::{
    AttemptOutcome, Gcra, HostPattern, MAX_DEADLINE, MAX_RATE_PERIOD, MAX_RATE_WAIT, MAX_REQUEST_TIMEOUT,
    MAX_RETRY_DELAY, MIN_FRAGMENT_BYTES, Manifest, OperatorConfig, Placement, Quota, REDACTED, Redactor, RetryDecision,
    RetryPolicy, SourceSpec, escape_guest_text, parse_retry_after, retry_after,
};
use http::{HeaderMap, HeaderValue, StatusCode, header::RETRY_AFTER};
use proptest::prelude::*;
use proptest::sample::select;
use url::Url;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

/// A TOML string literal holding `text`, escaped as TOML requires.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// Duration texts: plausible ones, enormous ones (`"1000000y"`, `u64::MAX` seconds), negative
/// and malformed ones.
fn duration_text() -> impl Strategy<Value = String> {
    let unit = select(vec!["ns", "ms", "s", "m", "h", "d", "w", "M", "y", "years", "sec", ""]);
    prop_oneof![
        24 => (1u64..60, select(vec!["ms", "s", "m"])).prop_map(|(n, u)| format!("{n}{u}")),
        3 => (1u64..2_000, unit.clone()).prop_map(|(n, u)| format!("{n}{u}")),
        2 => (any::<u64>(), unit.clone()).prop_map(|(n, u)| format!("{n}{u}")),
        1 => (any::<i64>(), unit).prop_map(|(n, u)| format!("{n}{u}")),
        1 => Just("1000000y".to_owned()),
        1 => Just("18446744073709551615s".to_owned()),
        1 => Just("584942417355y".to_owned()),
        1 => Just("1h 30m".to_owned()),
        1 => "\\PC{0,12}",
    ]
}

fn host_pattern_text() -> impl Strategy<Value = String> {
    let scheme = select(vec!["http", "https", "HTTPS", "ftp", ""]);
    let host = prop_oneof![
        select(vec![
            "api.example.com",
            "127.0.0.1",
            "[::1]",
            "localhost",
            "xn--bcher-kva.example",
            ""
        ])
        .prop_map(str::to_owned),
        "[a-z0-9.-]{1,20}",
        "\\PC{0,16}",
    ];
    let port = select(vec!["", ":*", ":443", ":0", ":65535", ":65536", ":-1", ":x"]);
    (scheme, any::<bool>(), host, port, any::<bool>()).prop_map(|(scheme, star, host, port, slash)| {
        format!(
            "{scheme}://{}{host}{port}{}",
            if star { "*." } else { "" },
            if slash { "/" } else { "" }
        )
    })
}

/// TOML values of every kind, with the types and edge values a field might get by mistake.
fn toml_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        any::<i64>().prop_map(|n| n.to_string()),
        select(vec![
            0i64,
            1,
            -1,
            4096,
            4097,
            u32::MAX as i64,
            u32::MAX as i64 + 1,
            i64::MAX,
            i64::MIN
        ])
        .prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:?}")),
        any::<bool>().prop_map(|b| b.to_string()),
        duration_text().prop_map(|t| quoted(&t)),
        host_pattern_text().prop_map(|t| quoted(&t)),
        "\\PC{0,20}".prop_map(|t| quoted(&t)),
        Just("1979-05-27T07:32:00Z".to_owned()),
    ];
    scalar.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| format!("[{}]", items.join(", "))),
            prop::collection::vec((select(vec!["header", "prefix", "basic", "query", "x"]), inner), 0..3).prop_map(
                |pairs| {
                    let fields: Vec<String> = pairs.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    format!("{{ {} }}", fields.join(", "))
                }
            ),
        ]
    })
}

type Field = (&'static str, BoxedStrategy<String>);

/// An integer field's value: small, edge-of-range, or any `i64`.
fn int() -> BoxedStrategy<String> {
    prop_oneof![
        16 => (1u64..1_000).prop_map(|n| n.to_string()),
        2 => select(vec![0i64, 1, -1, 4096, 4097, u32::MAX as i64, u32::MAX as i64 + 1, i64::MAX, i64::MIN])
            .prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
    .boxed()
}

fn duration() -> BoxedStrategy<String> {
    duration_text().prop_map(|t| quoted(&t)).boxed()
}

fn text() -> BoxedStrategy<String> {
    prop_oneof![3 => "[a-z0-9._-]{1,12}", 1 => "\\PC{0,20}"]
        .prop_map(|t| quoted(&t))
        .boxed()
}

/// The lines of one table: each known field present or not, usually with a value of its type
/// and sometimes with any TOML value; a stray field now and then.
fn table(fields: Vec<Field>) -> impl Strategy<Value = String> {
    let lines: Vec<BoxedStrategy<String>> = fields
        .into_iter()
        .chain([("unknown_key", toml_value().boxed())])
        .map(|(key, typed)| {
            let value = prop_oneof![30 => typed, 1 => toml_value()];
            let weight = match key {
                "unknown_key" => 0.02,
                // Required fields: mostly present, so the rest of the table is reached.
                "bucket" | "rate" | "per" => 0.97,
                _ => 0.4,
            };
            prop::option::weighted(weight, value)
                .prop_map(move |v| v.map(|v| format!("{key} = {v}\n")).unwrap_or_default())
                .boxed()
        })
        .collect();
    lines.prop_map(|lines| lines.concat())
}

fn host_list() -> impl Strategy<Value = String> {
    let host = prop_oneof![
        4 => select(vec!["https://api.example.com", "http://127.0.0.1:*", "https://*.example.com"]).prop_map(str::to_owned),
        1 => host_pattern_text(),
    ];
    prop::collection::vec(host, 0..3).prop_map(|hosts| {
        let hosts: Vec<String> = hosts.iter().map(|h| quoted(h)).collect();
        format!("[{}]", hosts.join(", "))
    })
}

fn placement_value() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "\"bearer\"",
            "\"basic\"",
            "\"Bearer\"",
            "{ basic = \"user\" }",
            "{ header = \"X-Api-Key\" }"
        ])
        .prop_map(str::to_owned),
        ("\\PC{0,12}", "\\PC{0,8}").prop_map(|(name, prefix)| format!(
            "{{ header = {}, prefix = {} }}",
            quoted(&name),
            quoted(&prefix)
        )),
        "\\PC{0,12}".prop_map(|p| format!("{{ query = {} }}", quoted(&p))),
        "\\PC{0,12}".prop_map(|u| format!("{{ basic = {} }}", quoted(&u))),
        toml_value(),
    ]
}

fn limits_fields() -> Vec<Field> {
    vec![
        ("memory_mib", int()),
        ("deadline", duration()),
        ("request_timeout", duration()),
        ("max_response_bytes", int()),
        ("max_concurrency", int()),
    ]
}

fn ratelimit_fields() -> Vec<Field> {
    vec![
        ("bucket", text()),
        ("rate", int()),
        ("per", duration()),
        ("burst", int()),
        ("max_wait", duration()),
    ]
}

/// Whole manifests: the known tables with random fields, so most texts get past the syntax and
/// reach the typed fields and `validate`.
fn manifest_text() -> impl Strategy<Value = String> {
    let top = prop_oneof![
        9 => Just("name = \"x\"\nversion = \"1.0.0\"\ncomponent = \"x.wasm\"\n".to_owned()),
        1 => table(vec![
            ("name", text()),
            ("version", text()),
            ("component", text()),
            ("description", text()),
            ("sha256", text()),
        ]),
    ];
    let permissions = (
        host_list(),
        "[a-z_]{1,6}",
        placement_value(),
        host_list(),
        any::<bool>(),
    )
        .prop_map(|(hosts, name, placement, secret_hosts, required)| {
            format!(
                "[permissions]\nhosts = {hosts}\n[permissions.secrets.{name}]\nplacement = {placement}\n\
                 hosts = {secret_hosts}\nrequired = {required}\n"
            )
        });
    let limits = table(limits_fields()).prop_map(|t| format!("[limits]\n{t}"));
    let statuses = prop::collection::vec(any::<u16>(), 0..4)
        .prop_map(|s| format!("{s:?}"))
        .boxed();
    let retry = table(vec![
        ("max_retries", int()),
        ("base_delay", duration()),
        ("max_delay", duration()),
        ("jitter", any::<bool>().prop_map(|b| b.to_string()).boxed()),
        ("statuses", statuses),
        ("max_retry_after", duration()),
    ])
    .prop_map(|t| format!("[retry]\n{t}"));
    let ratelimit = prop::collection::vec(table(ratelimit_fields()), 0..3)
        .prop_map(|rules| rules.iter().map(|r| format!("[[ratelimit]]\n{r}")).collect::<String>());
    let config = prop::option::of(table(vec![("base_url", text())]).prop_map(|c| format!("[config]\n{c}")));
    (top, prop::option::of(permissions), limits, retry, ratelimit, config).prop_map(
        |(top, permissions, limits, retry, ratelimit, config)| {
            format!(
                "{top}{}{limits}{retry}{ratelimit}{}",
                permissions.unwrap_or_default(),
                config.unwrap_or_default()
            )
        },
    )
}

/// Drives what a run computes from an accepted manifest's durations: the run's deadline on a
/// clock that has run for a century, rate-limit bookings, and retry waits.
fn exercise(manifest: &Manifest) {
    let late = Duration::from_secs(100 * 365 * 24 * 60 * 60);
    let _deadline = late + manifest.limits.deadline;
    let _timeout = late + manifest.limits.request_timeout;
    for rule in &manifest.ratelimit {
        let quota = Quota::from(rule);
        let mut bucket = Gcra::default();
        for _ in 0..3 {
            let _ = bucket.reserve(&quota, late, rule.max_wait);
            let _ = bucket.check(&quota, late, u32::MAX);
        }
    }
    let policy = RetryPolicy::new(manifest.retry.clone());
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_static("18446744073709551615"));
    let outcome = AttemptOutcome::Response {
        status: StatusCode::TOO_MANY_REQUESTS,
        headers: &headers,
    };
    let mut rng = fastrand::Rng::with_seed(1);
    for attempt in [1, 2, 31, 64, u32::MAX] {
        let _ = policy.backoff(attempt);
        if let RetryDecision::Retry { after, .. } = policy.decide(attempt, &outcome, true, SystemTime::now(), &mut rng)
        {
            let _ = late + after;
        }
    }
}

proptest! {
    // More cases here: about one structured manifest in eight is accepted, and the accepted
    // ones are what reach the run's arithmetic.
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn manifest_parse_never_panics_on_any_text(text in "\\PC{0,200}") {
        let _ = Manifest::parse(&text, Path::new("plugin.toml"));
    }

    #[test]
    fn manifest_parse_never_panics_on_structured_toml(text in manifest_text()) {
        if let Ok(manifest) = Manifest::parse(&text, Path::new("plugin.toml")) {
            exercise(&manifest);
        }
    }

    /// Every duration a manifest is allowed to hold is within its documented bound.
    #[test]
    fn accepted_manifest_durations_are_bounded(text in manifest_text()) {
        if let Ok(m) = Manifest::parse(&text, Path::new("plugin.toml")) {
            prop_assert!(m.limits.deadline <= MAX_DEADLINE);
            prop_assert!(m.limits.request_timeout <= MAX_REQUEST_TIMEOUT);
            prop_assert!(m.retry.base_delay <= MAX_RETRY_DELAY);
            prop_assert!(m.retry.max_delay <= MAX_RETRY_DELAY);
            prop_assert!(m.retry.max_retry_after <= MAX_RETRY_DELAY);
            for rule in &m.ratelimit {
                prop_assert!(rule.per <= MAX_RATE_PERIOD);
                prop_assert!(rule.max_wait <= MAX_RATE_WAIT);
            }
        }
    }

    #[test]
    fn operator_parse_never_panics(
        text in prop_oneof![
            "\\PC{0,200}",
            (
                "[a-z_-]{0,6}",
                table(vec![("component", text()), ("sha256", text()), ("hosts", host_list().boxed())]),
                table(limits_fields()),
                table(vec![
                    ("hosts", host_list().boxed()),
                    ("ttl", duration()),
                    ("timeout", duration()),
                ]),
                table(ratelimit_fields()),
            ).prop_map(|(id, install, limits, secret, rule)| format!(
                "[plugins.{id}]\npath = \"p\"\n{install}[plugins.{id}.limits]\n{limits}\
                 [plugins.{id}.secrets.tok]\nsource = \"env:X\"\n{secret}[[plugins.{id}.ratelimit]]\n{rule}"
            )),
        ]
    ) {
        if let Ok(config) = OperatorConfig::parse(&text, Path::new("/etc/apiary/apiary.toml")) {
            for (id, install) in &config.plugins {
                prop_assert!(install.limits.deadline.is_none_or(|d| d <= MAX_DEADLINE));
                prop_assert!(install.limits.request_timeout.is_none_or(|d| d <= MAX_REQUEST_TIMEOUT));
                let _ = config.grant(id);
            }
        }
    }
}

fn url_text() -> impl Strategy<Value = String> {
    let scheme = select(vec!["http", "https", "HTTP", "ftp", "file", "data", "mailto"]);
    let host = prop_oneof![
        select(vec![
            "api.example.com",
            "a.api.example.com",
            "example.com.evil.net",
            "127.0.0.1",
            "[::1]",
            ""
        ])
        .prop_map(str::to_owned),
        "[a-z0-9.-]{0,20}",
        "\\PC{0,12}",
    ];
    let port = select(vec!["", ":80", ":443", ":8080", ":0"]);
    (scheme, host, port, "\\PC{0,12}").prop_map(|(s, h, p, rest)| format!("{s}://{h}{p}/{rest}"))
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn host_pattern_parse_never_panics(text in prop_oneof![host_pattern_text(), "\\PC{0,40}"]) {
        let _ = text.parse::<HostPattern>();
    }

    /// A pattern's `Display` parses back to the same pattern, so what `inspect` prints is what
    /// an operator can paste.
    #[test]
    fn host_pattern_display_round_trips(text in host_pattern_text()) {
        if let Ok(pattern) = text.parse::<HostPattern>() {
            prop_assert_eq!(pattern.to_string().parse::<HostPattern>(), Ok(pattern));
        }
    }

    /// `covers` is what lets a secret's hosts be checked against the plugin's: whenever `a`
    /// covers `b`, every URL `b` matches must be matched by `a` too.
    #[test]
    fn host_pattern_matches_and_covers_agree(a in host_pattern_text(), b in host_pattern_text(), url in url_text()) {
        let (Ok(a), Ok(b), Ok(url)) = (a.parse::<HostPattern>(), b.parse::<HostPattern>(), Url::parse(&url)) else {
            return Ok(());
        };
        prop_assert!(a.covers(&a));
        if a.covers(&b) && b.matches(&url) {
            prop_assert!(a.matches(&url), "{a} covers {b}, which matches {url}, but {a} does not");
        }
    }
}

fn retry_after_text() -> impl Strategy<Value = String> {
    let date = (0u64..253_402_300_799).prop_map(|secs| httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs)));
    prop_oneof![
        "[0-9]{0,30}",
        "[ \t]{0,2}[0-9]{1,25}[ \t]{0,2}",
        date.clone(),
        // The obsolete RFC 850 and asctime forms, and dates with one character changed.
        date.prop_flat_map(|d| (Just(d.clone()), 0..d.len(), any::<char>()))
            .prop_map(|(d, i, c)| {
                let mut chars: Vec<char> = d.chars().collect();
                chars[i] = c;
                chars.into_iter().collect()
            }),
        Just("Sunday, 06-Nov-94 08:49:37 GMT".to_owned()),
        Just("Sun Nov  6 08:49:37 1994".to_owned()),
        "\\PC{0,40}",
    ]
}

fn any_time() -> impl Strategy<Value = SystemTime> {
    prop_oneof![
        (0u64..1 << 40).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        (0u64..1 << 40).prop_map(|s| UNIX_EPOCH - Duration::from_secs(s)),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn retry_after_never_panics(value in retry_after_text(), now in any_time()) {
        let parsed = parse_retry_after(&value, now);
        if let Ok(header) = HeaderValue::from_str(&value) {
            let mut headers = HeaderMap::new();
            headers.insert(RETRY_AFTER, header);
            prop_assert_eq!(retry_after(&headers, now), parsed);
        }
    }

    /// Whatever a server answers, the policy's wait stays within the configured cap.
    #[test]
    fn a_servers_retry_after_never_exceeds_the_cap(value in retry_after_text(), attempt in 1u32..10) {
        let Ok(header) = HeaderValue::from_str(&value) else { return Ok(()) };
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, header);
        let policy = RetryPolicy::default();
        let outcome = AttemptOutcome::Response { status: StatusCode::SERVICE_UNAVAILABLE, headers: &headers };
        let mut rng = fastrand::Rng::with_seed(u64::from(attempt));
        if let RetryDecision::Retry { after, .. } = policy.decide(attempt, &outcome, true, SystemTime::now(), &mut rng) {
            prop_assert!(after <= apiary_host::DEFAULT_MAX_RETRY_AFTER);
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct PlacementField {
    #[allow(dead_code)] // Only whether it deserializes matters.
    placement: Placement,
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn source_spec_parse_never_panics(
        text in prop_oneof![
            "\\PC{0,40}",
            (select(vec!["env:", "dotenv:", "cmd:", "vault:", "ENV:", ""]), "\\PC{0,30}").prop_map(|(p, r)| format!("{p}{r}")),
            (select(vec!["cmd:", "dotenv:"]), "[ a-z'\"\\\\#=.\n]{0,20}").prop_map(|(p, r)| format!("{p}{r}")),
        ]
    ) {
        let _ = text.parse::<SourceSpec>();
    }

    /// A spec's `Display` (shown by `inspect` and in errors) parses back to the same spec.
    #[test]
    fn source_spec_display_round_trips(
        text in (select(vec!["env:", "dotenv:", "cmd:"]), "[ a-zA-Z0-9_'\"\\\\#=./\t\u{e9}-]{1,24}")
            .prop_map(|(p, r)| format!("{p}{r}"))
    ) {
        if let Ok(spec) = text.parse::<SourceSpec>() {
            prop_assert_eq!(spec.to_string().parse::<SourceSpec>(), Ok(spec));
        }
    }

    #[test]
    fn placement_parse_never_panics(value in prop_oneof![placement_value(), "\\PC{0,30}"]) {
        if let Ok(field) = toml::from_str::<PlacementField>(&format!("placement = {value}\n")) {
            let _ = field.placement.validate();
        }
    }
}

/// Secrets the redactor takes: at least [`MIN_FRAGMENT_BYTES`] bytes, printable or any byte.
fn secret() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{8,40}".prop_map(String::into_bytes),
        "[a-zA-Z0-9]{8,24}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), MIN_FRAGMENT_BYTES..40),
    ]
}

/// `secret` as a server or plugin might echo it: raw, upper-cased, percent-encoded or base64.
fn encoded(secret: &[u8], how: u8) -> Vec<u8> {
    use base64::Engine as _;
    match how % 4 {
        0 => secret.to_vec(),
        1 => secret.to_ascii_uppercase(),
        2 => secret.iter().flat_map(|b| format!("%{b:02X}").into_bytes()).collect(),
        _ => base64::engine::general_purpose::STANDARD.encode(secret).into_bytes(),
    }
}

/// Whether `haystack` holds a run of [`MIN_FRAGMENT_BYTES`] bytes of `secret`, ignoring ASCII case.
fn holds_fragment(haystack: &[u8], secret: &[u8]) -> bool {
    secret
        .windows(MIN_FRAGMENT_BYTES)
        .any(|needle| haystack.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle)))
}

/// The runs of `scrubbed` that are not a placeholder, i.e. bytes copied from the input.
fn kept_runs(scrubbed: &[u8]) -> Vec<&[u8]> {
    let mut runs = Vec::new();
    let mut rest = scrubbed;
    while let Some(at) = rest.windows(REDACTED.len()).position(|w| w == REDACTED.as_bytes()) {
        runs.push(&rest[..at]);
        rest = &rest[at + REDACTED.len()..];
    }
    runs.push(rest);
    runs
}

proptest! {
    #![proptest_config(config())]

    /// Scrubbing never panics, and no byte the scrubber keeps from the input is part of a run of
    /// a secret long enough to be redacted on its own: the raw value cannot survive, whole or in
    /// pieces, in any case.
    #[test]
    fn scrubbed_output_never_holds_the_secret(
        secrets in prop::collection::vec(secret(), 1..3),
        parts in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..16), any::<u8>(), any::<bool>()), 0..6),
    ) {
        let mut redactor = Redactor::default();
        for s in &secrets {
            redactor.add(s);
        }
        let mut haystack = Vec::new();
        for (i, (noise, how, with_secret)) in parts.iter().enumerate() {
            haystack.extend_from_slice(noise);
            if *with_secret {
                haystack.extend(encoded(&secrets[i % secrets.len()], *how));
            }
        }
        let scrubbed = redactor.scrub_bytes(&haystack).unwrap_or_else(|| haystack.clone());
        for s in &secrets {
            for run in kept_runs(&scrubbed) {
                prop_assert!(!holds_fragment(run, s), "a kept run {:?} holds part of {:?}", run, s);
            }
        }
        let _ = redactor.scrub_str(&String::from_utf8_lossy(&haystack));
    }

    #[test]
    fn scrub_bytes_never_panics_on_any_input(
        secrets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 0..3),
        haystack in prop::collection::vec(any::<u8>(), 0..256),
    ) {
        let mut redactor = Redactor::default();
        for s in &secrets {
            redactor.add(s);
        }
        let _ = redactor.scrub_bytes(&haystack);
        let _ = redactor.contains(&haystack);
    }

    /// Escaped guest text holds no control character and no bidi override, so it cannot forge
    /// a log line or drive the operator's terminal.
    #[test]
    fn escaped_guest_text_holds_no_control_character(text in prop_oneof!["\\PC{0,60}", any::<String>(), ".{0,60}"]) {
        let escaped = escape_guest_text(&text);
        prop_assert!(
            !escaped.chars().any(|c| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')),
            "{:?}", escaped
        );
    }
}
