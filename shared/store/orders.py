"""Orders table. Every state change is one conditional UpdateItem that also appends the history
entry (I7), conditional on the state it leaves and on the history head it extends.

A sparse index `due` holds only orders that still need something done by a deadline (payment
before the reservation expires, delivery soon after payment), so reconciliation's cost follows
the outstanding work, never the number of orders. The index `by_merchant` lists one merchant's
orders by creation time (the merchant API's order list).
"""

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from pynamodb.attributes import ListAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from shared.errors import AlreadyApplied, StateConflict
from shared.money import Money
from shared.orders import (
    Event,
    Order,
    Payment,
    SlotRange,
    Status,
    Ticket,
    chain_event,
    next_status,
    verify_history,
)
from shared.settings import settings
from shared.store.errors import condition_failed


class DueIndex(GlobalSecondaryIndex["OrderItem"]):
    class Meta:
        index_name = "due"
        projection = IncludeProjection(["status_at"])

    due_status = UnicodeAttribute(hash_key=True)
    due_at = NumberAttribute(range_key=True)


class MerchantIndex(GlobalSecondaryIndex["OrderItem"]):
    class Meta:
        index_name = "by_merchant"
        projection = IncludeProjection(
            ["status", "product_id", "email", "quantity", "total_amount", "currency", "provider"]
        )

    merchant_id = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


class BuyerIndex(GlobalSecondaryIndex["OrderItem"]):
    """A buyer's orders by e-mail (hashed, lower-cased), newest first: the order look-up."""

    class Meta:
        index_name = "by_buyer"
        projection = IncludeProjection(["status", "product_id", "quantity", "total_amount", "currency"])

    buyer = UnicodeAttribute(hash_key=True)
    created_at = UTCDateTimeAttribute(range_key=True)


def buyer_of(email: str) -> str:
    """The look-up key of an e-mail address: equal for any capitalisation, not the address itself."""
    return hashlib.sha256(b"miaofa-buyer\0" + email.strip().lower().encode()).hexdigest()


class OrderItem(Model):
    class Meta:
        table_name: str | None = None

    order_id = UnicodeAttribute(hash_key=True)
    merchant_id = UnicodeAttribute()
    product_id = UnicodeAttribute()
    quantity = NumberAttribute()
    total_amount = NumberAttribute()
    currency = UnicodeAttribute()
    email = UnicodeAttribute()
    provider = UnicodeAttribute()
    status = UnicodeAttribute()
    access_token_hash = UnicodeAttribute()
    created_at = UTCDateTimeAttribute()
    expires_at = UTCDateTimeAttribute()
    slots = UnicodeAttribute()
    payment = UnicodeAttribute(null=True)
    request_hash = UnicodeAttribute(null=True)
    history = ListAttribute(of=UnicodeAttribute)
    head = UnicodeAttribute()
    due_status = UnicodeAttribute(null=True)
    due_at = NumberAttribute(null=True)
    due_index = DueIndex()
    by_merchant = MerchantIndex()
    buyer = UnicodeAttribute(null=True)  # absent on orders from before the look-up existed
    by_buyer = BuyerIndex()
    status_at = NumberAttribute(null=True)  # when the order entered its status (ages in reports)
    tickets = UnicodeAttribute(null=True)
    redrives = NumberAttribute(null=True)
    delivery_error = UnicodeAttribute(null=True)  # the last delivery failure, for operators
    delivery_failures = NumberAttribute(null=True)
    delivery_failed_at = NumberAttribute(null=True)
    refund_error = UnicodeAttribute(null=True)  # the last refund failure, for operators
    refund_attempt = NumberAttribute(null=True)  # which refund request is current (see shared/refunds.py)


def _event_json(event: Event) -> str:
    return event.model_dump_json()


def _to_order(item: OrderItem) -> Order:
    return Order(
        order_id=item.order_id,
        merchant_id=item.merchant_id,
        product_id=item.product_id,
        quantity=int(item.quantity),
        total=Money(amount=int(item.total_amount), currency=item.currency),
        email=item.email,
        provider=item.provider,
        status=Status(item.status),
        access_token_hash=item.access_token_hash,
        created_at=item.created_at,
        expires_at=item.expires_at,
        slots=[SlotRange.model_validate(s) for s in json.loads(item.slots)],
        payment=Payment.model_validate_json(str(item.payment)) if item.payment else None,
        history=[Event.model_validate_json(str(e)) for e in item.history],
        request_hash=item.request_hash,
        tickets=[Ticket.model_validate(t) for t in json.loads(item.tickets or "[]")],
        redrives=int(item.redrives or 0),
        delivery_error=item.delivery_error,
        delivery_failures=int(item.delivery_failures or 0),
        refund_error=item.refund_error,
        refund_attempt=int(item.refund_attempt or 0),
    )


class DueEntry(BaseModel):
    """An order with outstanding work, as the `due` index lists it."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    due_at: int
    status_at: int | None = None


class OrderSummary(BaseModel):
    """An order as the `by_merchant` index lists it."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    status: Status
    product_id: str
    quantity: int
    total: Money
    email: str
    provider: str
    created_at: datetime


class OrderFilter(BaseModel):
    """Which of a merchant's orders to list; every field given must match."""

    model_config = ConfigDict(frozen=True)

    status: Status | None = None
    product_id: str | None = None
    email: str | None = None  # matched case-insensitively
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive


class OrderPosition(BaseModel):
    """Where a listing of a merchant's orders stopped; the next page starts just after it."""

    model_config = ConfigDict(frozen=True)

    created_at: datetime
    order_id: str


class MerchantOrders(BaseModel):
    orders: list[OrderSummary]
    resume_after: OrderPosition | None  # None: nothing further matches


MAX_PAGE_SIZE: Final = 100  # items DynamoDB evaluates per request when a filter may drop some
MAX_PAGES: Final = 10  # requests one listing may make before it returns what it has found so far
_CREATED_AT = UTCDateTimeAttribute()


def _summary(item: OrderItem) -> OrderSummary:
    return OrderSummary(
        order_id=item.order_id,
        status=Status(item.status),
        product_id=item.product_id,
        quantity=int(item.quantity),
        total=Money(amount=int(item.total_amount), currency=item.currency),
        email=item.email,
        provider=item.provider,
        created_at=item.created_at,
    )


def _position(key: dict[str, Any]) -> OrderPosition:
    return OrderPosition(
        created_at=_CREATED_AT.deserialize(key["created_at"]["S"]), order_id=key["order_id"]["S"]
    )


class OrderStore:
    def __init__(self, table: str | None = None) -> None:
        OrderItem.Meta.table_name = table or settings().orders_table

    def create(self, order: Order) -> None:
        """Write a new order. It is first due when reconciliation should ask the provider whether it
        was paid (a lost callback), or at its expiry if that comes sooner."""
        first_check = order.created_at + timedelta(seconds=settings().payment_query_after_seconds)
        item = OrderItem(
            order_id=order.order_id,
            merchant_id=order.merchant_id,
            product_id=order.product_id,
            quantity=order.quantity,
            total_amount=order.total.amount,
            currency=order.total.currency,
            email=order.email,
            buyer=buyer_of(order.email),
            provider=order.provider,
            status=order.status.value,
            access_token_hash=order.access_token_hash,
            created_at=order.created_at,
            expires_at=order.expires_at,
            slots=json.dumps([s.model_dump() for s in order.slots]),
            history=[_event_json(e) for e in order.history],
            head=order.head,
            request_hash=order.request_hash,
            tickets=json.dumps([t.model_dump() for t in order.tickets]),
            due_status=order.status.value,
            due_at=int(min(order.expires_at, first_check).timestamp()),
            status_at=int(order.created_at.timestamp()),
        )
        try:
            item.save(condition=OrderItem.order_id.does_not_exist())
        except PutError as error:
            if condition_failed(error):
                raise AlreadyApplied(order.order_id) from None
            raise

    def get(self, order_id: str) -> Order | None:
        try:
            return _to_order(OrderItem.get(order_id, consistent_read=True))
        except OrderItem.DoesNotExist:
            return None

    def transition(
        self,
        order: Order,
        event_type: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        payment: Payment | None = None,
        due_in: timedelta | None = None,
        slots: list[SlotRange] | None = None,
    ) -> Order:
        """Move `order` along the state table and append the event, in one conditional write.

        Raises StateConflict if the order changed since it was read (the caller re-reads and decides).
        """
        new_status = next_status(order.status, event_type)
        event = chain_event(order.order_id, order.history, event_type, at, data)
        actions: list[Action] = [
            OrderItem.status.set(new_status.value),
            OrderItem.history.set(OrderItem.history.append([_event_json(event)])),
            OrderItem.head.set(event.hash),
            OrderItem.status_at.set(int(at.timestamp())),
        ]
        if payment is not None:
            actions.append(OrderItem.payment.set(payment.model_dump_json()))
        if slots is not None:
            actions.append(OrderItem.slots.set(json.dumps([s.model_dump() for s in slots])))
        if due_in is not None:
            actions += [
                OrderItem.due_status.set(new_status.value),
                OrderItem.due_at.set(int((at + due_in).timestamp())),
            ]
        else:
            actions += [OrderItem.due_status.remove(), OrderItem.due_at.remove()]
        try:
            OrderItem(order_id=order.order_id).update(
                actions=actions,
                condition=(OrderItem.status == order.status.value) & (OrderItem.head == order.head),
            )
        except UpdateError as error:
            if condition_failed(error):
                raise StateConflict(f"order {order.order_id} changed while being updated") from None
            raise
        return order.model_copy(
            update={
                "status": new_status,
                "history": [*order.history, event],
                "payment": payment if payment is not None else order.payment,
                "slots": slots if slots is not None else order.slots,
            }
        )

    def for_merchant(
        self,
        merchant_id: str,
        filters: OrderFilter,
        limit: int,
        after: OrderPosition | None = None,
        page_size: int | None = None,
        max_pages: int = MAX_PAGES,
    ) -> MerchantOrders:
        """Up to `limit` of the merchant's orders matching `filters`, newest first, after `after`.

        DynamoDB applies its Limit before the filter, so this reads on until the page is full or the
        index is exhausted, but at most `max_pages` requests: a short (even empty) page with a
        position to resume from means "more may follow", not "no more"."""
        if filters.created_from and filters.created_to and filters.created_from >= filters.created_to:
            return MerchantOrders(orders=[], resume_after=None)
        email = filters.email.lower() if filters.email is not None else None
        filtered = filters.status is not None or filters.product_id is not None or email is not None
        query = OrderItem.by_merchant.query(
            merchant_id,
            range_key_condition=_created_between(filters.created_from, filters.created_to),
            filter_condition=_matching(filters),
            scan_index_forward=False,
            page_size=page_size or (MAX_PAGE_SIZE if filtered else limit),
            last_evaluated_key=(
                {
                    "order_id": {"S": after.order_id},
                    "merchant_id": {"S": merchant_id},  # the caller's own partition, whatever `after` says
                    "created_at": {"S": _CREATED_AT.serialize(after.created_at)},
                }
                if after is not None
                else None
            ),
        )
        found: list[OrderSummary] = []
        for pages, page in enumerate(query.page_iter, start=1):
            items = [OrderItem.from_raw_data(raw) for raw in page.get("Items", [])]
            for index, item in enumerate(items):
                if email is not None and item.email.lower() != email:
                    continue
                found.append(_summary(item))
                if len(found) == limit:
                    if index < len(items) - 1:  # stopped inside DynamoDB's page: resume after this one
                        return MerchantOrders(orders=found, resume_after=_resume_at(item))
                    last = query.page_iter.last_evaluated_key
                    return MerchantOrders(orders=found, resume_after=_position(last) if last else None)
            last = query.page_iter.last_evaluated_key
            if last is not None and pages >= max_pages:
                return MerchantOrders(orders=found, resume_after=_position(last))
        return MerchantOrders(orders=found, resume_after=None)

    def of_buyer(self, email: str, limit: int) -> list[str]:
        """Ids of the newest `limit` orders placed with this e-mail address (any capitalisation)."""
        query = OrderItem.by_buyer.query(buyer_of(email), scan_index_forward=False, limit=limit)
        return [item.order_id for item in query]

    def history_intact(self, order_id: str) -> bool:
        """I7: the stored history verifies against the separately stored head hash."""
        item = OrderItem.get(order_id, consistent_read=True)
        return verify_history(order_id, _to_order(item).history, head=str(item.head))

    def due(self, status: Status, before: datetime, limit: int | None = 100) -> list[str]:
        """Ids of orders in `status` whose deadline has passed, oldest first."""
        return [entry.order_id for entry in self.outstanding(status, before, limit)]

    def outstanding(
        self, status: Status, before: datetime | None = None, limit: int | None = None
    ) -> list[DueEntry]:
        """Orders in `status` with work outstanding (by `before`, if given), soonest deadline first."""
        condition = OrderItem.due_at <= int(before.timestamp()) if before is not None else None
        query = OrderItem.due_index.query(status.value, condition, limit=limit, scan_index_forward=True)
        return [
            DueEntry(
                order_id=item.order_id,
                due_at=int(item.due_at or 0),
                status_at=int(item.status_at) if item.status_at is not None else None,
            )
            for item in query
        ]

    def take_redrive(self, entry: DueEntry, until: datetime) -> int | None:
        """Claim one re-drive of an overdue PAID order: move its deadline to `until` and count it.

        Conditional on the deadline `entry` saw, so of two concurrent reconcile runs one wins.
        Returns the order's re-drive count, or None if another run (or the delivery) got there first."""
        item = OrderItem(order_id=entry.order_id)
        try:
            item.update(
                actions=[OrderItem.due_at.set(int(until.timestamp())), OrderItem.redrives.add(1)],
                condition=(OrderItem.due_status == Status.PAID.value) & (OrderItem.due_at == entry.due_at),
            )
        except UpdateError as error:
            if condition_failed(error):
                return None
            raise
        return int(item.redrives or 0)

    def record_delivery_failure(self, order_id: str, error: str, at: datetime) -> None:
        """Keep the last delivery failure on the order, where operators look (never a code or secret)."""
        try:
            OrderItem(order_id=order_id).update(
                actions=[
                    OrderItem.delivery_error.set(error[:500]),
                    OrderItem.delivery_failed_at.set(int(at.timestamp())),
                    OrderItem.delivery_failures.add(1),
                ],
                condition=OrderItem.order_id.exists(),
            )
        except UpdateError as error_:
            if not condition_failed(error_):
                raise

    def record_refund_failure(self, order_id: str, error: str, retry_at: datetime) -> None:
        """Keep why a refund did not go through on a REFUNDING order, and when to try again."""
        try:
            OrderItem(order_id=order_id).update(
                actions=[
                    OrderItem.refund_error.set(error[:500]),
                    OrderItem.due_at.set(int(retry_at.timestamp())),
                ],
                condition=OrderItem.due_status == Status.REFUNDING.value,
            )
        except UpdateError as error_:
            if not condition_failed(error_):
                raise

    def next_refund_attempt(self, order: Order) -> bool:
        """Make the next refund request current, once: conditional on the attempt `order` saw, so of
        two runs that both found the last refund failed only one moves on."""
        condition = OrderItem.status == Status.REFUNDING.value
        if order.refund_attempt:
            condition &= OrderItem.refund_attempt == order.refund_attempt
        else:
            condition &= OrderItem.refund_attempt.does_not_exist() | (OrderItem.refund_attempt == 0)
        try:
            OrderItem(order_id=order.order_id).update(
                actions=[OrderItem.refund_attempt.set(order.refund_attempt + 1)], condition=condition
            )
        except UpdateError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def clear_due(self, order_id: str, status: Status) -> None:
        """Drop an order from the `due` index once its outstanding work in `status` is done."""
        try:
            OrderItem(order_id=order_id).update(
                actions=[OrderItem.due_status.remove(), OrderItem.due_at.remove()],
                condition=OrderItem.due_status == status.value,
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise

    def postpone(self, order_id: str, status: Status, until: datetime) -> None:
        """Move an order's deadline (e.g. after re-driving its delivery), if it is still in `status`."""
        try:
            OrderItem(order_id=order_id).update(
                actions=[OrderItem.due_at.set(int(until.timestamp()))],
                condition=OrderItem.due_status == status.value,
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise


def _created_between(start: datetime | None, end: datetime | None) -> Any:
    """The key condition for `start <= created_at < end` (microseconds are the stored precision)."""
    created_at = MerchantIndex.created_at
    if start is not None and end is not None:
        return created_at.between(start, end - timedelta(microseconds=1))
    if start is not None:
        return created_at >= start
    if end is not None:
        return created_at < end
    return None


def _matching(filters: OrderFilter) -> Any:
    """The server-side filter for exact fields (the e-mail, case-insensitive, is matched here)."""
    condition = None
    if filters.status is not None:
        condition = OrderItem.status == filters.status.value
    if filters.product_id is not None:
        same_product = OrderItem.product_id == filters.product_id
        condition = same_product if condition is None else condition & same_product
    return condition


def _resume_at(item: OrderItem) -> OrderPosition:
    return OrderPosition(created_at=item.created_at, order_id=item.order_id)
