"""Burned slots (claimed by a checkout that died before writing its order) go back to stock; slots
of open orders, and claims younger than the grace period, are never taken."""

from datetime import timedelta

from functions.reconcile.burned import GRACE_SECONDS, return_burned_slots
from shared.adapters import orders, stock
from shared.adapters import shop as shop_store
from shared.orders import utcnow
from tests.support import new_codes

T0 = utcnow()  # one clock for the whole test: an audit over many products can take seconds


def audit(after_seconds: float) -> int:
    return return_burned_slots(shop_store(), orders(), stock(), now=T0 + timedelta(seconds=after_seconds))


def test_a_burned_slot_returns_after_the_grace_period_and_open_orders_keep_theirs(shop):
    product_id = shop.new_product(new_codes(3), shards=1)
    pending = shop.buy(product_id)  # an open order: its slot must stay reserved
    stock().claim(product_id, 1, 1, order_id="ord_" + "d" * 20)  # a checkout that died here

    base = 10_000 + (utcnow() - T0).total_seconds()  # ahead of snapshots other tests' runs may have left
    audit(base)  # takes the cursor snapshot
    audit(base + GRACE_SECONDS - 1)  # too young: a live checkout may be about to write its order
    assert shop.stock(product_id) == {"available": 1, "reserved": 2, "sold": 0, "returned": 0, "imported": 3}

    assert audit(base + GRACE_SECONDS) >= 1

    assert shop.stock(product_id) == {"available": 2, "reserved": 1, "sold": 0, "returned": 0, "imported": 3}
    shop.runtime.sandbox.pay(pending["order_id"], pending["total"]["amount"], "CNY")
    assert len(shop.wait_for(pending, "DELIVERED")["items"]) == 1
    audit(base + 3 * GRACE_SECONDS)  # nothing more to return, and nothing returned twice
    assert shop.stock(product_id) == {"available": 2, "reserved": 0, "sold": 1, "returned": 0, "imported": 3}
