"""The order page watches its order over the WebSocket API (issue 17, docs/push.md): the buyer keeps
the page open, pays a while later, and the code appears by itself; with the socket refused the page
polls; a wrong token, or another order's, watches nothing; a dropped socket is reconnected."""

import os
import re
import socket
import time

import boto3
import pytest
from playwright.sync_api import expect

from shared.adapters import connections
from tests.support import new_codes, poll

pytestmark = pytest.mark.e2e

CODE = re.compile(r"^CODE-[0-9A-F]{12}$")
# The buyer scans the QR code and pays on the phone while the page is open: long enough that a page
# which polled with backoff would be between polls (0.5 s × 1.5 …), short enough for the suite.
PAYING_TAKES_MS = 3000
# A socket opened from the page that watches one order with one token; resolves once the server
# closes it, with every message it got.
WATCH = """([url, orderId, token]) => new Promise((resolve) => {
  const ws = new WebSocket(url);
  const messages = [];
  ws.onopen = () => ws.send(JSON.stringify({action: "watch", order_id: orderId, token: token}));
  ws.onmessage = (event) => messages.push(JSON.parse(event.data));
  ws.onclose = () => resolve(messages);
})"""
# GET /api/orders/{id} the page made in a time window (performance.now() values), from its own clock.
READS_BETWEEN = """([after, before]) => performance.getEntriesByType("resource")
  .filter((e) => e.name.includes("/api/orders/") && e.startTime > after && e.startTime < before).length"""


def open_order(browse, shop, order: dict, token: str | None = None):
    page = browse()
    page.goto(f"{shop.url}/o/{order['order_id']}?lang=en#token={token or order['access_token']}")
    return page


def pay(shop, order: dict) -> None:
    """The sandbox provider takes the payment and sends its signed callback."""
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", retry=False)


def ws_url(page) -> str:
    url = page.locator("#page").get_attribute("data-ws-url")
    assert url and url.startswith("ws://127.0.0.1:"), url
    return url


def origin(url: str) -> str:
    return re.match(r"^wss?://[^/]+", url).group(0)  # type: ignore[union-attr]


def watchers(order_id: str) -> list[str]:
    return connections().watchers(order_id, int(time.time()))


def test_the_code_is_pushed_to_the_open_page_when_the_callback_comes_later(shop, browse):
    order = shop.buy(shop.new_product(new_codes(1)))
    page = open_order(browse, shop, order)
    expect(page.locator("#status")).to_have_text("Waiting for your payment")
    expect(page.locator("body")).to_have_attribute("data-live", "push")
    page.evaluate("window.__stillHere = true")
    watching_at = page.evaluate("performance.now()")

    page.wait_for_timeout(PAYING_TAKES_MS)  # the buyer paying, not a wait for the page
    paid_at = page.evaluate("performance.now()")
    pay(shop, order)

    expect(page.locator("#code-0")).to_have_text(CODE)
    expect(page.locator("#status")).to_have_text("Delivered")
    assert page.evaluate("window.__stillHere") is True  # no reload
    assert page.evaluate(READS_BETWEEN, [watching_at, paid_at]) == 0  # no polling while it watched
    # PAID is shown from its message: the one read after paying is the one that brings the codes.
    assert page.evaluate(READS_BETWEEN, [paid_at, page.evaluate("performance.now()")]) == 1
    # Settled: the page follows it no more.
    page.wait_for_function("() => document.body.dataset.live === undefined")
    policy = shop.http.get(f"{shop.url}/o/{order['order_id']}").headers["Content-Security-Policy"]
    assert f"connect-src 'self' {origin(ws_url(page))};" in policy  # that origin and no other
    assert page.evaluate("window.__violations") == []
    assert poll(lambda: watchers(order["order_id"]) == [])  # the page closed its socket


def test_an_order_delivered_before_the_page_opens_shows_its_code_at_once_without_a_socket(shop, browse):
    order = shop.buy(shop.new_product(new_codes(1)))
    pay(shop, order)
    shop.wait_for(order, "DELIVERED")
    page = browse()
    sockets: list = []
    page.on("websocket", lambda ws: sockets.append(ws))

    page.goto(f"{shop.url}/o/{order['order_id']}?lang=en#token={order['access_token']}")

    expect(page.locator("#code-0")).to_have_text(CODE)
    assert sockets == []


def _serve_ws_url(page, shop, replace) -> None:
    """Serve the order page with its WebSocket URL (in the page and its CSP) passed through `replace`."""

    def handle(route):
        response = route.fetch()
        headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        found = re.search(r'data-ws-url="([^"]+)"', response.text())
        assert found, "the order page names no WebSocket URL"
        url = found.group(1)
        headers["content-security-policy"] = headers["content-security-policy"].replace(
            origin(url), origin(replace(url))
        )
        route.fulfill(response=response, body=response.text().replace(url, replace(url)), headers=headers)

    page.route(re.compile(re.escape(shop.url) + r"/o/.*"), handle)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once closed: connections are refused


@pytest.mark.parametrize("how", ["refused", "silent"])
def test_with_the_socket_refused_or_silent_the_page_polls_and_still_shows_the_code(shop, browse, how):
    order = shop.buy(shop.new_product(new_codes(1)))
    page = browse()
    if how == "refused":
        port = _closed_port()
        _serve_ws_url(page, shop, lambda url: re.sub(r":\d+/", f":{port}/", url))
    else:  # the socket opens but never answers the watch: the page gives up on it and polls
        page.route_web_socket(re.compile(r"^ws://.*"), lambda ws: None)
    page.goto(f"{shop.url}/o/{order['order_id']}?lang=en#token={order['access_token']}")
    expect(page.locator("#status")).to_have_text("Waiting for your payment")
    expect(page.locator("body")).to_have_attribute("data-live", "poll")

    pay(shop, order)

    expect(page.locator("#code-0")).to_have_text(CODE)
    assert watchers(order["order_id"]) == []
    assert page.evaluate("window.__violations") == []


def test_a_wrong_token_or_another_orders_token_watches_nothing(shop, browse):
    product_id = shop.new_product(new_codes(2))
    order, other = shop.buy(product_id), shop.buy(product_id)
    wrong = "x" * len(order["access_token"])
    strangers = [open_order(browse, shop, order, token) for token in (wrong, other["access_token"])]
    for page in strangers:
        expect(page.locator("#explain")).to_have_text("No such order, or this link is no longer valid.")
    url = ws_url(strangers[0])

    # The server says the same to a wrong token, another order's token and an unknown order, and closes.
    refusals = [
        strangers[0].evaluate(WATCH, [url, order["order_id"], wrong]),
        strangers[0].evaluate(WATCH, [url, order["order_id"], other["access_token"]]),
        strangers[0].evaluate(WATCH, [url, "ord_" + "0" * 20, order["access_token"]]),
    ]
    assert [[(m["type"], m.get("code")) for m in got] for got in refusals] == [
        [("error", "order_not_found")]
    ] * 3
    assert watchers(order["order_id"]) == []

    buyer = open_order(browse, shop, order)
    expect(buyer.locator("body")).to_have_attribute("data-live", "push")
    pay(shop, order)
    expect(buyer.locator("#code-0")).to_have_text(CODE)  # delivered and pushed to its own page; the others:
    for page in strangers:
        expect(page.locator("#codes li")).to_have_count(0)
        assert page.locator("#delivered").is_hidden()
        assert page.evaluate("document.body.dataset.live") is None  # stopped: nothing to follow


def test_the_page_reconnects_after_the_server_drops_its_socket(shop, browse):
    order = shop.buy(shop.new_product(new_codes(1)))
    page = open_order(browse, shop, order)
    expect(page.locator("body")).to_have_attribute("data-live", "push")
    (first,) = poll(lambda: watchers(order["order_id"]))
    page.evaluate("window.__stillHere = true")

    # What API Gateway does on DeleteConnection (and on its idle or two-hour limits): the socket closes.
    management = boto3.client("apigatewaymanagementapi", endpoint_url=os.environ["WEBSOCKET_ENDPOINT"])
    management.delete_connection(ConnectionId=first)

    (second,) = poll(lambda: [c for c in watchers(order["order_id"]) if c != first])
    expect(page.locator("body")).to_have_attribute("data-live", "push")
    pay(shop, order)
    expect(page.locator("#code-0")).to_have_text(CODE)
    assert page.evaluate("window.__stillHere") is True
    assert second != first
