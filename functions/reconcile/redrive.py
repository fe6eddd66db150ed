"""Re-drive PAID orders that were not delivered in time (e.g. a delivery message was lost)."""

from datetime import datetime, timedelta

from shared.orders import Status
from shared.queues import DeliveryQueue
from shared.store.orders import OrderStore


def redrive_paid(orders: OrderStore, queue: DeliveryQueue, now: datetime, retry_after: timedelta) -> int:
    """Send each overdue PAID order to the delivery queue again; returns how many were sent."""
    overdue = orders.due(Status.PAID, before=now)
    for order_id in overdue:
        queue.send(order_id)
        orders.postpone(order_id, Status.PAID, until=now + retry_after)
    return len(overdue)
