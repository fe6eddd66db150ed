"""Orders table. Every state change is one conditional UpdateItem that also appends the history
entry (I7), conditional on the state it leaves and on the history head it extends.

A sparse index `due` holds only orders that still need something done by a deadline (payment
before the reservation expires, delivery soon after payment), so reconciliation's cost follows
the outstanding work, never the number of orders. The index `by_merchant_shard` lists one merchant's
orders by creation time (the merchant API's order list). Both keys are written per order, so both
are spread over write shards (shared/store/shards.py) and read by merging every shard.
"""

import hashlib
import json
from collections import deque
from datetime import datetime, timedelta
from typing import Any, Final

from pydantic import BaseModel, ConfigDict
from pynamodb.attributes import (
    BinaryAttribute,
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import PutError, UpdateError
from pynamodb.expressions.update import Action
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from shared.errors import AlreadyApplied, StateConflict
from shared.money import Money
from shared.orders import (
    NOTES,
    Event,
    Order,
    OrderSummary,
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
from shared.store.shards import due_key, due_keys, each_shard, merchant_key, merchant_keys


class DueIndex(GlobalSecondaryIndex["OrderItem"]):
    class Meta:
        index_name = "due"
        projection = IncludeProjection(["status_at"])

    due_status = UnicodeAttribute(hash_key=True)
    due_at = NumberAttribute(range_key=True)


class MerchantIndex(GlobalSecondaryIndex["OrderItem"]):
    """A merchant's orders, newest first, over `merchant_order_shards` partitions per merchant, each
    sorted by `<created_at>#<order_id>`: a unique position, so the shards merge into one order."""

    class Meta:
        index_name = "by_merchant_shard"
        projection = IncludeProjection(
            ["status", "product_id", "email", "quantity", "total_amount", "currency", "provider"]
        )

    merchant_shard = UnicodeAttribute(hash_key=True)
    merchant_position = UnicodeAttribute(range_key=True)


class FulfilIndex(GlobalSecondaryIndex["OrderItem"]):
    """A merchant's PAID manual orders, by the time promised to the buyer: sparse (template.yaml)."""

    class Meta:
        index_name = "fulfil"
        projection = IncludeProjection(["product_id", "quantity", "status_at"])

    fulfil_merchant = UnicodeAttribute(hash_key=True)
    fulfil_by = NumberAttribute(range_key=True)


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
    due_status = UnicodeAttribute(null=True)  # `<status>#<shard>` (shared/store/shards.py)
    due_at = NumberAttribute(null=True)
    due_index = DueIndex()
    merchant_shard = UnicodeAttribute(null=True)  # absent on orders from before the shards (not listed)
    merchant_position = UnicodeAttribute(null=True)
    by_merchant = MerchantIndex()
    buyer = UnicodeAttribute(null=True)  # absent on orders from before the look-up existed
    by_buyer = BuyerIndex()
    status_at = NumberAttribute(null=True)  # when the order entered its status (ages in reports)
    tickets = UnicodeAttribute(null=True)
    redrives = NumberAttribute(null=True)
    delivery_error = UnicodeAttribute(null=True)  # the last delivery failure, for operators
    delivery_failures = NumberAttribute(null=True)
    delivery_failed_at = NumberAttribute(null=True)
    delivery_retries = NumberAttribute(null=True)  # retried deliveries started (functions/deliver/batch.py)
    delivery_attempt = UnicodeAttribute(null=True)  # the last one counted: `<message id>#<receive>`
    refund_error = UnicodeAttribute(null=True)  # the last refund failure, for operators
    refund_attempt = NumberAttribute(null=True)  # which refund request is current (see shared/refunds.py)
    # Issue 19: absent on a stock order (and on every order from before), which keeps its item small.
    delivery = UnicodeAttribute(null=True)
    sealed_input = BinaryAttribute(null=True, legacy_encoding=False)
    sealed_fulfilment = BinaryAttribute(null=True, legacy_encoding=False)
    client = UnicodeAttribute(null=True)  # issue 20: where it was placed from (docs/risk.md)
    device = UnicodeAttribute(null=True)
    fulfil_merchant = UnicodeAttribute(null=True)  # set while a manual order waits for its merchant
    fulfil_by = NumberAttribute(null=True)
    fulfil_index = FulfilIndex()


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
        delivery=item.delivery or "stock",  # type: ignore[arg-type]
        sealed_input=item.sealed_input,
        sealed_fulfilment=item.sealed_fulfilment,
        client=item.client,
        device=item.device,
    )


class DueEntry(BaseModel):
    """An order with outstanding work, as the `due` index lists it."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    due_at: int
    status_at: int | None = None


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
MAX_PAGES: Final = 10  # requests one listing may make, beyond one per shard, before it returns
SPREAD_MARGIN: Final = 4  # items per shard read beyond its share of an unfiltered page
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
        created_at=_position(str(item.merchant_position)).created_at,  # the index keeps it in its key
    )


def _sort_key(created_at: datetime, order_id: str) -> str:
    """An order's place in its merchant's list: fixed-width time, then the id (ties are ordered too)."""
    return f"{_CREATED_AT.serialize(created_at)}#{order_id}"


def _position(sort_key: str) -> OrderPosition:
    created_at, order_id = sort_key.split("#", 1)
    return OrderPosition(created_at=_CREATED_AT.deserialize(created_at), order_id=order_id)


def _due_in(status: Status) -> Any:
    """The condition "the order's `due` entry is for `status`", whichever shard (or none, written
    before the shards) holds it: so a shard count raised since the entry was written still matches."""
    return (OrderItem.due_status == status.value) | OrderItem.due_status.startswith(f"{status.value}#")


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
            due_status=due_key(order.status.value, order.order_id, settings().due_shards),
            due_at=int(min(order.expires_at, first_check).timestamp()),
            status_at=int(order.created_at.timestamp()),
            merchant_shard=merchant_key(order.merchant_id, order.order_id, settings().merchant_order_shards),
            merchant_position=_sort_key(order.created_at, order.order_id),
            delivery=None if order.delivery == "stock" else order.delivery,
            sealed_input=order.sealed_input,
            client=order.client,
            device=order.device,
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
        fulfilment: bytes | None = None,
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
            actions.append(OrderItem.payment.set(payment.model_dump_json(exclude_none=True)))
        if slots is not None:
            actions.append(OrderItem.slots.set(json.dumps([s.model_dump() for s in slots])))
        if fulfilment is not None:
            actions.append(OrderItem.sealed_fulfilment.set(fulfilment))
        if order.delivery == "manual":  # listed for its merchant while PAID, until its promised time
            waiting = new_status == Status.PAID and due_in is not None
            actions += (
                [
                    OrderItem.fulfil_merchant.set(order.merchant_id),
                    OrderItem.fulfil_by.set(int((at + due_in).timestamp())),
                ]
                if waiting and due_in is not None
                else [OrderItem.fulfil_merchant.remove(), OrderItem.fulfil_by.remove()]
            )
        if due_in is not None:
            actions += [
                OrderItem.due_status.set(due_key(new_status.value, order.order_id, settings().due_shards)),
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
                "sealed_fulfilment": fulfilment if fulfilment is not None else order.sealed_fulfilment,
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

        The orders are spread over the merchant's shards; this merges the shards' newest-first pages,
        reading each shard once and then a further page only where the merge needs it. DynamoDB
        applies its Limit before the filter, so at most `max_pages` such further requests are made:
        a short (even empty) page with a position to resume from means "more may follow", not "no more"."""
        upper = _sort_key(after.created_at, after.order_id) if after is not None else None
        if filters.created_to is not None:
            end = _CREATED_AT.serialize(filters.created_to)  # below every key of that microsecond
            upper = end if upper is None else min(upper, end)
        lower = _CREATED_AT.serialize(filters.created_from) if filters.created_from is not None else None
        if limit < 1 or (lower is not None and upper is not None and upper <= lower):
            return MerchantOrders(orders=[], resume_after=None)
        email = filters.email.lower() if filters.email is not None else None
        filtered = filters.status is not None or filters.product_id is not None or email is not None
        shards = merchant_keys(merchant_id, settings().merchant_order_shards)
        share = -(-limit // len(shards)) + SPREAD_MARGIN
        size = page_size or (MAX_PAGE_SIZE if filtered else min(limit, share))
        streams = [_ListShard(key, lower, upper, _matching(filters), email, size) for key in shards]
        each_shard(lambda stream: stream.read(), streams)
        found: list[OrderSummary] = []
        further = 0
        while len(found) < limit:
            # A shard read to its frontier holds nothing newer than it; until it is read on, nothing
            # older than that frontier may be listed, or the merge would skip that shard's next orders.
            pending = [s for s in streams if not s.items and s.more is not None]
            blocking = max(pending, key=lambda s: s.frontier(), default=None)
            ready = max(
                (s for s in streams if s.items), key=lambda s: s.items[0].merchant_position, default=None
            )
            if blocking is not None and (
                ready is None or blocking.frontier() > ready.items[0].merchant_position
            ):
                if further >= max_pages:
                    return MerchantOrders(orders=found, resume_after=_position(blocking.frontier()))
                blocking.read()
                further += 1
                continue
            if ready is None:
                return MerchantOrders(orders=found, resume_after=None)  # every shard read to its end
            listed = ready.items.popleft()
            found.append(_summary(listed))
        more = any(s.items or s.more is not None for s in streams)
        return MerchantOrders(
            orders=found, resume_after=_position(str(listed.merchant_position)) if more else None
        )

    def of_buyer(self, email: str, limit: int) -> list[str]:
        """Ids of the newest `limit` orders placed with this e-mail address (any capitalisation)."""
        query = OrderItem.by_buyer.query(buyer_of(email), scan_index_forward=False, limit=limit)
        return [item.order_id for item in query]

    def awaiting_fulfilment(self, merchant_id: str, limit: int) -> list[tuple[str, int]]:
        """(order id, promised by: unix seconds) of the merchant's PAID manual orders, the most urgent
        first; from an eventually consistent index, so the caller reads each order before acting."""
        query = OrderItem.fulfil_index.query(merchant_id, limit=limit, scan_index_forward=True)
        return [(item.order_id, int(item.fulfil_by or 0)) for item in query]

    def get_many(self, order_ids: set[str]) -> list[Order]:
        """The orders with these ids that exist, read strongly consistently (BatchGetItem)."""
        keys = sorted(order_ids)
        return [
            _to_order(item)
            for n in range(0, len(keys), 100)
            for item in OrderItem.batch_get(keys[n : n + 100], consistent_read=True)
        ]

    def note(
        self,
        order: Order,
        event_type: str,
        at: datetime,
        data: dict[str, Any] | None = None,
        fulfilment: bytes | None = None,
    ) -> Order:
        """Append a fact (one of NOTES) to the order's history, its state and deadlines untouched, in
        one write conditional on the history it extends (with `fulfilment`: its sealed delivery replaced
        in the same write). StateConflict if the order changed."""
        if event_type not in NOTES:
            raise StateConflict(f"'{event_type}' is not a note")
        event = chain_event(order.order_id, order.history, event_type, at, data)
        actions: list[Action] = [
            OrderItem.history.set(OrderItem.history.append([_event_json(event)])),
            OrderItem.head.set(event.hash),
        ]
        if fulfilment is not None:
            actions.append(OrderItem.sealed_fulfilment.set(fulfilment))
        try:
            OrderItem(order_id=order.order_id).update(actions=actions, condition=OrderItem.head == order.head)
        except UpdateError as error:
            if condition_failed(error):
                raise StateConflict(f"order {order.order_id} changed while being updated") from None
            raise
        update: dict[str, Any] = {"history": [*order.history, event]}
        if fulfilment is not None:
            update["sealed_fulfilment"] = fulfilment
        return order.model_copy(update=update)

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
        """Orders in `status` with work outstanding (by `before`, if given), soonest deadline first.

        Reads every shard of `status` (each up to `limit`, so the merge's first `limit` are exact)."""
        condition = OrderItem.due_at <= int(before.timestamp()) if before is not None else None

        def read(key: str) -> list[DueEntry]:
            query = OrderItem.due_index.query(key, condition, limit=limit, scan_index_forward=True)
            return [
                DueEntry(
                    order_id=item.order_id,
                    due_at=int(item.due_at or 0),
                    status_at=int(item.status_at) if item.status_at is not None else None,
                )
                for item in query
            ]

        shards = each_shard(read, due_keys(status.value, settings().due_shards))
        merged = sorted((e for entries in shards for e in entries), key=lambda e: (e.due_at, e.order_id))
        return merged[:limit] if limit is not None else merged

    def take_redrive(self, entry: DueEntry, until: datetime) -> int | None:
        """Claim one re-drive of an overdue PAID order: move its deadline to `until` and count it.

        Conditional on the deadline `entry` saw, so of two concurrent reconcile runs one wins.
        Returns the order's re-drive count, or None if another run (or the delivery) got there first."""
        item = OrderItem(order_id=entry.order_id)
        try:
            item.update(
                actions=[OrderItem.due_at.set(int(until.timestamp())), OrderItem.redrives.add(1)],
                condition=_due_in(Status.PAID) & (OrderItem.due_at == entry.due_at),
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

    def count_delivery_retry(self, order_id: str, attempt: str) -> int | None:
        """Count a retried delivery of a PAID order as it starts, once per `attempt` (one receive of one
        message), so a retry that never finishes (a timeout, a killed Lambda) counts all the same. Safe to
        repeat: a repeated request finds its attempt recorded. The order's retries, or None if not PAID."""
        item = OrderItem(order_id=order_id)
        try:
            item.update(
                actions=[OrderItem.delivery_retries.add(1), OrderItem.delivery_attempt.set(attempt)],
                condition=(OrderItem.status == Status.PAID.value)
                & (OrderItem.delivery_attempt.does_not_exist() | (OrderItem.delivery_attempt != attempt)),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise
            try:
                item = OrderItem.get(order_id, consistent_read=True)
            except OrderItem.DoesNotExist:
                return None
            if item.status != Status.PAID.value:
                return None
        return int(item.delivery_retries or 0)

    def record_refund_failure(self, order_id: str, error: str, retry_at: datetime) -> None:
        """Keep why a refund did not go through on a REFUNDING order, and when to try again."""
        try:
            OrderItem(order_id=order_id).update(
                actions=[
                    OrderItem.refund_error.set(error[:500]),
                    OrderItem.due_at.set(int(retry_at.timestamp())),
                ],
                condition=_due_in(Status.REFUNDING),
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
                condition=_due_in(status),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise

    def postpone(self, order_id: str, status: Status, until: datetime) -> None:
        """Move an order's deadline (e.g. after re-driving its delivery), if it is still in `status`."""
        try:
            OrderItem(order_id=order_id).update(
                actions=[OrderItem.due_at.set(int(until.timestamp()))],
                condition=_due_in(status),
            )
        except UpdateError as error:
            if not condition_failed(error):
                raise


def _positions_between(lower: str | None, upper: str | None) -> Any:
    """The key condition for `lower <= merchant_position < upper` (the position equal to `upper`,
    which BETWEEN includes, is dropped when the page is read)."""
    position = MerchantIndex.merchant_position
    if lower is not None and upper is not None:
        return position.between(lower, upper)
    if lower is not None:
        return position >= lower
    if upper is not None:
        return position < upper
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


class _ListShard:
    """One shard of a merchant's order list, read newest first, a page (one request) at a time."""

    def __init__(
        self, key: str, lower: str | None, upper: str | None, condition: Any, email: str | None, size: int
    ) -> None:
        self.items: deque[OrderItem] = deque()  # read, matching, not listed yet
        self.more: dict[str, Any] | None = {}  # where the next page starts; None once read to the end
        self._upper, self._email = upper, email
        query = OrderItem.by_merchant.query(
            key,
            range_key_condition=_positions_between(lower, upper),
            filter_condition=condition,
            scan_index_forward=False,
            page_size=size,
        )
        self._pages = query.page_iter

    def read(self) -> None:
        """Read the shard's next page (one request)."""
        page: dict[str, Any] = next(self._pages, {})
        self.more = self._pages.last_evaluated_key
        for raw in page.get("Items", []):
            item = OrderItem.from_raw_data(raw)
            if item.merchant_position != self._upper and (
                self._email is None or item.email.lower() == self._email
            ):
                self.items.append(item)
        if not self.items and self.more is not None and self.frontier() == self._upper:
            self.read()  # the page held only the excluded order at `upper`: without this, no progress

    def frontier(self) -> str:
        """Every order of this shard not read yet is older than this position."""
        assert self.more is not None
        return str(self.more["merchant_position"]["S"])
