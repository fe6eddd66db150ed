"""Reconcile's burned-slot step, with in-memory fakes (functions/reconcile/burned.py): a slot claimed
by a checkout that died before writing its order goes back to stock only after the grace period,
and only once the order it names, read by key, does not hold it; open orders keep theirs whatever
an index says (I4)."""

from datetime import timedelta

import pytest

from functions.reconcile.burned import return_burned_slots
from shared import faults
from shared.orders import Status
from shared.products import Product
from tests.fakes import FakePorts

GRACE = timedelta(minutes=5)  # a claim younger than this may still be writing its order


def return_burned(fakes: FakePorts) -> int:
    return return_burned_slots(fakes.orders, fakes.upkeep, fakes.clock())


def dead_checkout(fakes: FakePorts, product: Product, quantity: int = 1) -> str:
    """A checkout that claimed stock and died before writing its order; the id its slots name."""
    order_id = fakes.new_id("ord")
    with fakes.quietly():
        fakes.allocation.claim(product.product_id, product.shards, quantity, order_id)
    return order_id


def test_a_burned_slot_goes_back_only_after_the_grace_period(fakes):
    product = fakes.add_product(codes=3)
    dead = dead_checkout(fakes, product, quantity=2)

    assert return_burned(fakes) == 0  # seen now: a claim this young may still be writing its order
    fakes.clock.advance(GRACE - timedelta(seconds=1))
    assert return_burned(fakes) == 0
    assert len(fakes.allocation.held_by(dead)) == 2

    fakes.clock.advance(seconds=1)
    assert return_burned(fakes) == 2

    assert fakes.allocation.held_by(dead) == []
    assert fakes.allocation.levels(product.product_id).available == 3
    fakes.clock.advance(GRACE)
    assert return_burned(fakes) == 0  # once


def test_a_slot_claimed_after_the_runs_snapshot_waits_a_whole_grace_period(fakes):
    product = fakes.add_product(codes=3)
    return_burned(fakes)  # the snapshot: nothing handed out yet
    fakes.clock.advance(minutes=4)
    dead = dead_checkout(fakes, product)

    fakes.clock.advance(minutes=1)
    assert return_burned(fakes) == 0  # below the first snapshot there was nothing
    fakes.clock.advance(GRACE - timedelta(seconds=1))
    assert return_burned(fakes) == 0
    fakes.clock.advance(seconds=1)
    assert return_burned(fakes) == 1
    assert fakes.allocation.held_by(dead) == []


@pytest.mark.parametrize("status", [Status.PENDING_PAYMENT, Status.PAID, Status.IN_REVIEW])
def test_slots_of_open_orders_are_never_returned(fakes, status):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, status)

    for _ in range(3):
        assert return_burned(fakes) == 0
        fakes.clock.advance(GRACE)

    assert len(fakes.allocation.held_by(order.order_id)) == 1


def test_an_open_order_no_index_lists_keeps_its_slots(fakes):
    # Indexes lag writes: whether a slot is wanted is asked of its order by key, never of an index.
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    stored = fakes.orders.get(order.order_id)
    assert stored is not None
    fakes.orders.put(stored, due=None)

    return_burned(fakes)
    fakes.clock.advance(GRACE)
    assert return_burned(fakes) == 0
    assert len(fakes.allocation.held_by(order.order_id)) == 1


def test_delivered_codes_stay_sold(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.DELIVERED)

    return_burned(fakes)
    fakes.clock.advance(GRACE)
    assert return_burned(fakes) == 0
    assert len(fakes.allocation.bound_to(order.order_id)) == 1


def test_a_slot_its_order_no_longer_holds_goes_back(fakes):
    # The order expired and crashed before giving its stock back; the expiry step's own retry would
    # too, but this step never leaves a slot to an order past holding stock.
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    with fakes.quietly():
        fakes.orders.transition(order, "reservation.expired", fakes.clock(), due_in=timedelta(0))

    return_burned(fakes)
    fakes.clock.advance(GRACE)
    assert return_burned(fakes) == 1
    assert fakes.allocation.held_by(order.order_id) == []


def test_a_slot_handed_out_but_never_named_goes_back(fakes):
    product = fakes.add_product(codes=3)
    faults.arm("claim:after-take")  # the cursor moved; the claimant died before naming its slot
    with pytest.raises(faults.InjectedFault), fakes.quietly():
        fakes.allocation.claim(product.product_id, product.shards, 1, fakes.new_id("ord"))
    assert fakes.allocation.levels(product.product_id).available == 2

    return_burned(fakes)
    fakes.clock.advance(GRACE)
    assert return_burned(fakes) == 1
    assert fakes.allocation.levels(product.product_id).available == 3


def test_an_abandoned_hold_on_a_returned_slot_goes_back_after_the_grace_period(fakes):
    product = fakes.add_product(codes=1)
    fakes.add_order(product, Status.EXPIRED)  # its code back in the pool
    dead = dead_checkout(fakes, product)  # took it from the pool and died

    fakes.clock.advance(GRACE - timedelta(seconds=1))
    assert return_burned(fakes) == 0
    fakes.clock.advance(seconds=1)
    assert return_burned(fakes) == 1

    assert fakes.allocation.held_by(dead) == []
    assert len(fakes.allocation.held_by(fakes.add_order(product).order_id)) == 1  # sellable again


def test_a_returned_slot_held_again_by_an_open_order_stays_its(fakes):
    product = fakes.add_product(codes=1)
    fakes.add_order(product, Status.EXPIRED)
    buyer = fakes.add_order(product)  # from the pool

    fakes.clock.advance(GRACE * 3)
    assert return_burned(fakes) == 0
    assert len(fakes.allocation.held_by(buyer.order_id)) == 1


def test_a_shard_with_nothing_outstanding_leaves_the_upkeep_index(fakes):
    product = fakes.add_product(codes=3)
    assert product.product_id in fakes.upkeep.shards_due()  # got codes

    return_burned(fakes)
    fakes.clock.advance(GRACE)
    return_burned(fakes)

    assert fakes.upkeep.shards_due() == {}
