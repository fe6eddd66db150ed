"""A merchant refunds one of its orders: -> REFUNDING at once, then the refund is sent right away;
if the provider does not answer, reconcile sends it on its next run (same refund id)."""

import contextlib
from datetime import datetime

from shared.errors import NotFound
from shared.orders import Order, Status
from shared.providers import ProviderUnavailable, registry
from shared.refunds import request_refund, send_refund
from shared.store.orders import OrderStore
from shared.store.shop import is_id
from shared.store.stock import StockStore


def refund_order(
    merchant_id: str, order_id: str, reason: str, orders: OrderStore, stock: StockStore, now: datetime
) -> Order:
    """The order after the attempt: REFUNDED if the provider confirmed at once, else REFUNDING."""
    order = orders.get(order_id) if is_id(order_id, "ord") else None
    if order is None or order.merchant_id != merchant_id:
        raise NotFound("no such order", code="order_not_found")  # another merchant's order is not found
    provider = registry.provider(order.provider)  # first: a broken provider config changes nothing
    order = request_refund(order, orders, stock, now, reason)
    if order.status == Status.REFUNDING and provider is not None:
        with contextlib.suppress(ProviderUnavailable):  # recorded on the order; reconcile sends it later
            send_refund(order, provider, orders, stock, now)
        order = orders.get(order_id) or order
    return order
