"""Reconcile's cost against the size of the orders table: DynamoDB requests and time per run with
more and more final (delivered, expired, refunded) orders, and with unpaid orders due a provider
question (outstanding work, which the cost should follow).

    .venv/bin/python -m bench.reconcile [--sizes 1000,10000,100000] [--unpaid 100]
"""

import argparse
import json
import secrets
import statistics
from datetime import datetime, timedelta
from typing import Any

import requests

from bench.local import make_product, start_runtime
from bench.requests_counter import ThreadRequests

COUNTED_THREAD = "bench-reconcile"


def add_final_orders(n: int, product_id: str, now: datetime) -> None:
    """`n` orders that are done (no `due` entry), written in batches as the order store writes them."""
    from shared.orders import chain_event
    from shared.store.orders import OrderItem

    with OrderItem.batch_write() as batch:
        for i in range(n):
            order_id = f"ord_{secrets.token_hex(10)}"
            created = chain_event(order_id, [], "order.created", now, {"quantity": 1})
            done = chain_event(order_id, [created], "order.delivered", now)
            batch.save(
                OrderItem(
                    order_id=order_id,
                    merchant_id="mer_bench",
                    product_id=product_id,
                    quantity=1,
                    total_amount=100,
                    currency="CNY",
                    email=f"buyer{i}@example.com",
                    provider="sandbox",
                    status=("DELIVERED", "EXPIRED", "REFUNDED")[i % 3],
                    access_token_hash="0" * 64,
                    created_at=now,
                    expires_at=now + timedelta(minutes=15),
                    slots=json.dumps([{"shard": 0, "start": i, "count": 1}]),
                    history=[created.model_dump_json(), done.model_dump_json()],
                    head=done.hash,
                    status_at=int(now.timestamp()),
                )
            )


def run(sizes: list[int], unpaid: int) -> None:
    counter = ThreadRequests(COUNTED_THREAD)
    runtime = start_runtime()
    info = runtime.info
    assert info is not None
    from functions.reconcile.run import reconcile
    from shared.orders import utcnow
    from shared.settings import settings

    try:
        product_id = make_product(runtime, unpaid + 20, shards=1)
        now = utcnow() + timedelta(days=1)
        at_now = lambda: reconcile(settings(), now)  # noqa: E731
        for _ in range(3):  # settle what set-up left outstanding, so each measured run finds nothing new
            counter.run(at_now)
        print(
            "| final orders in the table | DynamoDB requests per run | by operation | median run ms (5 runs) |"
        )
        print("|---|---|---|---|")
        total = 0
        for size in [0, *sizes]:
            add_final_orders(size - total, product_id, now)
            total = size
            measured = [counter.run(at_now) for _ in range(5)]
            counts, _ = measured[0]
            median = statistics.median(seconds for _, seconds in measured) * 1000
            print(f"| {size:,} | {sum(counts.values())} | {dict(sorted(counts.items()))} | {median:.1f} |")
        for _ in range(unpaid):  # outstanding work: unpaid orders, due for a provider question
            body: dict[str, Any] = {"product_id": product_id, "quantity": 1, "email": "buyer@example.com"}
            requests.post(f"{info.url}/api/orders", json=body, timeout=30).raise_for_status()
        asking = lambda: reconcile(settings(), utcnow() + timedelta(minutes=3))  # noqa: E731
        counts, seconds = counter.run(asking)
        print(
            f"\nWith {unpaid:,} unpaid orders due a provider question (and {total:,} final orders): "
            f"{sum(counts.values())} DynamoDB requests, {seconds * 1000:.0f} ms, {dict(sorted(counts.items()))}"
        )
    finally:
        runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="final orders, comma-separated")
    parser.add_argument("--unpaid", type=int, default=100)
    args = parser.parse_args()
    run([int(s) for s in args.sizes.split(",")], args.unpaid)


if __name__ == "__main__":
    main()
