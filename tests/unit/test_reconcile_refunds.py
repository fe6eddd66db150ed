"""Reconcile's refund steps, with in-memory fakes (functions/reconcile/refunds.py): each REFUNDING
order's refund is sent once (asked about, never sent again, while pending; replaced once failed),
its stock goes back whatever the provider says, and a provider that is down is asked once a run;
payments kept for refund are given back once, under an id derived from them, and one the provider
refuses is set aside for an operator."""

import hashlib
from collections.abc import Callable
from datetime import timedelta

import pytest

from functions.reconcile.refunds import refund_orders, refund_owed_payments
from shared.orders import Order, Status
from shared.providers import ProviderRefused, ProviderUnavailable, RefundState
from shared.refunds import CHECK_PENDING_AFTER, RETRY_FAILED_AFTER, refund_id_for
from shared.settlement import Outcome, apply_payment
from tests.fakes import REDRIVE_AFTER, FakePorts, fake_ports, raises, stored


@pytest.fixture
def fakes() -> FakePorts:
    return fake_ports(providers=("sandbox", "stripe"))


def refund(fakes: FakePorts, out_of_time: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    return refund_orders(fakes, fakes.clock(), out_of_time)


def give_back_owed(
    fakes: FakePorts, providers: list[str] | None = None, out_of_time: Callable[[], bool] = lambda: False
) -> int:
    names = fakes.providers.configured() if providers is None else providers
    return refund_owed_payments(fakes.events, fakes.orders, fakes.providers.provider, names, out_of_time)


def refunding(fakes: FakePorts, provider: str = "sandbox", codes: int = 3) -> Order:
    """A paid order just given up on: REFUNDING, due now, its stock not given back yet (the path that
    wrote REFUNDING crashed before its release)."""
    order = fakes.add_order(fakes.add_product(codes=codes), Status.PAID, provider=provider)
    with fakes.quietly():
        return fakes.orders.transition(order, "refund.requested", fakes.clock(), due_in=timedelta(0))


def second_payment(fakes: FakePorts, order: Order, provider: str = "sandbox") -> str:
    """A second, different payment for the order, kept to be given back; its payment id."""
    event = fakes.providers[provider].payment(order, payment_id=f"pay_second_{order.order_id[-4:]}")
    assert apply_payment(event, fakes, fakes.clock(), REDRIVE_AFTER) == Outcome.NEEDS_REFUND
    return event.payment_id


# ---------- a REFUNDING order's refund ----------


def test_a_refunding_orders_refund_is_sent_and_settles_it_refunded_with_its_stock_back(fakes):
    order = refunding(fakes)

    assert refund(fakes) == (1, 0)

    (request,) = fakes.sandbox.refunds_sent
    assert request.refund_id == refund_id_for(order.order_id)
    assert order.payment is not None
    assert (request.payment_id, request.amount) == (order.payment.payment_id, order.total)
    assert stored(fakes, order).status == Status.REFUNDED
    assert fakes.allocation.levels(order.product_id).available == 3
    assert [n.data["order_id"] for n in fakes.notify.events("order.refunded")] == [order.order_id]
    assert fakes.orders.due_entry(order.order_id) is None


def test_a_pending_refund_is_asked_about_and_never_sent_again(fakes):
    order = refunding(fakes)
    fakes.sandbox.refund_answer = RefundState.PENDING

    assert refund(fakes) == (0, 1)
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + CHECK_PENDING_AFTER)
    assert refund(fakes) == (0, 0)  # not due again yet
    fakes.clock.advance(CHECK_PENDING_AFTER)
    assert refund(fakes) == (0, 1)  # still pending at the provider

    fakes.sandbox.settle_refund(refund_id_for(order.order_id), RefundState.SUCCEEDED)
    fakes.clock.advance(CHECK_PENDING_AFTER)
    assert refund(fakes) == (1, 0)

    assert len(fakes.sandbox.refunds_sent) == 1
    assert stored(fakes, order).status == Status.REFUNDED


def test_a_refund_whose_answer_was_lost_is_asked_about_not_sent_again(fakes):
    order = refunding(fakes)
    fakes.sandbox.after("refund", raises(ProviderUnavailable("timed out")), times=1)

    assert refund(fakes) == (0, 1)
    assert stored(fakes, order).status == Status.REFUNDING
    fakes.clock.advance(CHECK_PENDING_AFTER)

    assert refund(fakes) == (1, 0)
    assert len(fakes.sandbox.refunds_sent) == 1
    assert stored(fakes, order).status == Status.REFUNDED


def test_a_failed_refund_is_recorded_and_replaced_an_hour_later(fakes):
    order = refunding(fakes)
    fakes.sandbox.refund_answer = RefundState.FAILED

    assert refund(fakes) == (0, 1)
    waiting = stored(fakes, order)
    assert waiting.status == Status.REFUNDING and waiting.refund_error is not None
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + RETRY_FAILED_AFTER)

    fakes.sandbox.refund_answer = RefundState.SUCCEEDED
    fakes.clock.advance(RETRY_FAILED_AFTER)
    assert refund(fakes) == (1, 0)

    assert [r.refund_id for r in fakes.sandbox.refunds_sent] == [
        refund_id_for(order.order_id),
        refund_id_for(order.order_id, 1),
    ]
    assert stored(fakes, order).status == Status.REFUNDED


def test_a_refund_the_provider_refuses_is_tried_again_later_and_the_provider_asked_about_others(fakes):
    first, second = refunding(fakes), refunding(fakes)
    fakes.sandbox.before("refund_state", raises(ProviderRefused("400 bad request")), times=1)

    assert refund(fakes) == (1, 1)

    assert stored(fakes, first).status == Status.REFUNDING
    assert "ProviderRefused" in (stored(fakes, first).refund_error or "")
    assert fakes.orders.due_entry(first.order_id) == (Status.REFUNDING, fakes.clock() + RETRY_FAILED_AFTER)
    assert stored(fakes, second).status == Status.REFUNDED
    assert fakes.allocation.held_by(first.order_id) == []


def test_a_provider_that_is_down_is_asked_once_and_every_orders_stock_still_goes_back(fakes):
    first, second = refunding(fakes), refunding(fakes)
    other = refunding(fakes, provider="stripe")
    fakes.sandbox.error = ProviderUnavailable("timed out")

    refunded, _ = refund(fakes)

    assert refunded == 1 and stored(fakes, other).status == Status.REFUNDED
    assert len(fakes.sandbox.called("refund_state")) == 1
    for order in (first, second):
        assert stored(fakes, order).status == Status.REFUNDING
        assert fakes.allocation.held_by(order.order_id) == []
    assert fakes.orders.due_entry(first.order_id) == (Status.REFUNDING, fakes.clock() + CHECK_PENDING_AFTER)
    assert fakes.orders.due_entry(second.order_id) == (Status.REFUNDING, fakes.clock())  # asked next run

    fakes.sandbox.error = None
    fakes.clock.advance(CHECK_PENDING_AFTER)
    assert refund(fakes) == (2, 0)
    assert len(fakes.sandbox.refunds_sent) == 2


def test_an_order_whose_provider_is_not_configured_waits_with_the_reason_and_its_stock_back(fakes):
    order = refunding(fakes, provider="alipay")

    assert refund(fakes) == (0, 1)

    waiting = stored(fakes, order)
    assert waiting.status == Status.REFUNDING
    assert waiting.refund_error == "provider alipay is not configured"
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + RETRY_FAILED_AFTER)
    assert fakes.allocation.held_by(order.order_id) == []


def test_an_order_the_index_still_lists_as_refunding_is_read_first(fakes):
    order = fakes.add_order(fakes.add_product(), Status.REFUNDED)
    fakes.orders.put(stored(fakes, order), due=(Status.REFUNDING, fakes.clock()))

    assert refund(fakes) == (0, 0)
    assert fakes.sandbox.calls == [] and fakes.allocation.called("release") == []


def test_the_refund_step_stops_when_the_runs_time_for_providers_is_spent(fakes):
    first, second = refunding(fakes), refunding(fakes)

    assert refund(fakes, out_of_time=lambda: len(fakes.sandbox.refunds_sent) >= 1) == (1, 0)

    assert stored(fakes, first).status == Status.REFUNDED
    assert stored(fakes, second).status == Status.REFUNDING  # next run
    assert fakes.orders.due_entry(second.order_id) == (Status.REFUNDING, fakes.clock())


# ---------- payments kept for refund ----------


def test_a_second_payment_for_one_order_is_given_back_once(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    payment_id = second_payment(fakes, order)

    assert give_back_owed(fakes) == 1
    assert give_back_owed(fakes) == 0

    (request,) = fakes.sandbox.refunds_sent
    owed_key = f"owed#sandbox#{payment_id}"
    assert request.refund_id == f"rp_{hashlib.sha256(owed_key.encode()).hexdigest()[:32]}"
    assert (request.payment_id, request.amount) == (payment_id, order.total)
    assert fakes.events.owed_payments("sandbox") == []
    assert stored(fakes, order).status == Status.PAID  # the order keeps its own payment


def test_an_owed_refund_pending_at_the_provider_is_asked_about_not_sent_again(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    payment_id = second_payment(fakes, order)
    fakes.sandbox.refund_answer = RefundState.PENDING

    assert give_back_owed(fakes) == 0
    assert give_back_owed(fakes) == 0
    assert fakes.events.owed_payments("sandbox") == [payment_id]

    (request,) = fakes.sandbox.refunds_sent
    fakes.sandbox.settle_refund(request.refund_id, RefundState.SUCCEEDED)
    assert give_back_owed(fakes) == 1
    assert len(fakes.sandbox.refunds_sent) == 1 and fakes.events.owed_payments("sandbox") == []


@pytest.mark.parametrize("answer", ["failed", "refused"])
def test_an_owed_refund_the_provider_fails_or_refuses_is_set_aside_for_an_operator(fakes, answer):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    payment_id = second_payment(fakes, order)
    if answer == "failed":
        fakes.sandbox.refund_answer = RefundState.FAILED
    else:
        fakes.sandbox.before("refund", raises(ProviderRefused("400 bad request")))

    assert give_back_owed(fakes) == 0

    assert fakes.events.owed_payments("sandbox") == []
    assert fakes.events.refund_failed("sandbox") == [payment_id]
    assert give_back_owed(fakes) == 0 and len(fakes.sandbox.called("refund")) == 1


def test_a_provider_that_is_down_keeps_its_owed_refunds_for_the_next_run_and_others_go_on(fakes):
    product = fakes.add_product(codes=5)
    mine = [fakes.add_order(product, Status.PAID) for _ in range(2)]
    owed = [second_payment(fakes, order) for order in mine]
    theirs = fakes.add_order(product, Status.PAID, provider="stripe")
    second_payment(fakes, theirs, provider="stripe")
    fakes.sandbox.error = ProviderUnavailable("timed out")

    assert give_back_owed(fakes) == 1

    assert len(fakes.sandbox.called("refund_state")) == 1
    assert fakes.events.owed_payments("sandbox") == owed
    assert fakes.events.owed_payments("stripe") == []
    fakes.sandbox.error = None
    assert give_back_owed(fakes) == 2


def test_the_orders_own_payment_is_refunded_with_the_order_once(fakes):
    product = fakes.add_product(codes=1)
    order = fakes.add_order(product, Status.EXPIRED)
    fakes.add_order(product)  # the code went to someone else
    late = fakes.sandbox.payment(order)
    assert apply_payment(late, fakes, fakes.clock(), REDRIVE_AFTER) == Outcome.NEEDS_REFUND

    assert give_back_owed(fakes) == 0  # left to its REFUNDING order
    assert fakes.sandbox.refunds_sent == []
    assert refund(fakes) == (1, 0)
    assert give_back_owed(fakes) == 0  # the order is REFUNDED: owed no more, nothing sent

    assert [r.refund_id for r in fakes.sandbox.refunds_sent] == [refund_id_for(order.order_id)]
    assert fakes.events.owed_payments("sandbox") == []


def test_a_provider_no_longer_configured_is_skipped(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    second_payment(fakes, order)

    assert give_back_owed(fakes, providers=["alipay", "sandbox"]) == 1


def test_owed_refunds_stop_when_the_runs_time_for_providers_is_spent(fakes):
    product = fakes.add_product(codes=5)
    orders = [fakes.add_order(product, Status.PAID) for _ in range(2)]
    owed = [second_payment(fakes, order) for order in orders]

    assert give_back_owed(fakes, out_of_time=lambda: len(fakes.sandbox.refunds_sent) >= 1) == 1
    assert fakes.events.owed_payments("sandbox") == owed[1:]
