"""The orders table in memory, with the contract of shared/store/orders.py: a state change is
conditional on the state and history head it leaves (StateConflict otherwise), every write that
the real store makes conditional is conditional here on the same thing, and the `due` index is a
plain (status, deadline) per order. Index shards, lag and merchant listings are not modelled."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.errors import AlreadyApplied, StateConflict
from shared.orders import NOTES, Order, Payment, SlotRange, Status, chain_event, next_status
from shared.store.orders import DueEntry
from tests.fakes.hooks import Hooked, hooked

PAYMENT_QUERY_AFTER = timedelta(seconds=120)  # the PAYMENT_QUERY_AFTER_SECONDS default


@dataclass
class _Row:
    """What the order's item holds besides the order itself."""

    due: tuple[Status, int] | None = None  # the `due` index entry: (status, deadline in epoch seconds)
    status_at: int | None = None
    delivery_retries: int = 0
    delivery_attempt: str | None = None
    delivery_failed_at: int | None = None


class FakeOrders(Hooked):
    def __init__(self, payment_query_after: timedelta = PAYMENT_QUERY_AFTER) -> None:
        super().__init__()
        self.payment_query_after = payment_query_after
        self._orders: dict[str, Order] = {}
        self._rows: dict[str, _Row] = {}

    # ---------- the port (shared/ports.py, OrderPort) ----------

    @hooked
    def create(self, order: Order) -> None:
        if order.order_id in self._orders:
            raise AlreadyApplied(order.order_id)
        first_check = order.created_at + self.payment_query_after
        # The real item keeps only what an order has when it is created.
        self._orders[order.order_id] = order.model_copy(
            update={
                "payment": None,
                "redrives": 0,
                "delivery_error": None,
                "delivery_failures": 0,
                "refund_error": None,
                "refund_attempt": 0,
            }
        )
        self._rows[order.order_id] = _Row(
            due=(order.status, int(min(order.expires_at, first_check).timestamp())),
            status_at=int(order.created_at.timestamp()),
        )

    @hooked
    def get(self, order_id: str) -> Order | None:
        return self._orders.get(order_id)

    @hooked
    def get_many(self, order_ids: set[str]) -> list[Order]:
        return [self._orders[order_id] for order_id in sorted(order_ids) if order_id in self._orders]

    @hooked
    def note(
        self,
        order: Order,
        event_type: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        fulfilment: bytes | None = None,
    ) -> Order:
        if event_type not in NOTES:
            raise StateConflict(f"'{event_type}' is not a note")
        event = chain_event(order.order_id, order.history, event_type, at, data)
        stored = self._orders.get(order.order_id)
        if stored is None or stored.head != order.head:
            raise StateConflict(f"order {order.order_id} changed while being updated")
        update: dict[str, Any] = {"history": [*stored.history, event]}
        if fulfilment is not None:
            update["sealed_fulfilment"] = fulfilment
        self._orders[order.order_id] = stored.model_copy(update=update)
        return order.model_copy(update={**update, "history": [*order.history, event]})

    @hooked
    def transition(
        self,
        order: Order,
        event_type: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        payment: Payment | None = None,
        due_in: timedelta | None = None,
        slots: list[SlotRange] | None = None,
        fulfilment: bytes | None = None,
    ) -> Order:
        new_status = next_status(order.status, event_type)
        event = chain_event(order.order_id, order.history, event_type, at, data)
        stored = self._orders.get(order.order_id)
        if stored is None or stored.status != order.status or stored.head != order.head:
            raise StateConflict(f"order {order.order_id} changed while being updated")
        changes: dict[str, Any] = {"status": new_status, "history": [*stored.history, event]}
        if payment is not None:
            changes["payment"] = payment
        if slots is not None:
            changes["slots"] = slots
        if fulfilment is not None:
            changes["sealed_fulfilment"] = fulfilment
        self._orders[order.order_id] = stored.model_copy(update=changes)
        row = self._rows[order.order_id]
        row.status_at = int(at.timestamp())
        row.due = (new_status, int((at + due_in).timestamp())) if due_in is not None else None
        return order.model_copy(
            update={
                "status": new_status,
                "history": [*order.history, event],
                "payment": payment if payment is not None else order.payment,
                "slots": slots if slots is not None else order.slots,
                "sealed_fulfilment": fulfilment if fulfilment is not None else order.sealed_fulfilment,
            }
        )

    @hooked
    def due(self, status: Status, before: datetime, limit: int | None = 100) -> list[str]:
        with self.quietly():  # one port call: logged and hooked as `due`, not also as `outstanding`
            return [entry.order_id for entry in self.outstanding(status, before, limit)]

    @hooked
    def outstanding(
        self, status: Status, before: datetime | None = None, limit: int | None = None
    ) -> list[DueEntry]:
        entries = sorted(
            (
                DueEntry(order_id=order_id, due_at=row.due[1], status_at=row.status_at)
                for order_id, row in self._rows.items()
                if row.due is not None
                and row.due[0] == status
                and (before is None or row.due[1] <= int(before.timestamp()))
            ),
            key=lambda entry: (entry.due_at, entry.order_id),
        )
        return entries[:limit] if limit is not None else entries

    @hooked
    def take_redrive(self, entry: DueEntry, until: datetime) -> int | None:
        row = self._rows.get(entry.order_id)
        if row is None or row.due != (Status.PAID, entry.due_at):
            return None
        row.due = (Status.PAID, int(until.timestamp()))
        order = self._orders[entry.order_id]
        self._orders[entry.order_id] = order.model_copy(update={"redrives": order.redrives + 1})
        return order.redrives + 1

    @hooked
    def record_delivery_failure(self, order_id: str, error: str, at: datetime) -> None:
        order = self._orders.get(order_id)
        if order is None:
            return
        self._orders[order_id] = order.model_copy(
            update={"delivery_error": error[:500], "delivery_failures": order.delivery_failures + 1}
        )
        self._rows[order_id].delivery_failed_at = int(at.timestamp())

    @hooked
    def count_delivery_retry(self, order_id: str, attempt: str) -> int | None:
        order = self._orders.get(order_id)
        if order is None or order.status != Status.PAID:
            return None
        row = self._rows[order_id]
        if row.delivery_attempt != attempt:  # the same attempt again (a retried request) counts once
            row.delivery_retries += 1
            row.delivery_attempt = attempt
        return row.delivery_retries

    @hooked
    def record_refund_failure(self, order_id: str, error: str, retry_at: datetime) -> None:
        row = self._rows.get(order_id)
        if row is None or row.due is None or row.due[0] != Status.REFUNDING:
            return
        row.due = (Status.REFUNDING, int(retry_at.timestamp()))
        self._orders[order_id] = self._orders[order_id].model_copy(update={"refund_error": error[:500]})

    @hooked
    def next_refund_attempt(self, order: Order) -> bool:
        stored = self._orders.get(order.order_id)
        if (
            stored is None
            or stored.status != Status.REFUNDING
            or stored.refund_attempt != order.refund_attempt
        ):
            return False
        self._orders[order.order_id] = stored.model_copy(update={"refund_attempt": stored.refund_attempt + 1})
        return True

    @hooked
    def clear_due(self, order_id: str, status: Status) -> None:
        row = self._rows.get(order_id)
        if row is not None and row.due is not None and row.due[0] == status:
            row.due = None

    @hooked
    def postpone(self, order_id: str, status: Status, until: datetime) -> None:
        row = self._rows.get(order_id)
        if row is not None and row.due is not None and row.due[0] == status:
            row.due = (status, int(until.timestamp()))

    # ---------- for tests ----------

    def all(self) -> list[Order]:
        """Every stored order, in the order they were written."""
        return list(self._orders.values())

    def due_entry(self, order_id: str) -> tuple[Status, datetime] | None:
        """The order's `due` entry: the status it is due in and its deadline; None if nothing is due."""
        row = self._rows.get(order_id)
        if row is None or row.due is None:
            return None
        return row.due[0], datetime.fromtimestamp(row.due[1], UTC)

    def delivery_retries(self, order_id: str) -> int:
        return self._rows[order_id].delivery_retries

    def put(self, order: Order, due: tuple[Status, datetime] | None = None) -> None:
        """Store `order` as it is, past every rule (a state no use case writes, e.g. to test a guard)."""
        self._orders[order.order_id] = order
        row = self._rows.setdefault(order.order_id, _Row())
        row.due = (due[0], int(due[1].timestamp())) if due is not None else None
