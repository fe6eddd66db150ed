"""Lost callbacks: ask the provider about unpaid orders and apply a payment that was made.

An unpaid order is asked about twice at most: once `PAYMENT_QUERY_AFTER_SECONDS` after checkout
(its first `due` deadline), and once more when its reservation runs out, just before it expires.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from shared.errors import DomainError
from shared.orders import Status
from shared.payments import PaymentEvent
from shared.providers import PaymentQuery, ProviderError
from shared.store.orders import OrderStore

logger = logging.getLogger(__name__)


def recover_payments(
    orders: OrderStore,
    query_for: Callable[[str], PaymentQuery | None],
    apply: Callable[[PaymentEvent], object],
    now: datetime,
) -> tuple[int, int]:
    """Returns (payments applied, orders asked about). Orders still unpaid wait for their expiry."""
    recovered = asked = 0
    for entry in orders.outstanding(Status.PENDING_PAYMENT, before=now, limit=100):
        order = orders.get(entry.order_id)
        if order is None or order.status != Status.PENDING_PAYMENT:
            continue
        provider = query_for(order.provider)
        payments: list[PaymentEvent] = []
        if provider is not None:
            asked += 1
            try:
                payments = provider.query(order.order_id)
            except (ProviderError, DomainError) as error:
                logger.warning(
                    "could not ask the provider", extra={"order_id": order.order_id, "error": str(error)}
                )
        for payment in payments:
            try:
                apply(payment)  # the webhook's own path: verified binding, recorded once (I5)
                recovered += 1
            except DomainError as error:
                logger.warning(
                    "provider reported a payment that does not fit the order",
                    extra={"order_id": order.order_id, "error": str(error)},
                )
        if not payments and order.expires_at > now:
            orders.postpone(order.order_id, Status.PENDING_PAYMENT, until=order.expires_at)
    return recovered, asked
