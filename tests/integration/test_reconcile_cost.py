"""Reconcile's cost follows the outstanding work, not the number of orders: a run makes the same
DynamoDB requests with 10 and with 1,000 final (delivered, expired, refunded) orders in the table."""

import json
import secrets
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from pynamodb.models import Model

from functions.reconcile.run import reconcile
from shared.orders import chain_event, utcnow
from shared.settings import settings
from shared.store.orders import OrderItem
from tests.support import new_codes

COUNTING_THREAD = "count-reconcile"


class DynamoRequests:
    """DynamoDB requests made by threads named COUNTING_THREAD, counted with a botocore hook on every
    PynamoDB model's client (those clients exist already; a hook must be put on each)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        clients = {id(c): c for c in (m._get_connection().connection.client for m in _models(Model))}
        for client in clients.values():
            client.meta.events.register("after-call.dynamodb", self._after_call)

    def _after_call(self, model: Any, **_: Any) -> None:
        if threading.current_thread().name == COUNTING_THREAD:
            self.counts[model.name] += 1

    def during(self, work) -> Counter[str]:
        """Run `work` in a new thread (its own PynamoDB session, so the hook applies) and count."""
        self.counts.clear()
        thread = threading.Thread(target=work, name=COUNTING_THREAD)
        thread.start()
        thread.join(timeout=120)
        return Counter(self.counts)


def _models(base: type) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        if getattr(getattr(sub, "Meta", None), "table_name", None):
            found.append(sub)
        found += _models(sub)
    return found


def add_final_orders(n: int, product_id: str) -> None:
    """Orders that are done (no `due` entry), written in batches as the order store writes them."""
    now = utcnow()
    with OrderItem.batch_write() as batch:
        for i in range(n):
            order_id = f"ord_{secrets.token_hex(10)}"
            created = chain_event(order_id, [], "order.created", now, {"quantity": 1})
            done = chain_event(order_id, [created], "reservation.expired", now)
            batch.save(
                OrderItem(
                    order_id=order_id,
                    merchant_id="mer_cost",
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


def test_a_run_costs_the_same_with_10_and_1000_final_orders(shop):
    product_id = shop.new_product(new_codes(12), shards=1)
    for _ in range(10):  # ten real orders, delivered
        order = shop.buy(product_id)
        shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
        shop.wait_for(order, "DELIVERED")
    counter, now = DynamoRequests(), utcnow() + timedelta(days=1)

    def run() -> None:
        reconcile(settings(), now)

    for _ in range(3):  # work through whatever is outstanding until a run at `now` finds nothing new
        counter.during(run)
    with_ten = counter.during(run)
    add_final_orders(990, product_id)
    with_a_thousand = counter.during(run)

    assert sum(with_ten.values()) > 0
    print(
        f"\nDynamoDB requests per reconcile run: 10 final orders {dict(with_ten)}; 1,000 {dict(with_a_thousand)}"
    )
    assert with_a_thousand == with_ten
    assert "Scan" not in with_ten
