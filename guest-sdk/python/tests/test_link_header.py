"""`paginate.next_link` (RFC 8288 `Link` headers) against the shared vectors, and `Response`'s
header lookup; ports of the Rust SDK's `next_link_*` and `header_lookup_*` tests."""

import random
import string
import tomllib
import unittest

from .support import LINK_HEADER_VECTORS

from apiary_sdk import paginate
from apiary_sdk.http import Response
from apiary_sdk.paginate import next_link

UNUSED_BASE = "https://base.invalid/unused"
"""The base for vectors that give none; their targets are absolute, so it must not show."""


def link_header_cases():
    """The vectors' cases; the Rust tests read the same file (with unknown keys denied)."""
    with open(LINK_HEADER_VECTORS, "rb") as file:
        vectors = tomllib.load(file)
    assert set(vectors) == {"cases"}, f"unknown top-level keys in link_header.toml: {sorted(vectors)}"
    cases = vectors["cases"]
    assert cases, "link_header.toml has no cases"
    for case in cases:
        unknown = set(case) - {"value", "base", "next", "note"}
        assert not unknown, f"unknown keys {sorted(unknown)} in {case}"
    return cases


def expected(case):
    """The case's next URL; None when the vector's `next` is empty."""
    return case["next"] or None


def label(case):
    return f"{case['value']!r} ({case.get('note', 'no note')})"


class VectorTests(unittest.TestCase):
    def test_next_link_matches_every_shared_vector(self):
        cases = link_header_cases()
        self.assertGreaterEqual(len(cases), 14)
        for case in cases:
            with self.subTest(label(case)):
                self.assertEqual(next_link([case["value"]], case.get("base", UNUSED_BASE)), expected(case))

    def test_next_link_treats_header_lines_as_one_value_joined_with_commas(self):
        # The vectors' rule: two header lines are one value joined with ", ". Splitting every case
        # at its link-value boundaries must not change the answer.
        split_any = False
        for case in link_header_cases():
            parts = case["value"].split(", <")
            lines = [part if i == 0 else "<" + part for i, part in enumerate(parts)]
            split_any |= len(lines) > 1
            with self.subTest(label(case)):
                self.assertEqual(next_link(lines, case.get("base", UNUSED_BASE)), expected(case))
        self.assertTrue(split_any, "no vector has two link-values to split")

    def test_a_response_finds_every_vector_in_its_link_headers(self):
        # The same vectors through `Response.next_link`: the header name in any case, resolved
        # against the response's URL.
        for case in link_header_cases():
            for name in ("link", "Link", "LINK"):
                response = Response(case.get("base", UNUSED_BASE), 200, [("x-other", "1"), (name, case["value"])])
                with self.subTest(label(case), name=name):
                    self.assertEqual(response.next_link(), expected(case))


class NextLinkTests(unittest.TestCase):
    def test_next_link_skips_empty_lines_and_malformed_link_values(self):
        base = "https://api.example.com/items"
        self.assertEqual(next_link(["", "</b>; rel=next"], base), "https://api.example.com/b")
        self.assertEqual(next_link(["junk; rel=next, </b>; rel=next"], base), "https://api.example.com/b")
        self.assertIsNone(next_link(["<https://example.com/unterminated; rel=next"], base))
        self.assertIsNone(next_link([r'</a>; title="say \"next\""; rel=prev'], base))

    def test_link_values_keep_the_first_rel_and_unescape_quoted_strings(self):
        self.assertEqual(
            list(paginate._link_values(r'<a> ; Rel = "x \"y\"" ; rel=z, <b>')),
            [("a", 'x "y"'), ("b", None)],
        )

    def test_no_header_or_no_next_is_none(self):
        self.assertIsNone(next_link([], "https://api.example.com/"))
        self.assertIsNone(next_link(['<https://example.com/2>; rel="nextpage"'], "https://api.example.com/"))

    def test_the_first_next_link_wins(self):
        header = '<https://example.com/1>; rel="prev next", <https://example.com/2>; rel="next"'
        self.assertEqual(next_link([header], UNUSED_BASE), "https://example.com/1")

    def test_a_next_link_is_normalized_like_the_url_crate_does(self):
        # Scheme and host lowercased, the default port dropped, an empty path as `/`.
        self.assertEqual(next_link(["<HTTPS://Example.COM:443>; rel=next"], UNUSED_BASE), "https://example.com/")
        self.assertEqual(next_link(["<http://example.com:8080/a>; rel=next"], UNUSED_BASE),
                         "http://example.com:8080/a")

    def test_a_relative_next_link_needs_an_absolute_base(self):
        # Without a base that parses, only an absolute target resolves.
        self.assertIsNone(next_link(["</b>; rel=next"], "not a url"))
        self.assertEqual(next_link(["<https://example.com/b>; rel=next"], "not a url"), "https://example.com/b")
        self.assertEqual(next_link(["<?page=3>; rel=next"], "https://api.example.com/items?page=2"),
                         "https://api.example.com/items?page=3")


class PropertyTests(unittest.TestCase):
    """Seeded ports of the Rust SDK's property tests (`guest-sdk/tests/properties.rs`): Link
    headers as servers write them, well-formed or not."""

    URLS = ["https://api.example.com/items?page=2", 'https://api.example.com/a,b;c?x="y"', "/relative?page=3",
            "page=4", "", "https://[::1]:8080/", "data:,x", "https://[::1", "https://a.example:99999/", "http://",
            "//host/p", "https://a.example/\u00fc"]
    RELS = ["next", "NEXT", "prev", "last", "first next", '"next"', '"prev next"', "", '"']
    PARAMS = ["", '; title="a, b; c"', "; title*=UTF-8''%e2%82%ac", "; type=text/html", ";", "; rel", "; =x"]
    ANY = string.printable + "\u00e9\u20ac\u2028\x85<>;,=\""

    def text(self, rng, alphabet, longest):
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, longest)))

    def url(self, rng):
        kind = rng.randrange(3)
        if kind == 0:
            return rng.choice(self.URLS)
        if kind == 1:
            return (f"https://{self.text(rng, string.ascii_lowercase, 8) or 'a'}.example/"
                    + self.text(rng, string.ascii_lowercase + string.digits + '/?=&;,"', 20))
        return self.text(rng, self.ANY, 24)

    def link_value(self, rng):
        kind = rng.randrange(3)
        if kind == 0:
            url, rel, param = self.url(rng), rng.choice(self.RELS), rng.choice(self.PARAMS)
            return f"<{url}>; rel={rel}{param}" if rng.random() < 0.5 else f"<{url}>{param}; rel={rel}"
        if kind == 1:
            return self.text(rng, '<>;,=" abcdefghijklmnopqrstuvwxyz', 30)
        return self.text(rng, self.ANY, 40)

    def test_next_link_never_raises(self):
        rng = random.Random(8288)
        for _ in range(3000):
            values = [", ".join(self.link_value(rng) for _ in range(rng.randrange(4))) for _ in range(rng.randrange(3))]
            base = self.url(rng)
            try:
                result = next_link(values, base)
            except Exception as error:  # noqa: BLE001 - the property under test
                self.fail(f"next_link({values!r}, {base!r}) raised {error!r}")
            self.assertTrue(result is None or isinstance(result, str))

    def test_the_one_next_link_is_found(self):
        # A header whose only `next` link is an absolute URL yields that URL, wherever it stands
        # among other links.
        rng = random.Random(5988)
        for _ in range(1000):
            target = (f"https://{self.text(rng, string.ascii_lowercase, 8) or 'a'}.example/"
                      + self.text(rng, string.ascii_lowercase + string.digits + "/", 12))
            if rng.random() < 0.5:
                target += f"?page={rng.randint(0, 9999)}"

            def others():
                return [f'<https://other.example/{self.text(rng, string.ascii_lowercase + "/", 8)}>; '
                        f'rel="{rng.choice(["prev", "last", "first"])}"' for _ in range(rng.randrange(3))]

            header = ", ".join(others() + [f'<{target}>; rel="next"'] + others())
            self.assertEqual(next_link([header], "https://api.example.com/"), target, header)


class ResponseTests(unittest.TestCase):
    def test_header_lookup_ignores_case_and_keeps_every_value(self):
        response = Response(
            "https://api.example.com/items?page=1",
            200,
            [("Link", "<a>; rel=prev"), ("x-other", "1"), ("LINK", "</b>; rel=next")],
        )
        self.assertEqual(response.header("link"), "<a>; rel=prev")
        self.assertEqual(response.header_values("Link"), ["<a>; rel=prev", "</b>; rel=next"])
        self.assertEqual(response.next_link(), "https://api.example.com/b")
        self.assertIsNone(response.header("absent"))
        self.assertEqual(response.header_values("absent"), [])

    def test_body_as_text_and_json_and_success(self):
        response = Response("https://api.example.com/", 200, [], b'{"a": [1, "\xc3\xa9"]}')
        self.assertEqual(response.json(), {"a": [1, "é"]})
        self.assertEqual(Response("u", 200, [], b"ok \xff").text, "ok \ufffd")
        self.assertEqual([Response("u", s).is_success for s in (199, 200, 204, 299, 300, 404, 503)],
                         [False, True, True, True, False, False, False])
        with self.assertRaises(ValueError):
            Response("u", 200, [], b"<html>").json()


if __name__ == "__main__":
    unittest.main()
