"""Merchant use cases: the review queue (orders IN_REVIEW) and its two decisions, approve (-> PAID ->
delivery) and reject (-> refund). A decision sent again (its answer lost) answers as the first did."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from functions.merchant.refund import refund_order
from shared.errors import NotFound, StateConflict
from shared.ids import is_id
from shared.orders import Event, Order, Status
from shared.ports import OrderPort, Ports
from shared.reviews import RISK_REVIEW, decided, entered_review, release

CONFLICT_RETRIES = 5
MAX_LISTED = 100


@dataclass(frozen=True)
class Review:
    order: Order
    entered: Event  # the history entry that put it in review (its data: why)
    due_at: datetime | None  # when the product's policy applies; None: held for a person, no deadline


def list_reviews(merchant_id: str, orders: OrderPort, limit: int = MAX_LISTED) -> list[Review]:
    """The merchant's orders IN_REVIEW, the longest waiting first.

    Found through the sparse `due` index (every order IN_REVIEW has an entry there: a risk review due
    at its deadline, a held one at once), so the cost follows the orders in review, never the
    merchant's order count; each is then read strongly consistently (the index lags on real AWS), and
    only those still IN_REVIEW and the merchant's own are listed."""
    entries = {entry.order_id: entry for entry in orders.outstanding(Status.IN_REVIEW)}
    found: list[Review] = []
    for order in orders.get_many(set(entries)):
        entered = entered_review(order)
        if order.merchant_id != merchant_id or order.status != Status.IN_REVIEW or entered is None:
            continue
        risk = entered[1].type == RISK_REVIEW
        due_at = (
            datetime.fromtimestamp(entries[order.order_id].due_at, entered[1].at.tzinfo) if risk else None
        )
        found.append(Review(order=order, entered=entered[1], due_at=due_at))
    found.sort(key=lambda review: (review.entered.at, review.order.order_id))
    return found[:limit]


def owned_order(merchant_id: str, order_id: str, orders: OrderPort) -> Order:
    order = orders.get(order_id) if is_id(order_id, "ord") else None
    if order is None or order.merchant_id != merchant_id:
        raise NotFound("no such order", code="order_not_found")  # another merchant's order is not found
    return order


def approve(merchant_id: str, order_id: str, ports: Ports, now: datetime, redrive_after: timedelta) -> Order:
    """IN_REVIEW -> PAID and to the delivery queue. Approved already (a request sent again): the order
    as it is now, sent to delivery again while still PAID (delivery is idempotent)."""
    order = owned_order(merchant_id, order_id, ports.orders)
    for _ in range(CONFLICT_RETRIES):
        if order.status == Status.IN_REVIEW:
            try:
                return release(order, ports, now, {"by": "merchant"}, redrive_after)
            except StateConflict:  # changed meanwhile, or this write applied and its answer was lost
                order = owned_order(merchant_id, order_id, ports.orders)
                continue
        if decided(order, "merchant") == "approved":
            if order.status == Status.PAID:
                ports.delivery.send(order.order_id)
            return order
        break
    raise _not_in_review(order)


def reject(merchant_id: str, order_id: str, reason: str, ports: Ports, now: datetime) -> Order:
    """IN_REVIEW -> REFUNDING (a write conditional on the review, so an approval that came first is
    never undone), then the refund sent at once (functions/merchant/refund.py). Rejected already: the
    refund asked after again, which changes nothing it has not."""
    order = owned_order(merchant_id, order_id, ports.orders)
    if order.status == Status.IN_REVIEW:
        facts = {"reason": reason[:200] or "rejected in review", "by": "merchant"}
        try:
            ports.orders.transition(order, "refund.requested", now, facts, due_in=timedelta(0))
        except StateConflict:  # decided meanwhile, or this write applied and its answer was lost
            order = owned_order(merchant_id, order_id, ports.orders)
            if decided(order, "merchant") != "rejected":
                raise _not_in_review(order) from None
    elif decided(order, "merchant") != "rejected":
        raise _not_in_review(order)
    return refund_order(merchant_id, order_id, reason, ports, now)  # gives the stock back, sends it


def _not_in_review(order: Order) -> StateConflict:
    return StateConflict(
        f"the order is {order.status.value}, not in review (decided already, or never reviewed)",
        code="not_in_review",
    )
