"""Regression (audit repro A): a paid order given up on (policy `refund`) whose REFUNDING write's answer
is lost, or whose Lambda dies right after it, gets its never-bound slots back: releasing is part of
every path that settles REFUNDING (the give-up itself, a re-read after a conflict, the refund step
and its confirmation), idempotently, and the stock audit would report a slot left behind."""

from datetime import timedelta

import pytest

from functions.reconcile.audit import audit_stock
from functions.reconcile.burned import GRACE_SECONDS, return_burned_slots
from functions.reconcile.run import reconcile
from shared import faults
from shared.adapters import orders, stock_upkeep
from shared.adapters import products as product_store
from shared.errors import StateConflict
from shared.orders import utcnow
from shared.settings import settings
from shared.store.orders import OrderStore
from shared.store.stock.items import SlotItem
from tests.integration.test_reconcile import lose_every_redrive
from tests.integration.test_refunds import paid_not_delivered
from tests.support import new_codes, stored_order


@pytest.mark.parametrize("fault", ["lost-answer", "crash"])
def test_a_given_up_orders_slots_go_back_to_stock(shop, monkeypatch, fault):
    product_id = shop.new_product(new_codes(2), shards=1)
    order = shop.buy(product_id)
    paid_not_delivered(shop, order)  # PAID (a real sandbox payment), delivery message lost
    (slot_range,) = stored_order(order["order_id"]).slots
    t0 = utcnow() + timedelta(hours=1)
    return_burned_slots(
        orders(), stock_upkeep(), now=t0
    )  # the burned-slot step settles past the open order's slot
    return_burned_slots(orders(), stock_upkeep(), now=t0 + timedelta(seconds=GRACE_SECONDS + 1))
    assert shop.stock(product_id)["reserved"] == 1

    if fault == "lost-answer":
        real = OrderStore.transition

        def lossy(self, o, event_type, *args, **kwargs):
            result = real(self, o, event_type, *args, **kwargs)
            if event_type == "refund.requested":  # applied; the SDK's retry then hits ConditionalCheckFailed
                raise StateConflict("answer lost")
            return result

        monkeypatch.setattr(OrderStore, "transition", lossy)
    else:
        faults.arm("redrive:between-refunding-and-release")

    lose_every_redrive(t0)
    monkeypatch.undo()
    assert faults.armed() == set()
    assert stored_order(order["order_id"]).status == "REFUNDING"

    later = t0 + timedelta(days=30)
    reconcile(settings(), later)  # the refund step: the provider's answer confirms it
    assert stored_order(order["order_id"]).status == "REFUNDED"

    slot = SlotItem.get(
        f"{product_id}#slots#{slot_range.shard}", f"{slot_range.start:012d}", consistent_read=True
    )
    assert slot.order_id is None and slot.holder == "returned" and slot.returned_key == product_id
    assert shop.stock(product_id) == {"available": 2, "reserved": 0, "sold": 0, "returned": 0, "imported": 2}
    problems = audit_stock(product_store(), stock_upkeep(), orders(), [product_id], later)
    assert problems == {}
    again = shop.buy(product_id, quantity=1)  # and the code sells again
    assert shop.runtime.sandbox.pay(again["order_id"], again["total"]["amount"], "CNY")
    assert len(shop.wait_for(again, "DELIVERED")["items"]) == 1
