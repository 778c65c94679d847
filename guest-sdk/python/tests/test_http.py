"""The request builder as the host receives it (the generated `http.Request`), sending through
the stub bindings, and the mapping of every WIT `http.error` case onto its exception."""

import typing
import unittest

from .support import Err, FakeHost, check_wire_request, wit_http, wit_secrets

from apiary_sdk import http, secrets


def wire(builder):
    """`builder.to_wire()`, checked against the generated shapes."""
    request = builder.to_wire()
    check_wire_request(request)
    return request


class QueryTests(unittest.TestCase):
    def test_query_pairs_are_percent_encoded_after_existing_ones(self):
        url = http.get("https://api.example.com/s?state=open").query("q", "label:bug is:open").query("tag", "ü/#?&=").url()
        self.assertEqual(url, "https://api.example.com/s?state=open&q=label%3Abug+is%3Aopen&tag=%C3%BC%2F%23%3F%26%3D")

    def test_only_alphanumerics_and_star_dash_dot_underscore_stay_unencoded(self):
        kept = "azAZ09*-._"
        url = http.get("https://a.example/").query(kept, kept + " ~!'()+,;:@$/").url()
        self.assertEqual(url, "https://a.example/?azAZ09*-._=azAZ09*-._+%7E%21%27%28%29%2B%2C%3B%3A%40%24%2F")

    def test_query_values_are_text_with_bools_as_json_spells_them(self):
        url = http.get("https://a.example/x").query("n", 100).query("f", 1.5).query("t", True).query("no", False).url()
        self.assertEqual(url, "https://a.example/x?n=100&f=1.5&t=true&no=false")

    def test_the_docstring_example(self):
        self.assertEqual(http.get("https://api.example.com/search?x=1").query("q", "a&b c").url(),
                         "https://api.example.com/search?x=1&q=a%26b+c")

    def test_a_url_with_pairs_is_serialized_like_the_url_crate(self):
        self.assertEqual(http.get("HTTPS://API.example.com:443").query("a", 1).url(), "https://api.example.com/?a=1")
        self.assertEqual(http.get("https://a.example/x?").query("a", 1).url(), "https://a.example/x?a=1")
        self.assertEqual(http.get("https://a.example/x#top").query("a", 1).url(), "https://a.example/x?a=1#top")
        self.assertEqual(http.get("http://a.example:8080/x").query("a", 1).url(), "http://a.example:8080/x?a=1")

    def test_a_url_without_pairs_is_passed_through_for_the_host_to_judge(self):
        for url in ("HTTPS://API.example.com:443", "not a url", "https://a.example/x?"):
            self.assertEqual(http.get(url).url(), url)

    def test_query_on_an_unparsable_url_is_an_invalid_request(self):
        with self.assertRaises(http.InvalidRequest) as raised:
            http.get("not a url").query("a", "b").to_wire()
        self.assertIn("not a url", raised.exception.reason)
        self.assertEqual(str(raised.exception), "invalid request: invalid URL `not a url`: relative URL without a base")


class BuilderTests(unittest.TestCase):
    def test_a_plain_get(self):
        request = wire(http.get("https://api.example.com/"))
        self.assertEqual(request, wit_http.Request(
            method=wit_http.Method_Get(),
            url="https://api.example.com/",
            headers=[],
            body=None,
            secrets=[],
            options=wit_http.RequestOptions(timeout_ms=None, idempotent=None, retry=None, bucket=None),
        ))

    def test_methods(self):
        url = "https://api.example.com/"
        cases = [
            (http.get(url), wit_http.Method_Get()),
            (http.post(url), wit_http.Method_Post()),
            (http.put(url), wit_http.Method_Put()),
            (http.patch(url), wit_http.Method_Patch()),
            (http.delete(url), wit_http.Method_Delete()),
            (http.request("HEAD", url), wit_http.Method_Head()),
            (http.request("OPTIONS", url), wit_http.Method_Options()),
            (http.request("PROPFIND", url), wit_http.Method_Other("PROPFIND")),
            # Method tokens are case-sensitive.
            (http.request("get", url), wit_http.Method_Other("get")),
        ]
        for builder, method in cases:
            with self.subTest(builder.method):
                self.assertEqual(wire(builder).method, method)

    def test_headers_keep_order_and_repeats(self):
        request = wire(http.get("https://a.example/").header("Accept", "a").header("x-n", 3).header("accept", "b")
                       .header("x-flag", True))
        self.assertEqual(request.headers, [("Accept", "a"), ("x-n", "3"), ("accept", "b"), ("x-flag", "true")])

    def test_bearer_attaches_a_secret_by_name(self):
        request = wire(http.get("https://api.github.com/user").bearer("github_token"))
        self.assertEqual(request.secrets, [
            wit_secrets.SecretAttachment(name="github_token", placement=wit_secrets.Placement_Bearer()),
        ])
        # Nothing about the secret goes in the headers: the host attaches the value.
        self.assertEqual(request.headers, [])

    def test_every_placement_attaches_by_name(self):
        request = wire(
            http.get("https://a.example/")
            .secret(secrets.basic("pw", "alice"))
            .secret(secrets.header("key", "x-api-key"))
            .secret(secrets.query("key2", "api_key"))
            .bearer("tok")
        )
        self.assertEqual(request.secrets, [
            wit_secrets.SecretAttachment("pw", wit_secrets.Placement_Basic("alice")),
            wit_secrets.SecretAttachment("key", wit_secrets.Placement_Header("x-api-key")),
            wit_secrets.SecretAttachment("key2", wit_secrets.Placement_Query("api_key")),
            wit_secrets.SecretAttachment("tok", wit_secrets.Placement_Bearer()),
        ])
        with self.assertRaises(ValueError):
            secrets.SecretAttachment("x", "cookie").to_wire()

    def test_json_body_is_compact_utf8_and_sets_content_type_once(self):
        request = wire(http.post("https://api.example.com/").json({"a": 1, "b": ["é", None, True]}))
        self.assertEqual(request.body, '{"a":1,"b":["é",null,true]}'.encode("utf-8"))
        self.assertEqual(request.headers, [("content-type", "application/json")])

        request = wire(http.post("https://api.example.com/").header("Content-Type", "application/merge-patch+json")
                       .json({"a": 1}))
        self.assertEqual(request.body, b'{"a":1}')
        self.assertEqual(request.headers, [("Content-Type", "application/merge-patch+json")])

        request = wire(http.post("https://api.example.com/").json([1]).json({"b": 2}))
        self.assertEqual(request.body, b'{"b":2}')
        self.assertEqual(request.headers, [("content-type", "application/json")])

    def test_json_that_cannot_be_serialized_raises(self):
        with self.assertRaises(ValueError):
            http.post("https://a.example/").json(float("nan"))
        with self.assertRaises(TypeError):
            http.post("https://a.example/").json({"when": object()})

    def test_raw_bodies(self):
        self.assertEqual(wire(http.put("https://a.example/").body("é")).body, b"\xc3\xa9")
        self.assertEqual(wire(http.put("https://a.example/").body(b"\x00\xff")).body, b"\x00\xff")
        self.assertEqual(wire(http.put("https://a.example/").body(bytearray(b"ab"))).body, b"ab")

    def test_options(self):
        options = wire(http.get("https://a.example/").timeout(0.0025).idempotent(False).max_retries(0).bucket("search")).options
        self.assertEqual(options, wit_http.RequestOptions(
            timeout_ms=2, idempotent=False, retry=wit_http.RetryOverride(max_retries=0), bucket="search"))
        # Whole milliseconds, truncated as Rust's `Duration::as_millis` does.
        self.assertEqual(wire(http.get("https://a.example/").timeout(0.0029)).options.timeout_ms, 2)
        self.assertEqual(wire(http.get("https://a.example/").timeout(10)).options.timeout_ms, 10_000)
        self.assertEqual(wire(http.get("https://a.example/").timeout(-1)).options.timeout_ms, 0)

    def test_with_url_drops_pending_query_pairs_and_keeps_everything_else(self):
        first = (http.get("https://api.example.com/items").query("per_page", 100).header("accept", "application/json")
                 .bearer("token").max_retries(1))
        following = wire(first.with_url("https://api.example.com/items?page=2&per_page=100"))
        self.assertEqual(following.url, "https://api.example.com/items?page=2&per_page=100")
        self.assertEqual(following.headers, [("accept", "application/json")])
        self.assertEqual(following.secrets, [wit_secrets.SecretAttachment("token", wit_secrets.Placement_Bearer())])
        self.assertEqual(following.options.retry, wit_http.RetryOverride(max_retries=1))
        self.assertEqual(first.url(), "https://api.example.com/items?per_page=100")

    def test_builders_are_immutable(self):
        base = http.get("https://a.example/")
        derived = base.query("a", 1).header("h", "v").bearer("t").json({}).timeout(1).bucket("b")
        self.assertEqual(wire(base), wire(http.get("https://a.example/")))
        self.assertNotEqual(wire(derived), wire(base))

    def test_requests_style_keywords_match_the_builder(self):
        keywords = http.post("https://a.example/x", params={"q": "a b", "n": 2}, headers=[("accept", "j"), ("accept", "k")],
                             json={"z": 1}, bearer="tok", timeout=1.5)
        chained = (http.post("https://a.example/x").query("q", "a b").query("n", 2).header("accept", "j")
                   .header("accept", "k").json({"z": 1}).bearer("tok").timeout(1.5))
        self.assertEqual(wire(keywords), wire(chained))
        self.assertEqual(wire(keywords).url, "https://a.example/x?q=a+b&n=2")
        self.assertEqual(wire(http.put("https://a.example/", data="raw")).body, b"raw")
        self.assertIsNone(wire(http.get("https://a.example/", params=None, headers=None)).body)


class SendTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_send_returns_the_hosts_response_with_the_request_url(self):
        self.host.page("https://api.example.com/items?page=2", 201, '{"id": 7}', headers=[("ETag", "x")], attempts=3)
        response = http.post("https://api.example.com/items").query("page", 2).json({"a": 1}).bearer("tok").send()
        self.assertEqual((response.url, response.status, response.attempts), ("https://api.example.com/items?page=2", 201, 3))
        self.assertEqual(response.headers, [("ETag", "x")])
        self.assertEqual(response.body, b'{"id": 7}')
        self.assertEqual(response.json(), {"id": 7})
        self.assertEqual(response.header("etag"), "x")
        (request,) = self.host.requests
        self.assertEqual(request.body, b'{"a":1}')
        self.assertIsInstance(request.method, wit_http.Method_Post)

    def test_4xx_and_5xx_are_responses(self):
        self.host.page("https://a.example/", 429, "slow down")
        response = http.get("https://a.example/").send()
        self.assertEqual(response.status, 429)
        self.assertFalse(response.is_success)

    def test_an_unbuildable_request_never_reaches_the_host(self):
        with self.assertRaises(http.InvalidRequest):
            http.get("no scheme").query("a", 1).send()
        self.assertEqual(self.host.requests, [])

    def test_send_all_keeps_the_order_and_fails_each_request_alone(self):
        self.host.page("https://a.example/1", 200, "one")
        self.host.fail("https://a.example/2", wit_http.Error_Denied("a.example:443"))
        results = http.send_all([
            http.get("https://a.example/1"),
            http.get("https://a.example/2"),
            http.get("bad url").query("x", 1),
            http.get("https://a.example/3"),
        ])
        self.assertEqual([type(r).__name__ for r in results], ["Response", "Denied", "InvalidRequest", "Connection"])
        self.assertEqual((results[0].url, results[0].text), ("https://a.example/1", "one"))
        self.assertEqual(str(results[3]), "connection failed: no fake page at https://a.example/3")
        self.assertEqual([[r.url for r in call] for call in self.host.send_batch_calls],
                         [["https://a.example/1", "https://a.example/2", "https://a.example/3"]])
        self.assertEqual(http.send_all([]), [])
        self.assertEqual(len(self.host.send_batch_calls), 1)

    def test_a_batch_yields_each_result_as_it_completes(self):
        self.host.page("https://a.example/1", 200, "one")
        self.host.page("https://a.example/2", 200, "two")
        with http.Batch([http.get("https://a.example/1"), http.get("::").query("x", 1), http.get("https://a.example/2")]) as batch:
            results = list(batch)
        self.assertEqual([index for index, _ in results], [1, 2, 0])
        self.assertIsInstance(results[0][1], http.InvalidRequest)
        self.assertEqual([(r.url, r.text) for _, r in results[1:]], [("https://a.example/2", "two"), ("https://a.example/1", "one")])
        self.assertEqual(len(self.host.batches[0].requests), 2)
        self.assertTrue(self.host.batches[0].closed)

    def test_closing_a_batch_releases_it(self):
        batch = http.Batch([http.get("https://a.example/1")])
        batch.close()
        self.assertTrue(self.host.batches[0].closed)
        self.assertEqual(list(batch), [])


# For each case of the generated `http.Error` union: a wire value, the exception class the SDK
# must raise, its message (the Rust SDK's Display) and the attributes it must carry.
SECRET_ERRORS = {
    wit_secrets.Error_Unknown: (secrets.Unknown, "no secret is declared as `tok`", "name"),
    wit_secrets.Error_NotBound: (secrets.NotBound, "secret not bound to this destination: tok", "detail"),
    wit_secrets.Error_InvalidPlacement: (secrets.InvalidPlacement, "invalid secret placement: tok", "reason"),
    wit_secrets.Error_Unavailable: (secrets.Unavailable, "secret unavailable: tok", "reason"),
}
HTTP_ERRORS = [
    (wit_http.Error_Denied("evil.example:443"), http.Denied, "request denied: evil.example:443",
     {"destination": "evil.example:443"}),
    (wit_http.Error_InvalidRequest("bad header"), http.InvalidRequest, "invalid request: bad header",
     {"reason": "bad header"}),
    (wit_http.Error_Timeout(5), http.Timeout, "request timed out after 5 ms", {"ms": 5}),
    (wit_http.Error_RateLimited(250), http.RateLimited, "rate limited: the next slot is 250 ms away", {"ms": 250}),
    (wit_http.Error_RetriesExhausted(wit_http.RetriesExhausted(attempts=3, last_status=503, message="boom")),
     http.RetriesExhausted, "gave up after 3 attempts (last status 503): boom",
     {"attempts": 3, "last_status": 503, "message": "boom"}),
    (wit_http.Error_RetriesExhausted(wit_http.RetriesExhausted(attempts=2, last_status=None, message="reset")),
     http.RetriesExhausted, "gave up after 2 attempts: reset", {"attempts": 2, "last_status": None}),
    (wit_http.Error_BodyTooLarge(1024), http.BodyTooLarge, "response body exceeds the host's limit of 1024 bytes",
     {"limit": 1024}),
    (wit_http.Error_Connection("refused"), http.Connection, "connection failed: refused", {"reason": "refused"}),
] + [
    (wit_http.Error_Secret(case("tok")), http.Secret, "secret not attached: " + message, {})
    for case, (_, message, _) in SECRET_ERRORS.items()
]


class ErrorMappingTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_the_table_covers_every_generated_case(self):
        self.assertEqual({type(w) for w, *_ in HTTP_ERRORS}, set(typing.get_args(wit_http.Error)))
        self.assertEqual(set(SECRET_ERRORS), set(typing.get_args(wit_secrets.Error)))

    def test_each_wit_error_case_raises_its_exception_from_send(self):
        for wire_error, cls, message, attributes in HTTP_ERRORS:
            with self.subTest(wire_error):
                self.host.fail("https://a.example/", wire_error)
                with self.assertRaises(http.Error) as raised:
                    http.get("https://a.example/").send()
                error = raised.exception
                self.assertIs(type(error), cls)
                self.assertEqual(str(error), message)
                for name, value in attributes.items():
                    self.assertEqual(getattr(error, name), value, name)
                # And back: the exception raised out of `run` is the same wire value.
                self.assertEqual(error.to_wire(), wire_error)

    def test_a_secret_error_wraps_its_secrets_exception(self):
        for case, (cls, message, attribute) in SECRET_ERRORS.items():
            with self.subTest(case):
                error = http.Error.from_wire(wit_http.Error_Secret(case("tok")))
                self.assertIsInstance(error, http.Secret)
                self.assertIs(type(error.error), cls)
                self.assertIsInstance(error.error, secrets.Error)
                self.assertEqual(str(error.error), message)
                self.assertEqual(getattr(error.error, attribute), "tok")

    def test_an_unknown_case_becomes_a_connection_error(self):
        error = http.Error.from_wire(wit_http.Method_Get())
        self.assertIsInstance(error, http.Connection)
        self.assertTrue(str(error).startswith("connection failed: unrecognized error from the host: "), str(error))

    def test_the_host_raises_the_generated_err(self):
        # What `send` catches is the generated result wrapper, whose payload is the wire error.
        self.host.fail("https://a.example/", wit_http.Error_Timeout(1))
        with self.assertRaises(Err) as raised:
            self.host._send(wire(http.get("https://a.example/")))
        self.assertEqual(raised.exception.value, wit_http.Error_Timeout(1))


if __name__ == "__main__":
    unittest.main()
