"""Learning from disputes (docs/risk.md "Learning from outcomes"): a buyer's chargeback of an order's
payment is told once in the order's history (`payment.disputed`) and puts the order's payer, device,
e-mail and client address on its merchant's learned block lists, so what they pay for next at that shop
is refunded before delivery. The order's state is left as it is: the provider takes the money back
through the dispute itself, not through a refund of ours.
"""

import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from shared.errors import StateConflict
from shared.orders import Order
from shared.payments import PaymentEvent
from shared.ports import OrderPort, Ports
from shared.risk.signals import NORMAL, SignalKind
from shared.settlement import CONFLICT_RETRIES, Outcome

logger = logging.getLogger(__name__)

# (merchant id, values by kind, the order's currency, why) -> the rules as stored: the risk rules
# store's `add_blocked` (one audited change; the same values again change nothing).
Block = Callable[[str, Mapping[SignalKind, str | None], str, str], object]


def blocked_values(order: Order, payer: str | None = None) -> dict[SignalKind, str | None]:
    """What a dispute or a fraud refund of the order blocks: the payer (`payer`, the one the dispute
    names, else the order's payment's), the device, the e-mail and the client address. None: unknown,
    or not in the form its list takes (a client that is no address, from a console invoke), which
    blocks nothing rather than failing the dispute."""
    paid_by = order.payment.payer if order.payment is not None else None
    found: dict[SignalKind, str | None] = {
        "payer": payer or paid_by,
        "device": order.device,
        "email": order.email,
        "client": order.client,
    }
    return {kind: _listable(kind, value) for kind, value in found.items()}


def _listable(kind: SignalKind, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return NORMAL[kind](value)
    except ValueError:
        return None


def apply_dispute(event: PaymentEvent, ports: Ports, block: Block, now: datetime) -> Outcome:
    """A verified dispute: noted on its order once, its buyer's identifiers blocked at the order's
    shop, once however often the dispute is reported (I5). A dispute about an order this shop does not
    know changes nothing (acknowledged, so the provider stops sending it); one about a payment the
    order does not hold (a second payment, kept to be refunded) is noted and blocks nothing: a buyer
    who paid twice and charged one back is not, by that, a thief."""
    order = ports.orders.get(event.order_id)
    where = {"provider": event.provider, "order_id": event.order_id, "payment_id": event.payment_id}
    if order is None or order.provider != event.provider:
        logger.warning("dispute for an order this shop does not know; nothing changed", extra=where)
        return Outcome.IGNORED
    if not ports.events.record(event):
        return Outcome.DUPLICATE
    values = blocked_values(order, event.payer)
    kinds: list[str] = []
    if order.payment is not None and order.payment.payment_id == event.payment_id:
        try:
            block(order.merchant_id, values, order.total.currency, "dispute")
            kinds = sorted(kind for kind, value in values.items() if value is not None)
        except ValueError:  # the merchant named a rule of its own `learned-<kind>`: no retry mends that
            logger.error(
                "dispute: the merchant's rules cannot take learned blocks; nothing blocked",
                extra={**where, "merchant_id": order.merchant_id},
            )
    _note_once(order, event, kinds, ports.orders, now)
    logger.warning(
        "payment disputed",
        extra={**where, "dispute_id": event.dispute_id, "merchant_id": order.merchant_id, "blocked": kinds},
    )
    ports.events.mark_applied(event)
    return Outcome.DISPUTED


def _note_once(order: Order, event: PaymentEvent, kinds: list[str], orders: OrderPort, now: datetime) -> None:
    """`payment.disputed` in the order's history, unless it tells this dispute already (a retry after a
    crash, or a copy delivered at the same time)."""
    facts = {
        "provider": event.provider,
        "payment_id": event.payment_id,
        "dispute_id": event.dispute_id,
        "amount": event.amount.amount,
        "currency": event.amount.currency,
        "reason": event.reason or "",
        "blocked": kinds,  # the kinds put on the learned block lists, never their values
    }
    for _ in range(CONFLICT_RETRIES):
        if any(
            e.type == "payment.disputed" and e.data.get("dispute_id") == event.dispute_id
            for e in order.history
        ):
            return
        try:
            orders.note(order, "payment.disputed", now, facts)
            return
        except StateConflict:
            reread = orders.get(order.order_id)
            assert reread is not None  # orders are never deleted
            order = reread
    raise StateConflict(f"order {order.order_id} kept changing; the provider will retry")
