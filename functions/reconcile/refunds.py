"""Refunds owed to buyers: send each REFUNDING order's refund (or ask what became of it), and give
back payments kept for refund that no order holds (a second payment for one order).

Every refund id is derived from what it refunds, so two runs at once, or a run after a crash, ask
the provider for the same refund and it refunds once.
"""

import hashlib
import logging
from collections.abc import Callable
from datetime import datetime

from shared.errors import DomainError
from shared.orders import Status
from shared.ports import OrderPort, PaymentEventPort, Ports, ProviderLookup
from shared.providers import PaymentProvider, ProviderError, ProviderUnavailable, RefundRequest, RefundState
from shared.refunds import RETRY_FAILED_AFTER, give_back_stock, send_refund
from shared.store.payment_events import OwedPayment

logger = logging.getLogger(__name__)


def refund_orders(
    ports: Ports, now: datetime, out_of_time: Callable[[], bool] = lambda: False
) -> tuple[int, int]:
    """Returns (orders refunded, refunds still pending or failed). A provider that does not answer
    is not asked again in this run."""
    orders, allocation = ports.orders, ports.allocation
    refunded = waiting = 0
    down: set[str] = set()
    for entry in orders.outstanding(Status.REFUNDING, before=now, limit=100):
        if out_of_time():
            break
        order = orders.get(entry.order_id)
        if order is None or order.status != Status.REFUNDING:
            continue
        give_back_stock(order, allocation)  # whatever the provider says: an earlier path may have crashed
        if order.provider in down:
            waiting += 1  # still waiting: its provider did not answer this run
            continue
        provider = ports.providers.provider(order.provider)
        if provider is None:
            orders.record_refund_failure(
                order.order_id, f"provider {order.provider} is not configured", now + RETRY_FAILED_AFTER
            )
            waiting += 1
            continue
        try:
            state = send_refund(order, provider, ports, now)
        except ProviderUnavailable:
            down.add(order.provider)
            waiting += 1
            continue
        refunded += state == RefundState.SUCCEEDED
        waiting += state != RefundState.SUCCEEDED
    return refunded, waiting


def refund_owed_payments(
    events: PaymentEventPort,
    orders: OrderPort,
    provider_for: ProviderLookup,
    providers: list[str],
    out_of_time: Callable[[], bool] = lambda: False,
) -> int:
    """Give back payments kept for refund; the order's own payment is left to its REFUNDING order.
    One the provider refuses is moved aside for an operator (PaymentEventStore.mark_refund_failed)."""
    returned = 0
    for name in providers:
        provider = provider_for(name)
        if provider is None:
            continue
        for owed in events.owed(name):
            if out_of_time():
                return returned
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
                state = _give_back(provider, owed)
            except ProviderUnavailable as error:
                logger.warning(
                    "owed payment not refunded", extra={"order_id": owed.order_id, "error": str(error)}
                )
                break  # this provider is not answering; the next run tries again
            except (ProviderError, DomainError) as error:
                events.mark_refund_failed(owed.event_key, name, f"{type(error).__name__}: {error}")
                logger.error("owed payment refund refused", extra={"order_id": owed.order_id})
                continue
            if state == RefundState.SUCCEEDED:
                events.mark_refunded(owed.event_key)
                returned += 1
            elif state == RefundState.FAILED:
                events.mark_refund_failed(owed.event_key, name, "the provider reports the refund failed")
                logger.error("owed payment refund failed", extra={"order_id": owed.order_id})
            # pending: asked again next run, under the same refund id
    return returned


def _give_back(provider: PaymentProvider, owed: OwedPayment) -> RefundState:
    digest = hashlib.sha256(owed.event_key.encode()).hexdigest()[:32]
    request = RefundRequest(
        refund_id=f"rp_{digest}",
        order_id=owed.order_id,
        payment_id=owed.payment_id,
        amount=owed.amount,
        paid=owed.amount,
        reason="a second payment for one order",
    )
    return provider.refund_state(request) or provider.refund(request)
