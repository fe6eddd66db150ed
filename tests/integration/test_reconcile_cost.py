"""Reconcile's cost follows the outstanding work, not the number of orders: a run makes the same
DynamoDB requests with 10 and with 1,000 final (delivered, expired, refunded) orders in the table."""

import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from pynamodb.models import Model

from bench.reconcile import add_final_orders
from functions.reconcile.run import reconcile
from shared.orders import utcnow
from shared.settings import settings
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
    add_final_orders(990, product_id, utcnow())
    with_a_thousand = counter.during(run)

    assert sum(with_ten.values()) > 0
    print(
        f"\nDynamoDB requests per reconcile run: 10 final orders {dict(with_ten)}; 1,000 {dict(with_a_thousand)}"
    )
    assert with_a_thousand == with_ten
    assert "Scan" not in with_ten
