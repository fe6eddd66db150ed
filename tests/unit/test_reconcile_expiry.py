"""Reconcile's expiry step, with in-memory fakes (functions/reconcile/expiry.py): an unpaid order
expires only once its reservation has ended, its reserved stock goes back exactly once, a payment
that lands meanwhile wins, and a crash or a lost answer between the two writes is finished later."""

from datetime import timedelta

import pytest

from functions.reconcile.expiry import expire_reservations
from shared import faults
from shared.errors import StateConflict
from shared.orders import Order, Status
from shared.settlement import Outcome, apply_payment
from tests.fakes import REDRIVE_AFTER, RESERVATION, FakePorts, raises, stored


def expire(fakes: FakePorts) -> tuple[int, int]:
    return expire_reservations(fakes.orders, fakes.allocation, fakes.clock())


def pay_quietly(fakes: FakePorts, order: Order) -> None:
    """The payment's callback, applied by the webhook function while reconcile runs."""
    with fakes.quietly():
        assert (
            apply_payment(fakes.sandbox.payment(order), fakes, fakes.clock(), REDRIVE_AFTER)
            == Outcome.APPLIED
        )


# ---------- only once the reservation has ended ----------


@pytest.mark.parametrize("after", [timedelta(minutes=2), RESERVATION - timedelta(seconds=1)])
def test_an_unpaid_order_is_not_expired_before_its_reservation_ends(fakes, after):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    fakes.clock.advance(after)  # due already (its first payment question), not yet expired

    assert expire(fakes) == (0, 0)

    assert stored(fakes, order).status == Status.PENDING_PAYMENT
    assert len(fakes.allocation.held_by(order.order_id)) == 1
    assert fakes.orders.due_entry(order.order_id) is not None  # still due: asked again, expired later


def test_when_its_reservation_ends_an_unpaid_order_expires_and_its_stock_goes_back(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)

    assert expire(fakes) == (1, 1)

    expired = stored(fakes, order)
    assert expired.status == Status.EXPIRED
    assert expired.history[-1].type == "reservation.expired"
    assert fakes.allocation.held_by(order.order_id) == []
    levels = fakes.allocation.levels(product.product_id)
    assert (levels.available, levels.reserved) == (3, 0)
    assert fakes.orders.due_entry(order.order_id) is None  # nothing left to do for it


def test_only_orders_whose_reservation_ended_expire(fakes):
    product = fakes.add_product(codes=3)
    early = fakes.add_order(product)
    fakes.clock.advance(minutes=10)
    late = fakes.add_order(product)
    fakes.clock.advance(minutes=5)

    assert expire(fakes) == (1, 1)

    assert stored(fakes, early).status == Status.EXPIRED
    assert stored(fakes, late).status == Status.PENDING_PAYMENT
    assert len(fakes.allocation.held_by(late.order_id)) == 1


def test_the_whole_reservation_goes_back_exactly_once(fakes):
    product = fakes.add_product(codes=5)
    order = fakes.add_order(product, quantity=3)
    fakes.clock.advance(RESERVATION)

    assert expire(fakes) == (1, 3)
    assert expire(fakes) == (0, 0)
    fakes.clock.advance(hours=1)
    assert expire(fakes) == (0, 0)

    levels = fakes.allocation.levels(product.product_id)
    assert (levels.available, levels.reserved, levels.sold) == (5, 0, 0)
    assert [e.type for e in stored(fakes, order).history].count("reservation.expired") == 1


def test_a_returned_code_goes_to_the_next_buyer(fakes):
    product = fakes.add_product(codes=1)
    first = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)
    expire(fakes)

    second = fakes.add_order(product)  # would be sold out had the code not come back

    assert len(fakes.allocation.held_by(second.order_id)) == 1
    assert fakes.allocation.held_by(first.order_id) == []


@pytest.mark.parametrize("status", [Status.PAID, Status.DELIVERED, Status.IN_REVIEW, Status.REFUNDING])
def test_orders_past_payment_are_never_expired(fakes, status):
    order = fakes.add_order(fakes.add_product(codes=3), status)
    fakes.clock.advance(days=1)

    assert expire(fakes) == (0, 0)
    assert stored(fakes, order).status == status
    assert fakes.orders.called("transition") == []


def test_an_order_the_index_still_lists_as_unpaid_is_read_before_it_is_expired(fakes):
    # Indexes lag writes: the order was paid, its `due` entry still says PENDING_PAYMENT.
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.PAID)
    fakes.orders.put(stored(fakes, order), due=(Status.PENDING_PAYMENT, fakes.clock()))
    fakes.clock.advance(RESERVATION)

    assert expire(fakes) == (0, 0)

    assert stored(fakes, order).status == Status.PAID
    assert len(fakes.allocation.held_by(order.order_id)) == 1


# ---------- a payment that arrives while the order is being expired ----------


def test_a_payment_applied_just_before_the_expiry_write_wins(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)
    fakes.orders.before("transition", lambda *args, **kwargs: pay_quietly(fakes, order), times=1)

    assert expire(fakes) == (0, 0)

    paid = stored(fakes, order)
    assert paid.status == Status.PAID and paid.slots == order.slots
    assert len(fakes.allocation.held_by(order.order_id)) == 1  # its reservation kept for delivery
    assert fakes.delivery.sent == [order.order_id]


def test_a_payment_applied_between_the_expiry_and_the_stock_return_keeps_its_new_reservation(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)

    def late_payment_lands(status: Status, *args, **kwargs) -> None:
        if status == Status.EXPIRED:  # after the expiry write, before its stock is returned
            pay_quietly(fakes, stored(fakes, order))

    fakes.orders.after("due", late_payment_lands)

    assert expire(fakes) == (1, 0)

    paid = stored(fakes, order)
    assert paid.status == Status.PAID and paid.history[-1].data.get("late") == "true"
    assert len(fakes.allocation.held_by(order.order_id)) == 1  # the late payment's slot is still its
    assert fakes.allocation.levels(product.product_id).reserved == 1
    assert fakes.orders.due_entry(order.order_id) == (Status.PAID, fakes.clock() + REDRIVE_AFTER)


# ---------- crashes and lost answers ----------


def test_a_crash_between_the_expiry_and_the_stock_return_is_finished_by_the_next_run(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)
    faults.arm("reconcile:after-expired")

    with pytest.raises(faults.InjectedFault):
        expire(fakes)
    assert stored(fakes, order).status == Status.EXPIRED
    assert fakes.orders.due_entry(order.order_id) == (Status.EXPIRED, fakes.clock())  # still to return

    assert expire(fakes) == (0, 1)
    assert fakes.allocation.levels(product.product_id).available == 3
    assert fakes.orders.due_entry(order.order_id) is None


def test_an_expiry_write_whose_answer_was_lost_still_returns_the_stock_in_the_same_run(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)
    fakes.orders.after("transition", raises(StateConflict("answer lost: refused on the retry")), times=1)

    assert expire(fakes) == (1, 1)  # expired by this run: counted (the Expired metric)
    assert stored(fakes, order).status == Status.EXPIRED
    assert fakes.allocation.levels(product.product_id).available == 3


def test_a_stock_return_that_failed_is_retried_by_the_next_run(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)
    fakes.allocation.before("release", raises(ConnectionError("throttled")), times=1)

    with pytest.raises(ConnectionError):
        expire(fakes)
    assert len(fakes.allocation.held_by(order.order_id)) == 1

    assert expire(fakes) == (0, 1)
    assert fakes.allocation.levels(product.product_id).available == 3


def test_a_stock_return_whose_answer_was_lost_is_not_counted_twice(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)
    fakes.allocation.after("release", raises(ConnectionError("answer lost")), times=1)

    with pytest.raises(ConnectionError):
        expire(fakes)

    assert expire(fakes) == (0, 0)  # already back: the release gives back only what the order holds
    levels = fakes.allocation.levels(product.product_id)
    assert (levels.available, levels.reserved) == (3, 0)
    assert fakes.orders.due_entry(order.order_id) is None


def test_a_stock_return_repeated_after_the_code_was_sold_on_takes_nothing_from_its_new_buyer(fakes):
    product = fakes.add_product(codes=1)
    order = fakes.add_order(product)
    fakes.clock.advance(RESERVATION)
    fakes.orders.before("clear_due", raises(ConnectionError("throttled")), times=1)
    with pytest.raises(ConnectionError):
        expire(fakes)  # the stock went back, the `due` entry stayed
    buyer = fakes.add_order(product)  # the next buyer takes the returned code

    assert expire(fakes) == (0, 0)

    assert len(fakes.allocation.held_by(buyer.order_id)) == 1
    assert fakes.orders.due_entry(order.order_id) is None
