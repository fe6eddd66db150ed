"""Risk reviews past their deadline: the product's `when_review_expires` policy decides — refund
(the default: nobody looked, so nothing is delivered) or deliver (the merchant trusts its rules more
than its own absence). Orders held for a person (`review.held`: undeliverable, the `hold` policy) are
never decided here; they wait for their merchant.

Each order is read strongly consistently first (the `due` index may lag) and changed by one write
conditional on the state and the history it read, so of two runs at once only one decides an order."""

import logging
from datetime import datetime, timedelta

from shared.errors import StateConflict
from shared.orders import Order, Status
from shared.ports import Ports
from shared.refunds import give_back_stock
from shared.reviews import RELEASED, entered_review, is_risk_review, release

logger = logging.getLogger(__name__)
HELD_LOOKED_AT_AGAIN = timedelta(days=1)  # a held order found by this step: out of its way till then
BATCH = 100


def expire_reviews(ports: Ports, now: datetime, redrive_after: timedelta) -> list[str]:
    """Apply the policy to each risk review whose deadline has passed; returns the orders decided."""
    orders = ports.orders
    decided: list[str] = []
    for entry in orders.outstanding(Status.IN_REVIEW, before=now, limit=BATCH):
        order = orders.get(entry.order_id)
        if order is None or order.status != Status.IN_REVIEW:
            continue
        if not is_risk_review(order):
            # Held for a person, due at once by give_up: never ours to decide. Its entry moves on so
            # that it is not read every minute, nor keeps risk reviews behind it from this batch.
            orders.postpone(order.order_id, Status.IN_REVIEW, until=now + HELD_LOOKED_AT_AGAIN)
            continue
        if _expire(order, ports, now, redrive_after):
            decided.append(order.order_id)
    return decided


def _expire(order: Order, ports: Ports, now: datetime, redrive_after: timedelta) -> bool:
    """True if this call decided the order (False: decided meanwhile, by its merchant or another run)."""
    product = ports.products.product(order.product_id)
    policy = product.when_review_expires if product is not None else "refund"
    entered = entered_review(order)
    waited = int((now - entered[1].at).total_seconds() // 60) if entered is not None else 0
    facts = {"by": "deadline", "reason": f"not reviewed within {waited} minutes", "policy": policy}
    event = RELEASED if policy == "deliver" else "refund.requested"
    try:
        if policy == "deliver":
            release(order, ports, now, facts, redrive_after)
        else:
            give_back_stock(
                ports.orders.transition(order, event, now, facts, due_in=timedelta(0)), ports.allocation
            )
    except StateConflict:  # decided meanwhile, or this write applied and its answer was lost
        reread = ports.orders.get(order.order_id)
        last = reread.history[-1] if reread is not None and reread.history else None
        if reread is None or last is None or (last.type, last.at, last.data) != (event, now, facts):
            return False
        if policy == "deliver":  # ours, its answer lost: what followed the write is done here
            ports.delivery.send(reread.order_id)
        else:
            give_back_stock(reread, ports.allocation)
    logger.warning("risk review expired", extra={"order_id": order.order_id, "policy": policy})
    return True
