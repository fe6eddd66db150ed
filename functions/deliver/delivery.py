"""Delivery: bind the order's reserved slots to it (I1), then order -> DELIVERED.

A redelivered message finds the slots already bound to this order and binds nothing new.
"""

import logging
from datetime import datetime

from shared.errors import IntegrityViolation, StateConflict
from shared.faults import checkpoint
from shared.orders import Status
from shared.store.orders import OrderStore
from shared.store.stock import StockStore

logger = logging.getLogger(__name__)


def deliver(order_id: str, orders: OrderStore, stock: StockStore, now: datetime) -> Status:
    """Fulfil a PAID order; returns the order's status afterwards. Raises to have the message retried."""
    order = orders.get(order_id)
    if order is None:
        raise IntegrityViolation(f"delivery requested for unknown order {order_id}")
    if order.status != Status.PAID:
        logger.info("nothing to deliver", extra={"order_id": order_id, "status": order.status.value})
        return order.status
    stock.bind(order.product_id, order.slots, order.order_id)
    checkpoint("deliver:after-bind")
    try:
        order = orders.transition(order, "order.delivered", now, {"quantity": order.quantity})
    except StateConflict:
        reread = orders.get(order_id)
        if reread is None or reread.status != Status.DELIVERED:
            raise
        order = reread
    logger.info("order delivered", extra={"order_id": order_id})
    return order.status
