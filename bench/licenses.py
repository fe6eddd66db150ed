"""Licenses on the local runtime (docs/licenses.md): license issue latency (payment callback ->
DELIVERED for a license product, the license signed and recorded on the way) and activation latency
(`POST /api/licenses/activate` round trip: verify, one conditional write, sign the activation), plus
AWS requests per activation and a burst of concurrent activations on one license.

Callback -> DELIVERED runs from just before the provider sends its signed callback to the
`order.delivered` entry of the order's history (one clock), as bench/latency.py measures stock orders.
Activation latency is the client's: request sent to answer read, on fresh machines of licenses with
room (a license of 3 machines takes 3 of them, then the next license).

    .venv/bin/python -m bench.licenses [--orders 100] [--activations 300] [--burst 50]
"""

import argparse
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import requests

from bench.latency import percentile, wait_delivered
from bench.local import start_runtime
from bench.requests_counter import RequestCounter

MACHINES = 3


def _product(runtime) -> str:
    product = runtime.merchant_call(
        runtime.info.url,
        "POST",
        "/merchant/products",
        {
            "name": "bench license",
            "price": {"amount": 1999, "currency": "CNY"},
            "max_per_order": 1,
            "delivery": "license",
            "license": {"entitlements": ["pro"], "max_machines": MACHINES, "valid_days": 365},
        },
    )
    return str(product["id"])


def _bought(runtime, http: requests.Session, product_id: str) -> tuple[float, str]:
    """(callback -> DELIVERED seconds, the license text) of one order."""
    url = runtime.info.url
    order = http.post(
        f"{url}/api/orders", json={"product_id": product_id, "quantity": 1, "email": "bench@example.com"}
    ).json()
    sent_at = time.time()
    assert runtime.sandbox.pay(order["order_id"], 1999, "CNY", retry=False)
    answer = wait_delivered(http, url, order)
    delivered = next(e["at"] for e in answer["events"] if e["type"] == "order.delivered")
    return datetime.fromisoformat(delivered).timestamp() - sent_at, answer["items"][0]["code"]


def _row(name: str, ms: list[float]) -> str:
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {percentile(ms, 99):.1f} | {max(ms):.1f} |"


def run(orders: int, warmup: int, activations: int, burst: int) -> None:
    counter = RequestCounter()
    counter.install()
    runtime = start_runtime()
    try:
        url, http = runtime.info.url, requests.Session()
        product_id = _product(runtime)
        issue_ms, licenses = [], []
        needed = -(-activations // MACHINES) + 1
        for i in range(warmup + max(orders, needed)):
            seconds, text = _bought(runtime, http, product_id)
            licenses.append(text)
            if warmup <= i < warmup + orders:
                issue_ms.append(seconds * 1000)
        time.sleep(1)  # the last orders' notify messages
        counter.reset()
        activate_ms = []
        for n in range(activations):
            text = licenses[n // MACHINES]
            started = time.perf_counter()
            answer = http.post(f"{url}/api/licenses/activate", json={"license": text, "machine": f"m-{n}"})
            activate_ms.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.text
        per_activation = {k: round(v / activations, 2) for k, v in sorted(counter.summary().items())}
        validate_ms = []
        for n in range(activations):
            started = time.perf_counter()
            answer = http.post(f"{url}/api/licenses/validate", json={"license": licenses[n // MACHINES]})
            validate_ms.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200 and answer.json()["status"] == "active"
        # A burst: `burst` threads at one fresh license of MACHINES places, at once.
        target, gate = licenses[-1], threading.Barrier(burst)

        def one(n: int) -> tuple[int, float]:
            session = requests.Session()
            gate.wait()
            started = time.perf_counter()
            status = session.post(
                f"{url}/api/licenses/activate", json={"license": target, "machine": f"burst-{n}"}
            ).status_code
            return status, (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        with ThreadPoolExecutor(burst) as pool:
            results = list(pool.map(one, range(burst)))
        wall = time.perf_counter() - started
        won = sum(1 for status, _ in results if status == 200)
        full = sum(1 for status, _ in results if status == 409)
        print(
            f"local runtime, {orders} sequential license orders after {warmup} warm-up; {activations} activations\n"
        )
        print("| what | n | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|")
        print(_row("license issue: callback -> DELIVERED", issue_ms))
        print(_row("activate (fresh machine, HTTP round trip)", activate_ms))
        print(_row("validate (HTTP round trip)", validate_ms))
        print(_row(f"activate, {burst} threads at once on one license", [ms for _, ms in results]))
        print(f"\nburst: {won} activated, {full} refused 409 activation_limit, in {wall * 1000:.0f} ms")
        print("\nAWS requests per activation (gateway thread):")
        print(json.dumps(per_activation, indent=1))
    finally:
        runtime.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--activations", type=int, default=300)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    run(args.orders, args.warmup, args.activations, args.burst)
