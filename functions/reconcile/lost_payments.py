"""Lost callbacks: ask the provider about unpaid orders and apply a payment that was made.

An unpaid order is asked about twice at most: once `PAYMENT_QUERY_AFTER_SECONDS` after checkout
(its first `due` deadline), and once more when its reservation runs out, just before it expires.
A provider that does not answer is not asked again in the same run, and the step stops when the
run's time budget for it is spent, so a provider outage cannot stop the other steps.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from shared.errors import DomainError
from shared.orders import Status
from shared.payments import PaymentEvent
from shared.ports import OrderPort, ProviderLookup
from shared.providers import ProviderError, ProviderUnavailable
from shared.settlement import Outcome

logger = logging.getLogger(__name__)


def recover_payments(
    orders: OrderPort,
    query_for: ProviderLookup,
    apply: Callable[[PaymentEvent], Outcome],
    now: datetime,
    out_of_time: Callable[[], bool] = lambda: False,
) -> tuple[int, int]:
    """Returns (payments applied, orders asked about). Orders still unpaid wait for their expiry."""
    recovered = asked = 0
    down: set[str] = set()  # providers that did not answer in this run
    for entry in orders.outstanding(Status.PENDING_PAYMENT, before=now, limit=100):
        if out_of_time():
            logger.warning("provider questions stopped: the run's time for them is spent")
            break
        order = orders.get(entry.order_id)
        if order is None or order.status != Status.PENDING_PAYMENT:
            continue
        if order.provider in down:
            continue  # asked again next run
        provider = query_for(order.provider)
        if provider is None:  # a provider no longer configured: the order just waits for its expiry
            if order.expires_at > now:
                orders.postpone(order.order_id, Status.PENDING_PAYMENT, until=order.expires_at)
            continue
        asked += 1
        try:
            payments = provider.query(order.order_id)
        except (ProviderError, DomainError) as error:
            if isinstance(error, ProviderUnavailable):
                down.add(order.provider)
            logger.warning(
                "could not ask the provider", extra={"order_id": order.order_id, "error": str(error)}
            )
            continue  # asked again next run
        for payment in payments:
            try:
                recovered += apply(payment) == Outcome.APPLIED  # the webhook's own path: I3, I5
            except DomainError as error:
                logger.warning(
                    "provider reported a payment that does not fit the order",
                    extra={"order_id": order.order_id, "error": str(error)},
                )
        if order.expires_at > now:
            orders.postpone(order.order_id, Status.PENDING_PAYMENT, until=order.expires_at)
    return recovered, asked
