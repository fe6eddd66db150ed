"""Orders: the state machine (one table), the hash-chained history, and the order model."""

import hashlib
import hmac
import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_serializer

from shared.errors import StateConflict
from shared.money import Money
from shared.products import DeliveryMode


class Status(StrEnum):
    PENDING_PAYMENT = "PENDING_PAYMENT"
    PAID = "PAID"
    IN_REVIEW = "IN_REVIEW"
    DELIVERED = "DELIVERED"
    EXPIRED = "EXPIRED"
    REFUNDING = "REFUNDING"
    REFUNDED = "REFUNDED"
    CLAIMED = "CLAIMED"
    REPLACED = "REPLACED"


# (state left, event) -> state entered. Every order write is conditional on the state it leaves.
TRANSITIONS: dict[tuple[Status, str], Status] = {
    (Status.PENDING_PAYMENT, "payment.succeeded"): Status.PAID,
    (Status.PENDING_PAYMENT, "reservation.expired"): Status.EXPIRED,
    (Status.PENDING_PAYMENT, "refund.requested"): Status.REFUNDING,  # paid past the daily limit
    (Status.EXPIRED, "payment.succeeded"): Status.PAID,  # late payment, stock re-reserved
    (Status.EXPIRED, "refund.requested"): Status.REFUNDING,  # late payment, no stock left
    (Status.PAID, "order.delivered"): Status.DELIVERED,
    (Status.PAID, "review.held"): Status.IN_REVIEW,  # undeliverable, held for a person (no deadline)
    (Status.PAID, "risk.review"): Status.IN_REVIEW,  # the risk engine asks for a look (a deadline)
    (Status.IN_REVIEW, "review.released"): Status.PAID,
    (Status.IN_REVIEW, "refund.requested"): Status.REFUNDING,
    (Status.PAID, "refund.requested"): Status.REFUNDING,
    (Status.REFUNDING, "refund.confirmed"): Status.REFUNDED,
    (Status.DELIVERED, "refund.requested"): Status.REFUNDING,  # the merchant refunds a delivered order
    # A refund the provider reports without our asking (the merchant's dashboard), or before the
    # payment's own callback (events out of order): the money is back, nothing is (or will be) delivered.
    (Status.PENDING_PAYMENT, "refund.confirmed"): Status.REFUNDED,
    (Status.EXPIRED, "refund.confirmed"): Status.REFUNDED,
    (Status.PAID, "refund.confirmed"): Status.REFUNDED,
    (Status.IN_REVIEW, "refund.confirmed"): Status.REFUNDED,
    (Status.DELIVERED, "refund.confirmed"): Status.REFUNDED,
    (Status.DELIVERED, "claim.opened"): Status.CLAIMED,
    (Status.CLAIMED, "claim.replaced"): Status.REPLACED,
    (Status.CLAIMED, "refund.confirmed"): Status.REFUNDED,
}


# Events that record a fact on the order without moving it (OrderPort.note): in any state.
NOTES: frozenset[str] = frozenset(
    {
        "payment.wrong_amount",  # a verified payment at another amount or currency: kept to be refunded
        "topup.sent",  # written before each request to a top-up's upstream (shared/topup.py)
        "risk.decided",  # the risk engine allowed a paid order on which some rule fired (shared/screening.py)
        "payment.disputed",  # the buyer disputed a payment (a chargeback): shared/disputes.py
        "codes.drawing",  # written before a generated order's codes are made (functions/deliver/generated.py)
        "codes.counted",  # a capped generated product's units counted for the order (the same module)
        "license.reissued",  # a license signed again under the current key, the delivery's text replaced
    }
)


def next_status(current: Status, event_type: str) -> Status:
    """The state an event moves an order to, or StateConflict if the table has no such move."""
    try:
        return TRANSITIONS[(current, event_type)]
    except KeyError:
        raise StateConflict(f"an order in {current} cannot take '{event_type}'") from None


class Event(BaseModel):
    """One entry of an order's history; `hash` chains it to the entry before."""

    model_config = ConfigDict(frozen=True)

    type: str
    at: datetime
    data: dict[str, Any] = {}
    hash: str


def _genesis(order_id: str) -> str:
    return hashlib.sha256(f"miaofa-order:{order_id}".encode()).hexdigest()


def _link(previous_hash: str, type_: str, at: datetime, data: dict[str, Any]) -> str:
    body = json.dumps(
        {"type": type_, "at": at.isoformat(), "data": data}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(f"{previous_hash}|{body}".encode()).hexdigest()


def chain_event(
    order_id: str, history: list[Event], type_: str, at: datetime, data: dict[str, Any] | None = None
) -> Event:
    """The next history entry, hash-linked to the last one (or to the order id for the first)."""
    previous = history[-1].hash if history else _genesis(order_id)
    data = data or {}
    return Event(type=type_, at=at, data=data, hash=_link(previous, type_, at, data))


def verify_history(order_id: str, history: list[Event], head: str | None = None) -> bool:
    """True if no entry was edited, removed or reordered since it was written.

    `head` is the hash recorded apart from the history (the order item's `head`): without it a
    history cut short at its end would still be a valid chain.
    """
    if head is not None and (not history or not hmac.compare_digest(history[-1].hash, head)):
        return False
    previous = _genesis(order_id)
    for event in history:
        expected = _link(previous, event.type, event.at, event.data)
        if not hmac.compare_digest(expected, event.hash):
            return False
        previous = event.hash
    return True


class SlotRange(BaseModel):
    """Consecutive stock slots reserved for an order in one shard."""

    model_config = ConfigDict(frozen=True)

    shard: int
    start: int
    count: int

    def slots(self) -> range:
        return range(self.start, self.start + self.count)


class Ticket(BaseModel):
    """One of a buyer's capped places for an unpaid order (see shared/store/limits.py)."""

    model_config = ConfigDict(frozen=True)

    pk: str
    sk: str


class Payment(BaseModel):
    model_config = ConfigDict(frozen=True)

    provider: str
    payment_id: str
    event_id: str
    amount: Money
    # The paying account at the provider and the card's country, where the callback names them: the
    # risk engine's strongest signals (docs/risk.md). Personal data: never logged.
    payer: str | None = None
    card_country: str | None = None


class Order(BaseModel):
    model_config = ConfigDict(frozen=True)

    order_id: str
    merchant_id: str
    product_id: str
    quantity: int
    total: Money
    email: str
    provider: str
    status: Status
    access_token_hash: str
    created_at: datetime
    expires_at: datetime
    slots: list[SlotRange]
    payment: Payment | None = None
    history: list[Event]
    request_hash: str | None = None  # fingerprint of the checkout request, when it had an Idempotency-Key
    tickets: list[Ticket] = []  # the buyer's capped places this order holds while unpaid
    redrives: int = 0  # times reconciliation re-sent its delivery
    delivery_error: str | None = None  # the last delivery failure (for operators)
    delivery_failures: int = 0
    refund_error: str | None = None  # the last refund failure (for operators)
    refund_attempt: int = 0  # which of the order's refund requests is current (shared/refunds.py)
    delivery: DeliveryMode = "stock"  # the product's, when the order was placed
    # Sealed under the merchant's key (shared/codes.py), bound to the order by `sealed_identity`: the
    # buyer's input at checkout (JSON), and what a merchant fulfilled a manual order with.
    sealed_input: bytes | None = None
    sealed_fulfilment: bytes | None = None
    # Where it was placed from, for the risk engine (docs/risk.md): the client address (IPv4, or an
    # IPv6 /64: shared/clients.py) and the product page's device id. Kept so a dispute or a fraud
    # refund can put them on the merchant's block lists; never shown to the buyer.
    client: str | None = None
    device: str | None = None

    @property
    def head(self) -> str:
        return self.history[-1].hash


# An order in its merchant's list: what the orders table's merchant index keeps of it, and what the
# merchant API answers for it (its order detail starts with the same). Not a docstring: the OpenAPI
# document would carry it.
class OrderSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    order_id: str
    status: Status
    product_id: str
    quantity: int
    total: Money
    email: str
    provider: str
    created_at: datetime

    @classmethod
    def of(cls, order: Order) -> "OrderSummary":
        return cls.model_validate(order, from_attributes=True)

    # As the API writes times: isoformat's "+00:00", not pydantic's "Z". No return annotation, so that
    # the document's schema stays a date-time.
    @field_serializer("created_at", when_used="json")
    def _created_at(self, created_at: datetime):
        return created_at.isoformat()


def sealed_identity(order_id: str, what: str) -> bytes:
    """The associated data binding a sealed value to its order and purpose (a copy elsewhere does not open)."""
    return f"order/{order_id}/{what}".encode()


def utcnow() -> datetime:
    return datetime.now(UTC)
