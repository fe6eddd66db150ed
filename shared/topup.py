"""Top-up orders (docs/topup.md): what an upstream's answer does to a PAID order. Used by delivery
(the answer to its request or its status question) and by the upstream's signed callback.

`succeeded` delivers the order (the receipt kept in its history for the buyer); `processing` changes
nothing (a callback, or the next status question, will tell); `failed` that may be retried raises
UpstreamRetry (the delivery is retried with backoff, and asks the status first); `failed` for good
applies the product's `when_undeliverable` policy: nothing was credited, so a refund is safe.
"""

import logging
from datetime import datetime

from shared import queues
from shared.errors import StateConflict
from shared.mail import MailRequest
from shared.orders import Order, Status
from shared.ports import Ports
from shared.undeliverable import Why, give_up
from shared.upstream import UpstreamAnswer

logger = logging.getLogger(__name__)
SENT = "topup.sent"  # the note written before every request to the upstream


class UpstreamRetry(Exception):
    """The upstream failed in a way worth retrying (nothing was applied): retry the delivery later."""


def idempotency_key(order: Order) -> str:
    """One per order line; an order is one line (a product × a quantity)."""
    return order.order_id


def was_sent(order: Order) -> bool:
    return any(event.type == SENT for event in order.history)


def settle_topup(order: Order, answer: UpstreamAnswer, ports: Ports, now: datetime) -> Status:
    """Apply the upstream's answer about `order` (PAID); returns the order's status afterwards."""
    if answer.status == "succeeded":
        return _delivered(order, answer, ports, now)
    if answer.status == "failed" and answer.retryable:
        raise UpstreamRetry(f"the upstream failed the top-up of {order.order_id} and may be asked again")
    if answer.status == "failed" or (answer.status == "unknown" and not was_sent(order)):
        give_up(
            order, ports.orders, ports.products, ports.allocation, now, Why("the upstream refused the top-up")
        )
        return _status(order, ports)
    return order.status  # processing (or a status of `unknown` the caller sends again)


def _delivered(order: Order, answer: UpstreamAnswer, ports: Ports, now: datetime) -> Status:
    data: dict[str, str | int] = {"quantity": order.quantity}
    if answer.receipt:
        data["receipt"] = answer.receipt
    try:
        order = ports.orders.transition(order, "order.delivered", now, data)
    except StateConflict:  # delivered meanwhile (a callback and a status answer at once), or a lost answer
        reread = ports.orders.get(order.order_id)
        if reread is None or reread.status != Status.DELIVERED:
            raise
        return reread.status
    logger.info("order topped up", extra={"order_id": order.order_id})
    queues.request_mail(MailRequest(mail="order", order_id=order.order_id), ports.notify)
    queues.emit("order.delivered", order, ports.notify)
    return order.status


def _status(order: Order, ports: Ports) -> Status:
    reread = ports.orders.get(order.order_id)
    return reread.status if reread is not None else order.status
