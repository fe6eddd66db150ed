"""The whole cost of one delivered order (issue 17), counted on the local runtime and priced.

A QR buyer opens the product page, checks out, keeps the order page open and pays `--wait` seconds
(30) after it opened; the page's network behaviour is played in Python: with pushes (the page holds a
WebSocket: connect, `watch`, a `GET /api/orders/{id}` when a message names a status it does not show,
PAID shown from the message, no polling while it watches) or
`--poll-only` (no socket: today's fallback schedule, and the old page's, from 2b1d6c1).

    .venv/bin/python -m bench.order_cost [--wait 30]                 # with pushes
    .venv/bin/python -m bench.order_cost --poll-only [--wait 30]     # polling: today's and the old page's

Counted, from the order's first request until 3 s after the page saw it DELIVERED: every AWS request
the runtime's threads make (botocore hooks, as bench/requests_counter.py: the benchmark's own thread
is left out), every Lambda invocation with its duration (LocalFunction.invoke, wrapped), HTTP API
requests (the invocations made for HTTP API events) and WebSocket messages and connection time (seen
by the page). DynamoDB units are computed from item sizes, as DynamoDB bills them.
"""

import argparse
import asyncio
import json
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import boto3
import requests
import websockets
from botocore import handlers

from bench.local import make_product, start_runtime
from bench.requests_counter import READS, WRITES
from infra.local.lambdas import LocalFunction
from infra.local.runtime import LocalRuntime

SETTLED = {"DELIVERED", "EXPIRED", "REFUNDED", "REPLACED"}
DYNAMODB_WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
TRAILING_SECONDS = 3.0  # after DELIVERED: the last push, the e-mail, the socket's $disconnect

# On-demand prices, us-east-1, as of 2026-12-05 (USD), each with the AWS page that publishes it (how each
# was checked: BENCHMARKS.md, "Issue 17: the whole cost of an order"; SQS, KMS and SES assumed):
PRICES = {
    # https://aws.amazon.com/api-gateway/pricing/ — HTTP APIs, first 300 million requests a month
    "http_requests": Decimal("1.00") / 10**6,
    # https://aws.amazon.com/api-gateway/pricing/ — WebSocket APIs: messages (per 32 KB), first 1 billion
    "ws_messages": Decimal("1.00") / 10**6,
    # https://aws.amazon.com/api-gateway/pricing/ — WebSocket APIs: connection minutes
    "ws_connection_minutes": Decimal("0.25") / 10**6,
    # https://aws.amazon.com/lambda/pricing/ — requests, and duration on arm64 per GB-second
    "lambda_requests": Decimal("0.20") / 10**6,
    "lambda_gb_seconds": Decimal("0.0000133334"),
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ — write / read request units (since Nov 2024)
    "dynamodb_wru": Decimal("0.625") / 10**6,
    "dynamodb_rru": Decimal("0.125") / 10**6,
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ — stream reads by a Lambda trigger are free
    "stream_get_records": Decimal(0),
    # https://aws.amazon.com/sqs/pricing/ — standard queues, per request (64 KB chunks)
    "sqs_requests": Decimal("0.40") / 10**6,
    # https://aws.amazon.com/kms/pricing/ — $0.03 per 10,000 requests
    "kms_requests": Decimal("0.03") / 10**4,
    # https://aws.amazon.com/ses/pricing/ — $0.10 per 1,000 e-mails sent
    "ses_emails": Decimal("0.10") / 10**3,
}
EMAIL = {"ses_emails"}


def price(units: dict[str, Decimal], prices: dict[str, Decimal] = PRICES) -> dict[str, Decimal]:
    """Dollars per million orders, by line, for one order's units."""
    return {
        name: (Decimal(units.get(name, 0)) * each * 10**6).quantize(Decimal("0.0001"))
        for name, each in prices.items()
    }


def total(costs: dict[str, Decimal], email: bool = True) -> Decimal:
    """The sum of the lines, with or without the e-mail."""
    return sum((v for k, v in costs.items() if email or k not in EMAIL), Decimal(0))


# ---- DynamoDB item sizes, as DynamoDB counts them (names + values; numbers ~1 byte per 2 digits)
def value_size(value: dict[str, Any]) -> int:
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return len(inner.lstrip("-").replace(".", "")) // 2 + 1
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: one}) for one in inner)
    if kind == "L":
        return 3 + sum(1 + value_size(one) for one in inner)
    return 3 + sum(1 + len(k.encode()) + value_size(v) for k, v in inner.items())  # M


def item_size(item: dict[str, Any] | None) -> int:
    return sum(len(name.encode()) + value_size(v) for name, v in (item or {}).items())


def read_units(size: int, consistent: bool, transactional: bool = False) -> Decimal:
    units = Decimal(max(1, math.ceil(size / 4096)))
    return units * 2 if transactional else units if consistent else units / 2


@dataclass
class Write:
    table: str
    key: dict[str, Any]
    size: int  # what the request itself carried (the whole item for a put)
    transactional: bool = False


@dataclass
class Usage:
    """What the runtime did while counting."""

    calls: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (service, operation, table)
    idle: Counter[str] = field(default_factory=Counter)  # empty receives and empty stream reads
    rru: defaultdict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))  # by table
    writes: list[Write] = field(default_factory=list)
    invocations: Counter[str] = field(default_factory=Counter)
    gb_seconds: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    http_requests: int = 0
    socket_events: Counter[str] = field(default_factory=Counter)


class Meter:
    """Counts AWS requests (botocore hooks) and Lambda invocations (LocalFunction.invoke) while on."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.on = False
        self._lock = threading.Lock()

    def install(self) -> None:
        """Before the runtime starts: its clients and PynamoDB's are made afterwards."""
        handlers.BUILTIN_HANDLERS.append(("provide-client-params", self._params))
        handlers.BUILTIN_HANDLERS.append(("after-call", self._after_call))
        invoke, meter = LocalFunction.invoke, self

        def counted(function: LocalFunction, event: dict[str, Any], context: Any = None) -> Any:
            started = time.perf_counter()
            try:
                return invoke(function, event, context)
            finally:
                meter._invoked(function, event, time.perf_counter() - started)

        LocalFunction.invoke = counted  # type: ignore[method-assign,assignment]  # measured, behaviour unchanged

    @staticmethod
    def _params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context["bench_params"] = params

    def _counting(self) -> bool:
        return self.on and threading.current_thread() is not threading.main_thread()

    def _invoked(self, function: LocalFunction, event: dict[str, Any], seconds: float) -> None:
        if not self.on:
            return
        billed_ms = math.ceil(seconds * 1000)  # Lambda bills duration rounded up to the millisecond
        context = event.get("requestContext") or {}
        with self._lock:
            self.usage.invocations[function.name] += 1
            self.usage.gb_seconds[function.name] += function.memory / 1024 * billed_ms / 1000
            if "http" in context:
                self.usage.http_requests += 1
            elif "eventType" in context:
                self.usage.socket_events[context.get("routeKey", "?")] += 1

    def _after_call(self, model: Any, parsed: Any, context: dict[str, Any], **_: Any) -> None:
        if not self._counting():
            return
        service, operation = model.service_model.service_name, model.name
        params: dict[str, Any] = context.get("bench_params") or {}
        with self._lock:
            if operation == "ReceiveMessage" and not parsed.get("Messages"):
                self.usage.idle["sqs.ReceiveMessage (empty)"] += 1
                return
            if operation == "GetRecords" and not parsed.get("Records"):
                self.usage.idle["dynamodbstreams.GetRecords (empty)"] += 1
                return
            if service == "dynamodb":
                self._dynamodb(operation, params, parsed)
            else:
                self.usage.calls[(service, operation, "")] += 1

    def _dynamodb(self, operation: str, params: dict[str, Any], parsed: dict[str, Any]) -> None:
        usage, table = self.usage, params.get("TableName", "")
        consistent = bool(params.get("ConsistentRead"))
        if operation == "GetItem":
            usage.rru[table] += read_units(item_size(parsed.get("Item")), consistent)
        elif operation in ("Query", "Scan"):
            size = sum(item_size(item) for item in parsed.get("Items", []))
            usage.rru[table] += read_units(size, consistent)
        elif operation == "BatchGetItem":
            for name, items in parsed.get("Responses", {}).items():
                strong = bool(params["RequestItems"][name].get("ConsistentRead"))
                for item in items:
                    usage.rru[name] += read_units(item_size(item), strong)
            table = ",".join(parsed.get("Responses", {}))
        elif operation == "TransactGetItems":
            for one in params.get("TransactItems", []):
                name = one["Get"]["TableName"]
                usage.rru[name] += read_units(0, True, transactional=True)
        elif operation in DYNAMODB_WRITES:
            usage.writes.append(
                Write(
                    table, params.get("Key") or params.get("Item") or {}, item_size(params.get("Item")) or 0
                )
            )
        elif operation == "BatchWriteItem":
            for name, requests_ in params.get("RequestItems", {}).items():
                for one in requests_:
                    put = one.get("PutRequest")
                    key = put["Item"] if put else one["DeleteRequest"]["Key"]
                    usage.writes.append(Write(name, key, item_size(put["Item"]) if put else 0))
            table = ",".join(params.get("RequestItems", {}))
        elif operation == "TransactWriteItems":
            for one in params.get("TransactItems", []):
                kind, body = next(iter(one.items()))
                usage.writes.append(
                    Write(
                        body["TableName"],
                        body.get("Key") or body.get("Item") or {},
                        item_size(body.get("Item")),
                        transactional=True,
                    )
                )
            table = "transaction"
        usage.calls[("dynamodb", operation, table)] += 1

    @contextmanager
    def counting(self) -> Iterator[Usage]:
        with self._lock:
            self.usage = Usage()
        self.on = True
        try:
            yield self.usage
        finally:
            self.on = False


def write_units(usage: Usage) -> tuple[Counter[str], int, dict[str, int]]:
    """WRU by table: each write is charged on the larger of what it sent and the item as it ends up
    (the order item grows with its history, so its early writes are slightly over-counted), per 1 KB;
    plus one unit per index an item written carries the key of (a GSI write; an estimate)."""
    client = boto3.client("dynamodb")
    indexes: dict[str, list[list[str]]] = {}
    keys: dict[str, list[str]] = {}
    finals: dict[tuple[str, str], dict[str, Any] | None] = {}
    out: Counter[str] = Counter()
    gsi_writes = 0
    largest: dict[str, int] = {}  # bytes, the largest item written, by table
    for write in usage.writes:
        if write.table not in indexes:
            table = client.describe_table(TableName=write.table)["Table"]
            keys[write.table] = [k["AttributeName"] for k in table["KeySchema"]]
            indexes[write.table] = [
                [k["AttributeName"] for k in index["KeySchema"]]
                for index in table.get("GlobalSecondaryIndexes", [])
            ]
        key = {name: write.key[name] for name in keys[write.table]}
        ident = (write.table, json.dumps(key, sort_keys=True, default=str))
        if ident not in finals:
            finals[ident] = client.get_item(TableName=write.table, Key=key, ConsistentRead=True).get("Item")
            final = finals[ident] or {}
            gsi_writes += sum(all(name in final for name in keys) for keys in indexes[write.table])
        size = max(write.size, item_size(finals[ident]))
        largest[write.table] = max(largest.get(write.table, 0), size)
        units = max(1, math.ceil(size / 1024))
        out[write.table] += units * (2 if write.transactional else 1)
    return out, gsi_writes, largest


# ---- the buyer
@dataclass
class Page:
    """What the simulated order page saw and sent."""

    gets: int = 0
    sent: int = 0  # WebSocket messages the page sent
    received: int = 0  # and received
    connected_seconds: float = 0.0
    connections: int = 0
    status: str = ""
    paid_at: float = 0.0
    delivered_seen_at: float = 0.0


def get_order(url: str, order: dict[str, Any], page: Page) -> str:
    page.gets += 1
    response = requests.get(
        f"{url}/api/orders/{order['order_id']}",
        headers={"Authorization": f"Bearer {order['access_token']}"},
        timeout=30,
    )
    response.raise_for_status()
    page.status = str(response.json()["status"])
    return page.status


def checkout(url: str, product_id: str) -> dict[str, Any]:
    """The product page, the checkout and the order page's own load: three HTTP API requests."""
    requests.get(f"{url}/p/{product_id}", timeout=30).raise_for_status()
    response = requests.post(
        f"{url}/api/orders",
        timeout=30,
        json={"product_id": product_id, "quantity": 1, "email": "buyer@example.com", "provider": "sandbox"},
    )
    response.raise_for_status()
    order: dict[str, Any] = response.json()
    requests.get(f"{url}/o/{order['order_id']}", timeout=30).raise_for_status()
    return order


def pay_later(runtime: LocalRuntime, order: dict[str, Any], wait: float, page: Page) -> threading.Thread:
    def pay() -> None:
        time.sleep(wait)
        page.paid_at = time.monotonic()
        assert runtime.sandbox.pay(order["order_id"], order["total"]["amount"], order["total"]["currency"])

    thread = threading.Thread(target=pay, name="bench-pay")
    thread.start()
    return thread


def poll_page(url: str, order: dict[str, Any], schedule: str, page: Page) -> None:
    """The page without a socket. `new`: today's order.js (a read at once, then 0.5 s, ×1.5, capped at
    1 s); `old`: 2b1d6c1's (a read at once, then 0.75 s, ×1.5, capped at 10 s)."""
    if schedule == "new":
        get_order(url, order, page)  # start()'s first read
        delay = 0.5
        while page.status not in SETTLED:
            time.sleep(delay)
            get_order(url, order, page)
            delay = min(delay * 1.5, 1.0)
    else:
        delay = 0.5
        while get_order(url, order, page) not in SETTLED:
            delay = min(delay * 1.5, 10.0)
            time.sleep(delay)
    page.delivered_seen_at = time.monotonic()


async def push_page(url: str, ws_url: str, order: dict[str, Any], page: Page) -> None:
    """The page with its socket (order.js): a read, connect and watch, a poll 0.5 s later only if not yet
    watching; on a message, nothing if it names the status shown, PAID after PENDING_PAYMENT shown from
    the message, a read otherwise; a read after 30 s without a message; closes once settled."""
    read = lambda: asyncio.to_thread(get_order, url, order, page)  # noqa: E731
    if await read() in SETTLED:
        return
    opened = time.monotonic()
    async with websockets.connect(ws_url) as socket:
        page.connections += 1
        await socket.send(
            json.dumps({"action": "watch", "order_id": order["order_id"], "token": order["access_token"]})
        )
        page.sent += 1
        watching = False

        async def first_poll() -> None:
            await asyncio.sleep(0.5)
            if not watching:
                await read()

        poller = asyncio.create_task(first_poll())
        while page.status not in SETTLED:
            try:
                raw = await asyncio.wait_for(socket.recv(), timeout=30)
            except TimeoutError:
                await read()  # the quiet timer: a lost push costs no more than this
                continue
            page.received += 1
            message = json.loads(raw)
            if message.get("type") == "error":
                raise SystemExit(f"the socket refused the watch: {message}")
            watching = watching or message.get("type") == "watching"
            status = message.get("status")
            if status == page.status:
                continue
            if status == "PAID" and page.status == "PENDING_PAYMENT":
                page.status = status  # shown from the message
                continue
            await read()
        await poller
        page.delivered_seen_at = time.monotonic()
    page.connected_seconds = time.monotonic() - opened


def one_order(runtime: LocalRuntime, product_id: str, mode: str, wait: float) -> Page:
    assert runtime.info is not None
    url, page = runtime.info.url, Page()
    order = checkout(url, product_id)
    payer = pay_later(runtime, order, wait, page)
    if mode == "push":
        asyncio.run(push_page(url, runtime.info.ws_url, order, page))
    else:
        poll_page(url, order, mode.removeprefix("poll-"), page)
    payer.join()
    return page


# ---- the report
def measure(runtime: LocalRuntime, meter: Meter, product_id: str, mode: str, wait: float) -> dict[str, Any]:
    with meter.counting() as usage:
        page = one_order(runtime, product_id, mode, wait)
        time.sleep(TRAILING_SECONDS)
    wru, gsi_writes, largest = write_units(usage)
    calls = usage.calls
    count = lambda service: sum(n for (s, _, _), n in calls.items() if s == service)  # noqa: E731
    minutes = page.connected_seconds / 60
    # what API Gateway sends to the page is what PushFunction and SocketFunction post (the page may
    # close before reading the last); $connect and $disconnect counted as a message each (an upper bound)
    ws_messages = (
        page.sent + calls[("apigatewaymanagementapi", "PostToConnection", "")] + 2 * page.connections
    )
    dynamodb = {
        kind: sum(n for (s, op, _), n in calls.items() if s == "dynamodb" and op in ops)
        for kind, ops in (("reads", READS), ("writes", WRITES))
    }
    units: dict[str, Decimal] = {
        "http_requests": Decimal(usage.http_requests),
        "ws_messages": Decimal(ws_messages),
        "ws_connection_minutes": Decimal(math.ceil(minutes)) if page.connections else Decimal(0),
        "lambda_requests": Decimal(sum(usage.invocations.values())),
        "lambda_gb_seconds": Decimal(str(round(sum(usage.gb_seconds.values()), 6))),
        "dynamodb_wru": Decimal(sum(wru.values()) + gsi_writes),
        "dynamodb_rru": Decimal(sum(usage.rru.values())),
        "stream_get_records": Decimal(count("dynamodbstreams")),
        "sqs_requests": Decimal(count("sqs")),
        "kms_requests": Decimal(count("kms")),
        "ses_emails": Decimal(
            sum(n for (s, op, _), n in calls.items() if s in ("ses", "sesv2") and op.startswith("Send"))
        ),
    }
    billed = {
        "http": usage.http_requests,
        "ws_messages": ws_messages,
        "lambda": sum(usage.invocations.values()),
        "dynamodb_reads": dynamodb["reads"],
        "dynamodb_writes": dynamodb["writes"],
        "sqs": count("sqs"),
        "kms": count("kms"),
        "ses": count("ses") + count("sesv2"),
    }
    costs = price(units)
    return {
        "mode": mode,
        "wait_s": wait,
        "callback_to_page_s": round(page.delivered_seen_at - page.paid_at, 2),
        "page": {
            "order_gets": page.gets,
            "ws_sent": page.sent,
            "ws_received": page.received,
            "ws_connected_s": round(page.connected_seconds, 1),
        },
        "units": {k: str(v) for k, v in units.items()},
        "requests": billed,
        "lambda": {
            name: {"invocations": n, "gb_s": round(usage.gb_seconds[name], 4)}
            for name, n in sorted(usage.invocations.items())
        },
        "socket_routes": dict(usage.socket_events),
        "dynamodb_wru_by_table": dict(wru) | {"(GSI writes, est.)": gsi_writes},
        "largest_item_written_bytes": largest,
        "dynamodb_rru_by_table": {k: str(v) for k, v in usage.rru.items()},
        "calls": {f"{s}.{op}" + (f" [{t}]" if t else ""): n for (s, op, t), n in sorted(calls.items())},
        "idle_not_counted": dict(usage.idle),
        "usd_per_million_orders": {k: str(v) for k, v in costs.items()},
        "requests_billed": sum(billed.values()),
        "total_per_million": str(total(costs)),
        "total_per_million_without_email": str(total(costs, email=False)),
    }


def table(report: dict[str, Any]) -> str:
    rows = [
        f"{report['mode']} (pay after {report['wait_s']} s; callback → page saw DELIVERED {report['callback_to_page_s']} s)"
    ]
    rows.append(f"  {'line':24} {'units/order':>12} {'$ per M orders':>15}")
    for name, units in report["units"].items():
        rows.append(f"  {name:24} {units:>12} {report['usd_per_million_orders'][name]:>15}")
    rows.append(f"  {'total':24} {'':>12} {report['total_per_million']:>15}")
    rows.append(f"  {'total without e-mail':24} {'':>12} {report['total_per_million_without_email']:>15}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wait", type=float, default=30.0, help="seconds on the order page before paying")
    parser.add_argument(
        "--poll-only", action="store_true", help="no socket: today's polling and the old page's"
    )
    args = parser.parse_args()

    meter = Meter()
    meter.install()
    runtime = start_runtime()
    try:
        product_id = make_product(runtime, 100)
        modes = ["poll-new", "poll-old"] if args.poll_only else ["push"]
        one_order(runtime, product_id, modes[0], 0.5)  # warm-up: every container loaded, caches filled
        time.sleep(TRAILING_SECONDS)
        for mode in modes:
            report = measure(runtime, meter, product_id, mode, args.wait)
            print(json.dumps(report), flush=True)
            print(table(report), flush=True)
    finally:
        runtime.stop()


if __name__ == "__main__":
    main()
