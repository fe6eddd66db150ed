"""Expire unpaid reservations and give their stock back (I4, and no one locks stock for long).

Two steps, each idempotent: PENDING_PAYMENT -> EXPIRED (conditional, with a `due` entry that says
"stock still to return"), then release the slots and clear that entry. A crash between them leaves
the entry, so the next run finishes the job.
"""

from datetime import datetime, timedelta

from shared.errors import StateConflict
from shared.faults import checkpoint
from shared.orders import Order, Status
from shared.ports import AllocationPort, OrderPort


def expire_reservations(orders: OrderPort, allocation: AllocationPort, now: datetime) -> tuple[int, int]:
    """Returns (orders expired, slots returned to stock)."""
    expired = 0
    for order_id in orders.due(Status.PENDING_PAYMENT, before=now):
        order = orders.get(order_id)
        if order is None or order.status != Status.PENDING_PAYMENT or order.expires_at > now:
            continue
        try:
            orders.transition(order, "reservation.expired", now, due_in=timedelta(0))
        except StateConflict:  # paid or expired by a concurrent run meanwhile, or this write's answer lost
            if not _expired_by(orders.get(order_id), now):
                continue
        expired += 1
        checkpoint("reconcile:after-expired")
    returned = 0
    for order_id in orders.due(Status.EXPIRED, before=now):
        order = orders.get(order_id)
        if order is None:
            continue
        if order.status == Status.EXPIRED:
            returned += allocation.release(order.product_id, order.slots, order.order_id)
        orders.clear_due(order_id, Status.EXPIRED)
    return expired, returned


def _expired_by(order: Order | None, now: datetime) -> bool:
    """Whether the order's last change is the expiry written at `now` (by this run: a lost answer)."""
    last = order.history[-1] if order is not None and order.history else None
    return last is not None and (last.type, last.at) == ("reservation.expired", now)
