"""Refunds: one current refund request per order, idempotent at the provider, confirmed by its
callback or by asking it.

An order enters REFUNDING when it cannot be fulfilled (paid after its reservation ran out with the
stock gone, not deliverable after the bounded re-drives) or when its merchant refunds it. Its
refund request id is derived from the order and the attempt, so every attempt, from any function,
after any crash, is the same request: the provider refunds once. Each attempt asks the provider
what became of the current request first and sends it only if the provider has never heard of it.
A request the provider reports as failed is replaced by the next attempt's (at most
MAX_REFUND_ATTEMPTS); after that the order stays REFUNDING with its `refund_error`, for an operator.
"""

import logging
from datetime import datetime, timedelta

from shared import queues
from shared.errors import DomainError, IntegrityViolation, StateConflict
from shared.faults import checkpoint
from shared.licensing import LicensesNotRevoked, revoke_order_licenses
from shared.orders import Order, Status
from shared.ports import AllocationPort, OrderPort, Ports
from shared.providers import PaymentProvider, ProviderError, ProviderUnavailable, RefundRequest, RefundState

logger = logging.getLogger(__name__)
CHECK_PENDING_AFTER = timedelta(minutes=2)  # a refund in progress, or a provider that did not answer
RETRY_FAILED_AFTER = timedelta(hours=1)  # a refund the provider refused
MAX_REFUND_ATTEMPTS = 3
MERCHANT_REFUNDABLE = {Status.PAID, Status.IN_REVIEW, Status.DELIVERED}


def refund_id_for(order_id: str, attempt: int = 0) -> str:
    """The id of the order's refund request (64 characters at most, as every provider allows)."""
    return f"rf_{order_id}" if attempt == 0 else f"rf_{order_id}_{attempt}"


def refund_request(order: Order) -> RefundRequest:
    if order.payment is None:
        raise IntegrityViolation(f"order {order.order_id} is {order.status.value} without a payment")
    return RefundRequest(
        refund_id=refund_id_for(order.order_id, order.refund_attempt),
        order_id=order.order_id,
        payment_id=order.payment.payment_id,
        amount=order.payment.amount,
        paid=order.payment.amount,
        reason="order refunded",
    )


def request_refund(order: Order, ports: Ports, now: datetime, reason: str) -> Order:
    """The merchant refunds a paid order: -> REFUNDING, due at once; stock never bound goes back.

    Asking again for an order already REFUNDING or REFUNDED changes nothing but that release."""
    orders = ports.orders
    if order.status not in (Status.REFUNDING, Status.REFUNDED):
        if order.status not in MERCHANT_REFUNDABLE:
            raise StateConflict(
                f"an order in {order.status.value} has no payment to refund", code="not_refundable"
            )
        facts = {"reason": reason[:200] or "refunded by the merchant", "by": "merchant"}
        try:
            order = orders.transition(order, "refund.requested", now, facts, due_in=timedelta(0))
        except StateConflict:  # changed meanwhile, or this write applied and its answer was lost
            order = _reread(order, orders)
            if order.status not in (Status.REFUNDING, Status.REFUNDED):
                raise
        checkpoint("refund:between-refunding-and-release")
    revoke_licenses(order, ports, now)
    return give_back_stock(order, ports.allocation)


def give_back_stock(order: Order, allocation: AllocationPort) -> Order:
    """Return the slots a refunding or refunded order never bound (idempotent; bound codes stay its).

    Every path that settles an order as REFUNDING or REFUNDED calls it, so a crash or a lost answer
    after any one of them leaves no stock reserved to an order that will never deliver."""
    allocation.release(order.product_id, order.slots, order.order_id)
    return order


def _reread(order: Order, orders: OrderPort) -> Order:
    reread = orders.get(order.order_id)
    if reread is None:
        raise IntegrityViolation(f"order {order.order_id} vanished")
    return reread


def send_refund(order: Order, provider: PaymentProvider, ports: Ports, now: datetime) -> RefundState | None:
    """One attempt to get a REFUNDING order's money back; REFUNDED once the provider says so (its
    callers, the merchant's refund and reconcile's refund step, have given its stock back already).

    Returns the refund's state at the provider, or None if the provider refused the request (the
    order stays due and is tried again later). ProviderUnavailable is raised after it is recorded,
    so a caller can stop asking that provider."""
    orders = ports.orders
    request = refund_request(order)
    try:
        state = provider.refund_state(request)
        if state == RefundState.FAILED and order.refund_attempt + 1 < MAX_REFUND_ATTEMPTS:
            if not orders.next_refund_attempt(order):
                return None  # another run moved on meanwhile
            order = order.model_copy(update={"refund_attempt": order.refund_attempt + 1})
            request, state = refund_request(order), None
        if state is None:
            state = provider.refund(request)
            checkpoint("refund:after-sent")
    except (ProviderError, DomainError) as error:  # DomainError: an answer that does not verify
        retry = CHECK_PENDING_AFTER if isinstance(error, ProviderUnavailable) else RETRY_FAILED_AFTER
        orders.record_refund_failure(order.order_id, f"{type(error).__name__}: {error}", now + retry)
        logger.warning("refund not sent", extra={"order_id": order.order_id, "error": str(error)})
        if isinstance(error, ProviderUnavailable):
            raise
        return None
    if state == RefundState.SUCCEEDED:
        try:
            confirm_refund(order, ports, now, {"refund_id": request.refund_id, "via": "provider answer"})
        except LicensesNotRevoked:  # the money is back; the order stays REFUNDING until they are revoked
            orders.postpone(order.order_id, Status.REFUNDING, until=now + CHECK_PENDING_AFTER)
    elif state == RefundState.PENDING:
        orders.postpone(order.order_id, Status.REFUNDING, until=now + CHECK_PENDING_AFTER)
    else:
        failure = f"the provider refused refund {request.refund_id} (attempt {order.refund_attempt + 1})"
        if order.refund_attempt + 1 >= MAX_REFUND_ATTEMPTS:
            failure += "; no further attempt is made: resolve it at the provider"
        orders.record_refund_failure(order.order_id, failure, now + RETRY_FAILED_AFTER)
        logger.error("refund failed at the provider", extra={"order_id": order.order_id})
    return state


def confirm_refund(order: Order, ports: Ports, now: datetime, facts: dict[str, str]) -> Order:
    """REFUNDING -> REFUNDED; an order already REFUNDED (a callback and an answer both said so, or
    this write's answer was lost) stays. Its never-bound stock goes back first, so no crash after
    this write can leave it reserved to a settled order, and its licenses are revoked first, so no
    failure can leave a refunded order's license active: it raises, the order stays REFUNDING, and
    the refund's next check (reconciliation) revokes and confirms it."""
    give_back_stock(order, ports.allocation)
    revoke_licenses(order, ports, now, required=True)
    try:
        refunded = ports.orders.transition(order, "refund.confirmed", now, facts)
    except StateConflict:
        refunded = _reread(order, ports.orders)
        if refunded.status != Status.REFUNDED:
            raise
    else:  # counted by the call that confirmed it: a second report of the refund counts nothing
        counted_in_history(refunded, ports)
    checkpoint("refund:after-confirmed")
    queues.emit("order.refunded", refunded, ports.notify)  # never fails the refund
    return refunded


def counted_in_history(order: Order, ports: Ports) -> None:
    """The refund in the payer's history for the risk rules (docs/risk.md): called once, by the write
    that confirmed the refund (a crash right after it loses the count); a failure is logged and never
    fails the refund (the count is a signal, not money)."""
    try:
        ports.refunded(order)
    except Exception as error:
        logger.warning(
            "refund not counted", extra={"order_id": order.order_id, "error": type(error).__name__}
        )


def revoke_licenses(order: Order, ports: Ports, now: datetime, required: bool = False) -> None:
    """A refunded order's licenses stop activating (docs/licenses.md "Refunds"): at the refund's
    request (best effort: a failure is logged, never fails the request), and again, `required`, on
    every path to REFUNDED: there a failure raises after every license was tried, so the step is
    retried (reconciliation, or the provider's callback sent again) until all are revoked. Idempotent."""
    revoke_order_licenses(order, ports.licenses, now, "order refunded", required)
