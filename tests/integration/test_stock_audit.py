"""The stock audit (I4) checks the slots actually there, not arithmetic over counters: every slot below
a shard's cursor is bound to an order that lists it, pooled, held by an open order that lists it, or
within the grace period of its claim. Each kind of corruption is reported, and a clean shop is not."""

import json
from datetime import timedelta

from functions.reconcile.audit import audit_stock
from functions.reconcile.burned import GRACE_SECONDS
from shared.adapters import allocation, orders, stock_upkeep
from shared.adapters import products as product_store
from shared.orders import utcnow
from shared.settings import settings
from shared.store.orders import OrderItem
from shared.store.shards import index_partitions
from shared.store.stock.items import ShardItem, SlotItem
from tests.support import new_codes, stored_order

LATER = timedelta(seconds=3 * GRACE_SECONDS)  # past every grace period


def audit(product_id: str, after: timedelta = LATER) -> list[str]:
    return audit_stock(product_store(), stock_upkeep(), orders(), [product_id], utcnow() + after).get(
        product_id, []
    )


def test_a_shop_where_all_is_well_audits_clean_as_it_moves(shop):
    product_id = shop.new_product(new_codes(6), shards=2, max_per_order=2)
    pending = shop.buy(product_id)
    paid = shop.buy(product_id, quantity=2)
    assert audit(product_id, timedelta(0)) == []  # fresh claims, an open order
    assert shop.runtime.sandbox.pay(paid["order_id"], paid["total"]["amount"], "CNY")
    shop.wait_for(paid, "DELIVERED")
    assert audit(product_id) == []  # bound to the order that lists them; the pending one still holds
    assert stored_order(pending["order_id"]).status == "PENDING_PAYMENT"


def test_a_lost_slot_is_reported(shop):
    """A slot held by an order that no longer holds anything (the give-up leak): reserved forever."""
    product_id = shop.new_product(new_codes(2), shards=1)
    order = shop.buy(product_id)
    assert audit(product_id, timedelta(0)) == []
    OrderItem(order_id=order["order_id"]).update(actions=[OrderItem.status.set("REFUNDED")])  # corrupt

    (problem,) = audit(product_id)
    assert "slot 0" in problem and f"held by {order['order_id']}, which is REFUNDED" in problem


def test_a_slot_listed_by_two_orders_is_reported(shop):
    product_id = shop.new_product(new_codes(3), shards=1)
    first, second = shop.buy(product_id), shop.buy(product_id)
    assert shop.runtime.sandbox.pay(first["order_id"], first["total"]["amount"], "CNY")
    shop.wait_for(first, "DELIVERED")
    both = stored_order(first["order_id"]).slots + stored_order(second["order_id"]).slots
    slots = json.dumps([s.model_dump() for s in both])
    OrderItem(order_id=second["order_id"]).update(actions=[OrderItem.slots.set(slots)])  # corrupt

    problems = audit(product_id)
    assert any(f"bound to {first['order_id']} and listed by {second['order_id']}" in p for p in problems)


def test_counter_drift_that_still_adds_up_is_reported(shop):
    """The cursor wound back under a held slot, `remaining` raised to match: the counters add up, but
    the cursor would hand out a slot an order holds."""
    product_id = shop.new_product(new_codes(3), shards=1)
    shop.buy(product_id)
    assert audit(product_id, timedelta(0)) == []
    ShardItem(pk=f"{product_id}#shard#0000", sk="shard").update(
        actions=[ShardItem.cursor.add(-1), ShardItem.remaining.add(1)]
    )  # corrupt

    problems = audit(product_id)
    assert any("slot 0: taken" in p and "above the cursor 0" in p for p in problems)
    assert shop.stock(product_id)["available"] == 3  # what today's levels (a remainder) would believe


def test_a_slot_claimed_by_no_order_is_within_grace_then_returned_not_reported(shop):
    product_id = shop.new_product(new_codes(2), shards=1)
    allocation().claim(product_id, 1, 1, order_id="ord_" + "9" * 20)  # a checkout that died after its claim
    assert audit(product_id, timedelta(0)) == []  # within the grace period: a live checkout's, maybe


def test_a_second_run_reads_only_what_moved(shop):
    """Incremental: once a shard's slots are accounted for, a run reads none of them again."""
    product_id = shop.new_product(new_codes(40), shards=1, max_per_order=10)
    order = shop.buy(product_id, quantity=10)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    assert audit(product_id) == []

    slots_client = SlotItem._get_connection().connection.client  # the slots' reads, this thread's client
    read: list[str] = []

    def count(model, params, **_):
        if model.name == "GetItem" and not params["Key"]["pk"]["S"].startswith(product_id):
            return  # another file's old pooled claim on this worker, judged by the shop-wide held check
        read.append(model.name)

    slots_client.meta.events.register("before-parameter-build.dynamodb", count)
    try:
        assert audit(product_id) == []
    finally:
        slots_client.meta.events.unregister("before-parameter-build.dynamodb", count)
    # Whatever was sold before: the slots at the cursor by key (the drift check), and one query per
    # partition of the `held` index for the shop's claims from the pool old enough to judge (once a
    # run, for all products).
    assert sorted(read) == ["BatchGetItem"] + ["Query"] * len(index_partitions(settings().held_shards))
