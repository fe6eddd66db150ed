"""Payments: the one normalised event every provider's callback becomes, and the rules every
provider is held to (constant-time comparison, a timestamp window, binding to the order's exact
amount and currency).

The sandbox provider uses Stripe's scheme (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`),
so the sandbox and Stripe share one verification path.
"""

import hashlib
import hmac
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadInput, InvalidSignature, PaymentMismatch
from shared.money import MAX_AMOUNT, Money
from shared.orders import Order

EventType = Literal["payment.succeeded", "payment.failed", "refund.succeeded", "refund.failed"]


class PaymentEvent(BaseModel):
    """What every provider's callback (or answer to a query) is turned into.

    `payment_id` is the provider's id of the payment (Stripe PaymentIntent, Alipay trade_no, WeChat
    Pay transaction_id), the same in a callback and in a query's answer. For refund events `amount`
    is the amount given back and `refund_id` the shop's refund request id, when the refund was ours.
    """

    model_config = ConfigDict(frozen=True)

    provider: str
    event_id: str
    type: EventType
    order_id: str
    payment_id: str
    amount: Money
    refund_id: str | None = None


def same_secret(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time equality of two signatures or tokens (bytes: compare_digest refuses non-ASCII str)."""
    left = expected.encode() if isinstance(expected, str) else expected
    right = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(left, right)


def check_window(timestamp: int, now: int, tolerance: int) -> None:
    """A signed timestamp more than `tolerance` seconds from now is a replay or a wrong clock."""
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("signature timestamp is outside the tolerance window")


def sandbox_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `Sandbox-Signature` header value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_sandbox_signature(
    secret: str,
    header: str | None,
    body: bytes,
    now: int,
    tolerance: int,
    header_name: str = "Sandbox-Signature",
) -> None:
    """Raise InvalidSignature unless `header` signs `body` with `secret` within `tolerance` seconds.

    The same scheme as Stripe's `Stripe-Signature` (several `v1` values may be present while a
    secret is rolled; any one matching is enough)."""
    if not secret:
        raise InvalidSignature("no signing secret is configured; every callback is refused")
    if not header:
        raise InvalidSignature(f"missing {header_name} header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("signature header has no valid timestamp") from None
    check_window(timestamp, now, tolerance)
    expected = sandbox_signature(secret, body, timestamp).split("v1=", 1)[1]
    if not any(same_secret(expected, candidate) for candidate in parts.get("v1", [])):
        raise InvalidSignature("signature does not match")


class _SandboxData(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)
    payment_id: str = Field(min_length=1, max_length=128)
    amount: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    refund_id: str | None = Field(default=None, min_length=1, max_length=64)


class _SandboxBody(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    type: Literal["payment.succeeded", "refund.succeeded"]
    data: _SandboxData


def parse_sandbox_event(body: bytes) -> PaymentEvent:
    """Turn a verified sandbox callback body into a PaymentEvent, or raise BadInput."""
    try:
        parsed = _SandboxBody.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError) as error:
        raise BadInput(f"callback body is not a valid sandbox event: {_first_error(error)}") from None
    return PaymentEvent(
        provider="sandbox",
        event_id=parsed.id,
        type=parsed.type,
        order_id=parsed.data.order_id,
        payment_id=parsed.data.payment_id,
        amount=Money(amount=parsed.data.amount, currency=parsed.data.currency),
        refund_id=parsed.data.refund_id,
    )


def check_payment_matches(order: Order, event: PaymentEvent) -> None:
    """I3: a payment counts only for its own order, at the order's exact amount and currency."""
    if event.order_id != order.order_id:
        raise PaymentMismatch("payment is bound to another order")
    if event.provider != order.provider:
        raise PaymentMismatch("payment came from a provider the order was not sent to")
    if event.amount.currency != order.total.currency:
        raise PaymentMismatch("payment currency differs from the order's")
    if event.amount.amount != order.total.amount:
        raise PaymentMismatch("payment amount differs from the order's")


def check_refund_matches(order: Order, event: PaymentEvent) -> None:
    """A refund counts only for its own order's payment, in the order's currency, at most what was paid."""
    if event.order_id != order.order_id or event.provider != order.provider:
        raise PaymentMismatch("refund is bound to another order")
    if order.payment is not None and event.payment_id != order.payment.payment_id:
        raise PaymentMismatch("refund is for another payment than the order's")
    if event.amount.currency != order.total.currency:
        raise PaymentMismatch("refund currency differs from the order's")
    if event.amount.amount > order.total.amount:
        raise PaymentMismatch("refund is larger than the order's total")


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return "body is not JSON"
