"""Orders in review (IN_REVIEW), and how they leave it (docs/risk.md "Reviews").

An order enters review two ways: the risk engine asks for a look (`risk.review`, due at the
product's `review_deadline_minutes`, after which its `when_review_expires` policy applies), or
reconciliation gave up delivering it and the product holds such orders (`review.held`, no deadline:
held for a person, never decided by a clock). Either way its merchant approves it (`review.released`
-> PAID -> the delivery queue) or rejects it (a refund)."""

from datetime import datetime, timedelta
from typing import Any, Literal

from shared.orders import Event, Order, Status
from shared.ports import Ports, ProductPort
from shared.products import Product

RISK_REVIEW = "risk.review"
HELD = "review.held"
ENTERED = frozenset({RISK_REVIEW, HELD})
RELEASED = "review.released"

Decided = Literal["approved", "rejected"]


def review_due_in(product: Product | None) -> timedelta:
    """How long a risk review of the product's order waits for its merchant (the `due_in` of the
    `risk.review` transition)."""
    minutes = (
        product.review_deadline_minutes
        if product is not None
        else Product.model_fields["review_deadline_minutes"].default
    )
    return timedelta(minutes=minutes)


def entered_review(order: Order) -> tuple[int, Event] | None:
    """The history entry by which the order last entered review, and its place in the history."""
    for index in range(len(order.history) - 1, -1, -1):
        if order.history[index].type in ENTERED:
            return index, order.history[index]
    return None


def is_risk_review(order: Order) -> bool:
    """True for an order IN_REVIEW because the risk engine asked (False: held for a person)."""
    entered = entered_review(order)
    return order.status == Status.IN_REVIEW and entered is not None and entered[1].type == RISK_REVIEW


def decided(order: Order, by: str) -> Decided | None:
    """How the order's last review was decided by `by` ("merchant", "deadline"), if it was: the
    entry that took it out of review, which a request sent again finds instead of the review."""
    entered = entered_review(order)
    if entered is None or entered[0] + 1 >= len(order.history):
        return None
    out = order.history[entered[0] + 1]
    if out.data.get("by") != by:
        return None
    if out.type == RELEASED:
        return "approved"
    if out.type == "refund.requested":
        return "rejected"
    return None


def due_after_release(order: Order, products: ProductPort, redrive_after: timedelta) -> timedelta:
    """When reconciliation looks at the released (PAID) order next: as after a payment (a manual one
    at its promised time, any other when its delivery should long have happened)."""
    product = products.recent_product(order.product_id) if order.delivery == "manual" else None
    if product is not None and product.manual is not None:
        return timedelta(minutes=product.manual.promise_minutes)
    return redrive_after


def release(
    order: Order, ports: Ports, now: datetime, data: dict[str, Any], redrive_after: timedelta
) -> Order:
    """IN_REVIEW -> PAID (one conditional write), then to the delivery queue. StateConflict if the
    order changed since it was read."""
    released = ports.orders.transition(
        order, RELEASED, now, data, due_in=due_after_release(order, ports.products, redrive_after)
    )
    ports.delivery.send(released.order_id)
    return released
