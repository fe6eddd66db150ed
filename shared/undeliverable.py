"""Giving up on a paid order that cannot be delivered: the product's `when_undeliverable` policy
refunds it or holds it for review (IN_REVIEW). Reconciliation does it past an order's bounded
re-drives or a manual order's deadline; delivery does it when a top-up's upstream refuses for good."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.errors import StateConflict
from shared.faults import checkpoint
from shared.orders import Order, Status
from shared.ports import AllocationPort, OrderPort, ProductPort
from shared.products import UndeliverablePolicy
from shared.refunds import give_back_stock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Why:
    reason: str  # in the order's history, seen by its buyer and merchant: never a buyer's input
    policy: UndeliverablePolicy | None = None  # None: the product's


def give_up(
    order: Order,
    orders: OrderPort,
    products: ProductPort,
    allocation: AllocationPort,
    now: datetime,
    why: Why,
) -> bool:
    """Apply the policy to a PAID order; True if this call did (False: it had moved on meanwhile)."""
    product = products.product(order.product_id)
    policy = why.policy or (product.when_undeliverable if product is not None else "refund")
    reason = {"reason": why.reason, "last_error": (order.delivery_error or "none recorded")[:200]}
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
        order = reread  # this call's write, its answer lost: given up here, so counted and logged here
    if policy != "hold":
        checkpoint("redrive:between-refunding-and-release")  # the refund step gives it back then
        give_back_stock(order, allocation)
    logger.error("gave up delivering a paid order", extra={"order_id": order.order_id, "policy": policy})
    return True
