"""Applying a verified payment: bind it to its order (I3), record it once (I5), order -> PAID, enqueue,
tell the merchant (order.paid; order.refunded for a refund).

Each step is idempotent, so a provider's retry after a crash at any point converges: the event
record says whether the whole application finished, not merely whether it started.
"""

import logging
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from shared import queues
from shared.errors import BadInput, OutOfStock, StateConflict
from shared.faults import checkpoint
from shared.money import Money
from shared.orders import Order, Payment, Status
from shared.payments import PaymentEvent, check_payment_matches, check_refund_matches
from shared.ports import LimitPort, OrderPort, Ports, ProductPort
from shared.refunds import counted_in_history, give_back_stock, revoke_licenses

CONFLICT_RETRIES = 5
logger = logging.getLogger(__name__)


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    NEEDS_REFUND = "needs_refund"  # a second, different payment for one order: recorded, never delivered
    REFUNDED = "refunded"  # the order's payment is back with the buyer; nothing is delivered
    PARTIAL_REFUND = (
        "partial_refund"  # part of the payment was given back (recorded; the order keeps its state)
    )
    IGNORED = "ignored"  # a verified event that changes nothing (a failed payment, a failed refund)
    OWED_REFUNDED = "owed_refunded"  # a payment kept for refund was given back
    WRONG_AMOUNT = "wrong_amount"  # a payment at another amount or currency: kept for refund, never applied
    DISPUTED = "disputed"  # the buyer disputed a payment: noted, its identifiers blocked (shared/disputes.py)


def apply_event(event: PaymentEvent, ports: Ports, now: datetime, redrive_after: timedelta) -> Outcome:
    """What a verified provider event does to its order, whichever function received it."""
    if event.type == "payment.succeeded":
        return apply_payment(event, ports, now, redrive_after)
    if event.type == "refund.succeeded":
        return apply_refund(event, ports, now)
    # A failed payment leaves the order to be paid again or to expire; a failed refund of ours is
    # seen by reconcile, which asks the provider about every REFUNDING order. A dispute is applied by
    # shared/disputes.py (it writes the merchant's risk rules), never here.
    return Outcome.IGNORED


def apply_payment(event: PaymentEvent, ports: Ports, now: datetime, redrive_after: timedelta) -> Outcome:
    """A verified payment: bound to its order (I3), applied once (I5), the order PAID and sent to
    delivery; a second, different payment, or one that cannot be fulfilled, is kept to be refunded."""
    orders, events = ports.orders, ports.events
    order = orders.get(event.order_id)
    if order is None:
        raise BadInput("payment is for an order this shop does not know", code="unknown_order")
    if _wrong_amount(order, event):
        return _keep_wrong_amount(order, event, ports, now)
    check_payment_matches(order, event)
    if not events.record(event):
        return Outcome.DUPLICATE
    checkpoint("webhook:after-event-recorded")
    payment = Payment(
        provider=event.provider,
        payment_id=event.payment_id,
        event_id=event.event_id,
        amount=event.amount,
        payer=event.payer,  # for the risk engine's screening before delivery (shared/screening.py)
        card_country=event.card_country,
    )
    order = _settle(order, payment, ports, now, redrive_after)
    checkpoint("webhook:after-paid")
    outcome = Outcome.REFUNDED if order.status == Status.REFUNDED else Outcome.APPLIED
    same_payment = order.payment is not None and order.payment.payment_id == payment.payment_id
    refunding_this = (
        order.status == Status.REFUNDING
        and order.payment is not None
        and (order.payment.event_id == payment.event_id)
    )
    if not same_payment or refunding_this:
        # A second payment for one order, or a late one with no stock left: kept to be refunded (I2).
        # The same payment reported again (its callback after a provider query found it) is not.
        events.mark_needs_refund(event)
        outcome = Outcome.NEEDS_REFUND
    elif order.status == Status.PAID:
        ports.delivery.send(order.order_id)
        checkpoint("webhook:after-enqueue")
        queues.emit("order.paid", order, ports.notify)  # never fails the payment
    for ticket in order.tickets:  # no longer unpaid: the buyer's place is free again (idempotent;
        ports.limits.give_back(ticket, order.order_id)  # after the enqueue, off the delivery's critical path)
    events.mark_applied(event)
    return outcome


def _settle(order: Order, payment: Payment, ports: Ports, now: datetime, redrive_after: timedelta) -> Order:
    """Move the order to PAID (re-reserving if its reservation expired) or, if that cannot be, REFUNDING."""
    orders = ports.orders
    facts = {"provider": payment.provider, "payment_id": payment.payment_id}
    for _ in range(CONFLICT_RETRIES):
        try:
            if order.status not in (Status.PENDING_PAYMENT, Status.EXPIRED):
                return order  # already settled by an earlier copy of this event, or by another payment
            if not _within_daily_limit(order, ports.products, ports.limits):
                facts = {**facts, "reason": "the buyer's daily limit for this product was reached"}
                refunding = orders.transition(
                    order, "refund.requested", now, facts, payment=payment, due_in=timedelta(0)
                )
                return give_back_stock(refunding, ports.allocation)  # its reservation, never to be bound
            due_in = _due_after_payment(order, ports.products, redrive_after)
            if order.status == Status.PENDING_PAYMENT or order.delivery != "stock":  # no stock to re-reserve
                late = {} if order.status == Status.PENDING_PAYMENT else {"late": "true"}
                return orders.transition(
                    order, "payment.succeeded", now, {**facts, **late}, payment=payment, due_in=due_in
                )
            return _settle_late(order, payment, facts, ports, now, due_in)
        except StateConflict:
            order = _reread(order, orders)
    raise StateConflict(f"order {order.order_id} kept changing; the provider will retry")


def _due_after_payment(order: Order, products: ProductPort, redrive_after: timedelta) -> timedelta:
    """When reconciliation looks at the PAID order next: a manual one when its promised time is up
    (functions/reconcile/redrive.py), any other when its delivery should long have happened."""
    product = products.recent_product(order.product_id) if order.delivery == "manual" else None
    if product is not None and product.manual is not None:
        return timedelta(minutes=product.manual.promise_minutes)
    return redrive_after


def _within_daily_limit(order: Order, products: ProductPort, limits: LimitPort) -> bool:
    """Count the order's units against its e-mail's daily limit for the product, on the order's UTC
    day (safe to repeat: keyed by the order); False if that would break the limit. The limit counts
    payments, so nobody's unpaid orders lock an e-mail's owner out (docs/operations.md "Limits")."""
    product = products.recent_product(order.product_id)
    if product is None or product.daily_limit_per_buyer is None:
        return True
    day = order.created_at.astimezone(UTC).date()
    return limits.count_paid(
        order.product_id, order.email, day, order.quantity, product.daily_limit_per_buyer, order.order_id
    )


def _settle_late(
    order: Order,
    payment: Payment,
    facts: dict[str, str],
    ports: Ports,
    now: datetime,
    redrive_after: timedelta,
) -> Order:
    """A payment for an EXPIRED order: reserve again if stock exists and deliver, else refund."""
    orders, allocation = ports.orders, ports.allocation
    # idempotent; reconcile may not have yet
    allocation.release(order.product_id, order.slots, order.order_id)
    checkpoint("webhook:late-after-release")
    product = ports.products.recent_product(order.product_id)  # its shards, which never change
    assert product is not None
    try:
        slots = allocation.claim(
            product.product_id, product.shards, order.quantity, order.order_id, avoid=order.slots
        )
    except OutOfStock:
        facts = {**facts, "reason": "paid after the reservation expired; sold out"}
        return orders.transition(order, "refund.requested", now, facts, payment=payment, due_in=timedelta(0))
    checkpoint("webhook:late-after-claim")  # the new slots name the order: reconcile returns them
    try:
        return orders.transition(
            order,
            "payment.succeeded",
            now,
            {**facts, "late": "true"},
            payment=payment,
            due_in=redrive_after,
            slots=slots,
        )
    except StateConflict:  # another copy settled it, or our write applied and its answer was lost
        stored = orders.get(order.order_id)
        allocation.release_unkept(product.product_id, slots, stored.slots if stored else [], order.order_id)
        raise


def _wrong_amount(order: Order, event: PaymentEvent) -> bool:
    """The order's own provider paid for it, but not its total (another amount, or currency)."""
    return (
        event.order_id == order.order_id
        and event.provider == order.provider
        and (event.amount.currency, event.amount.amount) != (order.total.currency, order.total.amount)
    )


def _keep_wrong_amount(order: Order, event: PaymentEvent, ports: Ports, now: datetime) -> Outcome:
    """A verified payment for the order at another amount: never applied (I3), kept to be given back
    through its provider (reconcile's owed refunds), and told in the order's history, where the buyer
    and the merchant see it. Each step is safe to repeat, so the provider's retry after a crash
    finishes it."""
    if not ports.events.record(event):
        return Outcome.DUPLICATE
    ports.events.mark_needs_refund(event)
    logger.warning(
        "payment of the wrong amount kept for refund",
        extra={"order_id": order.order_id, "provider": event.provider, "paid": event.amount.amount},
    )
    facts = {
        "provider": event.provider,
        "payment_id": event.payment_id,
        "amount": event.amount.amount,
        "currency": event.amount.currency,
    }
    for _ in range(CONFLICT_RETRIES):
        if _wrong_payment(order, event.payment_id) is not None:
            break  # told already (a retry after a crash)
        try:
            ports.orders.note(order, "payment.wrong_amount", now, facts)
            break
        except StateConflict:
            order = _reread(order, ports.orders)
    else:
        raise StateConflict(f"order {order.order_id} kept changing; the provider will retry")
    ports.events.mark_applied(event)
    return Outcome.WRONG_AMOUNT


def _reread(order: Order, orders: OrderPort) -> Order:
    """The order as it is now, after a write conditional on an older copy was refused."""
    reread = orders.get(order.order_id)
    assert reread is not None  # orders are never deleted
    return reread


def _wrong_payment(order: Order, payment_id: str) -> Money | None:
    """What a payment of the wrong amount paid for the order, if the history tells one."""
    for entry in order.history:
        if entry.type == "payment.wrong_amount" and entry.data.get("payment_id") == payment_id:
            return Money(amount=int(entry.data["amount"]), currency=str(entry.data["currency"]))
    return None


def apply_refund(event: PaymentEvent, ports: Ports, now: datetime) -> Outcome:
    """A refund the provider reports: the order -> REFUNDED whatever it was doing, once (I5).

    It may be ours (REFUNDING), the merchant's from the provider's dashboard, or arrive before the
    payment's own callback; in every case nothing is delivered after it, and stock not yet bound
    goes back. A refund of part of the payment is recorded and changes no state; a refund of another
    payment than the order's (one kept for refund) settles that payment."""
    order = ports.orders.get(event.order_id)
    if order is None:
        raise BadInput("refund is for an order this shop does not know", code="unknown_order")
    wrong = _wrong_payment(order, event.payment_id)
    if wrong is not None:  # a payment of the wrong amount, given back: the order is untouched
        return _other_payment_refunded(order, event, ports, paid=wrong)
    if order.payment is not None and order.payment.payment_id != event.payment_id:
        return _other_payment_refunded(order, event, ports)
    check_refund_matches(order, event)
    if not ports.events.record(event):
        return Outcome.DUPLICATE
    if event.amount.amount < order.total.amount:
        ports.events.mark_applied(event)
        return Outcome.PARTIAL_REFUND
    facts = {"provider": event.provider, "payment_id": event.payment_id, "refund_id": event.refund_id or ""}
    confirmed_now = False
    for _ in range(CONFLICT_RETRIES):
        if order.status == Status.REFUNDED:
            break
        if order.payment is not None and order.payment.payment_id != event.payment_id:
            return _other_payment_refunded(order, event, ports)  # another payment settled it meanwhile
        payment = order.payment or Payment(
            provider=event.provider, payment_id=event.payment_id, event_id=event.event_id, amount=order.total
        )
        try:
            order = ports.orders.transition(order, "refund.confirmed", now, facts, payment=payment)
            confirmed_now = True
            break
        except StateConflict:
            order = _reread(order, ports.orders)
    else:
        raise StateConflict(f"order {order.order_id} kept changing; the provider will retry")
    # Also when a retry finds the order REFUNDED already: these are idempotent, and a crash may
    # have come between the REFUNDED write and them.
    ports.allocation.release(order.product_id, order.slots, order.order_id)  # only slots never bound
    for ticket in order.tickets:
        ports.limits.give_back(ticket, order.order_id)
    revoke_licenses(order, ports, now, required=True)  # raises before mark_applied: the provider resends
    if confirmed_now:  # counted by the write that confirmed it, not by a second report of the refund
        counted_in_history(order, ports)
    queues.emit("order.refunded", order, ports.notify)  # the same event id on a retry
    ports.events.mark_applied(event)
    return Outcome.REFUNDED


def _other_payment_refunded(
    order: Order, event: PaymentEvent, ports: Ports, paid: Money | None = None
) -> Outcome:
    """A refund of a payment the order does not hold (a second payment, or one of the wrong amount
    `paid`, kept for refund): that payment is owed no more; the order is untouched."""
    total = paid or order.total
    check_refund_matches(order.model_copy(update={"payment": None, "total": total}), event)
    if not ports.events.record(event):
        return Outcome.DUPLICATE
    ports.events.settle_owed(event.provider, order.order_id, event.payment_id)
    ports.events.mark_applied(event)
    return Outcome.OWED_REFUNDED
