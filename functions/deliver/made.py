"""Delivering an order with codes made for it (generated codes, license keys): sealed on the order in
the same conditional write that moves it PAID -> DELIVERED, as a hand-fulfilled order's are
(shared/fulfilment.py), so the order page opens them from the order alone. Never logged."""

import logging
from datetime import datetime
from typing import Any

from functions.deliver.telling import tell_merchant
from shared.errors import IntegrityViolation, StateConflict
from shared.fulfilment import Fulfilment, seal_fulfilment
from shared.orders import Order, Status
from shared.ports import Ports

logger = logging.getLogger(__name__)


def deliver_made(order: Order, codes: list[str], ports: Ports, now: datetime, data: dict[str, Any]) -> Status:
    """Move the PAID order to DELIVERED with `codes` (one per unit) sealed on it and `data` in its
    `order.delivered` entry, then tell its merchant and buyer. An order delivered meanwhile (another
    attempt's codes) is left as it is: the codes it shows are the ones sealed on it."""
    if len(codes) != order.quantity:
        raise IntegrityViolation(
            f"order {order.order_id}: {len(codes)} codes made for a quantity of {order.quantity}"
        )
    sealed = seal_fulfilment(Fulfilment(codes=codes), order.order_id, ports.ciphers(order.merchant_id))
    try:
        order = ports.orders.transition(
            order, "order.delivered", now, {"quantity": order.quantity, **data}, fulfilment=sealed
        )
    except StateConflict:  # delivered by another attempt, or this write applied and its answer was lost
        reread = ports.orders.get(order.order_id)
        if reread is None or reread.status != Status.DELIVERED:
            raise
        order = reread
    logger.info("order delivered", extra={"order_id": order.order_id, "delivery": order.delivery})
    tell_merchant(order, ports)
    return order.status
