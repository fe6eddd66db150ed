"""Expire unpaid reservations and give their stock back (I4, and no one locks stock for long).

Two steps, each idempotent: PENDING_PAYMENT -> EXPIRED (conditional, with a `due` entry that says
"stock still to return"), then release the slots and clear that entry. A crash between them leaves
the entry, so the next run finishes the job.
"""

from datetime import datetime, timedelta

from shared.errors import StateConflict
from shared.faults import checkpoint
from shared.orders import Status
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
            expired += 1
            checkpoint("reconcile:after-expired")
        except StateConflict:
            continue  # paid (or expired by a concurrent run) meanwhile: nothing to do here
    returned = 0
    for order_id in orders.due(Status.EXPIRED, before=now):
        order = orders.get(order_id)
        if order is None:
            continue
        if order.status == Status.EXPIRED:
            returned += allocation.release(order.product_id, order.slots, order.order_id)
        orders.clear_due(order_id, Status.EXPIRED)
    return expired, returned
