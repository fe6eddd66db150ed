"""Latency on the local runtime: checkout (POST /api/orders) and payment callback -> DELIVERED.

Callback -> DELIVERED runs from just before the provider sends its signed callback to the
`order.delivered` entry of the order's history (one clock: same machine). It covers signature
check, the PAID write, the delivery queue, the poller, binding the codes and the DELIVERED write.

    .venv/bin/python -m bench.latency [--orders 200] [--payer] [--device]

`--payer`: each payment names its payer (a new one per order, as honest buyers), so delivery's risk
screening counts it on the payer's counter (docs/risk.md). `--device`: each checkout sends a device
id (a new one per order, as the product page's script does for honest buyers), so the checkout's
screening counts it on the device's counter. The AWS requests a checkout makes are counted on the
gateway's threads while it runs (nothing else uses them then: orders go one at a time).
"""

import argparse
import json
import statistics
import time
from datetime import datetime

import requests

from bench.local import make_product, start_runtime
from bench.requests_counter import RequestCounter


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def wait_delivered(http: requests.Session, url: str, order: dict, seconds: float = 10) -> dict:
    """The order as its buyer reads it, polled every 5 ms until DELIVERED (SystemExit past `seconds`)."""
    headers = {"Authorization": f"Bearer {order['access_token']}"}
    deadline = time.monotonic() + seconds
    while True:
        body = http.get(f"{url}/api/orders/{order['order_id']}", headers=headers).json()
        if body["status"] == "DELIVERED":
            return dict(body)
        if time.monotonic() > deadline:
            raise SystemExit(f"order {order['order_id']} not delivered within {seconds:g} s")
        time.sleep(0.005)


def summary(name: str, samples_s: list[float]) -> str:
    ms = [s * 1000 for s in samples_s]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {percentile(ms, 99):.1f} | {max(ms):.1f} |"


def run(orders: int, warmup: int, payer: bool = False, device: bool = False) -> None:
    counter = RequestCounter()
    counter.install()  # before the runtime's clients are made
    runtime = start_runtime()
    info = runtime.info
    assert info is not None
    try:
        product_id = make_product(runtime, orders + warmup)
        http = requests.Session()
        checkout_s, delivered_s, callback_s = [], [], []
        checkout_requests = 0
        for i in range(orders + warmup):
            body = {"product_id": product_id, "quantity": 1, "email": "bench@example.com"}
            if device:
                body["device"] = f"d1.bench-{i}-{time.time_ns()}"
            before = counter.of_role("gateway")
            started = time.perf_counter()
            created = http.post(f"{info.url}/api/orders", json=body)
            checkout = time.perf_counter() - started
            made = counter.of_role("gateway") - before
            order = created.json()
            sent_at = time.time()
            sent = time.perf_counter()
            who = f"bench-{order['order_id']}" if payer else None
            assert runtime.sandbox.pay(order["order_id"], 1999, "CNY", retry=False, payer=who)
            callback = time.perf_counter() - sent
            body = wait_delivered(http, info.url, order)
            delivered_at = datetime.fromisoformat(body["events"][-1]["at"]).timestamp()
            if i == warmup - 1:
                counter.reset()
            if i >= warmup:
                checkout_requests += made
                checkout_s.append(checkout)
                callback_s.append(callback)
                delivered_s.append(delivered_at - sent_at)
        print(f"local runtime, {orders} sequential orders after {warmup} warm-up (ms)\n")
        print("| measure | n | p50 | p99 | max |\n|---|---|---|---|---|")
        print(summary("checkout: POST /api/orders", checkout_s))
        print(summary("webhook: callback answered", callback_s))
        print(summary("callback -> DELIVERED", delivered_s))
        print(f"\nAWS requests per checkout: {checkout_requests / orders:.2f}")
        delivering = {k: v for k, v in counter.by_operation().items() if k.startswith("deliver:")}
        print(f"AWS requests per order on the delivery threads: {sum(delivering.values()) / orders:.2f}")
        print(json.dumps({k: round(v / orders, 2) for k, v in delivering.items()}))
        print(
            "\n" + json.dumps({"p99_callback_to_delivered_ms": round(percentile(delivered_s, 99) * 1000, 1)})
        )
    finally:
        runtime.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--payer", action="store_true", help="name a payer in each payment")
    parser.add_argument("--device", action="store_true", help="send a device id with each checkout")
    args = parser.parse_args()
    run(args.orders, args.warmup, args.payer, args.device)
