"""Regression (audit repro B): the burned-slot step never decides from absence in the eventually
consistent `due` index. Each slot names its claimant, and the step asks that order, by key and
strongly consistently, whether it still holds the slot; a paid order hidden from the index (index lag,
simulated) keeps its code and is delivered."""

from datetime import timedelta

from functions.deliver.delivery import deliver
from functions.reconcile.burned import GRACE_SECONDS, return_burned_slots
from shared.adapters import orders, ports, stock_upkeep
from shared.orders import utcnow
from shared.store.orders import OrderStore
from tests.integration.test_refunds import paid_not_delivered
from tests.support import new_codes, stored_order


def test_a_lagging_due_index_cannot_take_a_paid_orders_code(shop, monkeypatch):
    product_id = shop.new_product(new_codes(1), shards=1)
    a = shop.buy(product_id)
    t0 = utcnow() + timedelta(hours=2)
    return_burned_slots(orders(), stock_upkeep(), now=t0)  # cursor snapshot covers A's slot
    paid_not_delivered(shop, a)  # A is paid; its delivery message is in flight

    def lagging(self, status, before=None, limit=None):  # the index lists nothing at all
        return []

    monkeypatch.setattr(OrderStore, "outstanding", lagging)
    return_burned_slots(orders(), stock_upkeep(), now=t0 + timedelta(seconds=GRACE_SECONDS + 1))
    monkeypatch.undo()

    # The run's count is shop-wide (other files' burned slots on this worker): judge this product.
    assert shop.stock(product_id) == {"available": 0, "reserved": 1, "sold": 0, "returned": 0, "imported": 1}
    assert shop.checkout(product_id).status_code == 409  # nobody else can take A's code
    deliver(a["order_id"], ports(), now=utcnow())
    assert stored_order(a["order_id"]).status == "DELIVERED"
