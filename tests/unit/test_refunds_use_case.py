"""Refunds' rules, with in-memory fakes (shared/refunds.py, functions/merchant/refund.py): which orders a
merchant may refund, the exact amount asked of the provider in minor units, stock never bound given back
once, one refund at the provider however often it is asked, a provider that is down or pending waited
for, a refused refund retried as the next attempt and then left to an operator, order.refunded told;
crashes, lost answers and races converge."""

from datetime import timedelta

import pytest

from functions.merchant.refund import refund_order
from shared import faults
from shared.errors import IntegrityViolation, InvalidSignature, NotFound, StateConflict
from shared.money import Money
from shared.orders import Order, Status
from shared.providers import ProviderRefused, ProviderUnavailable, RefundState, UnexpectedAnswer
from shared.refunds import (
    CHECK_PENDING_AFTER,
    MAX_REFUND_ATTEMPTS,
    RETRY_FAILED_AFTER,
    confirm_refund,
    refund_id_for,
    request_refund,
    send_refund,
)
from shared.settlement import apply_refund
from tests.fakes import MERCHANT_ID, FakePorts, history, raises, stored


def merchant_refunds(fakes: FakePorts, order: Order, reason: str = "sold by mistake") -> Order:
    return refund_order(MERCHANT_ID, order.order_id, reason, fakes, fakes.clock())


def send(fakes: FakePorts, order: Order) -> RefundState | None:
    """One attempt, as reconcile's refund step makes it, on the order as stored now."""
    return send_refund(stored(fakes, order), fakes.sandbox, fakes, fakes.clock())


def refunded_events(fakes: FakePorts, order: Order) -> set[str]:
    """The ids of the order.refunded events queued for the order (a merchant sees each id once)."""
    return {n.event_id for n in fakes.notify.events("order.refunded") if n.data["order_id"] == order.order_id}


def refunding(fakes: FakePorts, codes: int = 2, **product: object) -> Order:
    """A REFUNDING order, due now, its stock given back (as reconcile finds it)."""
    return fakes.add_order(fakes.add_product(codes=codes, **product), Status.REFUNDING)


# ---------- what a merchant may refund ----------


@pytest.mark.parametrize("status", [Status.PAID, Status.IN_REVIEW])
def test_a_paid_order_is_refunded_at_once_and_its_stock_goes_back(fakes, status):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, status, quantity=2)

    refunded = merchant_refunds(fakes, order)

    assert refunded.status == Status.REFUNDED == stored(fakes, order).status
    assert history(fakes, order)[-2:] == ["refund.requested", "refund.confirmed"]
    levels = fakes.allocation.levels(product.product_id)
    assert (levels.available, levels.reserved, levels.sold) == (3, 0, 0)
    assert fakes.allocation.held_by(order.order_id) == []
    assert len(fakes.sandbox.refunds_sent) == 1
    assert fakes.orders.due_entry(order.order_id) is None


def test_a_delivered_order_is_refunded_and_its_codes_stay_sold(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.DELIVERED)
    bound = fakes.allocation.bound_to(order.order_id)

    assert merchant_refunds(fakes, order).status == Status.REFUNDED

    assert fakes.allocation.bound_to(order.order_id) == bound != []
    levels = fakes.allocation.levels(product.product_id)
    assert (levels.available, levels.sold) == (2, 1)


@pytest.mark.parametrize("status", [Status.PENDING_PAYMENT, Status.EXPIRED, Status.CLAIMED, Status.REPLACED])
def test_an_order_without_a_payment_to_refund_is_refused_and_unchanged(fakes, status):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, status)
    levels = fakes.allocation.levels(product.product_id)

    with pytest.raises(StateConflict) as refused:
        merchant_refunds(fakes, order)

    assert refused.value.code == "not_refundable"
    assert stored(fakes, order) == order
    assert fakes.allocation.levels(product.product_id) == levels
    assert fakes.sandbox.refunds_sent == [] and fakes.notify.messages == []


def test_another_merchants_order_is_not_found_and_unchanged(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)

    with pytest.raises(NotFound) as refused:
        refund_order(f"mer_{2:020x}", order.order_id, "mine now", fakes, fakes.clock())

    assert refused.value.code == "order_not_found"
    assert stored(fakes, order) == order and fakes.sandbox.refunds_sent == []


@pytest.mark.parametrize("order_id", ["ord_" + "0" * 19 + "9", "not-an-order-id", "ord_../../x"])
def test_an_unknown_or_malformed_order_id_is_not_found(fakes, order_id):
    with pytest.raises(NotFound) as refused:
        refund_order(MERCHANT_ID, order_id, "", fakes, fakes.clock())
    assert refused.value.code == "order_not_found"


def test_a_malformed_order_id_is_never_looked_up(fakes):
    with pytest.raises(NotFound):
        refund_order(MERCHANT_ID, "ord_' OR 1=1", "", fakes, fakes.clock())
    assert fakes.orders.called("get") == []


# ---------- what is asked of the provider ----------


def test_the_refund_asked_for_is_the_whole_payment_in_minor_units_under_the_orders_refund_id(fakes):
    product = fakes.add_product(codes=5, price=1999, currency="USD")
    order = fakes.add_order(product, Status.PAID, quantity=3)

    merchant_refunds(fakes, order)

    (request,) = fakes.sandbox.refunds_sent
    assert request.amount == request.paid == Money(amount=5997, currency="USD")
    assert isinstance(request.amount.amount, int)
    assert order.payment is not None and request.payment_id == order.payment.payment_id
    assert request.order_id == order.order_id
    assert request.refund_id == refund_id_for(order.order_id) == f"rf_{order.order_id}"


def test_each_attempts_refund_id_is_its_own_and_fits_every_provider(fakes):
    order_id = fakes.new_id("ord")
    ids = [refund_id_for(order_id, attempt) for attempt in range(MAX_REFUND_ATTEMPTS)]
    assert len(set(ids)) == MAX_REFUND_ATTEMPTS
    assert all(len(refund_id) <= 64 for refund_id in ids)


def test_the_merchants_reason_is_kept_in_the_orders_history(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    merchant_refunds(fakes, order, reason="x" * 300)

    (requested,) = [e for e in stored(fakes, order).history if e.type == "refund.requested"]
    assert requested.data == {"reason": "x" * 200, "by": "merchant"}


def test_a_refund_without_a_reason_says_the_merchant_refunded_it(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    merchant_refunds(fakes, order, reason="")
    (requested,) = [e for e in stored(fakes, order).history if e.type == "refund.requested"]
    assert requested.data["reason"] == "refunded by the merchant"


def test_a_refunding_order_without_a_payment_is_not_sent(fakes):
    order = refunding(fakes)
    fakes.orders.put(stored(fakes, order).model_copy(update={"payment": None}))

    with pytest.raises(IntegrityViolation):
        send(fakes, order)
    assert fakes.sandbox.calls == []


# ---------- the merchant is told ----------


def test_the_merchant_is_told_the_order_was_refunded(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    merchant_refunds(fakes, order)

    (event,) = fakes.notify.events("order.refunded")
    assert event.merchant_id == order.merchant_id
    assert event.data["order_id"] == order.order_id and event.data["status"] == "REFUNDED"
    assert event.data["total"] == order.total.model_dump()


def test_a_notify_queue_that_cannot_be_reached_fails_no_refund(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.notify.before("send", raises(ConnectionError("notify queue unreachable")))
    assert merchant_refunds(fakes, order).status == Status.REFUNDED


# ---------- asked again ----------


def test_a_refund_asked_for_again_changes_nothing(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    merchant_refunds(fakes, order)
    before = stored(fakes, order)

    assert merchant_refunds(fakes, order).status == Status.REFUNDED

    assert stored(fakes, order) == before
    assert len(fakes.sandbox.refunds_sent) == 1
    assert len(refunded_events(fakes, order)) == 1  # told again, under the same event id
    assert fakes.allocation.levels(product.product_id).available == 2


def test_a_refund_asked_for_again_while_pending_is_not_sent_again(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.sandbox.refund_answer = RefundState.PENDING
    merchant_refunds(fakes, order)

    assert merchant_refunds(fakes, order).status == Status.REFUNDING

    assert len(fakes.sandbox.called("refund")) == 1
    assert history(fakes, order).count("refund.requested") == 1


def test_stock_is_given_back_once_however_late_the_refund_is_repeated(fakes):
    product = fakes.add_product(codes=1)
    order = fakes.add_order(product, Status.PAID)
    fakes.sandbox.refund_answer = RefundState.PENDING
    merchant_refunds(fakes, order)
    buyer = fakes.add_order(product)  # takes the slot the refund gave back
    assert fakes.allocation.held_by(buyer.order_id) != []

    merchant_refunds(fakes, order)  # asked again, late
    send(fakes, order)

    assert len(fakes.allocation.held_by(buyer.order_id)) == 1
    levels = fakes.allocation.levels(product.product_id)
    assert (levels.available, levels.reserved) == (0, 1)


# ---------- the provider's answers ----------


def test_a_pending_refund_waits_and_is_confirmed_once_the_provider_says_so(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.sandbox.refund_answer = RefundState.PENDING

    assert merchant_refunds(fakes, order).status == Status.REFUNDING
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + CHECK_PENDING_AFTER)
    assert fakes.notify.events("order.refunded") == []

    fakes.clock.advance(CHECK_PENDING_AFTER)
    assert send(fakes, order) == RefundState.PENDING  # still pending: asked, not sent again
    fakes.sandbox.settle_refund(refund_id_for(order.order_id), RefundState.SUCCEEDED)
    assert send(fakes, order) == RefundState.SUCCEEDED

    assert stored(fakes, order).status == Status.REFUNDED
    assert len(fakes.sandbox.refunds_sent) == 1 and len(fakes.sandbox.called("refund")) == 1
    assert stored(fakes, order).history[-1].data == {
        "refund_id": refund_id_for(order.order_id),
        "via": "provider answer",
    }
    assert len(refunded_events(fakes, order)) == 1


def test_a_provider_that_is_down_leaves_the_order_refunding_to_be_sent_again_shortly(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    fakes.sandbox.error = ProviderUnavailable("connection refused")

    assert merchant_refunds(fakes, order).status == Status.REFUNDING  # the merchant is not failed

    waiting = stored(fakes, order)
    assert waiting.refund_error is not None and "ProviderUnavailable" in waiting.refund_error
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + CHECK_PENDING_AFTER)
    assert fakes.allocation.levels(product.product_id).available == 2  # its stock back already
    assert fakes.sandbox.refunds_sent == [] and fakes.notify.events("order.refunded") == []

    fakes.sandbox.error = None
    fakes.clock.advance(CHECK_PENDING_AFTER)
    assert send(fakes, order) == RefundState.SUCCEEDED
    assert stored(fakes, order).status == Status.REFUNDED and len(fakes.sandbox.refunds_sent) == 1


def test_a_provider_that_is_down_is_raised_to_reconcile_after_it_is_recorded(fakes):
    order = refunding(fakes)
    fakes.sandbox.error = ProviderUnavailable("timeout")

    with pytest.raises(ProviderUnavailable):
        send(fakes, order)
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + CHECK_PENDING_AFTER)


@pytest.mark.parametrize(
    "error",
    [ProviderRefused("401 bad key"), UnexpectedAnswer("not JSON"), InvalidSignature("answer not signed")],
    ids=type,
)
def test_a_refund_the_provider_will_not_take_is_tried_again_in_an_hour(fakes, error):
    order = refunding(fakes)
    fakes.sandbox.error = error

    assert send(fakes, order) is None

    waiting = stored(fakes, order)
    assert waiting.status == Status.REFUNDING
    assert waiting.refund_error == f"{type(error).__name__}: {error}"
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + RETRY_FAILED_AFTER)


def test_a_refund_the_provider_refuses_is_recorded_and_due_again_in_an_hour(fakes):
    order = refunding(fakes)
    fakes.sandbox.refund_answer = RefundState.FAILED

    assert send(fakes, order) == RefundState.FAILED

    waiting = stored(fakes, order)
    assert waiting.status == Status.REFUNDING
    assert waiting.refund_error == f"the provider refused refund {refund_id_for(order.order_id)} (attempt 1)"
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock() + RETRY_FAILED_AFTER)
    assert fakes.notify.events("order.refunded") == []


def test_a_refused_refund_is_replaced_by_the_next_attempt_which_refunds(fakes):
    order = refunding(fakes)
    fakes.sandbox.refund_answer = RefundState.FAILED
    send(fakes, order)

    fakes.sandbox.refund_answer = RefundState.SUCCEEDED
    fakes.clock.advance(RETRY_FAILED_AFTER)
    assert send(fakes, order) == RefundState.SUCCEEDED

    assert [r.refund_id for r in fakes.sandbox.refunds_sent] == [
        refund_id_for(order.order_id),
        refund_id_for(order.order_id, 1),
    ]
    refunded = stored(fakes, order)
    assert refunded.status == Status.REFUNDED and refunded.refund_attempt == 1
    assert refunded.history[-1].data["refund_id"] == refund_id_for(order.order_id, 1)


def test_after_the_last_attempt_is_refused_nothing_more_is_sent_and_an_operator_is_asked(fakes):
    order = refunding(fakes)
    fakes.sandbox.refund_answer = RefundState.FAILED
    for _ in range(MAX_REFUND_ATTEMPTS + 2):
        assert send(fakes, order) == RefundState.FAILED
        fakes.clock.advance(RETRY_FAILED_AFTER)

    assert len(fakes.sandbox.refunds_sent) == MAX_REFUND_ATTEMPTS
    waiting = stored(fakes, order)
    assert waiting.status == Status.REFUNDING and waiting.refund_attempt == MAX_REFUND_ATTEMPTS - 1
    assert waiting.refund_error is not None
    assert waiting.refund_error.endswith("no further attempt is made: resolve it at the provider")
    assert fakes.orders.due_entry(order.order_id) is not None  # still listed, for the operator


def test_of_two_runs_finding_a_refund_refused_only_one_sends_the_next(fakes):
    order = refunding(fakes)
    fakes.sandbox.refund_answer = RefundState.FAILED
    send(fakes, order)
    seen = stored(fakes, order)

    def the_other_run_moves_on(*args: object, **kwargs: object) -> None:
        with fakes.quietly():
            assert fakes.orders.next_refund_attempt(seen)

    fakes.orders.before("next_refund_attempt", the_other_run_moves_on, times=1)

    assert send_refund(seen, fakes.sandbox, fakes, fakes.clock()) is None
    assert len(fakes.sandbox.refunds_sent) == 1  # this run sent nothing
    assert stored(fakes, order).refund_attempt == 1


# ---------- crashes and lost answers converge ----------


def test_a_lost_answer_from_the_provider_refunds_once(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.sandbox.after("refund", raises(ProviderUnavailable("read timeout")), times=1)

    assert merchant_refunds(fakes, order).status == Status.REFUNDING

    assert send(fakes, order) == RefundState.SUCCEEDED  # asked first: the provider has it
    assert len(fakes.sandbox.refunds_sent) == 1 and len(fakes.sandbox.called("refund")) == 1
    assert stored(fakes, order).status == Status.REFUNDED


def test_a_crash_after_sending_refunds_once_when_asked_again(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    faults.arm("refund:after-sent")
    with pytest.raises(faults.InjectedFault):
        merchant_refunds(fakes, order)
    assert stored(fakes, order).status == Status.REFUNDING

    assert merchant_refunds(fakes, order).status == Status.REFUNDED
    assert len(fakes.sandbox.called("refund")) == 1
    assert len(refunded_events(fakes, order)) == 1


def test_a_crash_between_refunding_and_the_release_gives_the_stock_back_when_asked_again(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    faults.arm("refund:between-refunding-and-release")
    with pytest.raises(faults.InjectedFault):
        merchant_refunds(fakes, order)
    assert fakes.allocation.levels(product.product_id).reserved == 1

    assert merchant_refunds(fakes, order).status == Status.REFUNDED
    levels = fakes.allocation.levels(product.product_id)
    assert (levels.available, levels.reserved) == (2, 0)
    assert history(fakes, order).count("refund.requested") == 1


def test_a_crash_after_the_refunded_write_still_tells_the_merchant(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    faults.arm("refund:after-confirmed")
    with pytest.raises(faults.InjectedFault):
        merchant_refunds(fakes, order)
    assert stored(fakes, order).status == Status.REFUNDED

    merchant_refunds(fakes, order)  # the merchant asks again
    assert len(refunded_events(fakes, order)) == 1


def test_a_lost_answer_on_the_refunding_write_is_a_refund(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    fakes.orders.after(
        "transition", raises(StateConflict("answer lost: refused on the SDK's retry")), times=1
    )

    assert merchant_refunds(fakes, order).status == Status.REFUNDED
    assert history(fakes, order).count("refund.requested") == 1


def test_a_refunding_write_whose_answer_was_lost_converges_when_the_merchant_asks_again(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    fakes.orders.after("transition", raises(ConnectionError("answer lost")), times=1)
    with pytest.raises(ConnectionError):
        merchant_refunds(fakes, order)

    assert merchant_refunds(fakes, order).status == Status.REFUNDED
    assert history(fakes, order).count("refund.requested") == 1
    assert fakes.allocation.levels(product.product_id).available == 2
    assert len(fakes.sandbox.refunds_sent) == 1


def test_a_lost_answer_on_the_refunded_write_is_a_refund_told_once(fakes):
    order = refunding(fakes)
    fakes.orders.after(
        "transition", raises(StateConflict("answer lost: refused on the SDK's retry")), times=1
    )

    assert send(fakes, order) == RefundState.SUCCEEDED

    assert stored(fakes, order).status == Status.REFUNDED
    assert history(fakes, order).count("refund.confirmed") == 1
    assert len(fakes.notify.events("order.refunded")) == 1


def test_a_refunded_write_refused_while_the_order_is_still_refunding_is_raised(fakes):
    order = refunding(fakes)
    fakes.orders.before("transition", raises(StateConflict("changed")), times=1)

    with pytest.raises(StateConflict):
        confirm_refund(stored(fakes, order), fakes, fakes.clock(), {"refund_id": "rf_x"})
    assert stored(fakes, order).status == Status.REFUNDING
    assert fakes.notify.events("order.refunded") == []


# ---------- races ----------


def test_a_refund_racing_the_orders_delivery_is_refused_then_refunds_the_delivered_order(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)

    def delivered_meanwhile(*args: object, **kwargs: object) -> None:
        with fakes.quietly():
            fakes.allocation.bind(order.product_id, order.slots, order.order_id)
            fakes.orders.transition(order, "order.delivered", fakes.clock())

    fakes.orders.before("transition", delivered_meanwhile, times=1)

    with pytest.raises(StateConflict):
        merchant_refunds(fakes, order)
    assert stored(fakes, order).status == Status.DELIVERED and fakes.sandbox.refunds_sent == []

    assert merchant_refunds(fakes, order).status == Status.REFUNDED
    assert fakes.allocation.levels(product.product_id).sold == 1


def test_the_providers_callback_settling_the_refund_first_is_told_once(fakes):
    order = refunding(fakes)
    callback = fakes.sandbox.refund_event(stored(fakes, order), refund_id=refund_id_for(order.order_id))

    def callback_comes_first(*args: object, **kwargs: object) -> None:
        with fakes.quietly():
            apply_refund(callback, fakes, fakes.clock())

    fakes.orders.before("transition", callback_comes_first, times=1)

    assert send(fakes, order) == RefundState.SUCCEEDED
    assert history(fakes, order).count("refund.confirmed") == 1
    assert len(refunded_events(fakes, order)) == 1


def test_a_payment_refunded_by_the_provider_before_the_merchant_asks_is_not_sent_again(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    apply_refund(fakes.sandbox.refund_event(order), fakes, fakes.clock())  # from the provider's dashboard

    assert merchant_refunds(fakes, order).status == Status.REFUNDED
    assert fakes.sandbox.refunds_sent == []


# ---------- the order's provider ----------


def test_an_order_of_a_provider_this_shop_no_longer_has_is_left_refunding_for_an_operator(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID, provider="alipay")  # not configured

    assert merchant_refunds(fakes, order).status == Status.REFUNDING

    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock())
    assert fakes.allocation.levels(product.product_id).available == 2
    assert fakes.sandbox.calls == []


def test_a_provider_configuration_that_cannot_be_read_changes_nothing(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    fakes.providers.before("provider", raises(ValueError("provider secret is not JSON")))

    with pytest.raises(ValueError):
        merchant_refunds(fakes, order)
    assert stored(fakes, order) == order
    assert fakes.allocation.levels(product.product_id).reserved == 1


# ---------- give_back_stock and request_refund on their own ----------


def test_asking_again_for_a_refunding_order_only_gives_its_stock_back(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    with fakes.quietly():  # REFUNDING, its stock not yet given back (a crash came between)
        fakes.orders.transition(order, "refund.requested", fakes.clock(), due_in=timedelta(0))

    again = request_refund(stored(fakes, order), fakes, fakes.clock(), "again")

    assert again.status == Status.REFUNDING
    assert fakes.orders.called("transition") == []
    assert fakes.allocation.levels(product.product_id).available == 2


def test_a_confirmed_refund_gives_back_stock_still_held_before_it_is_refunded(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    with fakes.quietly():  # REFUNDING, its stock not yet given back (a crash came between)
        order = fakes.orders.transition(order, "refund.requested", fakes.clock(), due_in=timedelta(0))

    def stock_is_back_first(*args: object, **kwargs: object) -> None:
        assert fakes.allocation.held_by(order.order_id) == []

    fakes.orders.before("transition", stock_is_back_first, times=1)

    assert confirm_refund(
        order, fakes, fakes.clock(), {"refund_id": refund_id_for(order.order_id)}
    ).status == (Status.REFUNDED)
    assert fakes.allocation.levels(product.product_id).available == 2
