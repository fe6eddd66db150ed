"""Reconcile's re-drive step, with in-memory fakes (functions/reconcile/redrive.py): a PAID order not
delivered in time is sent to delivery again with growing pauses, a bounded number of times; then its
product's policy refunds it (stock back) or holds it for review (stock kept). Of two runs at once
only one sends or gives up; crashes and lost answers leave no stock reserved to a refunding order."""

from datetime import datetime, timedelta

import pytest

from functions.reconcile.redrive import redrive_paid
from functions.reconcile.refunds import refund_orders
from shared import faults
from shared.errors import StateConflict
from shared.orders import Order, Status
from tests.fakes import REDRIVE_AFTER, FakePorts, raises, stored

MAX_REDRIVES = 5  # the MAX_DELIVERY_REDRIVES default
PAUSES = [timedelta(minutes=m) for m in (2, 4, 8, 16, 30)]  # after each re-drive, before the next


def redrive(fakes: FakePorts, max_redrives: int = MAX_REDRIVES) -> tuple[int, list[str]]:
    return redrive_paid(
        fakes.orders,
        fakes.delivery,
        fakes.products,
        fakes.allocation,
        fakes.clock(),
        REDRIVE_AFTER,
        max_redrives,
    )


def deadline(fakes: FakePorts, order: Order) -> datetime:
    entry = fakes.orders.due_entry(order.order_id)
    assert entry is not None and entry[0] == Status.PAID
    return entry[1]


def every_redrive_spent(fakes: FakePorts, order: Order, max_redrives: int = MAX_REDRIVES) -> None:
    """Run at each deadline until the order was re-driven `max_redrives` times; the clock is left at
    the deadline after the last pause."""
    for _ in range(max_redrives):
        fakes.clock.now = deadline(fakes, order)
        assert redrive(fakes, max_redrives) == (1, [])
    fakes.clock.now = deadline(fakes, order)


def deliver_quietly(fakes: FakePorts, order: Order) -> None:
    """The deliver function finishing the order meanwhile."""
    with fakes.quietly():
        fakes.allocation.bind(order.product_id, order.slots, order.order_id)
        fakes.orders.transition(order, "order.delivered", fakes.clock())


# ---------- sent again, with growing pauses ----------


def test_a_paid_order_is_not_redriven_before_its_deadline(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.clock.advance(REDRIVE_AFTER - timedelta(seconds=1))

    assert redrive(fakes) == (0, [])
    assert fakes.delivery.sent == [] and stored(fakes, order).redrives == 0


def test_a_paid_order_not_delivered_in_time_is_sent_to_delivery_again(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.clock.advance(REDRIVE_AFTER)

    assert redrive(fakes) == (1, [])

    assert fakes.delivery.sent == [order.order_id]
    assert stored(fakes, order).redrives == 1
    assert deadline(fakes, order) == fakes.clock() + PAUSES[0]
    assert redrive(fakes) == (0, [])  # the same run again, or a second run now: nothing more


def test_redrives_pause_longer_each_time_up_to_half_an_hour(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.clock.advance(REDRIVE_AFTER)

    for sent, pause in enumerate(PAUSES, start=1):
        assert redrive(fakes) == (1, [])
        assert deadline(fakes, order) == fakes.clock() + pause
        fakes.clock.advance(pause - timedelta(seconds=1))
        assert redrive(fakes) == (0, [])
        fakes.clock.advance(seconds=1)
        assert len(fakes.delivery.sent) == sent


@pytest.mark.parametrize("status", [Status.PENDING_PAYMENT, Status.DELIVERED, Status.REFUNDING])
def test_an_order_the_index_still_lists_as_paid_is_read_before_it_is_redriven(fakes, status):
    # Indexes lag writes: the order moved on, its `due` entry still says PAID.
    order = fakes.add_order(fakes.add_product(), status)
    fakes.orders.put(stored(fakes, order), due=(Status.PAID, fakes.clock()))
    fakes.clock.advance(hours=2)

    assert redrive(fakes) == (0, [])
    assert fakes.delivery.sent == [] and stored(fakes, order).status == status


# ---------- two runs at once ----------


def test_of_two_runs_at_once_only_one_sends(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.clock.advance(REDRIVE_AFTER)

    def the_other_run_claims_it_first(*args, **kwargs) -> None:
        with fakes.quietly():
            assert redrive(fakes) == (1, [])

    fakes.orders.before("take_redrive", the_other_run_claims_it_first, times=1)

    assert redrive(fakes) == (0, [])
    assert fakes.delivery.sent == [order.order_id]
    assert stored(fakes, order).redrives == 1


def test_of_two_runs_at_once_at_the_last_deadline_only_one_gives_up(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    every_redrive_spent(fakes, order)
    others: list[str] = []

    def the_other_run_claims_it_first(*args, **kwargs) -> None:
        with fakes.quietly():
            others.extend(redrive(fakes)[1])

    fakes.orders.before("take_redrive", the_other_run_claims_it_first, times=1)

    assert redrive(fakes) == (0, [])
    assert others == [order.order_id]
    assert [e.type for e in stored(fakes, order).history].count("refund.requested") == 1


def test_a_crash_after_claiming_a_redrive_is_sent_after_the_pause(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.clock.advance(REDRIVE_AFTER)
    faults.arm("redrive:after-claimed")

    with pytest.raises(faults.InjectedFault):
        redrive(fakes)
    assert fakes.delivery.sent == []

    fakes.clock.now = deadline(fakes, order)
    assert redrive(fakes) == (1, [])
    assert fakes.delivery.sent == [order.order_id]


# ---------- bounded: then the product's policy ----------


def test_after_the_last_redrive_and_its_pause_the_order_is_refunded_and_its_stock_goes_back(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.PAID)
    fakes.orders.record_delivery_failure(
        order.order_id, "UpstreamDown: top-up API answered 503", fakes.clock()
    )
    every_redrive_spent(fakes, order)

    fakes.clock.advance(seconds=-1)
    assert redrive(fakes) == (0, [])  # not before the last pause is over
    fakes.clock.advance(seconds=1)
    assert redrive(fakes) == (0, [order.order_id])

    refunding = stored(fakes, order)
    assert refunding.status == Status.REFUNDING
    assert refunding.history[-1].type == "refund.requested"
    assert refunding.history[-1].data == {
        "reason": f"not delivered after {MAX_REDRIVES} re-drives",
        "last_error": "UpstreamDown: top-up API answered 503",
    }
    assert len(fakes.delivery.sent) == MAX_REDRIVES
    assert fakes.allocation.held_by(order.order_id) == []
    assert fakes.allocation.levels(product.product_id).available == 3
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock())  # refunded at once


def test_the_bound_is_the_configured_one(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    every_redrive_spent(fakes, order, max_redrives=1)

    assert redrive(fakes, max_redrives=1) == (0, [order.order_id])
    assert fakes.delivery.sent == [order.order_id]


def test_a_product_that_holds_undeliverable_orders_sends_them_to_review_with_their_stock(fakes):
    product = fakes.add_product(codes=3, when_undeliverable="hold")
    order = fakes.add_order(product, Status.PAID)
    every_redrive_spent(fakes, order)

    assert redrive(fakes) == (0, [order.order_id])

    held = stored(fakes, order)
    assert held.status == Status.IN_REVIEW and held.history[-1].type == "review.held"
    assert held.history[-1].data["last_error"] == "none recorded"
    assert len(fakes.allocation.held_by(order.order_id)) == 1  # kept for an operator
    assert fakes.allocation.levels(product.product_id).available == 2


def test_an_order_whose_product_cannot_be_read_is_refunded(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    unknown = {"product_id": "prd_gone", "redrives": MAX_REDRIVES}
    fakes.orders.put(stored(fakes, order).model_copy(update=unknown), due=(Status.PAID, fakes.clock()))

    assert redrive(fakes) == (0, [order.order_id])
    assert stored(fakes, order).status == Status.REFUNDING


def test_an_order_delivered_while_being_given_up_on_stays_delivered(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.PAID)
    every_redrive_spent(fakes, order)
    fakes.orders.before("transition", lambda *args, **kwargs: deliver_quietly(fakes, order), times=1)

    assert redrive(fakes) == (0, [])

    assert stored(fakes, order).status == Status.DELIVERED
    assert fakes.allocation.bound_to(order.order_id) != []  # its code stays sold to it
    assert fakes.allocation.levels(product.product_id).sold == 1


def test_a_give_up_whose_answer_was_lost_still_gives_the_stock_back(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.PAID)
    every_redrive_spent(fakes, order)
    fakes.orders.after("transition", raises(StateConflict("answer lost: refused on the retry")), times=1)

    assert redrive(fakes) == (0, [order.order_id])  # given up by this run: reported (GaveUp)

    assert stored(fakes, order).status == Status.REFUNDING
    assert fakes.allocation.held_by(order.order_id) == []
    assert fakes.allocation.levels(product.product_id).available == 3


def test_a_held_order_whose_answer_was_lost_keeps_its_stock(fakes):
    product = fakes.add_product(codes=3, when_undeliverable="hold")
    order = fakes.add_order(product, Status.PAID)
    every_redrive_spent(fakes, order)
    fakes.orders.after("transition", raises(StateConflict("answer lost: refused on the retry")), times=1)

    assert redrive(fakes) == (0, [order.order_id])  # given up by this run: reported (GaveUp)

    assert stored(fakes, order).status == Status.IN_REVIEW
    assert len(fakes.allocation.held_by(order.order_id)) == 1


def test_a_crash_between_giving_up_and_giving_the_stock_back_is_finished_by_the_refund_step(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.PAID)
    every_redrive_spent(fakes, order)
    faults.arm("redrive:between-refunding-and-release")

    with pytest.raises(faults.InjectedFault):
        redrive(fakes)
    assert stored(fakes, order).status == Status.REFUNDING
    assert len(fakes.allocation.held_by(order.order_id)) == 1

    refund_orders(fakes, fakes.clock())

    assert fakes.allocation.held_by(order.order_id) == []
    assert fakes.allocation.levels(product.product_id).available == 3
