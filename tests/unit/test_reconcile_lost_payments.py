"""Reconcile's lost-callback step, with in-memory fakes (functions/reconcile/lost_payments.py): an
unpaid order is asked about at most twice; a payment its provider reports is applied as its callback
would be (I3, I5); a provider that is down is left for the next run; the questions stop when the
run's time for them is spent."""

from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest

from functions.reconcile.expiry import expire_reservations
from functions.reconcile.lost_payments import recover_payments
from shared.errors import InvalidSignature
from shared.orders import Status
from shared.providers import ProviderRefused, ProviderUnavailable, UnexpectedAnswer
from shared.settlement import apply_payment
from tests.fakes import REDRIVE_AFTER, FakePorts, fake_ports, history, raises, stored
from tests.fakes.orders import PAYMENT_QUERY_AFTER


@pytest.fixture
def fakes() -> FakePorts:
    return fake_ports(providers=("sandbox", "stripe"))


def ask(fakes: FakePorts, out_of_time: Callable[[], bool] = lambda: False) -> tuple[int, int]:
    """One run of the step, applying what it finds through the webhook's own path (as run.py does)."""
    now = fakes.clock()
    apply = partial(apply_payment, ports=fakes, now=now, redrive_after=REDRIVE_AFTER)
    return recover_payments(fakes.orders, fakes.providers.provider, apply, now, out_of_time)


def questions(fakes: FakePorts, provider: str = "sandbox") -> list[str]:
    return [call.args[0] for call in fakes.providers[provider].called("query")]


# ---------- a payment the provider reports ----------


def test_an_order_is_not_asked_about_before_its_first_question_is_due(fakes):
    order = fakes.add_order(fakes.add_product())
    fakes.sandbox.pay(order)
    fakes.clock.advance(PAYMENT_QUERY_AFTER - timedelta(seconds=1))

    assert ask(fakes) == (0, 0)
    assert questions(fakes) == [] and stored(fakes, order).status == Status.PENDING_PAYMENT


def test_a_payment_whose_callback_was_lost_is_applied_as_the_callback_would_be(fakes):
    order = fakes.add_order(fakes.add_product())
    event = fakes.sandbox.pay(order)  # the buyer paid; the callback never came
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes) == (1, 1)

    paid = stored(fakes, order)
    assert paid.status == Status.PAID
    assert paid.payment is not None and paid.payment.payment_id == event.payment_id
    assert fakes.delivery.sent == [order.order_id]
    assert fakes.events.applied(event)
    assert [n.data["order_id"] for n in fakes.notify.events("order.paid")] == [order.order_id]
    assert fakes.orders.due_entry(order.order_id) == (Status.PAID, fakes.clock() + REDRIVE_AFTER)


def test_two_runs_asking_at_once_apply_the_payment_once(fakes):
    order = fakes.add_order(fakes.add_product())
    fakes.sandbox.pay(order)
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    def the_other_run_asks_first(*args, **kwargs) -> None:
        with fakes.quietly():
            assert ask(fakes) == (1, 1)

    fakes.sandbox.before("query", the_other_run_asks_first, times=1)

    assert ask(fakes) == (0, 1)  # found it too, applied it no more
    assert [e.type for e in stored(fakes, order).history].count("payment.succeeded") == 1
    assert fakes.delivery.sent == [order.order_id]


def test_a_callback_applied_while_the_run_reads_is_not_asked_about(fakes):
    order = fakes.add_order(fakes.add_product())
    event = fakes.sandbox.pay(order)
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    def callback_arrives(*args, **kwargs) -> None:
        with fakes.quietly():
            apply_payment(event, fakes, fakes.clock(), REDRIVE_AFTER)

    fakes.orders.after("outstanding", callback_arrives, times=1)

    assert ask(fakes) == (0, 0)
    assert questions(fakes) == [] and fakes.delivery.sent == [order.order_id]


def test_a_reported_payment_of_another_amount_is_kept_for_refund_not_applied(fakes):
    order = fakes.add_order(fakes.add_product(price=1000))
    fakes.sandbox.pay(order, amount=999)
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes) == (0, 1)

    assert stored(fakes, order).status == Status.PENDING_PAYMENT and fakes.delivery.sent == []
    assert history(fakes, order) == ["order.created", "payment.wrong_amount"]
    assert len(fakes.events.owed_payments("sandbox")) == 1  # given back by the refund step
    assert fakes.orders.due_entry(order.order_id) == (Status.PENDING_PAYMENT, order.expires_at)


def test_of_two_payments_reported_for_one_order_one_is_applied_and_the_other_owed_back(fakes):
    order = fakes.add_order(fakes.add_product())
    fakes.sandbox.pay(order)
    fakes.sandbox.pay(order, payment_id="pay_second")
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes) == (1, 1)

    assert stored(fakes, order).status == Status.PAID
    assert fakes.events.owed_payments("sandbox") == ["pay_second"]
    assert fakes.delivery.sent == [order.order_id]


# ---------- not paid: asked at most twice ----------


def test_an_unpaid_order_is_asked_again_only_when_its_reservation_ends_then_expires(fakes):
    product = fakes.add_product(codes=1)
    order = fakes.add_order(product)
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes) == (0, 1)
    assert fakes.orders.due_entry(order.order_id) == (Status.PENDING_PAYMENT, order.expires_at)
    fakes.clock.advance(minutes=5)
    assert ask(fakes) == (0, 0)

    fakes.clock.now = order.expires_at
    assert ask(fakes) == (0, 1)
    assert expire_reservations(fakes.orders, fakes.allocation, fakes.clock()) == (1, 1)
    assert ask(fakes) == (0, 0)
    assert questions(fakes) == [order.order_id, order.order_id]


def test_a_payment_made_just_before_the_reservation_ends_is_found_before_the_order_expires(fakes):
    order = fakes.add_order(fakes.add_product())
    fakes.clock.advance(PAYMENT_QUERY_AFTER)
    ask(fakes)
    fakes.clock.now = order.expires_at - timedelta(minutes=1)
    fakes.sandbox.pay(order)  # paid with a minute to spare; its callback is lost
    fakes.clock.now = order.expires_at

    assert ask(fakes) == (1, 1)
    assert expire_reservations(fakes.orders, fakes.allocation, fakes.clock()) == (0, 0)
    assert stored(fakes, order).status == Status.PAID


def test_an_order_whose_provider_is_no_longer_configured_just_waits_for_its_expiry(fakes):
    order = fakes.add_order(fakes.add_product(), provider="alipay")  # not configured here
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes) == (0, 0)
    assert fakes.orders.due_entry(order.order_id) == (Status.PENDING_PAYMENT, order.expires_at)

    fakes.clock.now = order.expires_at
    assert ask(fakes) == (0, 0)
    assert fakes.orders.due_entry(order.order_id) == (Status.PENDING_PAYMENT, order.expires_at)
    assert expire_reservations(fakes.orders, fakes.allocation, fakes.clock())[0] == 1


# ---------- a provider that does not answer ----------


def test_a_provider_that_is_down_is_asked_once_per_run_and_its_orders_next_run(fakes):
    product = fakes.add_product(codes=5)
    first, second = fakes.add_order(product), fakes.add_order(product)
    other = fakes.add_order(product, provider="stripe")
    for order in (first, second):
        fakes.sandbox.pay(order)
    fakes.providers["stripe"].pay(other)
    fakes.sandbox.error = ProviderUnavailable("timed out")
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes) == (1, 2)  # one question to the sandbox, one to Stripe

    assert questions(fakes) == [first.order_id]
    assert stored(fakes, other).status == Status.PAID
    for order in (first, second):  # still due now: asked next run, not at their expiry
        assert stored(fakes, order).status == Status.PENDING_PAYMENT
        assert fakes.orders.due_entry(order.order_id) == (
            Status.PENDING_PAYMENT,
            order.created_at + PAYMENT_QUERY_AFTER,
        )

    fakes.sandbox.error = None
    fakes.clock.advance(minutes=1)
    assert ask(fakes) == (2, 2)
    assert {stored(fakes, o).status for o in (first, second)} == {Status.PAID}


@pytest.mark.parametrize(
    "error",
    [ProviderRefused("401"), UnexpectedAnswer("not JSON"), InvalidSignature("answer not signed")],
    ids=["refused", "unexpected answer", "answer does not verify"],
)
def test_a_provider_that_answers_wrongly_about_one_order_is_still_asked_about_the_next(fakes, error):
    product = fakes.add_product(codes=5)
    first, second = fakes.add_order(product), fakes.add_order(product)
    fakes.sandbox.pay(second)
    fakes.sandbox.before("query", raises(error), times=1)
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes) == (1, 2)

    assert stored(fakes, second).status == Status.PAID
    assert stored(fakes, first).status == Status.PENDING_PAYMENT
    assert fakes.orders.due_entry(first.order_id) == (Status.PENDING_PAYMENT, fakes.clock())  # asked next run


def test_the_questions_stop_when_the_runs_time_for_them_is_spent(fakes):
    product = fakes.add_product(codes=5)
    first, second = fakes.add_order(product), fakes.add_order(product)
    fakes.sandbox.pay(second)
    fakes.clock.advance(PAYMENT_QUERY_AFTER)

    assert ask(fakes, out_of_time=lambda: len(questions(fakes)) >= 1) == (0, 1)

    assert questions(fakes) == [first.order_id]
    assert stored(fakes, second).status == Status.PENDING_PAYMENT
    assert fakes.orders.due_entry(second.order_id) == (Status.PENDING_PAYMENT, fakes.clock())
