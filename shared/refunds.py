"""Refunds: one refund request per order, idempotent at the provider, confirmed by its callback or
by asking it.

An order enters REFUNDING when it cannot be fulfilled (paid after its reservation ran out with the
stock gone, not deliverable after the bounded re-drives) or when its merchant refunds it. Its
refund request id is derived from the order, so every attempt, from any function, after any crash,
is the same request: the provider refunds once. Each attempt asks the provider what became of the
refund first and sends it only if the provider has never heard of it.
"""

import logging
from datetime import datetime, timedelta

from shared.errors import IntegrityViolation, StateConflict
from shared.faults import checkpoint
from shared.orders import Order, Status
from shared.providers import PaymentProvider, ProviderError, RefundRequest, RefundState
from shared.store.orders import OrderStore
from shared.store.stock import StockStore

logger = logging.getLogger(__name__)
CHECK_PENDING_AFTER = timedelta(minutes=2)  # a refund the provider is still processing
RETRY_FAILED_AFTER = timedelta(hours=1)  # a refund the provider refused or could not be asked about
MERCHANT_REFUNDABLE = {Status.PAID, Status.IN_REVIEW, Status.DELIVERED}


def refund_id_for(order_id: str) -> str:
    """The order's one refund request id (64 characters at most, as every provider allows)."""
    return f"rf_{order_id}"[:64]


def refund_request(order: Order) -> RefundRequest:
    if order.payment is None:
        raise IntegrityViolation(f"order {order.order_id} is {order.status.value} without a payment")
    return RefundRequest(
        refund_id=refund_id_for(order.order_id),
        order_id=order.order_id,
        payment_id=order.payment.payment_id,
        amount=order.payment.amount,
        paid=order.payment.amount,
        reason="order refunded",
    )


def request_refund(order: Order, orders: OrderStore, stock: StockStore, now: datetime, reason: str) -> Order:
    """The merchant refunds a paid order: -> REFUNDING, due at once; stock never bound goes back.

    Asking again for an order already REFUNDING or REFUNDED changes nothing."""
    if order.status in (Status.REFUNDING, Status.REFUNDED):
        return order
    if order.status not in MERCHANT_REFUNDABLE:
        raise StateConflict(
            f"an order in {order.status.value} has no payment to refund", code="not_refundable"
        )
    left = order.status
    facts = {"reason": reason[:200] or "refunded by the merchant", "by": "merchant"}
    order = orders.transition(order, "refund.requested", now, facts, due_in=timedelta(0))
    if left != Status.DELIVERED:
        stock.release(order.product_id, order.slots, order.order_id)  # only slots never bound go back
    return order


def send_refund(
    order: Order, provider: PaymentProvider, orders: OrderStore, now: datetime
) -> RefundState | None:
    """One attempt to get a REFUNDING order's money back; REFUNDED once the provider says so.

    Returns the refund's state at the provider, or None if the provider could not be asked (the
    order stays due and is tried again)."""
    request = refund_request(order)
    try:
        state = provider.refund_state(request)
        if state is None:
            state = provider.refund(request)
            checkpoint("refund:after-sent")
    except ProviderError as error:
        orders.record_refund_failure(
            order.order_id, f"{type(error).__name__}: {error}", now + CHECK_PENDING_AFTER
        )
        logger.warning("refund not sent", extra={"order_id": order.order_id, "error": str(error)})
        return None
    if state == RefundState.SUCCEEDED:
        confirm_refund(order, orders, now, {"refund_id": request.refund_id, "via": "provider answer"})
    elif state == RefundState.PENDING:
        orders.postpone(order.order_id, Status.REFUNDING, until=now + CHECK_PENDING_AFTER)
    else:
        orders.record_refund_failure(
            order.order_id, "the provider refused the refund", now + RETRY_FAILED_AFTER
        )
        logger.error("refund failed at the provider", extra={"order_id": order.order_id})
    return state


def confirm_refund(order: Order, orders: OrderStore, now: datetime, facts: dict[str, str]) -> Order:
    """REFUNDING -> REFUNDED; an order already REFUNDED (a callback and an answer both said so) stays."""
    try:
        return orders.transition(order, "refund.confirmed", now, facts)
    except StateConflict:
        reread = orders.get(order.order_id)
        if reread is not None and reread.status == Status.REFUNDED:
            return reread
        raise
