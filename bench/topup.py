"""Top-up latency on the local runtime: payment callback -> top-up confirmed (DELIVERED), with the fake
upstream (infra/local/upstream.py) answering `succeeded` after 0 ms and after 200 ms.

Callback -> confirmed runs from just before the provider sends its signed callback to the
`order.delivered` entry of the order's history (one clock). It covers the PAID write, the delivery
queue, the `topup.sent` note, the signed request to the upstream and its signed answer, and the
DELIVERED write. The AWS requests one order causes (gateway and delivery threads) are counted as
bench/requests_counter.py counts them, the HTTP requests to the upstream apart.

    .venv/bin/python -m bench.topup [--orders 100] [--delays 0,200]
"""

import argparse
import json
import secrets
import statistics
import time
from datetime import datetime

import requests

from bench.latency import percentile, wait_delivered
from bench.local import start_runtime
from bench.requests_counter import RequestCounter
from infra.local.upstream import FakeUpstream


def _product(runtime, upstream: str, sku: str) -> str:
    product = runtime.merchant_call(
        runtime.info.url,
        "POST",
        "/merchant/products",
        {
            "name": "bench top-up",
            "price": {"amount": 1999, "currency": "CNY"},
            "max_per_order": 1,
            "delivery": "topup",
            "topup": {"upstream": upstream, "sku": sku},
            "buyer_input": [{"name": "uid", "label": {"zh-CN": "UID", "en": "UID"}, "type": "number"}],
        },
    )
    return str(product["id"])


def _one(runtime, http: requests.Session, product_id: str) -> tuple[float, str]:
    url = runtime.info.url
    body = {
        "product_id": product_id,
        "quantity": 1,
        "email": "bench@example.com",
        "buyer_input": {"uid": "10086"},
    }
    order = http.post(f"{url}/api/orders", json=body).json()
    sent_at = time.time()
    assert runtime.sandbox.pay(order["order_id"], 1999, "CNY", retry=False)
    answer = wait_delivered(http, url, order)
    confirmed = next(e["at"] for e in answer["events"] if e["type"] == "order.delivered")
    return datetime.fromisoformat(confirmed).timestamp() - sent_at, order["order_id"]


def run(orders: int, warmup: int, delays: list[int]) -> None:
    counter = RequestCounter()
    counter.install()
    runtime = start_runtime()
    fake = FakeUpstream("upsec_" + secrets.token_urlsafe(32)).start()
    try:
        runtime.merchant_call(
            runtime.info.url,
            "PUT",
            "/merchant/upstreams/bench",
            {"url": fake.base_url, "secret": fake.secret},
        )
        http = requests.Session()
        rows, per_order = [], {}
        for delay in delays:
            sku = f"bench-{delay}"
            fake.script(sku, "slow" if delay else "succeed", delay_ms=delay)
            product_id = _product(runtime, "bench", sku)
            samples = []
            for i in range(warmup + orders):
                if i == warmup:
                    counter.reset()
                seconds, order_id = _one(runtime, http, product_id)
                assert fake.applied(order_id) == 1 and fake.received(order_id) == 1
                if i >= warmup:
                    samples.append(seconds * 1000)
            time.sleep(1)  # the last orders' notify messages (mail, order.delivered) are counted too
            per_order[delay] = {k: round(v / orders, 2) for k, v in sorted(counter.summary().items())}
            rows.append(
                f"| {delay} ms | {len(samples)} | {statistics.median(samples):.1f} | "
                f"{percentile(samples, 99):.1f} | {max(samples):.1f} |"
            )
        print(
            f"local runtime, {orders} sequential top-up orders per upstream delay, after {warmup} warm-up\n"
        )
        print(
            "| upstream answers after | n | callback -> confirmed p50 ms | p99 ms | max ms |\n|---|---|---|---|---|"
        )
        print("\n".join(rows))
        print("\nAWS requests per order (gateway and delivery threads; the page's polling included):")
        print(json.dumps(per_order, indent=1))
    finally:
        fake.stop()
        runtime.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--delays", default="0,200", help="the upstream's answer delays, ms, comma-separated")
    args = parser.parse_args()
    run(args.orders, args.warmup, [int(d) for d in args.delays.split(",")])
