"""Test helpers that speak to the local runtime exactly as outside clients do (HTTP, API.md)."""

import copy
import json
import os
import secrets
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
from boto3.dynamodb.conditions import Key
from requests.adapters import HTTPAdapter

EVENTS = Path(__file__).parent / "events"


def event(name: str, **overrides: Any) -> dict[str, Any]:
    """A copy of tests/events/<name>.json with top-level keys replaced."""
    loaded = json.loads((EVENTS / f"{name}.json").read_text())
    loaded = copy.deepcopy(loaded)
    loaded.update(overrides)
    return loaded


def poll(check, deadline: float = 10.0, every: float = 0.02):
    """Call `check` until it returns something truthy, or fail after `deadline` seconds."""
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline}s (last: {result!r})")
        time.sleep(every)


def new_codes(n: int, prefix: str = "CODE") -> list[str]:
    return [f"{prefix}-{secrets.token_hex(6).upper()}" for _ in range(n)]


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def session_from(address: str) -> requests.Session:
    """An HTTP session whose connections leave from `address` (any 127.x.y.z is this machine): the
    local gateway, like API Gateway, takes the client's address from the connection."""
    session = requests.Session()
    session.mount("http://", _FromAddress(address))
    return session


class Shop:
    def __init__(self, runtime) -> None:
        self.runtime = runtime
        self.url = runtime.info.url
        self.merchant_key = runtime.info.merchant_key
        self.http = requests.Session()

    # ---- merchant side
    def merchant(self, method: str, path: str, key: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {key or self.merchant_key}", **kwargs.pop("headers", {})}
        return self.http.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def new_product(
        self,
        codes: list[str],
        price: int = 1999,
        currency: str = "CNY",
        max_per_order: int = 5,
        shards: int = 4,
        key: str | None = None,
        **fields: Any,
    ) -> str:
        """A new product (any other product fields given as keywords) with these codes imported."""
        created = self.merchant(
            "POST",
            "/merchant/products",
            key=key,
            json={
                "name": "Test card",
                "price": {"amount": price, "currency": currency},
                "max_per_order": max_per_order,
                "shards": shards,
                **fields,
            },
        )
        assert created.status_code == 201, created.text
        product_id = created.json()["id"]
        if codes:
            imported = self.merchant(
                "POST",
                f"/merchant/products/{product_id}/stock",
                key=key,
                data="\n".join(codes).encode(),
                headers={"Content-Type": "text/plain"},
            )
            assert imported.status_code == 200 and imported.json()["added"] == len(codes), imported.text
        return product_id

    def stock(self, product_id: str, key: str | None = None) -> dict:
        response = self.merchant("GET", f"/merchant/products/{product_id}/stock", key=key)
        assert response.status_code == 200, response.text
        return response.json()

    # ---- buyer side
    def checkout(
        self,
        product_id: str,
        quantity: int = 1,
        email: str = "buyer@example.com",
        via: requests.Session | None = None,  # session_from(address): a buyer at another address
        **extra,
    ) -> requests.Response:
        body = {"product_id": product_id, "quantity": quantity, "email": email, **extra}
        return (via or self.http).post(f"{self.url}/api/orders", json=body, timeout=30)

    def buy(self, product_id: str, quantity: int = 1) -> dict:
        response = self.checkout(product_id, quantity)
        assert response.status_code == 201, response.text
        return response.json()

    def order(self, order_id: str, token: str) -> requests.Response:
        return self.http.get(
            f"{self.url}/api/orders/{order_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def wait_for(self, order: dict, status: str, deadline: float = 10.0) -> dict:
        def reached():
            body = self.order(order["order_id"], order["access_token"]).json()
            return body if body.get("status") == status else None

        return poll(reached, deadline)

    # ---- the payment provider's side
    def callback(
        self,
        body: dict | bytes,
        secret: str | None = None,
        timestamp: int | None = None,
        signature: str | None = None,
    ) -> requests.Response:
        from shared.providers.signatures import sandbox_signature

        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        header = signature or sandbox_signature(
            secret if secret is not None else self.runtime.sandbox_secret,
            raw,
            timestamp if timestamp is not None else int(time.time()),
        )
        return self.http.post(
            f"{self.url}/webhooks/sandbox",
            data=raw,
            timeout=30,
            headers={"Content-Type": "application/json", "Sandbox-Signature": header},
        )

    def payment_event(self, order: dict, **data) -> dict:
        body = event("sandbox_payment_succeeded")
        body["id"] = f"evt_{secrets.token_hex(8)}"
        body["data"] = {
            "order_id": order["order_id"],
            "payment_id": f"pay_{secrets.token_hex(6)}",
            "amount": order["total"]["amount"],
            "currency": order["total"]["currency"],
            **data,
        }
        return body


def all_items() -> list[dict]:
    """Every item of every table in the embedded AWS as the store holds it (raw DynamoDB JSON, binary
    values in base64), for comparing states.

    On moto, read from its backend in this process between two requests (DYNAMODB_LOCK): a Scan over
    HTTP costs ~18 times as much (6,000 items: 1.7 s against 0.09 s), and the fuzz tests take a
    snapshot around each request. On another store, `scan_all_tables`."""
    if os.environ.get("MIAOFA_STORE", "moto") != "moto":
        return scan_all_tables()
    from moto.backends import get_backend

    from infra.local.aws import ACCOUNT, DYNAMODB_LOCK, REGION

    with DYNAMODB_LOCK:
        tables = get_backend("dynamodb")[ACCOUNT][REGION].tables.values()
        return [item.to_json()["Attributes"] for table in tables for item in table.all_items()]


def drop_partitions(table_name: str, partition_keys: list[str]) -> None:
    """Delete every item of these partitions of a table whose hash key is `pk` (clean-up after a test
    that filled them). On moto, from its backend through the same delete every write path uses (a
    batch delete over HTTP of 40,000 items took 47 s); on another store, by Query and batch delete."""
    if os.environ.get("MIAOFA_STORE", "moto") == "moto":
        from moto.backends import get_backend
        from moto.dynamodb.models.dynamo_type import DynamoType

        from infra.local.aws import ACCOUNT, DYNAMODB_LOCK, REGION

        with DYNAMODB_LOCK:
            table = get_backend("dynamodb")[ACCOUNT][REGION].tables[table_name]
            for pk in partition_keys:
                key = DynamoType({"S": pk})
                for sort_key in list(table.items.get(key, {})):
                    table.delete_item(key, sort_key)
        return
    resource = boto3.resource("dynamodb").Table(table_name)
    with resource.batch_writer() as batch:
        for pk in partition_keys:
            query: dict[str, Any] = {
                "KeyConditionExpression": Key("pk").eq(pk),
                "ProjectionExpression": "pk, sk",
            }
            while True:
                page = resource.query(**query)
                for item in page["Items"]:
                    batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def scan_all_tables() -> list[dict]:
    """Every item of every table in the embedded AWS, as raw DynamoDB JSON (a Scan of each table)."""
    client = boto3.client("dynamodb")
    items = []
    for table in client.list_tables()["TableNames"]:
        for page in client.get_paginator("scan").paginate(TableName=table):
            items.extend(page["Items"])
    return items


def stored_order(order_id: str):
    from shared.adapters import orders

    return orders().get(order_id)


def in_review(shop, order: dict, held: bool = False, decision: dict | None = None):
    """Pay `order` at the sandbox without its callback's delivery, then put it IN_REVIEW as the risk
    engine does (`risk.review`, due at its product's review deadline), or as reconciliation holds an
    undeliverable one for a person (`held`: `review.held`, due at once). Returns the order as stored."""
    from datetime import timedelta

    from shared.adapters import orders, products
    from shared.orders import Payment, utcnow
    from shared.reviews import review_due_in

    record = stored_order(order["order_id"])
    payment_id = f"pay_{secrets.token_hex(6)}"
    shop.runtime.sandbox.take(
        {
            "order_id": record.order_id,
            "payment_id": payment_id,
            "amount": record.total.amount,
            "currency": "CNY",
        }
    )
    payment = Payment(
        provider="sandbox", payment_id=payment_id, event_id=f"evt_{payment_id}", amount=record.total
    )
    now = utcnow()
    paid = orders().transition(record, "payment.succeeded", now, payment=payment, due_in=timedelta(minutes=2))
    if held:
        return orders().transition(paid, "review.held", now, {"reason": "not delivered"}, due_in=timedelta(0))
    due_in = review_due_in(products().product(record.product_id))
    # As shared/screening.py records a decision (its `Decision`, under "risk"), cut short.
    facts = decision or {"risk": {"stage": "payment", "action": "review", "decided_by": "first-order-large"}}
    return orders().transition(paid, "risk.review", now, facts, due_in=due_in)


def count_items(table: str) -> int:
    client = boto3.client("dynamodb")
    return sum(
        page["Count"] for page in client.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    )


def stored_text() -> str:
    """Every table's content as one string; binary attributes are included byte for byte."""
    return json.dumps(scan_all_tables(), default=lambda b: b.decode("latin-1"), ensure_ascii=False)


def make_queue_pair(visibility: int, max_receives: int) -> tuple[str, str, str]:
    sqs = boto3.client("sqs")
    suffix = secrets.token_hex(4)
    dlq = sqs.create_queue(QueueName=f"test-dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue = sqs.create_queue(
        QueueName=f"test-q-{suffix}",
        Attributes={
            "VisibilityTimeout": str(visibility),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives}),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return queue, arn, dlq


def clear_of_bucket_edges(windows: tuple[int, ...], margin: float) -> None:
    """Return once the next `margin` seconds cross no edge of the risk counters' buckets for these
    windows (minutes; buckets are aligned to the epoch, shared/risk/counters.py), waiting past an edge
    if one is nearer. A burst counted across an edge is estimated one short, as docs/risk.md says the
    sliding window may be: a test asserting an exact threshold starts its burst clear of one."""
    for _ in range(len(windows) + 1):
        now = time.time()
        nearest = min(window * 60 - now % (window * 60) for window in windows)
        if nearest >= margin:
            return
        time.sleep(nearest + 0.5)  # past the edge: a fresh bucket, a full window of room
    raise AssertionError("the risk windows' bucket edges keep coming: are the windows under a minute?")


def expire_all(now: datetime | None = None) -> tuple[int, int]:
    """Expire every reservation due by `now` (default: 16 minutes on, past any reservation made now), not
    only the 100 oldest one reconcile run takes: unpaid orders that earlier tests on this worker left come
    first, and could keep a test's own order from being reached. (orders expired, slots returned)"""
    from functions.reconcile.expiry import expire_reservations
    from shared.adapters import allocation, orders
    from shared.orders import utcnow

    when = now or utcnow() + timedelta(minutes=16)
    expired = returned = 0
    while True:
        more = expire_reservations(orders(), allocation(), now=when)
        expired, returned = expired + more[0], returned + more[1]
        if more == (0, 0):
            return expired, returned
