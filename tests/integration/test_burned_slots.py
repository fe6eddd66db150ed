"""Burned slots (claimed by a checkout that died before writing its order) go back to stock; slots
of open orders, and claims younger than the grace period, are never taken."""

from datetime import timedelta

from functions.reconcile.burned import GRACE_SECONDS, return_burned_slots
from shared.adapters import allocation, orders, stock_upkeep
from shared.orders import utcnow
from tests.support import expire_all, new_codes, stored_order

T0 = utcnow()  # one clock for the whole test: an audit over many products can take seconds


def nobody(order_ids: set[str]) -> dict:
    """No order holds anything (as the claimants of slots whose checkout died)."""
    return {}


def audit(after_seconds: float) -> int:
    return return_burned_slots(orders(), stock_upkeep(), now=T0 + timedelta(seconds=after_seconds))


def test_a_burned_slot_returns_after_the_grace_period_and_open_orders_keep_theirs(shop):
    product_id = shop.new_product(new_codes(3), shards=1)
    pending = shop.buy(product_id)  # an open order: its slot must stay reserved
    allocation().claim(product_id, 1, 1, order_id="ord_" + "d" * 20)  # a checkout that died here

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


def test_a_returned_slot_claimed_by_a_checkout_that_died_comes_back(shop):
    product_id = shop.new_product(new_codes(2), shards=1, max_per_order=2)
    abandoned = shop.buy(product_id)
    expire_all()  # its slot goes to the pool
    # A checkout for 2 takes the pooled slot and the fresh one, then dies before writing its order.
    pieces = allocation().claim(product_id, 1, 2, order_id="ord_" + "e" * 20)
    assert sum(p.count for p in pieces) == 2
    assert shop.stock(product_id)["available"] == 0

    base = 20_000 + (utcnow() - T0).total_seconds()
    audit(base)
    audit(base + GRACE_SECONDS)

    assert shop.stock(product_id) == {"available": 2, "reserved": 0, "sold": 0, "returned": 0, "imported": 2}
    assert stored_order(abandoned["order_id"]).status == "EXPIRED"
    again = shop.buy(product_id, quantity=2)
    shop.runtime.sandbox.pay(again["order_id"], again["total"]["amount"], "CNY")
    assert len(shop.wait_for(again, "DELIVERED")["items"]) == 2


def test_a_claim_is_never_wound_back_below_the_audits_snapshot(shop):
    product_id = shop.new_product(new_codes(2), shards=1)
    (piece,) = allocation().claim(product_id, 1, 1, order_id="ord_" + "f" * 20)
    audit(30_000 + (utcnow() - T0).total_seconds())  # the snapshot now covers the claimed slot

    # Winding the claim back now could hand the slot out twice (cursor and pool): it must refuse,
    # and the all-or-nothing claim then releases the slot to the pool instead.
    assert allocation()._untake(product_id, piece, "ord_" + "f" * 20) is False
    assert allocation().release(product_id, [piece], "ord_" + "f" * 20) == 1
    assert shop.stock(product_id) == {"available": 2, "reserved": 0, "sold": 0, "returned": 0, "imported": 2}


def test_slots_a_stored_order_holds_are_never_released_as_spare(shop):
    product_id = shop.new_product(new_codes(3), shards=1)
    order = shop.buy(product_id, quantity=2)
    held = stored_order(order["order_id"]).slots
    # As after a write whose answer was lost: the caller thinks its claim is spare, the order has it.
    assert allocation().release_unkept(product_id, held, held, order["order_id"]) == 0
    shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    assert len(shop.wait_for(order, "DELIVERED")["items"]) == 2


def test_a_claim_wound_back_while_the_audit_runs_is_never_returned_to_the_pool_as_well(shop):
    product_id = shop.new_product(new_codes(3), shards=1)
    allocation().claim(product_id, 1, 1, order_id="ord_" + "a" * 20)  # burned: its checkout died
    base = int(40_000 + (utcnow() - T0).total_seconds() + T0.timestamp())
    stock_upkeep().return_burned(product_id, 0, base, GRACE_SECONDS, nobody)  # snapshot: slot 0 handed out
    piece = allocation()._take(
        product_id, 0, 1, "ord_" + "b" * 20
    )  # a piece of a multi-shard claim, about to give up

    def open_slots(order_ids):  # read by the audit between its shard read and its snapshot write
        assert (
            allocation()._untake(product_id, piece, "ord_" + "b" * 20) is True
        )  # the claim winds the piece back
        return {}

    stock_upkeep().return_burned(product_id, 0, base + GRACE_SECONDS, GRACE_SECONDS, open_slots)
    stock_upkeep().return_burned(product_id, 0, base + 2 * GRACE_SECONDS, GRACE_SECONDS, nobody)

    assert shop.stock(product_id) == {"available": 3, "reserved": 0, "sold": 0, "returned": 0, "imported": 3}
    assert stock_upkeep().audit(product_id, 1) == []
