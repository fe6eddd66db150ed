"""Applying a verified payment: bind it to its order (I3), record it once (I5), order -> PAID, enqueue.

Each step is idempotent, so a provider's retry after a crash at any point converges: the event
record says whether the whole application finished, not merely whether it started.
"""

from datetime import datetime, timedelta
from enum import StrEnum

from shared.errors import BadInput, StateConflict
from shared.orders import Order, Payment, Status
from shared.payments import PaymentEvent, check_payment_matches
from shared.queues import DeliveryQueue
from shared.store.orders import OrderStore
from shared.store.payment_events import PaymentEventStore

CONFLICT_RETRIES = 5


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    NEEDS_REFUND = "needs_refund"  # a second, different payment for one order: recorded, never delivered


def apply_payment(
    event: PaymentEvent,
    orders: OrderStore,
    events: PaymentEventStore,
    queue: DeliveryQueue,
    now: datetime,
    redrive_after: timedelta,
) -> Outcome:
    order = orders.get(event.order_id)
    if order is None:
        raise BadInput("payment is for an order this shop does not know", code="unknown_order")
    check_payment_matches(order, event)
    if not events.record(event):
        return Outcome.DUPLICATE
    order = _mark_paid(order, event, orders, now, redrive_after)
    outcome = Outcome.APPLIED
    if order.payment and order.payment.payment_id != event.payment_id:
        events.mark_needs_refund(event)
        outcome = Outcome.NEEDS_REFUND
    elif order.status == Status.PAID:
        queue.send(order.order_id)
    events.mark_applied(event)
    return outcome


def _mark_paid(
    order: Order, event: PaymentEvent, orders: OrderStore, now: datetime, redrive_after: timedelta
) -> Order:
    payment = Payment(
        provider=event.provider, payment_id=event.payment_id, event_id=event.event_id, amount=event.amount
    )
    for _ in range(CONFLICT_RETRIES):
        if order.status != Status.PENDING_PAYMENT:
            return order
        try:
            return orders.transition(
                order,
                "payment.succeeded",
                now,
                {"provider": event.provider, "payment_id": event.payment_id},
                payment=payment,
                due_in=redrive_after,
            )
        except StateConflict:
            reread = orders.get(order.order_id)
            assert reread is not None
            order = reread
    raise StateConflict(f"order {order.order_id} kept changing; the provider will retry")
