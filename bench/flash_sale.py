"""Flash sale on the local runtime, AWS requests per delivered order, allocation cost at two stock
sizes, and the embedded store's raw conditional-write rate — all in one run, one process.

    .venv/bin/python -m bench.flash_sale [--buyers 200 --codes 100 --small 1000 --large 100000]
"""

import argparse
import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import boto3
import requests

from bench.local import make_product, start_runtime
from bench.requests_counter import RequestCounter
from infra.local.runtime import LocalRuntime


def buy_and_pay(runtime: LocalRuntime, product_id: str, n: int) -> str | None:
    response = requests.post(
        f"{runtime.info.url}/api/orders",
        timeout=60,
        json={"product_id": product_id, "quantity": 1, "email": f"fs{n}@example.com"},
    )
    if response.status_code == 409:
        return None
    order = response.json()
    assert runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    return str(order["order_id"])


def wait_delivered(order_ids: list[str], deadline_s: float = 120) -> None:
    from shared.adapters import orders

    pending, end = set(order_ids), time.monotonic() + deadline_s
    while pending:
        pending = {oid for oid in pending if orders().get(oid).status != "DELIVERED"}  # type: ignore[union-attr]
        if time.monotonic() > end:
            raise SystemExit(f"{len(pending)} orders not delivered in {deadline_s}s")
        time.sleep(0.01)


def flash_sale(runtime: LocalRuntime, buyers: int, codes: int, concurrency: int) -> dict:
    from shared.adapters import allocation, merchants, products

    product_id = make_product(runtime, codes)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(lambda n: buy_and_pay(runtime, product_id, n), range(buyers)))
    sold = [oid for oid in results if oid]
    wait_delivered(sold)
    elapsed = time.perf_counter() - started
    product = products().product(product_id)
    assert product is not None
    levels = allocation().levels(product_id, product.shards)
    from shared.adapters import orders

    bound = []
    for oid in sold:
        order = orders().get(oid)
        assert order is not None
        bound += allocation().read_codes(product_id, order.slots, oid, merchants().cipher(order.merchant_id))
    return {
        "buyers": buyers,
        "codes": codes,
        "concurrency": concurrency,
        "delivered": len(sold),
        "refused": results.count(None),
        "oversold": max(0, len(sold) - codes),
        "duplicate_codes": len(bound) - len(set(bound)),
        "seconds": round(elapsed, 2),
        "delivered_per_second": round(len(sold) / elapsed, 1),
        "stock": levels.model_dump(),
    }


def per_order(runtime: LocalRuntime, counter: RequestCounter, stock_size: int, orders: int) -> dict:
    product_id = make_product(runtime, stock_size)
    sold = []
    counter.reset()
    for n in range(orders):
        oid = buy_and_pay(runtime, product_id, n)
        assert oid
        sold.append(oid)
        wait_delivered([oid])
    time.sleep(0.5)  # let the pollers' delete calls for the last batch land before reading the counter
    totals = counter.summary()
    return {
        "stock": stock_size,
        "orders": orders,
        "per_order": {k: round(v / orders, 2) for k, v in totals.items()},
        "by_operation": {k: round(v / orders, 2) for k, v in counter.by_operation().items()},
    }


def raw_write_rate(threads: int, seconds: float, table: str = "bench-raw") -> float:
    """Conditional UpdateItems per second the embedded store sustains (distinct items, no conflicts)."""
    client = boto3.client("dynamodb")
    client.create_table(
        TableName=table,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    # dynalite, as DynamoDB, keeps a new table CREATING for a while
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.05, "MaxAttempts": 200})
    done, stop = [0] * threads, threading.Event()

    def writer(i: int) -> None:
        mine = boto3.client("dynamodb")
        while not stop.is_set():
            mine.update_item(
                TableName=table,
                Key={"pk": {"S": f"item-{i}"}},
                UpdateExpression="ADD n :one",
                ConditionExpression="attribute_not_exists(n) OR n >= :zero",
                ExpressionAttributeValues={":one": {"N": "1"}, ":zero": {"N": "0"}},
            )
            done[i] += 1

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return sum(done) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--buyers", type=int, default=200)
    parser.add_argument("--codes", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=30)
    args = parser.parse_args()

    counter = RequestCounter()
    counter.install()
    runtime = start_runtime()
    try:
        report = {"flash_sale": flash_sale(runtime, args.buyers, args.codes, args.concurrency)}
        time.sleep(0.5)  # the pollers' last deletes
        # What the sale itself asked of AWS (refused buyers included), per delivered order.
        report["flash_sale"]["requests_per_delivered"] = {
            k: round(v / report["flash_sale"]["delivered"], 1) for k, v in counter.summary().items()
        }
        print(json.dumps(report["flash_sale"]), flush=True)
        for size in (args.small, args.large):
            t = time.perf_counter()
            report[f"per_order_{size}"] = per_order(runtime, counter, size, args.orders)
            print(json.dumps(report[f"per_order_{size}"]), f"({time.perf_counter() - t:.0f}s)", flush=True)
        rates = [raw_write_rate(threads=8, seconds=3, table=f"bench-raw-{n}") for n in range(3)]
        report["raw_conditional_writes_per_second"] = round(statistics.median(rates))
        fs, small = report["flash_sale"], report[f"per_order_{args.small}"]["per_order"]
        writes = small.get("dynamodb_writes", 0)
        raw = report["raw_conditional_writes_per_second"]
        # deliveries/s x writes per (sequential) order / raw rate; and with the sale's own writes per
        # delivered order, which also count what the refused buyers wrote.
        report["store_share"] = round(fs["delivered_per_second"] * writes / raw, 3)
        sale_writes = fs["requests_per_delivered"].get("dynamodb_writes", 0)
        report["store_share_sale_writes"] = round(fs["delivered_per_second"] * sale_writes / raw, 3)
        print(
            json.dumps(
                {
                    k: report[k]
                    for k in ("raw_conditional_writes_per_second", "store_share", "store_share_sale_writes")
                }
            )
        )
    finally:
        runtime.stop()


if __name__ == "__main__":
    main()
