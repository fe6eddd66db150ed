"""Refunds owed to buyers: send each REFUNDING order's refund (or ask what became of it), and give
back payments kept for refund that no order holds (a second payment for one order).

Every refund id is derived from what it refunds, so two runs at once, or a run after a crash, ask
the provider for the same refund and it refunds once.
"""

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime

from shared.orders import Status
from shared.providers import PaymentProvider, ProviderError, RefundRequest, RefundState
from shared.refunds import CHECK_PENDING_AFTER, send_refund
from shared.store.orders import OrderStore
from shared.store.payment_events import OwedPayment, PaymentEventStore

logger = logging.getLogger(__name__)


def refund_orders(
    orders: OrderStore,
    provider_for: Callable[[str], PaymentProvider | None],
    now: datetime,
    out_of_time: Callable[[], bool] = lambda: False,
) -> tuple[int, int]:
    """Returns (orders refunded, refunds still pending or failed)."""
    refunded = waiting = 0
    for entry in orders.outstanding(Status.REFUNDING, before=now, limit=100):
        if out_of_time():
            break
        order = orders.get(entry.order_id)
        if order is None or order.status != Status.REFUNDING:
            continue
        provider = provider_for(order.provider)
        if provider is None:
            orders.record_refund_failure(
                order.order_id, f"provider {order.provider} is not configured", now + CHECK_PENDING_AFTER
            )
            waiting += 1
            continue
        state = send_refund(order, provider, orders, now)
        refunded += state == RefundState.SUCCEEDED
        waiting += state != RefundState.SUCCEEDED
    return refunded, waiting


def refund_owed_payments(
    events: PaymentEventStore,
    orders: OrderStore,
    provider_for: Callable[[str], PaymentProvider | None],
    providers: list[str],
) -> int:
    """Give back payments kept for refund; the order's own payment is left to its REFUNDING order."""
    returned = 0
    for name in providers:
        provider = provider_for(name)
        if provider is None:
            continue
        for owed in events.owed(name):
            order = orders.get(owed.order_id)
            if (
                order is not None
                and order.payment is not None
                and order.payment.payment_id == owed.payment_id
            ):
                if order.status == Status.REFUNDED:
                    events.mark_refunded(owed.event_key)
                continue  # refunded with the order, under the order's refund id
            try:
                done = _give_back(provider, owed)
            except ProviderError as error:
                logger.warning(
                    "owed payment not refunded", extra={"order_id": owed.order_id, "error": str(error)}
                )
                break  # this provider is not answering; the next run tries again
            if done:  # pending: asked again next run, under the same refund id
                events.mark_refunded(owed.event_key)
                returned += 1
    return returned


def _give_back(provider: PaymentProvider, owed: OwedPayment) -> bool:
    digest = hashlib.sha256(owed.event_key.encode()).hexdigest()[:32]
    request = RefundRequest(
        refund_id=f"rp_{digest}",
        order_id=owed.order_id,
        payment_id=owed.payment_id,
        amount=owed.amount,
        paid=owed.amount,
        reason="a second payment for one order",
    )
    state = provider.refund_state(request) or provider.refund(request)
    return state == RefundState.SUCCEEDED
