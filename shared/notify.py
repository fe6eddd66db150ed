"""Merchant notifications: the events a shop tells its merchant about, the notify queue that carries
them to the notify function, and the merchant's webhook (where they go).

An event's id is derived from what happened (its type, the order or product, and the state change),
so an event emitted again, by a retry or after a crash, carries the same id: the merchant's
idempotency key. Emitting never fails what caused it: a payment or a delivery stands whether or not
its notification could be queued (the failure is logged).
"""

import hashlib
import ipaddress
import json
import logging
import secrets
from datetime import datetime
from functools import cache
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from shared import aws
from shared.errors import Invalid
from shared.orders import Order, Status
from shared.products import Product
from shared.settings import settings

logger = logging.getLogger(__name__)

EventType = Literal["order.paid", "order.delivered", "order.refunded", "stock.low"]
EVENT_TYPES: tuple[EventType, ...] = ("order.paid", "order.delivered", "order.refunded", "stock.low")
OrderEventType = Literal["order.paid", "order.delivered", "order.refunded"]
# The order history entry (shared/orders.py) that is the state change an order event reports.
_CHANGES: dict[str, tuple[str, Status]] = {
    "order.paid": ("payment.succeeded", Status.PAID),
    "order.delivered": ("order.delivered", Status.DELIVERED),
    "order.refunded": ("refund.confirmed", Status.REFUNDED),
}
MAX_URL_LENGTH = 2000


class Notification(BaseModel):
    """One event for one merchant, as queued and as POSTed to the merchant's webhook."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(pattern=r"^evt_[0-9a-f]{32}$")
    type: EventType
    merchant_id: str
    created_at: datetime
    data: dict[str, Any]

    def body(self) -> bytes:
        """The JSON a merchant receives (the same bytes for the same event)."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True).encode()


class NotANotification(ValueError):
    pass


def parse(body: str) -> Notification:
    """A notify queue message; NotANotification names the first field that is off (never its value)."""
    try:
        return Notification.model_validate_json(body)
    except ValidationError as error:
        where = ".".join(str(part) for part in error.errors(include_input=False)[0]["loc"])
        raise NotANotification(f"not a notification: {where or 'body'}") from None


def event_id(type_: str, subject: str, change: str) -> str:
    """The same id for the same event of the same thing, however often it is emitted."""
    digest = hashlib.sha256(f"{type_}|{subject}|{change}".encode()).hexdigest()
    return f"evt_{digest[:32]}"


def order_event(type_: OrderEventType, order: Order) -> Notification:
    """The event that `order` reached PAID, DELIVERED or REFUNDED: never a code, token or e-mail."""
    entry_type, status = _CHANGES[type_]
    entry = next((e for e in reversed(order.history) if e.type == entry_type), None)
    if entry is None:
        raise ValueError(f"order {order.order_id} has no '{entry_type}' in its history")
    return Notification(
        event_id=event_id(type_, order.order_id, entry.hash),
        type=type_,
        merchant_id=order.merchant_id,
        created_at=entry.at,
        data={
            "order_id": order.order_id,
            "product_id": order.product_id,
            "status": status.value,
            "quantity": order.quantity,
            "total": order.total.model_dump(),
        },
    )


def low_stock_threshold(product: Product) -> int:
    """The product's low-stock threshold; 0 (also for products from before it existed) is off."""
    return int(getattr(product, "low_stock_threshold", None) or 0)


def stock_low_event(product: Product, available: int, delivered: Order) -> Notification | None:
    """stock.low when the product's threshold is on and its available stock is at or below it, after
    the delivery of `delivered` (the event's id is per product and delivery); else None."""
    threshold = low_stock_threshold(product)
    if threshold <= 0 or available > threshold:
        return None
    entry = next((e for e in reversed(delivered.history) if e.type == "order.delivered"), None)
    return Notification(
        event_id=event_id("stock.low", product.product_id, delivered.order_id),
        type="stock.low",
        merchant_id=product.merchant_id,
        created_at=entry.at if entry else delivered.created_at,
        data={
            "product_id": product.product_id,
            "available": available,
            "low_stock_threshold": threshold,
            "order_id": delivered.order_id,
        },
    )


class NotifyQueue:
    """The notify queue: events for the notify function (and read back by the ops CLI)."""

    def __init__(self) -> None:
        self._sqs = aws.client("sqs")
        self._url = _queue_url()

    def send(self, notification: Notification) -> None:
        self.send_body(notification.body().decode())

    def send_body(self, body: str) -> None:
        """Any message for the notify function (a merchant event, or a buyer's mail: shared/mail.py)."""
        self._sqs.send_message(QueueUrl=self._url, MessageBody=body)

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Hide a received message for `seconds` (its backoff) before SQS hands it out again."""
        self._sqs.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )


def _queue_url() -> str:
    return settings().notify_queue_url


@cache
def notify_queue() -> NotifyQueue:
    return NotifyQueue()


def publish(notification: Notification | None, queue: NotifyQueue | None = None) -> bool:
    """Queue a notification; False (logged) if it could not be: what caused it stands regardless."""
    if notification is None:
        return False
    try:
        (queue or notify_queue()).send(notification)
    except Exception as error:
        logger.warning(
            "notification not queued",
            extra={
                "event_id": notification.event_id,
                "type": notification.type,
                "error": type(error).__name__,
            },
        )
        return False
    return True


def emit(type_: OrderEventType, order: Order, queue: NotifyQueue | None = None) -> bool:
    """Tell the order's merchant that it reached PAID, DELIVERED or REFUNDED; never raises."""
    try:
        notification = order_event(type_, order)
    except Exception as error:
        logger.warning("notification not made", extra={"order_id": order.order_id, "error": str(error)})
        return False
    return publish(notification, queue)


# ---------- the merchant's webhook ----------


class MerchantWebhook(BaseModel):
    """Where a merchant's events go, which ones, and the secret they are signed with."""

    model_config = ConfigDict(frozen=True)

    merchant_id: str
    url: str
    events: tuple[EventType, ...]
    secret: SecretStr  # never in a repr or a log line
    updated_at: datetime

    def wants(self, type_: str) -> bool:
        return type_ in self.events


def new_secret() -> str:
    """A webhook signing secret: `whsec_` and 256 random bits."""
    return f"whsec_{secrets.token_urlsafe(32)}"


def check_webhook_url(url: str, local_mode: bool) -> str:
    """The URL a merchant gives for its webhook, or Invalid (code invalid_url) saying why not.

    https only, no credentials, no fragment; outside local mode no loopback, private or link-local
    address literal (a hostname is not resolved here). Local mode also allows http://127.0.0.1."""

    def refuse(why: str) -> Invalid:
        return Invalid(f"url: {why}", code="invalid_url")

    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"at most {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or not url.isascii():
        raise refuse("spaces, control and non-ASCII characters must be percent-encoded")
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # port: ValueError if it is not a number in range
    except ValueError:
        raise refuse("not a valid URL") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refuse("must not contain credentials")
    if parts.fragment or url.endswith("#"):
        raise refuse("must not have a fragment")
    if not host:
        raise refuse("has no host")
    scheme = parts.scheme.lower()
    if local_mode and scheme == "http" and host == "127.0.0.1":
        return url
    if scheme != "https":
        raise refuse("must be https://")
    if not local_mode and _internal(host):
        raise refuse("must be a public address")
    return url


def _internal(host: str) -> bool:
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return not address.is_global
