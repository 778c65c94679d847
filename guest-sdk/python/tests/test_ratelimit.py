"""`ratelimit` over the stub bindings and a fake host: bucket state, waiting for capacity, and
the wait the host refuses as `RateLimited`."""

import dataclasses
import unittest

from .support import Err, FakeHost, wit_http, wit_ratelimit, wit_types

import apiary_sdk
from apiary_sdk import http, ratelimit


class StateTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_the_state_of_a_bucket_for_a_secret(self):
        self.host.bucket("api.github.com", "github_token", remaining=42, wait_ms=0)
        self.host.bucket("api.github.com", None, remaining=0, wait_ms=1500)
        self.assertEqual(ratelimit.state("api.github.com", "github_token"), ratelimit.BucketState(42, 0))
        self.assertEqual(ratelimit.state("api.github.com"), ratelimit.BucketState(remaining=0, wait_ms=1500))
        self.assertEqual(self.host.ratelimit_calls, [("state", "api.github.com", "github_token"),
                                                     ("state", "api.github.com", None)])

    def test_a_bucket_without_a_declared_limit_has_no_remaining_count(self):
        state = ratelimit.state("search")
        self.assertIsNone(state.remaining)
        self.assertEqual(state.wait_ms, 0)

    def test_the_state_is_the_sdks_own_frozen_dataclass(self):
        state = ratelimit.state("api.github.com", "github_token")
        self.assertIsInstance(state, ratelimit.BucketState)
        self.assertNotIsInstance(state, wit_ratelimit.BucketState)
        self.assertEqual([field.name for field in dataclasses.fields(state)], ["remaining", "wait_ms"])
        with self.assertRaises(dataclasses.FrozenInstanceError):
            state.wait_ms = 1


class WaitTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_returns_the_milliseconds_waited(self):
        self.host.bucket("api.github.com", "github_token", remaining=0, wait_ms=250)
        self.assertEqual(ratelimit.wait("api.github.com", "github_token", max_ms=1000), 250)
        self.assertEqual(ratelimit.wait("idle"), 0)
        self.assertEqual(self.host.ratelimit_calls, [("wait", "api.github.com", "github_token", 1000),
                                                     ("wait", "idle", None, 60_000)])

    def test_the_default_limit_is_a_minute(self):
        self.assertEqual(ratelimit.DEFAULT_MAX_MS, 60_000)
        self.host.bucket("b", wait_ms=60_000)
        self.assertEqual(ratelimit.wait("b"), 60_000)
        self.host.bucket("b", wait_ms=60_001)
        with self.assertRaises(ratelimit.RateLimited):
            ratelimit.wait("b")

    def test_a_longer_wait_raises_rate_limited_with_the_wait_needed(self):
        self.host.bucket("api.github.com", "github_token", remaining=0, wait_ms=90_000)
        with self.assertRaises(http.RateLimited) as raised:
            ratelimit.wait("api.github.com", "github_token", max_ms=5000)
        error = raised.exception
        self.assertIs(ratelimit.RateLimited, http.RateLimited)
        self.assertIsInstance(error, http.Error)
        self.assertEqual(error.ms, 90_000)
        self.assertEqual(str(error), "rate limited: the next slot is 90000 ms away")
        self.assertIsNone(error.__cause__)
        self.assertTrue(error.__suppress_context__)

    def test_max_ms_is_sent_as_a_u64(self):
        self.host.bucket("b", wait_ms=0)
        for given, sent in ((-5, 0), (0, 0), (2.9, 2), (1 << 70, (1 << 64) - 1), (True, 1)):
            with self.subTest(given):
                ratelimit.wait("b", max_ms=given)
                self.assertEqual(self.host.ratelimit_calls[-1], ("wait", "b", None, sent))

    def test_rate_limited_out_of_run_fails_it_with_the_http_case(self):
        self.host.bucket("b", wait_ms=7)

        class Waits(apiary_sdk.Plugin):
            def run(self, operation, input):
                ratelimit.wait("b", max_ms=0)

        with self.assertRaises(Err) as raised:
            apiary_sdk.export(Waits)().run("list", "{}")
        self.assertEqual(raised.exception.value, wit_types.RunError_Http(wit_http.Error_RateLimited(7)))


class ExportTests(unittest.TestCase):
    def test_the_module_is_exported_like_the_other_capabilities(self):
        self.assertIs(apiary_sdk.ratelimit, ratelimit)
        self.assertIn("ratelimit", apiary_sdk.__all__)
        for name in ratelimit.__all__:
            self.assertTrue(hasattr(ratelimit, name), name)


if __name__ == "__main__":
    unittest.main()
