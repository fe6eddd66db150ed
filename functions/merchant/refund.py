"""A merchant refunds one of its orders: -> REFUNDING at once, then the refund is sent right away;
if the provider does not answer, reconcile sends it on its next run (same refund id)."""

import contextlib
from datetime import datetime

from shared import queues
from shared.errors import NotFound
from shared.ids import is_id
from shared.orders import Order, Status
from shared.ports import Ports
from shared.providers import ProviderUnavailable
from shared.refunds import request_refund, send_refund


def refund_order(merchant_id: str, order_id: str, reason: str, ports: Ports, now: datetime) -> Order:
    """The order after the attempt: REFUNDED if the provider confirmed at once, else REFUNDING."""
    orders = ports.orders
    order = orders.get(order_id) if is_id(order_id, "ord") else None
    if order is None or order.merchant_id != merchant_id:
        raise NotFound("no such order", code="order_not_found")  # another merchant's order is not found
    provider = ports.providers.provider(order.provider)  # first: a broken provider config changes nothing
    order = request_refund(order, ports, now, reason)
    if order.status == Status.REFUNDED:
        # Asked again: tell the merchant again, under the same event id (a crash right after the
        # REFUNDED write kept the first from being sent; reconcile looks at REFUNDING orders only).
        queues.emit("order.refunded", order, ports.notify)
    elif order.status == Status.REFUNDING and provider is not None:
        with contextlib.suppress(ProviderUnavailable):  # recorded on the order; reconcile sends it later
            send_refund(order, provider, ports, now)
        order = orders.get(order_id) or order
    return order
