"""Delivering a generated order: a fresh code per unit from the product's pattern, unique per product.

Each code is drawn from the CSPRNG (shared/generated.py) and recorded by its fingerprint (the merchant's
keyed hash) with one conditional write naming the order and unit (shared/store/made.py): a code another
order has already is drawn again, a bounded number of times. A capped product counts the order's units
first, exactly (one conditional write); an order past the cap gets its product's `when_undeliverable`
policy. The codes are then sealed on the order as it moves to DELIVERED (functions/deliver/made.py).

Before any of that the order's history gets a `codes.drawing` note (one conditional write), so two
deliveries of one order at once (a duplicated message) cannot both draw and count: the one whose note is
not written waits for the next try. A crash after the note, the count or the draws leaves uniqueness
items (and counted units) that no order shows; the retry, past the lease, draws new codes
(docs/licenses.md "What a crash costs"). Codes are never logged.
"""

import logging
import secrets
from datetime import datetime, timedelta

from functions.deliver.made import deliver_made
from shared import generated
from shared.errors import StateConflict
from shared.faults import checkpoint
from shared.generated import Pattern
from shared.orders import Order, Status
from shared.ports import MadeCodePort, Ports
from shared.undeliverable import Why, give_up

logger = logging.getLogger(__name__)

DRAWING = "codes.drawing"
COUNTED = "codes.counted"  # a capped product's units counted for the order (once, whatever the attempts)
# Another delivery of the order noted less than this ago may still be drawing: this one is retried later.
LEASE = timedelta(seconds=30)
MAX_DRAWS = 8  # per unit: at 40 bits or more, a second collision in a row means a broken generator


class InFlight(Exception):
    """Another delivery of this order may be drawing its codes right now: retried later."""


class NoPattern(Exception):
    """The order's product has no pattern (or the codes store is not wired): retried, re-driven, held."""


class DrawsExhausted(Exception):
    """Every code drawn for a unit was another's: the generator is broken. Retried, then dead-lettered."""


def deliver_generated(order: Order, ports: Ports, now: datetime) -> Status:
    """Make the PAID order's codes and deliver them; returns its status afterwards. Raises to retry."""
    product = ports.products.recent_product(order.product_id)
    terms = product.generated if product is not None else None
    made = ports.made
    if terms is None or made is None:
        raise NoPattern(f"order {order.order_id}: its product has no code pattern")
    order, ours = _note_drawing(order, ports, now)
    if not ours:
        if order.status != Status.PAID:
            return order.status
        raise InFlight(f"order {order.order_id}: another delivery may be drawing its codes")
    if terms.cap is not None and not any(event.type == COUNTED for event in order.history):
        if not made.take(order.product_id, terms.cap, order.quantity, order.order_id):
            logger.warning("generated cap reached", extra={"order_id": order.order_id, "cap": terms.cap})
            why = Why(f"the product's cap of {terms.cap} codes is reached")
            give_up(order, ports.orders, ports.products, ports.allocation, now, why)
            reread = ports.orders.get(order.order_id)
            return reread.status if reread is not None else order.status
        checkpoint("generated:after-count", order.order_id)
        # Counted: a later attempt (this one failing past here) must not count the order again.
        order = ports.orders.note(order, COUNTED, now, {"units": order.quantity, "cap": terms.cap})
    pattern = generated.validate(terms.pattern)
    codes = [_unique_code(order, unit, pattern, made, ports) for unit in range(order.quantity)]
    checkpoint("generated:after-draw", order.order_id)
    return deliver_made(order, codes, ports, now, {"made": order.quantity})


def _unique_code(order: Order, unit: int, pattern: Pattern, made: MadeCodePort, ports: Ports) -> str:
    """A fresh code for the unit, recorded as its own (drawn again while another order's)."""
    cipher = ports.ciphers(order.merchant_id)
    for attempt in range(1, MAX_DRAWS + 1):
        code = ports.draw(pattern)
        fingerprint = cipher.fingerprint(generated.fingerprint_message(order.product_id, code))
        if made.record(order.product_id, fingerprint, order.order_id, unit, ports.clock()):
            return code
        logger.warning(
            "generated code taken already: drawing again",
            extra={"order_id": order.order_id, "unit": unit, "attempt": attempt},
        )
    logger.error("no unique generated code", extra={"order_id": order.order_id, "draws": MAX_DRAWS})
    raise DrawsExhausted(f"order {order.order_id}: {MAX_DRAWS} codes drawn for unit {unit} were all taken")


def _note_drawing(order: Order, ports: Ports, now: datetime) -> tuple[Order, bool]:
    """Note that this delivery draws the order's codes; (the order, True) if it may. False: another
    delivery noted it less than LEASE ago, or the order changed and is no longer PAID."""
    noted = [event for event in order.history if event.type == DRAWING]
    if noted and now - noted[-1].at < LEASE:
        return order, False
    data = {"attempt": len(noted) + 1, "by": secrets.token_hex(4)}  # `by`: this call's note from another's
    try:
        return ports.orders.note(order, DRAWING, now, data), True
    except StateConflict:
        reread = ports.orders.get(order.order_id)
        if reread is None:
            raise
        last = reread.history[-1]
        return reread, (last.type, last.at, last.data) == (DRAWING, now, data)  # ours, its answer lost
