"""Settlement's rules, with in-memory fakes (shared/settlement.py): a verified payment is bound to its
order (I3), applied once (I5) and sent to delivery; a payment that cannot be fulfilled is kept to be
refunded (I2); a refund the provider reports settles its order once; crashes and races converge."""

from datetime import timedelta

import pytest

from shared import faults
from shared.errors import BadInput, PaymentMismatch, StateConflict
from shared.orders import Order, Status, Ticket
from shared.payments import PaymentEvent
from shared.settlement import CONFLICT_RETRIES, Outcome, apply_event, apply_payment, apply_refund
from tests.fakes import REDRIVE_AFTER, RESERVATION, FakePorts, fake_ports, history, raises, stored


@pytest.fixture
def fakes() -> FakePorts:
    return fake_ports(providers=("sandbox", "stripe"))


def pay(fakes: FakePorts, event: PaymentEvent) -> Outcome:
    return apply_payment(event, fakes, fakes.clock(), REDRIVE_AFTER)


def refund(fakes: FakePorts, event: PaymentEvent) -> Outcome:
    return apply_refund(event, fakes, fakes.clock())


def unpaid(fakes: FakePorts, codes: int = 3, **product: object) -> Order:
    return fakes.add_order(fakes.add_product(codes=codes, **product))


# ---------- a payment ----------


def test_a_payment_makes_the_order_paid_and_sends_it_to_delivery(fakes):
    order = unpaid(fakes)
    event = fakes.sandbox.payment(order)

    assert pay(fakes, event) == Outcome.APPLIED

    paid = stored(fakes, order)
    assert paid.status == Status.PAID
    assert paid.payment is not None and paid.payment.payment_id == event.payment_id
    assert paid.payment.amount == order.total
    assert fakes.delivery.sent == [order.order_id]
    assert fakes.events.applied(event)


def test_a_paid_order_is_due_for_a_redrive_if_not_delivered_in_time(fakes):
    order = unpaid(fakes)
    pay(fakes, fakes.sandbox.payment(order))
    assert fakes.orders.due_entry(order.order_id) == (Status.PAID, fakes.clock() + REDRIVE_AFTER)


def test_the_merchant_is_told_the_order_was_paid(fakes):
    order = unpaid(fakes)
    pay(fakes, fakes.sandbox.payment(order))

    (paid,) = fakes.notify.events("order.paid")
    assert paid.merchant_id == order.merchant_id
    assert paid.data["order_id"] == order.order_id and paid.data["status"] == "PAID"


def test_a_paid_order_frees_the_buyers_places(fakes):
    product = fakes.add_product(codes=3)
    order_id = fakes.new_id("ord")
    ticket = fakes.limits.take("email#someone", 1, order_id, int((fakes.clock() + RESERVATION).timestamp()))
    assert ticket is not None
    order = fakes.add_order(product, tickets=[ticket], order_id=order_id)

    pay(fakes, fakes.sandbox.payment(order))

    assert fakes.limits.held_tickets() == []
    assert fakes.limits.take("email#someone", 1, fakes.new_id("ord"), 0) is not None


def test_a_notify_queue_that_cannot_be_reached_fails_nothing(fakes):
    order = unpaid(fakes)
    fakes.notify.before("send_body", raises(ConnectionError("notify queue unreachable")))

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED
    assert stored(fakes, order).status == Status.PAID and fakes.delivery.sent == [order.order_id]


def test_a_failed_payment_changes_nothing(fakes):
    order = unpaid(fakes)
    failed = fakes.sandbox.payment(order).model_copy(update={"type": "payment.failed"})

    assert apply_event(failed, fakes, fakes.clock(), REDRIVE_AFTER) == Outcome.IGNORED
    assert stored(fakes, order) == order and fakes.delivery.sent == []


def test_apply_event_routes_payments_and_refunds(fakes):
    order = unpaid(fakes)
    assert apply_event(fakes.sandbox.payment(order), fakes, fakes.clock(), REDRIVE_AFTER) == Outcome.APPLIED
    refunded = fakes.sandbox.refund_event(stored(fakes, order))
    assert apply_event(refunded, fakes, fakes.clock(), REDRIVE_AFTER) == Outcome.REFUNDED


# ---------- bound to its order (I3) ----------


def test_a_payment_for_an_unknown_order_is_refused(fakes):
    order = unpaid(fakes)
    with pytest.raises(BadInput) as refused:
        pay(fakes, fakes.sandbox.payment(order, order_id=fakes.new_id("ord")))
    assert refused.value.code == "unknown_order"


@pytest.mark.parametrize(
    "mismatch",
    [{"amount": 999}, {"amount": 1001}, {"currency": "USD"}],
    ids=["less", "more", "another currency"],
)
def test_a_payment_of_another_amount_or_currency_is_kept_for_refund_and_never_applied(fakes, mismatch):
    order = unpaid(fakes)  # 1000 CNY
    wrong = fakes.sandbox.payment(order, **mismatch, payment_id="pay_wrong", event_id="evt_wrong")
    due = fakes.orders.due_entry(order.order_id)

    assert pay(fakes, wrong) == Outcome.WRONG_AMOUNT
    assert pay(fakes, wrong) == Outcome.DUPLICATE  # the provider's copy

    kept = stored(fakes, order)
    assert kept.status == Status.PENDING_PAYMENT and kept.payment is None and fakes.delivery.sent == []
    assert history(fakes, order) == ["order.created", "payment.wrong_amount"]
    assert kept.history[-1].data == {
        "provider": "sandbox",
        "payment_id": wrong.payment_id,
        "amount": wrong.amount.amount,
        "currency": wrong.amount.currency,
    }
    assert fakes.events.owed_payments("sandbox") == [wrong.payment_id]  # owed back, once
    assert fakes.orders.due_entry(order.order_id) == due  # due as before: it expires if still unpaid
    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED  # the right payment still pays


def test_a_wrong_amount_after_the_right_payment_is_kept_and_the_order_goes_on(fakes):
    order = unpaid(fakes)
    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED
    wrong = fakes.sandbox.payment(order, amount=1, payment_id="pay_second", event_id="evt_second")
    assert pay(fakes, wrong) == Outcome.WRONG_AMOUNT
    assert stored(fakes, order).status == Status.PAID and fakes.delivery.sent == [order.order_id]
    assert fakes.events.owed_payments("sandbox") == [wrong.payment_id]


def test_a_wrong_amount_whose_history_write_failed_is_finished_by_the_providers_retry(fakes):
    order = unpaid(fakes)
    wrong = fakes.sandbox.payment(order, amount=1)
    fakes.orders.before("note", raises(RuntimeError("throttled")), times=1)
    with pytest.raises(RuntimeError):
        pay(fakes, wrong)
    assert pay(fakes, wrong) == Outcome.WRONG_AMOUNT  # the retry: recorded, owed and told once
    assert history(fakes, order) == ["order.created", "payment.wrong_amount"]
    assert fakes.events.owed_payments("sandbox") == [wrong.payment_id]


def test_a_wrong_amount_racing_another_write_is_told_after_rereading(fakes):
    order = unpaid(fakes)
    wrong = fakes.sandbox.payment(order, amount=1, payment_id="pay_wrong", event_id="evt_wrong")
    right = fakes.sandbox.payment(order)
    fakes.orders.before("note", lambda *_, **__: pay(fakes, right), times=1)  # the right one lands first
    assert pay(fakes, wrong) == Outcome.WRONG_AMOUNT
    assert history(fakes, order) == ["order.created", "payment.succeeded", "payment.wrong_amount"]


def test_the_refund_of_a_wrong_amount_payment_settles_it_and_leaves_the_order(fakes):
    order = unpaid(fakes)
    wrong = fakes.sandbox.payment(order, amount=1500)
    pay(fakes, wrong)
    too_much = fakes.sandbox.refund_event(order, amount=1501, payment_id=wrong.payment_id)
    with pytest.raises(PaymentMismatch):
        refund(fakes, too_much)
    back = fakes.sandbox.refund_event(order, amount=1500, payment_id=wrong.payment_id)
    assert refund(fakes, back) == Outcome.OWED_REFUNDED  # more than the order's total: it was paid
    assert fakes.events.owed_payments("sandbox") == []
    assert stored(fakes, order).status == Status.PENDING_PAYMENT


def test_a_payment_from_another_provider_than_the_orders_is_refused(fakes):
    order = unpaid(fakes)
    with pytest.raises(PaymentMismatch):
        pay(fakes, fakes.providers["stripe"].payment(order))
    assert stored(fakes, order).status == Status.PENDING_PAYMENT


# ---------- applied once (I5) ----------


def test_the_same_event_again_is_a_duplicate_and_sends_nothing_more(fakes):
    order = unpaid(fakes)
    event = fakes.sandbox.payment(order)
    pay(fakes, event)

    assert pay(fakes, event) == Outcome.DUPLICATE
    assert fakes.delivery.sent == [order.order_id]
    assert history(fakes, order).count("payment.succeeded") == 1
    assert len(fakes.notify.events("order.paid")) == 1


def test_the_same_payment_reported_again_under_another_event_is_not_paid_twice_nor_owed_back(fakes):
    order = unpaid(fakes)
    pay(fakes, fakes.sandbox.payment(order, event_id="evt_from_a_query"))

    assert pay(fakes, fakes.sandbox.payment(order, event_id="evt_from_the_callback")) == Outcome.APPLIED
    assert history(fakes, order).count("payment.succeeded") == 1
    assert fakes.events.owed_payments("sandbox") == []
    assert len({n.event_id for n in fakes.notify.events("order.paid")}) == 1  # one event to its merchant


@pytest.mark.parametrize(
    "point", ["webhook:after-event-recorded", "webhook:after-paid", "webhook:after-enqueue"]
)
def test_a_retry_after_a_crash_at_any_step_delivers_the_order_once(fakes, point):
    order = unpaid(fakes)
    event = fakes.sandbox.payment(order)
    faults.arm(point)
    with pytest.raises(faults.InjectedFault):
        pay(fakes, event)

    assert pay(fakes, event) == Outcome.APPLIED  # the provider sends its callback again
    assert stored(fakes, order).status == Status.PAID
    assert history(fakes, order).count("payment.succeeded") == 1
    assert order.order_id in fakes.delivery.sent
    assert fakes.events.applied(event)
    assert pay(fakes, event) == Outcome.DUPLICATE


# ---------- a payment that cannot be fulfilled is kept to be refunded (I2) ----------


@pytest.mark.parametrize("status", [Status.PAID, Status.DELIVERED])
def test_a_second_different_payment_for_one_order_is_kept_for_refund_and_never_delivered(fakes, status):
    order = fakes.add_order(fakes.add_product(codes=3), status)
    before = stored(fakes, order)
    second = fakes.sandbox.payment(order, payment_id="pay_second")

    assert pay(fakes, second) == Outcome.NEEDS_REFUND

    assert stored(fakes, order) == before
    assert fakes.delivery.sent == []
    assert fakes.events.owed_payments("sandbox") == ["pay_second"]


def test_a_second_payment_reported_twice_is_owed_back_once(fakes):
    order = fakes.add_order(fakes.add_product(codes=3), Status.PAID)
    pay(fakes, fakes.sandbox.payment(order, payment_id="pay_second", event_id="evt_query"))
    pay(fakes, fakes.sandbox.payment(order, payment_id="pay_second", event_id="evt_callback"))
    assert fakes.events.owed_payments("sandbox") == ["pay_second"]


def test_a_late_payment_takes_fresh_stock_and_is_delivered(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.EXPIRED)
    fakes.clock.advance(minutes=20)

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED

    paid = stored(fakes, order)
    assert paid.status == Status.PAID and fakes.delivery.sent == [order.order_id]
    assert paid.history[-1].data.get("late") == "true"
    assert paid.slots != order.slots  # never its own old slots back
    assert len(fakes.allocation.held_by(order.order_id)) == 1
    assert fakes.allocation.levels(product.product_id).reserved == 1


def test_a_late_payment_never_takes_back_its_own_old_slot(fakes):
    # A late repeat of the old slot's release must not be able to take it from the new reservation.
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.EXPIRED)  # its slot 0 back in the pool
    fakes.add_order(product, Status.EXPIRED)  # slot 1 too

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED

    (old,), (new,) = order.slots, stored(fakes, order).slots
    assert (new.shard, new.start) != (old.shard, old.start)


def test_a_late_payment_whose_only_stock_is_its_own_old_slot_is_refunded(fakes):
    order = fakes.add_order(fakes.add_product(codes=1), Status.EXPIRED)
    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.NEEDS_REFUND
    assert stored(fakes, order).status == Status.REFUNDING


def test_a_late_payment_with_no_stock_left_is_refunded_not_delivered(fakes):
    product = fakes.add_product(codes=1)
    order = fakes.add_order(product, Status.EXPIRED)
    fakes.add_order(product)  # somebody else bought the code meanwhile

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.NEEDS_REFUND

    assert stored(fakes, order).status == Status.REFUNDING
    assert fakes.delivery.sent == []
    assert fakes.events.owed_payments("sandbox") == [fakes.sandbox.payment(order).payment_id]
    assert fakes.orders.due_entry(order.order_id) == (Status.REFUNDING, fakes.clock())


def test_a_late_payment_whose_reservation_was_not_yet_returned_gives_it_back_first(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product)
    fakes.orders.transition(order, "reservation.expired", fakes.clock(), due_in=timedelta(0))
    expired = stored(fakes, order)  # EXPIRED, its old slot still held (the expiry step crashed)

    assert pay(fakes, fakes.sandbox.payment(expired)) == Outcome.APPLIED

    levels = fakes.allocation.levels(product.product_id)
    assert (levels.reserved, levels.available) == (1, 1)


def test_a_payment_past_the_buyers_daily_limit_is_refunded_and_its_stock_goes_back(fakes):
    product = fakes.add_product(codes=5, daily_limit_per_buyer=1)
    first, second = fakes.add_order(product), fakes.add_order(product)  # both placed before either was paid
    pay(fakes, fakes.sandbox.payment(first))

    assert pay(fakes, fakes.sandbox.payment(second)) == Outcome.NEEDS_REFUND

    assert stored(fakes, second).status == Status.REFUNDING
    assert fakes.allocation.held_by(second.order_id) == []
    assert fakes.delivery.sent == [first.order_id]
    assert fakes.events.owed_payments("sandbox") == [fakes.sandbox.payment(second).payment_id]


def test_the_daily_limit_counts_another_e_mails_payment_apart(fakes):
    product = fakes.add_product(codes=5, daily_limit_per_buyer=1)
    mine = fakes.add_order(product)
    theirs = fakes.add_order(product, email="friend@example.com")
    pay(fakes, fakes.sandbox.payment(mine))
    assert pay(fakes, fakes.sandbox.payment(theirs)) == Outcome.APPLIED


def test_a_payment_retried_after_its_write_failed_counts_once_against_the_daily_limit(fakes):
    product = fakes.add_product(codes=5, daily_limit_per_buyer=2)
    order = fakes.add_order(product)
    fakes.orders.before("transition", raises(ConnectionError("throttled")), times=1)
    with pytest.raises(ConnectionError):
        pay(fakes, fakes.sandbox.payment(order))

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED
    assert fakes.limits.paid_today(product.product_id, order.email, order.created_at.date()) == 1


# ---------- races ----------


def test_an_order_that_expired_while_its_payment_was_applied_is_paid_late(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product)

    def expiry_runs_meanwhile(*args, **kwargs) -> None:
        with fakes.quietly():
            fakes.orders.transition(order, "reservation.expired", fakes.clock(), due_in=timedelta(0))

    fakes.orders.before("transition", expiry_runs_meanwhile, times=1)

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED
    paid = stored(fakes, order)
    assert paid.status == Status.PAID and paid.history[-1].data.get("late") == "true"


def test_two_copies_of_a_late_payment_at_once_reserve_its_stock_once(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.EXPIRED)
    event = fakes.sandbox.payment(order)

    def the_other_copy_settles_it(*args, **kwargs) -> None:
        with fakes.quietly():
            assert pay(fakes, event) == Outcome.APPLIED

    fakes.orders.before("transition", the_other_copy_settles_it, times=1)

    assert pay(fakes, event) == Outcome.APPLIED
    assert stored(fakes, order).status == Status.PAID
    assert fakes.allocation.levels(product.product_id).reserved == 1  # this copy's claim went back
    assert len(fakes.allocation.held_by(order.order_id)) == 1


def test_an_order_that_keeps_changing_is_left_for_the_providers_retry(fakes):
    order = unpaid(fakes)
    event = fakes.sandbox.payment(order)
    fakes.orders.before("transition", raises(StateConflict("changed")), times=CONFLICT_RETRIES)

    with pytest.raises(StateConflict):
        pay(fakes, event)

    assert stored(fakes, order).status == Status.PENDING_PAYMENT and not fakes.events.applied(event)
    assert pay(fakes, event) == Outcome.APPLIED


def test_a_late_payment_whose_paid_write_lost_its_answer_keeps_the_new_slots(fakes):
    product = fakes.add_product(codes=3)
    order = fakes.add_order(product, Status.EXPIRED)
    fakes.orders.after(
        "transition", raises(StateConflict("answer lost: refused on the SDK's retry")), times=1
    )

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.APPLIED

    paid = stored(fakes, order)
    assert paid.status == Status.PAID
    (slot,) = paid.slots
    assert fakes.allocation.held_by(order.order_id) == [(product.product_id, slot.shard, slot.start)]
    assert fakes.allocation.levels(product.product_id).reserved == 1


# ---------- a refund the provider reports ----------


@pytest.mark.parametrize("status", [Status.PENDING_PAYMENT, Status.PAID, Status.IN_REVIEW, Status.REFUNDING])
def test_a_refund_settles_the_order_refunded_and_its_stock_goes_back(fakes, status):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, status)
    event = fakes.sandbox.refund_event(order)

    assert refund(fakes, event) == Outcome.REFUNDED

    refunded = stored(fakes, order)
    assert refunded.status == Status.REFUNDED
    assert refunded.payment is not None and refunded.payment.payment_id == event.payment_id
    assert fakes.allocation.levels(product.product_id).available == 2
    assert fakes.events.applied(event)
    assert [n.data["order_id"] for n in fakes.notify.events("order.refunded")] == [order.order_id]


def test_a_refund_of_a_delivered_order_leaves_its_codes_sold(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.DELIVERED)

    assert refund(fakes, fakes.sandbox.refund_event(order)) == Outcome.REFUNDED

    assert stored(fakes, order).status == Status.REFUNDED
    assert fakes.allocation.levels(product.product_id).sold == 1


def test_a_refund_frees_the_buyers_places(fakes):
    product = fakes.add_product(codes=2)
    order_id = fakes.new_id("ord")
    ticket = fakes.limits.take("email#someone", 1, order_id, int((fakes.clock() + RESERVATION).timestamp()))
    assert isinstance(ticket, Ticket)
    order = fakes.add_order(product, tickets=[ticket], order_id=order_id)

    refund(fakes, fakes.sandbox.refund_event(order))

    assert fakes.limits.held_tickets() == []


def test_the_payments_callback_after_its_refund_delivers_nothing(fakes):
    order = unpaid(fakes)
    refund(fakes, fakes.sandbox.refund_event(order))  # the refund's callback overtook the payment's

    assert pay(fakes, fakes.sandbox.payment(order)) == Outcome.REFUNDED
    assert stored(fakes, order).status == Status.REFUNDED and fakes.delivery.sent == []


def test_the_same_refund_again_is_a_duplicate(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    event = fakes.sandbox.refund_event(order)
    refund(fakes, event)

    assert refund(fakes, event) == Outcome.DUPLICATE
    assert history(fakes, order).count("refund.confirmed") == 1
    assert len(fakes.notify.events("order.refunded")) == 1


def test_a_partial_refund_is_recorded_and_changes_no_state(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    event = fakes.sandbox.refund_event(order, amount=400)

    assert refund(fakes, event) == Outcome.PARTIAL_REFUND
    assert stored(fakes, order).status == Status.PAID and fakes.events.applied(event)


@pytest.mark.parametrize(
    "mismatch", [{"amount": 1001}, {"currency": "USD"}], ids=["more than paid", "another currency"]
)
def test_a_refund_of_more_than_was_paid_or_in_another_currency_is_refused(fakes, mismatch):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    event = fakes.sandbox.refund_event(order, **mismatch)
    with pytest.raises(PaymentMismatch):
        refund(fakes, event)
    assert stored(fakes, order).status == Status.PAID
    assert f"sandbox#{event.event_id}" not in fakes.events.records


def test_a_refund_for_an_unknown_order_is_refused(fakes):
    order = unpaid(fakes)
    unknown = fakes.sandbox.refund_event(order.model_copy(update={"order_id": fakes.new_id("ord")}))
    with pytest.raises(BadInput):
        refund(fakes, unknown)


def test_a_refund_of_the_second_payment_settles_what_is_owed_and_leaves_the_order(fakes):
    order = fakes.add_order(fakes.add_product(), Status.PAID)
    pay(fakes, fakes.sandbox.payment(order, payment_id="pay_second"))
    before = stored(fakes, order)

    assert refund(fakes, fakes.sandbox.refund_event(order, payment_id="pay_second")) == Outcome.OWED_REFUNDED

    assert stored(fakes, order) == before
    assert fakes.events.owed_payments("sandbox") == []


def test_a_refund_retried_after_a_crash_before_the_release_still_returns_the_stock(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)
    event = fakes.sandbox.refund_event(order)
    fakes.allocation.before("release", raises(faults.InjectedFault("after the REFUNDED write")), times=1)
    with pytest.raises(faults.InjectedFault):
        refund(fakes, event)
    assert stored(fakes, order).status == Status.REFUNDED

    assert refund(fakes, event) == Outcome.REFUNDED  # the provider sends it again
    assert fakes.allocation.levels(product.product_id).available == 2
    assert len(fakes.notify.events("order.refunded")) == 1  # the same event id: its merchant sees one


def test_a_refund_racing_the_orders_delivery_settles_it_refunded(fakes):
    product = fakes.add_product(codes=2)
    order = fakes.add_order(product, Status.PAID)

    def delivered_meanwhile(*args, **kwargs) -> None:
        with fakes.quietly():
            fakes.allocation.bind(order.product_id, order.slots, order.order_id)
            fakes.orders.transition(order, "order.delivered", fakes.clock())

    fakes.orders.before("transition", delivered_meanwhile, times=1)

    assert refund(fakes, fakes.sandbox.refund_event(order)) == Outcome.REFUNDED
    assert history(fakes, order)[-2:] == ["order.delivered", "refund.confirmed"]
