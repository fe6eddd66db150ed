"""Re-drive PAID orders that were not delivered in time (e.g. a delivery message was lost), with
growing pauses and a bound; past the bound the product's policy decides: refund, or hold for review.

A manual order is not re-driven (nothing but its merchant delivers it): past the time promised to the
buyer it is reported late (the FulfilmentLate alarm) once, and past the product's deadline the policy
decides as for any other."""

import logging
from datetime import datetime, timedelta

from shared.faults import checkpoint
from shared.orders import Order, Status
from shared.ports import AllocationPort, DeliveryQueuePort, OrderPort, ProductPort
from shared.undeliverable import Why, give_up

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
    late: list[str] | None = None,
) -> tuple[int, list[str]]:
    """Send each overdue PAID order to the delivery queue again. Returns (how many were sent, the
    orders given up on); manual orders found late are added to `late`. Each overdue deadline is
    claimed with a conditional write first, so of two concurrent runs only one sends, reports or gives
    up — never before the last re-drive's pause (or a manual order's deadline) is over."""
    sent, gave_up = 0, []
    for entry in orders.outstanding(Status.PAID, before=now, limit=100):
        order = orders.get(entry.order_id)
        if order is None or order.status != Status.PAID:
            continue
        deadline = _fulfil_deadline(order, products) if order.delivery == "manual" else None
        if deadline is not None and now < deadline:
            if orders.take_redrive(entry, until=deadline) is not None:  # once per order, by one run
                logger.error("manual order late", extra={"order_id": order.order_id})
                (late if late is not None else []).append(order.order_id)
            continue
        pause = min(retry_after * 2**order.redrives, LONGEST_PAUSE)
        claimed = orders.take_redrive(entry, until=now + pause)
        if claimed is None:
            continue  # another run claimed this deadline, or the order moved on
        if deadline is not None or claimed > max_redrives:
            if give_up(order, orders, products, allocation, now, _why(order)):
                gave_up.append(order.order_id)
            continue
        checkpoint("redrive:after-claimed")  # the next run re-drives it once this pause is over
        queue.send(order.order_id)
        sent += 1
    return sent, gave_up


def _why(order: Order) -> Why:
    if order.delivery == "manual":
        return Why("not fulfilled by the merchant in time")
    reason = Why(f"not delivered after {order.redrives} re-drives")
    if order.delivery == "topup" and any(e.type == "topup.sent" for e in order.history):
        # Sent, and what became of it unknown (no answer, or `processing` all along): a refund now
        # could pay the buyer back for a top-up that lands later. Held for the merchant to ask.
        return Why(reason.reason + "; the upstream's outcome is not known", policy="hold")
    return reason


def _fulfil_deadline(order: Order, products: ProductPort) -> datetime:
    """When a manual order's policy applies: the product's deadline after the order was paid."""
    product = products.product(order.product_id)
    minutes = product.manual.deadline_minutes if product is not None and product.manual else 0
    paid = next((e.at for e in reversed(order.history) if e.type == "payment.succeeded"), order.created_at)
    return paid + timedelta(minutes=minutes)
