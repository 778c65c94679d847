"""The paginators and their loop guards, through the stub bindings and a fake host; the first
tests of each class are ports of the Rust SDK's paginate tests."""

import json
import unittest

from .support import FakeHost, outcomes, wit_http, wit_secrets

from apiary_sdk import http
from apiary_sdk.http import Response
from apiary_sdk.paginate import (
    DEFAULT_MAX_PAGES,
    CursorPages,
    LinkPages,
    LoopDetected,
    NumberedPages,
    PageError,
    TooManyPages,
    UnexpectedStatus,
)


def json_next(page):
    """The `next` member of a JSON page: the cursor of the Rust cursor tests."""
    return page.json().get("next")


def with_cursor(first, cursor):
    return first.query("cursor", cursor)


class LinkPagesTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_link_pages_follow_next_links_as_given_with_the_same_settings(self):
        self.host.page("https://api.example.com/items?per_page=2", 200, "p1", link="</items?page=2&per_page=2>; rel=next")
        self.host.page("https://api.example.com/items?page=2&per_page=2", 200, "p2", link="<https://cdn.example.com/p3>; rel=next")
        self.host.page("https://cdn.example.com/p3", 200, "p3")
        first = http.get("https://api.example.com/items").query("per_page", 2).header("accept", "x").bearer("tok")
        pages = LinkPages(first)
        self.assertEqual(outcomes(pages), [("ok", "p1"), ("ok", "p2"), ("ok", "p3")])
        self.assertEqual(pages.pages, 3)
        self.assertEqual(self.host.urls, [
            "https://api.example.com/items?per_page=2",
            "https://api.example.com/items?page=2&per_page=2",
            "https://cdn.example.com/p3",
        ])
        bearer = wit_secrets.SecretAttachment(name="tok", placement=wit_secrets.Placement_Bearer())
        for request in self.host.requests:
            self.assertEqual(request.headers, [("accept", "x")])
            self.assertEqual(request.secrets, [bearer])
            self.assertIsInstance(request.method, wit_http.Method_Get)

    def test_link_pages_stop_with_an_error_when_a_next_link_repeats(self):
        self.host.page("https://api.example.com/a", 200, "a", link="</b>; rel=next")
        self.host.page("https://api.example.com/b", 200, "b", link="<HTTPS://API.example.com/a>; rel=next")
        self.assertEqual(outcomes(LinkPages(http.get("https://api.example.com/a"))), [
            ("ok", "a"),
            ("ok", "b"),
            ("err", "pagination loop: `https://api.example.com/a` was already fetched"),
        ])
        self.assertEqual(len(self.host.requests), 2)

    def test_the_loop_error_comes_after_the_last_good_page_and_ends_the_walk(self):
        self.host.page("https://api.example.com/a", 200, "a", link="</a>; rel=next")
        pages = LinkPages(http.get("https://api.example.com/a"))
        self.assertEqual(next(pages).text, "a")
        with self.assertRaises(LoopDetected) as raised:
            next(pages)
        self.assertEqual(raised.exception.next, "https://api.example.com/a")
        self.assertIsInstance(raised.exception, PageError)
        self.assertEqual(list(pages), [])
        self.assertEqual((pages.pages, len(self.host.requests)), (1, 1))

    def test_a_next_link_back_to_the_first_url_with_its_query_pairs_is_a_loop(self):
        self.host.page("https://api.example.com/items?per_page=2", 200, "p1", link="</items?page=2&per_page=2>; rel=next")
        self.host.page("https://api.example.com/items?page=2&per_page=2", 200, "p2",
                       link="<https://API.example.com:443/items?per_page=2>; rel=next")
        self.assertEqual(outcomes(LinkPages(http.get("https://api.example.com/items").query("per_page", 2))), [
            ("ok", "p1"),
            ("ok", "p2"),
            ("err", "pagination loop: `https://api.example.com/items?per_page=2` was already fetched"),
        ])

    def test_link_pages_stop_at_the_page_limit_and_on_a_bad_status(self):
        self.host.page("https://api.example.com/1", 200, "1", link="</2>; rel=next")
        self.host.page("https://api.example.com/2", 200, "2", link="</3>; rel=next")
        self.host.page("https://api.example.com/3", 503, "down")
        limited = LinkPages(http.get("https://api.example.com/1"), max_pages=1)
        self.assertEqual(outcomes(limited), [
            ("ok", "1"),
            ("err", "more than 1 pages: stopped (raise the page limit if that is expected)"),
        ])
        self.assertEqual((limited.pages, limited.max_pages, len(self.host.requests)), (1, 1, 1))

        failing = outcomes(LinkPages(http.get("https://api.example.com/1")))
        self.assertEqual(failing[-1], ("err", "unexpected status 503 from https://api.example.com/3"))
        self.assertEqual(len(failing), 3)

    def test_the_page_limit_error_and_the_status_error_carry_their_details(self):
        self.host.page("https://api.example.com/1", 200, "1", link="</2>; rel=next")
        self.host.page("https://api.example.com/2", 404, "gone", headers=[("x-request-id", "7")])
        pages = LinkPages(http.get("https://api.example.com/1"), max_pages=1)
        next(pages)
        with self.assertRaises(TooManyPages) as raised:
            next(pages)
        self.assertEqual(raised.exception.max_pages, 1)

        pages = LinkPages(http.get("https://api.example.com/1"))
        next(pages)
        with self.assertRaises(UnexpectedStatus) as raised:
            next(pages)
        response = raised.exception.response
        self.assertEqual((response.status, response.text, response.header("x-request-id")), (404, "gone", "7"))
        self.assertEqual(pages.pages, 1)
        self.assertEqual(list(pages), [])

    def test_no_page_is_fetched_with_a_limit_of_zero(self):
        pages = LinkPages(http.get("https://api.example.com/1"), max_pages=0)
        with self.assertRaises(TooManyPages):
            next(pages)
        self.assertEqual(self.host.requests, [])

    def test_the_default_page_limit(self):
        self.assertEqual(DEFAULT_MAX_PAGES, 10_000)
        self.assertEqual(LinkPages(http.get("https://api.example.com/")).max_pages, 10_000)

    def test_a_failed_request_raises_its_http_error_and_ends_the_walk(self):
        self.host.page("https://api.example.com/1", 200, "1", link="</2>; rel=next")
        self.host.fail("https://api.example.com/2", wit_http.Error_Timeout(30_000))
        pages = LinkPages(http.get("https://api.example.com/1"))
        self.assertEqual(next(pages).text, "1")
        with self.assertRaises(http.Timeout) as raised:
            next(pages)
        self.assertEqual(raised.exception.ms, 30_000)
        self.assertEqual(list(pages), [])

    def test_a_first_request_whose_url_cannot_be_built_fails_on_the_first_page(self):
        pages = LinkPages(http.get("not a url").query("a", "b"))
        with self.assertRaises(http.InvalidRequest):
            next(pages)
        self.assertEqual(self.host.requests, [])

    def test_a_fake_sender_replaces_the_host(self):
        # The README's native-testing recipe: `send=` takes each page's RequestBuilder.
        sent = []

        def send(request):
            sent.append(request)
            link = [("link", "</b>; rel=next")] if request.url().endswith("/a") else []
            return Response(request.url(), 200, link, request.url().encode())

        pages = LinkPages(http.get("https://api.example.com/a").header("accept", "x"), send=send)
        self.assertEqual(outcomes(pages), [("ok", "https://api.example.com/a"), ("ok", "https://api.example.com/b")])
        self.assertEqual([request.headers for request in sent], [[("accept", "x")]] * 2)
        self.assertEqual(self.host.requests, [])


class CursorPagesTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    def test_cursor_pages_apply_each_cursor_to_the_first_request(self):
        self.host.page("https://api.example.com/list?limit=2", 200, '{"next": "c2"}')
        self.host.page("https://api.example.com/list?limit=2&cursor=c2", 200, '{"next": "c3"}')
        self.host.page("https://api.example.com/list?limit=2&cursor=c3", 200, '{"next": ""}')
        pages = CursorPages(http.get("https://api.example.com/list").query("limit", 2), json_next, with_cursor)
        self.assertEqual(len(outcomes(pages)), 3)
        self.assertEqual(pages.pages, 3)
        # Each cursor replaces the last: parameters never pile up.
        self.assertEqual(self.host.urls, [
            "https://api.example.com/list?limit=2",
            "https://api.example.com/list?limit=2&cursor=c2",
            "https://api.example.com/list?limit=2&cursor=c3",
        ])

    def test_no_cursor_ends_the_walk(self):
        self.host.page("https://api.example.com/list", 200, '{"next": "c2"}')
        self.host.page("https://api.example.com/list?cursor=c2", 200, "{}")
        pages = CursorPages(http.get("https://api.example.com/list"), json_next, with_cursor)
        self.assertEqual(len(outcomes(pages)), 2)
        self.assertEqual(len(self.host.requests), 2)

    def test_cursor_pages_stop_with_an_error_when_a_cursor_repeats(self):
        self.host.page("https://api.example.com/list", 200, "c1")
        self.host.page("https://api.example.com/list?cursor=c1", 200, "c1")
        pages = CursorPages(http.get("https://api.example.com/list"), lambda page: page.text, with_cursor)
        self.assertEqual(outcomes(pages), [
            ("ok", "c1"),
            ("ok", "c1"),
            ("err", "pagination loop: `c1` was already fetched"),
        ])
        self.assertEqual(len(self.host.requests), 2)

    def test_cursor_pages_stop_at_the_page_limit(self):
        for n in range(1, 5):
            self.host.page(f"https://api.example.com/list?cursor={n}" if n > 1 else "https://api.example.com/list",
                           200, json.dumps({"next": str(n + 1)}))
        pages = CursorPages(http.get("https://api.example.com/list"), json_next, with_cursor, max_pages=3)
        self.assertEqual(outcomes(pages)[-1],
                         ("err", "more than 3 pages: stopped (raise the page limit if that is expected)"))
        self.assertEqual((pages.pages, len(self.host.requests)), (3, 3))

    def test_a_cursor_that_is_not_text_is_applied_as_text(self):
        self.host.page("https://api.example.com/list", 200, '{"next": 20}')
        self.host.page("https://api.example.com/list?offset=20", 200, '{"next": null}')
        seen = []

        def apply(first, cursor):
            seen.append(cursor)
            return first.query("offset", cursor)

        self.assertEqual(len(outcomes(CursorPages(http.get("https://api.example.com/list"), json_next, apply))), 2)
        self.assertEqual(seen, ["20"])

    def test_a_bad_status_on_a_cursor_page(self):
        self.host.page("https://api.example.com/list", 500, "oops")
        pages = CursorPages(http.get("https://api.example.com/list"), json_next, with_cursor)
        self.assertEqual(outcomes(pages), [("err", "unexpected status 500 from https://api.example.com/list")])
        self.assertEqual(pages.pages, 0)


class NumberedPagesTests(unittest.TestCase):
    def setUp(self):
        self.host = FakeHost(self)

    @staticmethod
    def page_request(number):
        return http.get("https://api.example.com/items").query("page", number).bearer("tok")

    def test_pages_come_out_in_order_though_each_window_completes_in_reverse(self):
        for n in range(2, 7):
            self.host.page(f"https://api.example.com/items?page={n}", 200, f"p{n}")
        pages = list(NumberedPages(range(2, 7), self.page_request, width=2))
        self.assertEqual([(n, r.text) for n, r in pages], [(2, "p2"), (3, "p3"), (4, "p4"), (5, "p5"), (6, "p6")])
        self.assertEqual([r.url for _, r in pages], [f"https://api.example.com/items?page={n}" for n in range(2, 7)])
        # Three windows of at most two, each a streamed batch released after use.
        self.assertEqual([[r.url[-1] for r in b.requests] for b in self.host.batches], [["2", "3"], ["4", "5"], ["6"]])
        self.assertTrue(all(batch.closed for batch in self.host.batches))
        self.assertEqual(self.host.send_batch_calls, [])

    def test_failed_pages_are_results_not_raised(self):
        self.host.page("https://api.example.com/items?page=1", 200, "p1")
        self.host.fail("https://api.example.com/items?page=2", wit_http.Error_RateLimited(1500))
        self.host.page("https://api.example.com/items?page=3", 200, "p3")

        def request_for(number):
            return self.page_request(number) if number != 4 else http.get("::bad").query("page", 4)

        results = list(NumberedPages(range(1, 5), request_for, width=8))
        self.assertEqual([n for n, _ in results], [1, 2, 3, 4])
        self.assertEqual(results[0][1].text, "p1")
        self.assertIsInstance(results[1][1], http.RateLimited)
        self.assertEqual(results[1][1].ms, 1500)
        self.assertEqual(results[2][1].text, "p3")
        self.assertIsInstance(results[3][1], http.InvalidRequest)
        # The unbuildable page never reached the host.
        self.assertEqual(len(self.host.batches), 1)
        self.assertEqual(len(self.host.batches[0].requests), 3)

    def test_the_width_is_clamped_to_one_through_256(self):
        for n in range(1, 301):
            self.host.page(f"https://api.example.com/items?page={n}", 200, "x")
        self.assertEqual(len(list(NumberedPages(range(1, 4), self.page_request, width=0))), 3)
        self.assertEqual([len(b.requests) for b in self.host.batches], [1, 1, 1])
        self.host.batches.clear()
        self.assertEqual(len(list(NumberedPages(range(1, 301), self.page_request, width=1000))), 300)
        self.assertEqual([len(b.requests) for b in self.host.batches], [256, 44])

    def test_an_empty_range_sends_nothing(self):
        self.assertEqual(list(NumberedPages(range(5, 5), self.page_request)), [])
        self.assertEqual(self.host.batches, [])


if __name__ == "__main__":
    unittest.main()
