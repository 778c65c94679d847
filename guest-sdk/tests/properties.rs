//! Property tests of the SDK's parsers of server-controlled text: the RFC 8288 `Link` header.
//! New properties of SDK parsers go here.

use apiary_sdk::paginate::next_link;
use proptest::prelude::*;
use proptest::sample::select;

fn url() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "https://api.example.com/items?page=2",
            "https://api.example.com/a,b;c?x=\"y\"",
            "/relative?page=3",
            "page=4",
            "",
            "https://[::1]:8080/",
            "data:,x",
        ])
        .prop_map(str::to_owned),
        "https://[a-z]{1,8}\\.example/[a-z0-9/?=&;,\"]{0,20}",
        "\\PC{0,24}",
    ]
}

/// Link-values as servers write them, well-formed or not: quoted and bare `rel`, extra
/// parameters, stray separators and quotes.
fn link_value() -> impl Strategy<Value = String> {
    let rel = select(vec![
        "next",
        "NEXT",
        "prev",
        "last",
        "first next",
        "\"next\"",
        "\"prev next\"",
        "",
        "\"",
    ]);
    let param = select(vec![
        "",
        "; title=\"a, b; c\"",
        "; title*=UTF-8''%e2%82%ac",
        "; type=text/html",
        ";",
        "; rel",
        "; =x",
    ]);
    prop_oneof![
        (url(), rel, param, any::<bool>()).prop_map(|(url, rel, param, rel_first)| if rel_first {
            format!("<{url}>; rel={rel}{param}")
        } else {
            format!("<{url}>{param}; rel={rel}")
        }),
        "[<>;,=\" a-z]{0,30}",
        "\\PC{0,40}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn next_link_never_panics(
        values in prop::collection::vec(prop::collection::vec(link_value(), 0..4).prop_map(|v| v.join(", ")), 0..3),
        base in url(),
    ) {
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let _ = next_link(&values, &base);
    }

    /// A header whose only `next` link is an absolute URL yields that URL, wherever it stands
    /// among other links.
    #[test]
    fn the_one_next_link_is_found(
        target in "https://[a-z]{1,8}\\.example/[a-z0-9/]{0,12}(\\?page=[0-9]{1,4})?",
        before in prop::collection::vec(("[a-z/]{0,8}", select(vec!["prev", "last", "first"])), 0..3),
        after in prop::collection::vec(("[a-z/]{0,8}", select(vec!["prev", "last", "first"])), 0..3),
    ) {
        let other = |links: &[(String, &str)]| -> Vec<String> {
            links.iter().map(|(path, rel)| format!("<https://other.example/{path}>; rel=\"{rel}\"")).collect()
        };
        let mut links = other(&before);
        links.push(format!("<{target}>; rel=\"next\""));
        links.extend(other(&after));
        let header = links.join(", ");
        let expected = url::Url::parse(&target).unwrap().to_string();
        prop_assert_eq!(next_link(&[header.as_str()], "https://api.example.com/"), Some(expected));
    }
}
