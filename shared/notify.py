"""Merchant notifications, the rules: the events a shop tells its merchant about, and the merchant's
webhook (where they go, and which URLs it may have; a URL's host is checked with a resolver the caller
may pass). The notify queue that carries events to the notify function is in shared/queues.py.

An event's id is derived from what happened (its type, the order or product, and the state change),
so an event emitted again, by a retry or after a crash, carries the same id: the merchant's
idempotency key.
"""

import hashlib
import ipaddress
import json
import re
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from shared.errors import Invalid
from shared.orders import Order, Status
from shared.products import Product

EventType = Literal["order.paid", "order.delivered", "order.refunded", "stock.low"]
EVENT_TYPES: tuple[EventType, ...] = ("order.paid", "order.delivered", "order.refunded", "stock.low")
OrderEventType = Literal["order.paid", "order.delivered", "order.refunded"]
# A merchant's "send a test event" (POST /merchant/webhook/test): sent whatever events are chosen.
TEST_EVENT: Literal["webhook.test"] = "webhook.test"
NotificationType = Literal[EventType, Literal["webhook.test"]]
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
    type: NotificationType
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


def test_event(merchant_id: str, now: datetime) -> Notification:
    """webhook.test: a new event each time it is asked for, carrying nothing of the shop's."""
    return Notification(
        event_id=f"evt_{secrets.token_hex(16)}",
        type=TEST_EVENT,
        merchant_id=merchant_id,
        created_at=now,
        data={"test": True},
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
        return type_ == TEST_EVENT or type_ in self.events


def new_secret() -> str:
    """A webhook signing secret: `whsec_` and 256 random bits."""
    return f"whsec_{secrets.token_urlsafe(32)}"


class UnresolvedHost(Invalid):
    """A webhook URL whose host name does not resolve (it may later: at send time, a failed attempt)."""


Resolve = Callable[[str], Sequence[str]]  # a host name -> its addresses, as text; OSError if none
IPAddress = IPv4Address | IPv6Address
_INTERNAL_NAMES = (".localhost", ".local", ".internal")
_INET_PART = re.compile(r"0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*")
# IPv6 addresses through which an IPv4 one is reached: judged by that IPv4 address.
_NAT64 = IPv6Network("64:ff9b::/96")
# Never a merchant's server: IPv4-compatible (deprecated), IPv4-translated, local-use NAT64, Teredo
# (it tunnels to an address we cannot check); IETF protocol assignments, the 6to4 relay anycast.
_REFUSED: tuple[IPv4Network | IPv6Network, ...] = (
    IPv6Network("::/96"),
    IPv6Network("::ffff:0:0:0/96"),
    IPv6Network("64:ff9b:1::/48"),
    IPv6Network("2001::/32"),
    IPv4Network("192.0.0.0/24"),
    IPv4Network("192.88.99.0/24"),
)


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL taken apart, with the addresses its host is or resolves to, every one checked."""

    scheme: str
    host: str  # as written in the URL: the Host header, the TLS server name
    port: int
    request_target: str  # path and query
    addresses: tuple[str, ...]  # where to connect, in the resolver's order


def resolve_host(host: str) -> list[str]:
    """Every address the system resolver gives for a host name (OSError if it gives none)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]


def check_webhook_url(url: str, local_mode: bool, resolve: Resolve = resolve_host) -> str:
    """The URL a merchant gives for its webhook, or Invalid (code invalid_url) saying why not: the
    rules of webhook_target."""
    webhook_target(url, local_mode, resolve)
    return url


def webhook_target(url: str, local_mode: bool, resolve: Resolve = resolve_host) -> WebhookTarget:
    """Where a webhook goes, or Invalid (code invalid_url; UnresolvedHost if its name does not resolve).

    https only, no credentials, no fragment, and every address the host is written as (in any form a
    resolver reads: 2852039166, 127.1, 0x7f.1, [::ffff:…]) or resolves to is public (public_address).
    Local mode also takes loopback addresses, over http too (a developer's own receiver)."""

    def refuse(why: str) -> Invalid:
        return Invalid(f"url: {why}", code="invalid_url")

    if len(url) > MAX_URL_LENGTH:
        raise refuse(f"at most {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or not url.isascii():
        raise refuse("spaces, control and non-ASCII characters must be percent-encoded")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port  # port: ValueError if it is not a number in range
    except ValueError:
        raise refuse("not a valid URL") from None
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise refuse("must not contain credentials")
    if parts.fragment or url.endswith("#"):
        raise refuse("must not have a fragment")
    if not host:
        raise refuse("has no host")
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or (scheme == "http" and not local_mode):
        raise refuse("must be https://")
    name = host.rstrip(".")  # as the connection will use it (urllib3 drops a trailing dot)
    if not local_mode and (name == "localhost" or name.endswith(_INTERNAL_NAMES)):
        raise refuse("must be a public address, not a local name")
    if ":" in name:  # an IPv6 literal (urlsplit took off its brackets)
        try:
            addresses: tuple[IPAddress, ...] = (IPv6Address(name),)
        except ValueError:
            raise refuse("not a valid URL") from None
    elif (literal := ipv4_address(name)) is not None:
        addresses = (literal,)
    else:
        try:
            answers = [ipaddress.ip_address(answer) for answer in resolve(name)]
        except (OSError, UnicodeError):  # UnicodeError: a label the resolver cannot encode
            raise UnresolvedHost("url: the host name does not resolve", code="invalid_url") from None
        except ValueError:  # an answer that is no address: nothing we could check
            raise refuse("its host name resolves to something that is not an IP address") from None
        if not answers:
            raise UnresolvedHost("url: the host name does not resolve", code="invalid_url")
        addresses = tuple(dict.fromkeys(answers))
    if not all(public_address(address, local_mode) for address in addresses):
        raise refuse(
            "must be a public address: the host is or resolves to a loopback, private, link-local, "
            "shared, multicast or reserved one" + (" (local mode takes loopback only)" if local_mode else "")
        )
    if scheme == "http" and not all(address.is_loopback for address in addresses):
        raise refuse("must be https:// (http only to a loopback address, in local mode)")
    return WebhookTarget(
        scheme=scheme,
        host=host,
        port=port or (443 if scheme == "https" else 80),
        request_target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        addresses=tuple(str(address) for address in addresses),
    )


def ipv4_address(host: str) -> IPv4Address | None:
    """`host` as the IPv4 address a resolver reads it as, or None if it is not one. inet_aton's rules:
    one to four parts, each decimal, 0x hex or 0 octal, the last filling the bytes left (2852039166 is
    169.254.169.254; 127.1, 0x7f.1 and 0177.0.0.1 are 127.0.0.1)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_PART.fullmatch(part) for part in parts):
        return None
    *head, last = [
        int(part[2:], 16) if part[:2].lower() == "0x" else int(part, 8 if part.startswith("0") else 10)
        for part in parts
    ]
    if any(number > 0xFF for number in head) or last >= 1 << 8 * (4 - len(head)):
        return None
    return IPv4Address(sum(number << 8 * (3 - i) for i, number in enumerate(head)) + last)


def public_address(address: IPAddress, local_mode: bool = False) -> bool:
    """Whether a webhook may be sent to `address`: a globally reachable unicast address, nothing
    special (in local mode a loopback address too). An IPv6 address that carries an IPv4 one (mapped,
    NAT64, 6to4) is judged by that one as well."""
    if local_mode and address.is_loopback:
        return True
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None or address in _NAT64:
            return public_address(IPv4Address(int(address) & 0xFFFFFFFF), local_mode)
        if address.is_site_local or (address.sixtofour is not None and not public_address(address.sixtofour)):
            return False
    if any(address in network for network in _REFUSED):
        return False
    # is_global alone lets multicast through (and, before Python 3.12.4, more): every flag counts.
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )
