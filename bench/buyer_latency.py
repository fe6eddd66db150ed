"""What the buyer sees, in Chromium on the local runtime (issue 17): payment callback -> the code on
the order page that was open all along.

Each buyer opens the order page of a new order, pays `wait` seconds later (the sandbox provider's
signed callback) and the page shows the code by itself. Measured from just before the callback is
sent (this process's wall clock) to the moment the page inserted the code into its DOM (a
MutationObserver's `performance.timeOrigin + performance.now()`, mapped to this process's clock by
a round trip when the page opened). The orders of one wait run at the same time, each page in its
own browser context, opened `--spacing` (1 s) apart: the whole local runtime is one process, and
pages opening (each a page, a read, a `$connect` and a `watch`) while others pay compete with the
payments for its CPU; 20 pages 0.25 s apart paying after 2 s measured the local runtime's queue.
Where the time went, per order: callback -> `order.delivered` in the order's history (the server),
-> the socket's last message before the code at the page, -> the code in the DOM (the re-read).

`--poll-only` serves the page without its WebSocket URL: the page polls (at most 1 s apart while the
order is unsettled), as it does when the socket is refused.

    .venv/bin/python -m bench.buyer_latency [--waits 2,20,45] [--orders 20] [--poll-only]
"""

import argparse
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

import requests
from playwright.sync_api import Browser, BrowserContext, Page, Route, sync_playwright

from bench.latency import percentile, summary
from bench.local import make_product, start_runtime
from infra.local.runtime import LocalRuntime

CHROMIUM = os.environ.get("MIAOFA_CHROMIUM", "/usr/bin/chromium")
# On the page's clock (ms since the epoch, sub-millisecond): the socket's last `order` message before
# the code appeared (PAID's or DELIVERED's: the re-read on PAID may find it delivered) and the code's
# appearance.
RECORD_CODE = """
const NativeWebSocket = window.WebSocket;
window.__pushAt = null;
window.WebSocket = function (...args) {
  const socket = new NativeWebSocket(...args);
  socket.addEventListener("message", (event) => {
    if (window.__codeAt === null && JSON.parse(event.data).type === "order") {
      window.__pushAt = performance.timeOrigin + performance.now();
    }
  });
  return socket;
};
window.__codeAt = null;
new MutationObserver((changes, observer) => {
  if (document.getElementById("code-0")) {
    window.__codeAt = performance.timeOrigin + performance.now();
    observer.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""
PAGE_CLOCK = "performance.timeOrigin + performance.now()"
# Every buyer's page connects from 127.0.0.1: the per-client cap on sockets lifted (as the per-client
# caps of the HTTP routes are, bench/local.py).
ONE_ADDRESS_WATCHERS = {"SOCKET_CONNECTIONS_PER_CLIENT": "1000"}


@dataclass
class Buyer:
    order: dict
    context: BrowserContext
    page: Page
    offset_ms: float = 0.0  # page clock - this process's clock
    sent_at: float = 0.0  # this process's wall clock, s, just before the callback
    paid: threading.Event = field(default_factory=threading.Event)


def without_websocket(route: Route) -> None:
    """The order page as it is when no socket can be had: no WebSocket URL, so it polls."""
    response = route.fetch()
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    body = re.sub(r' data-ws-url="[^"]*"', "", response.text())
    route.fulfill(response=response, body=body, headers=headers)


def open_page(browser: Browser, url: str, order: dict, poll_only: bool) -> Buyer:
    context = browser.new_context()
    context.add_init_script(RECORD_CODE)
    if poll_only:
        context.route(re.compile(re.escape(url) + r"/o/.*"), without_websocket)
    page = context.new_page()
    page.goto(f"{url}/o/{order['order_id']}#token={order['access_token']}")
    page.wait_for_selector("body[data-live]", state="attached")
    before = time.time()
    page_ms = page.evaluate(PAGE_CLOCK)
    after = time.time()
    return Buyer(order, context, page, offset_ms=page_ms - (before + after) / 2 * 1000)


def pay_later(runtime: LocalRuntime, buyer: Buyer, wait: float) -> threading.Timer:
    def pay() -> None:
        order = buyer.order
        buyer.sent_at = time.time()
        assert runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY", retry=False)
        buyer.paid.set()

    timer = threading.Timer(wait, pay)
    timer.start()
    return timer


def measure(
    runtime: LocalRuntime,
    browser: Browser,
    product_id: str,
    wait: float,
    orders: int,
    spacing: float,
    poll_only: bool,
) -> dict[str, list[float]]:
    """Seconds from the callback to the code visible, and the steps on the way, one per order."""
    assert runtime.info is not None
    url = runtime.info.url
    created = [
        requests.post(
            f"{url}/api/orders",
            json={"product_id": product_id, "quantity": 1, "email": "bench@example.com"},
            timeout=30,
        ).json()
        for _ in range(orders)
    ]
    buyers, timers = [], []
    for order in created:
        opened = time.monotonic()
        buyer = open_page(browser, url, order, poll_only)
        buyers.append(buyer)
        timers.append(pay_later(runtime, buyer, wait))
        time.sleep(max(0.0, spacing - (time.monotonic() - opened)))
    hidden = sum(b.page.evaluate("document.visibilityState") != "visible" for b in buyers)
    if hidden:
        print(f"warning: {hidden} pages hidden (their timers may be throttled)")
    samples: dict[str, list[float]] = {"visible": [], "delivered": [], "pushed": []}
    for buyer in buyers:
        buyer.page.wait_for_function("() => window.__codeAt !== null", timeout=(wait + 60) * 1000)
        code_at_ms, push_at_ms = buyer.page.evaluate("[window.__codeAt, window.__pushAt]")
        assert buyer.paid.wait(30), f"order {buyer.order['order_id']}: callback not accepted"
        samples["visible"].append((code_at_ms - buyer.offset_ms) / 1000 - buyer.sent_at)
        samples["delivered"].append(delivered_at(url, buyer.order) - buyer.sent_at)
        if push_at_ms is not None:
            samples["pushed"].append((push_at_ms - buyer.offset_ms) / 1000 - buyer.sent_at)
    for timer in timers:
        timer.join()
    for buyer in buyers:
        buyer.context.close()
    return samples


def delivered_at(url: str, order: dict) -> float:
    """When the order's history says it was delivered (s since the epoch)."""
    body = requests.get(
        f"{url}/api/orders/{order['order_id']}",
        headers={"Authorization": f"Bearer {order['access_token']}"},
        timeout=30,
    ).json()
    return next(
        datetime.fromisoformat(e["at"]).timestamp() for e in body["events"] if e["type"] == "order.delivered"
    )


def run(waits: list[float], orders: int, spacing: float, poll_only: bool) -> None:
    runtime = start_runtime(environment=ONE_ADDRESS_WATCHERS)
    try:
        product_id = make_product(runtime, orders * len(waits) + 1)
        with sync_playwright() as playwright:
            # Playwright's Chromium flags keep background pages' timers unthrottled: every buyer watches.
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            # Warm-up: the first imports and connections.
            measure(runtime, browser, product_id, 1, 1, spacing, poll_only)
            results = {
                wait: measure(runtime, browser, product_id, wait, orders, spacing, poll_only)
                for wait in waits
            }
            browser.close()
    finally:
        runtime.stop()
    mode = "polling only (no WebSocket URL)" if poll_only else "WebSocket, polling as fallback"
    print(f"Chromium on the local runtime, {mode}; {orders} orders per wait, opened {spacing} s apart (ms)\n")
    print("| callback -> | n | p50 | p99 | max |\n|---|---|---|---|---|")
    for wait, samples in results.items():
        print(summary(f"code visible, paid after {wait:g} s", samples["visible"]))
        print(summary("  DELIVERED (server)", samples["delivered"]))
        if samples["pushed"]:
            print(summary("  the push at the page", samples["pushed"]))
    p99 = {f"{wait:g}": round(percentile(s["visible"], 99) * 1000, 1) for wait, s in results.items()}
    print(
        "\n" + json.dumps({"mode": "poll" if poll_only else "push", "p99_callback_to_code_visible_ms": p99})
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--waits", default="2,20,45", help="seconds between opening the page and paying, comma-separated"
    )
    parser.add_argument("--orders", type=int, default=20, help="orders per wait, run at the same time")
    parser.add_argument("--spacing", type=float, default=1.0, help="seconds between opening two pages")
    parser.add_argument(
        "--poll-only", action="store_true", help="no WebSocket: the page polls (the before figures)"
    )
    args = parser.parse_args()
    run([float(w) for w in args.waits.split(",")], args.orders, args.spacing, args.poll_only)
