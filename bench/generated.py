"""Generated codes at volume on the local runtime (docs/licenses.md "Generated delivery"): N orders of a
generated product, each checked out, paid through the sandbox and delivered by the runtime's queue,
`--threads` buyers at a time; then every order's codes read back as its buyer reads them. Reports
duplicates among the codes (there must be none), the uniqueness items the store holds (one per code),
callback -> DELIVERED and the orders per second.

    .venv/bin/python -m bench.generated [--orders 10000] [--threads 8] [--pattern 'C\\ARD-XXXX-XXXX-9999']
"""

import argparse
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import boto3
import requests

from bench.latency import percentile, wait_delivered
from bench.local import start_runtime
from shared import generated
from shared.settings import settings


def run(orders: int, threads: int, pattern: str) -> None:
    parsed = generated.validate(pattern)
    runtime = start_runtime()
    try:
        url = runtime.info.url
        product = runtime.merchant_call(
            url,
            "POST",
            "/merchant/products",
            {
                "name": "bench gift card",
                "price": {"amount": 500, "currency": "CNY"},
                "delivery": "generated",
                "generated": {"pattern": pattern},
            },
        )
        local = threading.local()

        def buy(n: int) -> tuple[float, str]:
            http = getattr(local, "http", None) or requests.Session()
            local.http = http
            order = http.post(
                f"{url}/api/orders",
                json={"product_id": product["id"], "quantity": 1, "email": f"b{n}@example.com"},
            ).json()
            sent_at = time.time()
            assert runtime.sandbox.pay(order["order_id"], 500, "CNY", retry=False)
            answer = wait_delivered(http, url, order, seconds=120)
            delivered = next(e["at"] for e in answer["events"] if e["type"] == "order.delivered")
            return datetime.fromisoformat(delivered).timestamp() - sent_at, answer["items"][0]["code"]

        started = time.perf_counter()
        done: list[tuple[float, str]] = []
        with ThreadPoolExecutor(threads) as pool:
            for result in pool.map(buy, range(orders)):
                done.append(result)
                if len(done) % 1000 == 0:
                    print(
                        f"  {len(done):,} orders delivered ({time.perf_counter() - started:.0f} s)",
                        flush=True,
                    )
        wall = time.perf_counter() - started
        codes = [code for _, code in done]
        repeated = sum(n - 1 for n in Counter(codes).values() if n > 1)
        items = _uniqueness_items(product["id"])
        ms = [seconds * 1000 for seconds, _ in done]
        print(f"\nlocal runtime, {orders:,} orders of one generated code, {threads} buyers at a time\n")
        print(f"codes: {len(codes):,}, distinct {len(set(codes)):,}, duplicates {repeated}")
        print(f"every code of the pattern: {all(parsed.matches(code) for code in codes)}")
        print(f"uniqueness items in the store: {items:,}")
        print(f"callback -> DELIVERED ms: p50 {statistics.median(ms):.1f}, p99 {percentile(ms, 99):.1f}")
        print(f"wall {wall:.0f} s: {orders / wall:.1f} orders/s")
    finally:
        runtime.stop()


def _uniqueness_items(product_id: str) -> int:
    client, count, start = boto3.client("dynamodb"), 0, {}
    while True:
        page = client.scan(
            TableName=settings().stock_table,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": f"gen#{product_id}#"}},
            Select="COUNT",
            **start,
        )
        count += page["Count"]
        if "LastEvaluatedKey" not in page:
            return count
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--pattern", default="C\\ARD-XXXX-XXXX-9999")
    args = parser.parse_args()
    run(args.orders, args.threads, args.pattern)
