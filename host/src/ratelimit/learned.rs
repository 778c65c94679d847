//! Rate limits learned from responses: what a server says about its own quota, in the fields
//! real APIs send, turned into a pause for the bucket the request drew from.
//!
//! Read, in order of precedence (the first that gives a pause wins):
//! 1. `Retry-After` on any status (RFC 9110; it takes precedence over `RateLimit`);
//! 2. the IETF `RateLimit` field (`"name";r=<remaining>;t=<seconds>`, a Structured Field list):
//!    a policy with `r=0` pauses for its `t`, on any status, 200 included;
//! 3. the older `RateLimit-Remaining` / `RateLimit-Reset` pair (reset in delta seconds);
//! 4. GitHub-style `X-RateLimit-Remaining: 0` with `X-RateLimit-Reset` in epoch seconds: pause
//!    until a second after the reset.
//!
//! Besides pauses, the IETF `RateLimit-Policy` field announces quotas (`"name";q=100;w=60`:
//! a hundred requests a minute): [`learned_quotas`] reads them, and the rate-limit layer holds
//! every later request to them as it holds declared limits.
//!
//! Malformed fields are ignored, never guessed at. A reset that looks like epoch milliseconds
//! is read as such; one in the past gives no pause. A `401` is an authentication failure, not a
//! rate limit, whatever its headers say.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, StatusCode};

use crate::retry::retry_after;

/// The longest pause a response can impose: a server cannot park a bucket for longer than a
/// day (the longest run deadline) with one header.
pub const MAX_LEARNED_PAUSE: Duration = Duration::from_secs(24 * 60 * 60);

/// Which field a pause was learned from, for logs and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnedFrom {
    /// `Retry-After`.
    RetryAfter,
    /// The IETF `RateLimit` field.
    RateLimit,
    /// `RateLimit-Remaining` and `RateLimit-Reset`.
    RateLimitReset,
    /// `X-RateLimit-Remaining` and `X-RateLimit-Reset` (GitHub and many others).
    XRateLimit,
}

impl LearnedFrom {
    /// The field's name, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            LearnedFrom::RetryAfter => "retry-after",
            LearnedFrom::RateLimit => "ratelimit",
            LearnedFrom::RateLimitReset => "ratelimit-reset",
            LearnedFrom::XRateLimit => "x-ratelimit",
        }
    }
}

/// A pause a response asks for: send nothing more to its bucket for `wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnedPause {
    /// How long from now.
    pub wait: Duration,
    /// The field it came from.
    pub from: LearnedFrom,
}

/// The pause `headers` of a response with `status` ask for, read at `now`; `None` when they
/// ask for none (quota left, no field, malformed fields, an authentication failure).
///
/// ```
/// use apiary_host::{learned_pause, LearnedFrom};
/// use http::{HeaderMap, StatusCode};
/// use std::time::{Duration, SystemTime};
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit", "\"default\";r=0;t=2".parse().unwrap());
/// let pause = learned_pause(StatusCode::OK, &headers, SystemTime::now()).unwrap();
/// assert_eq!((pause.wait, pause.from), (Duration::from_secs(2), LearnedFrom::RateLimit));
/// ```
pub fn learned_pause(status: StatusCode, headers: &HeaderMap, now: SystemTime) -> Option<LearnedPause> {
    if status == StatusCode::UNAUTHORIZED {
        return None;
    }
    let pause = |wait: Duration, from| LearnedPause {
        wait: wait.min(MAX_LEARNED_PAUSE),
        from,
    };
    if let Some(wait) = retry_after(headers, now) {
        return Some(pause(wait, LearnedFrom::RetryAfter));
    }
    if let Some(wait) = ietf_ratelimit(headers) {
        return Some(pause(wait, LearnedFrom::RateLimit));
    }
    if integer(headers, "ratelimit-remaining") == Some(0)
        && let Some(reset) = integer(headers, "ratelimit-reset")
    {
        return Some(pause(reset_wait(reset, now), LearnedFrom::RateLimitReset));
    }
    if integer(headers, "x-ratelimit-remaining") == Some(0)
        && let Some(reset) = integer(headers, "x-ratelimit-reset")
    {
        // GitHub: the quota is back at `reset`, an epoch second; a second more absorbs clock skew.
        let wait = epoch_wait(reset, now).map_or(Duration::ZERO, |w| w + Duration::from_secs(1));
        return Some(pause(wait, LearnedFrom::XRateLimit));
    }
    None
}

/// A quota a server announced in `RateLimit-Policy`: `quota` requests per `window`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnedQuota {
    /// The policy's name.
    pub name: String,
    /// Requests allowed per window.
    pub quota: u32,
    /// The window.
    pub window: Duration,
}

/// The request quotas `RateLimit-Policy` announces (every line, every member). A member needs
/// a string name, `q` and `w` (positive integers); one counting something other than
/// requests (`qu="content-bytes"`, `"concurrent-requests"`) is not a request rate and is left
/// out, as is any malformed member.
///
/// ```
/// use apiary_host::learned_quotas;
/// use http::HeaderMap;
/// use std::time::Duration;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit-policy", "\"burst\";q=100;w=60,\"daily\";q=1000;w=86400".parse().unwrap());
/// let quotas = learned_quotas(&headers);
/// assert_eq!((quotas[0].quota, quotas[0].window), (100, Duration::from_secs(60)));
/// assert_eq!(quotas[1].name, "daily");
/// ```
pub fn learned_quotas(headers: &HeaderMap) -> Vec<LearnedQuota> {
    let mut quotas = Vec::new();
    for value in headers.get_all("ratelimit-policy") {
        let Ok(value) = value.to_str() else { continue };
        for member in split_list(value) {
            if let Some(quota) = parse_policy(member) {
                quotas.push(quota);
                if quotas.len() == MAX_LEARNED_QUOTAS {
                    return quotas;
                }
            }
        }
    }
    quotas
}

/// Most quotas learned from one response: real APIs announce two or three (per second, per
/// hour, per day); a server announcing thousands would make every later request book them all.
pub const MAX_LEARNED_QUOTAS: usize = 8;
/// Longest policy name kept.
const MAX_POLICY_NAME: usize = 64;

fn parse_policy(member: &str) -> Option<LearnedQuota> {
    let rest = member.strip_prefix('"')?;
    let end = rest.find('"')?;
    let name = rest[..end].to_string();
    if name.len() > MAX_POLICY_NAME {
        return None;
    }
    let (mut quota, mut window) = (None, None);
    for param in rest[end + 1..].split(';').skip(1) {
        let (key, value) = param.trim().split_once('=')?;
        match key {
            "q" => quota = Some(value.parse::<u32>().ok().filter(|q| *q > 0)?),
            "w" => window = Some(value.parse::<u64>().ok().filter(|w| *w > 0)?),
            "qu" if value != "\"requests\"" => return None,
            _ => {}
        }
    }
    Some(LearnedQuota {
        name,
        quota: quota?,
        window: Duration::from_secs(window?).min(MAX_LEARNED_PAUSE),
    })
}

/// Whether a `403` is a rate limit (GitHub's secondary limits, and primary ones with no quota
/// left) rather than a refusal: only then is it worth retrying.
pub fn is_rate_limited_403(headers: &HeaderMap, now: SystemTime) -> bool {
    learned_pause(StatusCode::FORBIDDEN, headers, now).is_some()
}

/// The longest `t` of the `RateLimit` policies with no requests remaining (`r=0`). Every line
/// of the field is read; a malformed member is skipped, the rest still count.
fn ietf_ratelimit(headers: &HeaderMap) -> Option<Duration> {
    let mut longest: Option<u64> = None;
    for value in headers.get_all("ratelimit") {
        let Ok(value) = value.to_str() else { continue };
        for member in split_list(value) {
            let Some((remaining, reset)) = parse_member(member) else {
                continue;
            };
            if remaining == 0 {
                longest = Some(longest.map_or(reset, |l| l.max(reset)));
            }
        }
    }
    longest.map(Duration::from_secs)
}

/// Splits a Structured Field list at commas outside quoted strings.
fn split_list(value: &str) -> Vec<&str> {
    let mut members = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                members.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    members.push(value[start..].trim());
    members
}

/// One `RateLimit` member, `"name";r=<int>[;t=<int>]...`: its remaining requests and the
/// seconds until more (0 when `t` is absent). The name must be a string and `r` present.
fn parse_member(member: &str) -> Option<(u64, u64)> {
    let rest = member.strip_prefix('"')?;
    let end = rest.find('"')?;
    let mut remaining = None;
    let mut reset = 0;
    for param in rest[end + 1..].split(';').skip(1) {
        let (key, value) = param.trim().split_once('=')?;
        match key {
            "r" => remaining = Some(value.parse::<u64>().ok()?),
            "t" => reset = value.parse::<u64>().ok()?,
            _ => {}
        }
    }
    Some((remaining?, reset))
}

/// A header as a non-negative integer; `None` when absent, repeated or malformed.
fn integer(headers: &HeaderMap, name: &str) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A `RateLimit-Reset`: delta seconds, unless it is plainly an epoch time (some servers send
/// one there).
fn reset_wait(reset: u64, now: SystemTime) -> Duration {
    if reset >= EPOCH_SECONDS_FLOOR {
        epoch_wait(reset, now).unwrap_or(Duration::ZERO)
    } else {
        Duration::from_secs(reset)
    }
}

/// Values at least this large are epoch times, not deltas (2001-09-09 in seconds; no API asks
/// for a 31-year pause).
const EPOCH_SECONDS_FLOOR: u64 = 1_000_000_000;
/// Values at least this large are epoch milliseconds (the same instant in milliseconds).
const EPOCH_MILLIS_FLOOR: u64 = 1_000_000_000_000;

/// The wait until the epoch time `reset` (seconds, or milliseconds when it is that large);
/// `None` when it is already past.
fn epoch_wait(reset: u64, now: SystemTime) -> Option<Duration> {
    let at = if reset >= EPOCH_MILLIS_FLOOR {
        UNIX_EPOCH.checked_add(Duration::from_millis(reset))?
    } else {
        UNIX_EPOCH.checked_add(Duration::from_secs(reset))?
    };
    at.duration_since(now).ok().filter(|wait| !wait.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTORS: &str = include_str!("../../../tests/vectors/ratelimit_headers.toml");

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    fn at(epoch_secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(epoch_secs)
    }

    fn secs(s: u64) -> Option<Duration> {
        Some(Duration::from_secs(s))
    }

    fn wait(status: u16, pairs: &[(&str, &str)], now: SystemTime) -> Option<Duration> {
        learned_pause(StatusCode::from_u16(status).unwrap(), &headers(pairs), now).map(|p| p.wait)
    }

    #[test]
    fn ietf_vectors() {
        let table: toml::Table = VECTORS.parse().unwrap();
        let now = at(1_700_000_000);
        for example in table["examples"].as_array().unwrap() {
            let example = example.as_table().unwrap();
            let status = example.get("status").and_then(|s| s.as_integer()).unwrap_or(200) as u16;
            let mut pairs = vec![
                ("ratelimit-policy", example["policy"].as_str().unwrap()),
                ("ratelimit", example["ratelimit"].as_str().unwrap()),
            ];
            if let Some(retry_after) = example.get("retry_after") {
                pairs.push(("retry-after", retry_after.as_str().unwrap()));
            }
            let expected = match example["ratelimit"].as_str().unwrap() {
                // Retry-After wins; r=0 pauses for t; quota left asks for no pause.
                _ if example.contains_key("retry_after") => secs(20),
                r if r.contains("r=0") => secs(50),
                _ => None,
            };
            assert_eq!(wait(status, &pairs, now), expected, "{example:?}");
        }
        for example in table["malformed_must_be_ignored"].as_array().unwrap() {
            let example = example.as_table().unwrap();
            let mut pairs = vec![("ratelimit-policy", example["policy"].as_str().unwrap())];
            if let Some(ratelimit) = example.get("ratelimit") {
                pairs.push(("ratelimit", ratelimit.as_str().unwrap()));
            }
            assert_eq!(wait(200, &pairs, now), None, "{example:?}");
        }
    }

    #[test]
    fn policy_vectors_give_quotas_and_malformed_ones_none() {
        let table: toml::Table = VECTORS.parse().unwrap();
        let first = table["examples"].as_array().unwrap()[0].as_table().unwrap();
        let quotas = learned_quotas(&headers(&[("ratelimit-policy", first["policy"].as_str().unwrap())]));
        assert_eq!(
            quotas,
            vec![
                LearnedQuota {
                    name: "burst".into(),
                    quota: 100,
                    window: Duration::from_secs(60)
                },
                LearnedQuota {
                    name: "daily".into(),
                    quota: 1000,
                    window: Duration::from_secs(86400)
                },
            ]
        );
        for example in table["malformed_must_be_ignored"].as_array().unwrap() {
            let policy = example["policy"].as_str().unwrap();
            assert_eq!(
                learned_quotas(&headers(&[("ratelimit-policy", policy)])),
                vec![],
                "{policy}"
            );
        }
        let bytes = headers(&[(
            "ratelimit-policy",
            "\"b\";q=1000;w=1;qu=\"content-bytes\", \"r\";q=5;w=1",
        )]);
        assert_eq!(learned_quotas(&bytes).len(), 1, "a byte quota is not a request rate");
    }

    #[test]
    fn a_ratelimit_field_split_over_lines_pauses_for_its_longest_exhausted_policy() {
        let now = at(1_700_000_000);
        let pairs = [
            ("ratelimit", "\"burst\";r=0;t=5"),
            ("ratelimit", "\"daily\";r=0;t=30, \"hourly\";r=3;t=900"),
        ];
        assert_eq!(wait(200, &pairs, now), secs(30));
        // A malformed member is skipped; the others still count.
        let pairs = [("ratelimit", "bad;r=0;t=99, \"ok\";r=0;t=2, \"x\";r=zero;t=7")];
        assert_eq!(wait(200, &pairs, now), secs(2));
    }

    #[test]
    fn older_ratelimit_reset_is_a_delta_unless_it_is_plainly_an_epoch() {
        let now = at(1_700_000_000);
        let delta = [
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "7"),
        ];
        assert_eq!(wait(200, &delta, now), secs(7));
        let epoch = [("ratelimit-remaining", "0"), ("ratelimit-reset", "1700000012")];
        assert_eq!(wait(200, &epoch, now), secs(12));
        let left = [("ratelimit-remaining", "1"), ("ratelimit-reset", "7")];
        assert_eq!(wait(200, &left, now), None);
    }

    #[test]
    fn github_primary_limit_waits_until_a_second_after_the_reset() {
        let now = at(1_700_000_000);
        let primary = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000030")];
        assert_eq!(wait(403, &primary, now), secs(31));
        assert_eq!(wait(429, &primary, now), secs(31));
        // On a 200: the last request of the quota succeeded; the next must wait.
        assert_eq!(wait(200, &primary, now), secs(31));
        // Milliseconds by mistake: read as milliseconds, not as a wait of 54 000 years.
        let millis = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000030000")];
        assert_eq!(wait(403, &millis, now), secs(31));
        // A reset already past: the quota is back, no pause.
        let past = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1699999990")];
        assert_eq!(wait(403, &past, now), secs(0));
        let left = [("x-ratelimit-remaining", "12"), ("x-ratelimit-reset", "1700000030")];
        assert_eq!(wait(200, &left, now), None);
    }

    #[test]
    fn github_secondary_limit_waits_as_retry_after_says_and_a_plain_403_is_a_refusal() {
        let now = at(1_700_000_000);
        let secondary = headers(&[("retry-after", "60"), ("x-ratelimit-remaining", "4000")]);
        assert!(is_rate_limited_403(&secondary, now));
        assert_eq!(wait(403, &[("retry-after", "60")], now), secs(60));
        let refusal = headers(&[("x-ratelimit-remaining", "4000"), ("x-ratelimit-reset", "1700000030")]);
        assert!(!is_rate_limited_403(&refusal, now));
        assert!(!is_rate_limited_403(&HeaderMap::new(), now));
    }

    #[test]
    fn a_401_is_never_a_rate_limit_and_pauses_are_capped() {
        let now = at(1_700_000_000);
        let exhausted = [("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1700000030")];
        assert_eq!(wait(401, &exhausted, now), None);
        assert_eq!(
            wait(200, &[("ratelimit", "\"q\";r=0;t=99999999")], now),
            Some(MAX_LEARNED_PAUSE)
        );
        // Malformed or repeated integers are ignored.
        for bad in ["-1", "1e3", "", " 0 x"] {
            let pairs = [("x-ratelimit-remaining", bad), ("x-ratelimit-reset", "1700000030")];
            assert_eq!(wait(200, &pairs, now), None, "{bad:?}");
        }
        let twice = [
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1700000030"),
        ];
        assert_eq!(wait(200, &twice, now), None);
    }
}
