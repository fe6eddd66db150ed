"""Re-drive PAID orders that were not delivered in time (e.g. a delivery message was lost), with
growing pauses and a bound; past the bound the product's policy decides: refund, or hold for review."""

import logging
from datetime import datetime, timedelta

from shared.errors import StateConflict
from shared.faults import checkpoint
from shared.orders import Order, Status
from shared.ports import AllocationPort, DeliveryQueuePort, OrderPort, ProductPort
from shared.refunds import give_back_stock

logger = logging.getLogger(__name__)
LONGEST_PAUSE = timedelta(minutes=30)


def redrive_paid(
    orders: OrderPort,
    queue: DeliveryQueuePort,
    products: ProductPort,
    allocation: AllocationPort,
    now: datetime,
    retry_after: timedelta,
    max_redrives: int,
) -> tuple[int, list[str]]:
    """Send each overdue PAID order to the delivery queue again. Returns (how many were sent, the
    orders given up on). Each overdue deadline is claimed with a conditional write first, so of two
    concurrent runs only one sends, or gives up — never before the last re-drive's pause is over."""
    sent, gave_up = 0, []
    for entry in orders.outstanding(Status.PAID, before=now, limit=100):
        order = orders.get(entry.order_id)
        if order is None or order.status != Status.PAID:
            continue
        pause = min(retry_after * 2**order.redrives, LONGEST_PAUSE)
        claimed = orders.take_redrive(entry, until=now + pause)
        if claimed is None:
            continue  # another run claimed this deadline, or the order moved on
        if claimed > max_redrives:
            if _give_up(order, orders, products, allocation, now):
                gave_up.append(order.order_id)
            continue
        checkpoint("redrive:after-claimed")  # the next run re-drives it once this pause is over
        queue.send(order.order_id)
        sent += 1
    return sent, gave_up


def _give_up(
    order: Order, orders: OrderPort, products: ProductPort, allocation: AllocationPort, now: datetime
) -> bool:
    product = products.product(order.product_id)
    policy = product.when_undeliverable if product is not None else "refund"
    reason = {
        "reason": f"not delivered after {order.redrives} re-drives",
        "last_error": (order.delivery_error or "none recorded")[:200],
    }
    event = "review.held" if policy == "hold" else "refund.requested"
    try:
        order = orders.transition(order, event, now, reason, due_in=timedelta(0))
    except StateConflict:  # delivered or given up meanwhile, or this write applied and its answer was lost
        reread = orders.get(order.order_id)
        if reread is not None and reread.status in (Status.REFUNDING, Status.REFUNDED):
            give_back_stock(reread, allocation)  # whoever wrote it may not have got this far
        last = reread.history[-1] if reread is not None and reread.history else None
        if reread is None or last is None or (last.type, last.at, last.data) != (event, now, reason):
            return False
        order = reread  # this run's write, its answer lost: given up here, so counted and logged here
    if policy != "hold":
        checkpoint("redrive:between-refunding-and-release")  # the refund step gives it back then
        give_back_stock(order, allocation)
    logger.error("gave up delivering a paid order", extra={"order_id": order.order_id, "policy": policy})
    return True
