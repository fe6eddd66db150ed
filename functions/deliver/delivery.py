"""Delivery: bind the order's reserved slots to it (I1), check the codes open, then order -> DELIVERED.
Other modes part after the risk screening: a top-up calls its upstream (topup.py), a generated order's
codes are made (generated.py) and a license order's keys signed (licenses.py), both then delivered sealed
on the order (made.py); a manual order waits for its merchant.

A redelivered message finds the slots already bound to this order and binds nothing new. A failure
is recorded on the order (for operators reading the dead-letter queue) and raised, so the message
is retried. A retry is counted on the order before it starts, and one past the order's allowance is
refused (RetriesExhausted), so the order's own failures, not its message's receives, decide when it
is dead-lettered (functions/deliver/batch.py). A delivered order tells its merchant (order.delivered,
and stock.low if the product's stock is now at or below its threshold); that never fails the delivery.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from functions.deliver.generated import deliver_generated
from functions.deliver.licenses import issue_licenses
from functions.deliver.made import deliver_made
from functions.deliver.telling import tell_merchant
from functions.deliver.topup import deliver_topup
from shared import screening
from shared.errors import IntegrityViolation, StateConflict
from shared.faults import checkpoint
from shared.orders import Order, Status
from shared.ports import Ports
from shared.refunds import give_back_stock
from shared.reviews import review_due_in

logger = logging.getLogger(__name__)


class UnknownOrder(IntegrityViolation):
    """A delivery message for an order that does not exist: no retry can deliver it."""


class RetriesExhausted(Exception):
    """The order has used its retries: this one is not started, the message is dead-lettered."""


@dataclass(frozen=True)
class Retry:
    """A retried delivery: `attempt` names it (one receive of one message), `allowed` caps the order's."""

    attempt: str
    allowed: int


def failure_reason(error: Exception) -> str:
    """What an operator reads about a failed delivery: the error's kind and our own message."""
    return f"{type(error).__name__}: {error}".rstrip(": ")


def deliver(order_id: str, ports: Ports, now: datetime, retry: Retry | None = None) -> Status:
    """Fulfil a PAID order; returns the order's status afterwards. Raises to have the message retried."""
    orders, allocation = ports.orders, ports.allocation
    order = orders.get(order_id)
    if order is None:
        raise UnknownOrder(f"delivery requested for unknown order {order_id}")
    if order.status != Status.PAID:
        logger.info("nothing to deliver", extra={"order_id": order_id, "status": order.status.value})
        if order.status == Status.DELIVERED:  # maybe a retry after a crash before anyone was told
            tell_merchant(order, ports)
        return order.status
    order = screened(order, ports, now)
    if order.status != Status.PAID:
        return order.status
    if order.delivery == "manual":  # its merchant fulfils it (functions/merchant/fulfil.py)
        logger.info("waiting for the merchant", extra={"order_id": order_id})
        return order.status
    if retry is not None:
        retries = orders.count_delivery_retry(order_id, retry.attempt)
        if retries is None:  # it left PAID since it was read
            return deliver(order_id, ports, now)
        if retries > retry.allowed:
            raise RetriesExhausted(f"order {order_id} has used its {retry.allowed} delivery retries")
    if order.delivery == "topup":
        return deliver_topup(order, ports, now)
    if order.delivery == "generated":
        return deliver_generated(order, ports, now)
    if order.delivery == "license":
        return deliver_licenses(order, ports, now)
    allocation.bind(order.product_id, order.slots, order.order_id)
    checkpoint("deliver:after-bind", order_id)
    # DELIVERED promises a code the buyer can open: every bound code must decrypt, all of them.
    opened = allocation.read_codes(
        order.product_id, order.slots, order.order_id, ports.ciphers(order.merchant_id)
    )
    if len(opened) != order.quantity:
        raise IntegrityViolation(
            f"order {order_id} has {len(opened)} codes for a quantity of {order.quantity}"
        )
    try:
        order = orders.transition(order, "order.delivered", now, {"quantity": order.quantity})
    except StateConflict:
        reread = orders.get(order_id)
        if reread is None or reread.status != Status.DELIVERED:
            raise
        order = reread
    logger.info("order delivered", extra={"order_id": order_id})
    tell_merchant(order, ports)
    return order.status


def deliver_licenses(order: Order, ports: Ports, now: datetime) -> Status:
    """Sign one license per unit with the merchant's key (functions/deliver/licenses.py), then deliver
    them as made codes."""
    product = ports.products.recent_product(order.product_id)
    if product is None or product.license is None:
        raise IntegrityViolation(f"order {order.order_id}: its product has no license terms")
    texts, data = issue_licenses(order, product, ports, now)
    return deliver_made(order, texts, ports, now, data)


def screened(order: Order, ports: Ports, now: datetime) -> Order:
    """The order once its merchant's risk rules had their say (shared/screening.py): still PAID to be
    delivered, IN_REVIEW for its merchant to look at, or REFUNDING. Screened on every attempt until a
    decision is in its history (the payer's counter counts the order once, whatever the attempts)."""
    if screening.screened_already(order):
        return order
    decision = ports.screen(order, now)
    if decision is None or (decision.action == "allow" and not decision.hits):
        return order
    data = screening.record(decision)
    logger.info("risk decision", extra={"order_id": order.order_id, "action": decision.action})
    if decision.action == "allow":
        return ports.orders.note(order, "risk.decided", now, data)
    if decision.action == "review":
        product = ports.products.recent_product(order.product_id)
        return ports.orders.transition(order, "risk.review", now, data, due_in=review_due_in(product))
    refunding = ports.orders.transition(order, "refund.requested", now, data, due_in=timedelta(0))
    return give_back_stock(refunding, ports.allocation)
