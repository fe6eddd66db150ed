"""Payment callbacks: signature verification and one normalised payment event.

The sandbox provider mirrors Stripe's scheme (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`)
so the same verification path is exercised locally as in production.
"""

import hashlib
import hmac
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.errors import BadInput, InvalidSignature, PaymentMismatch
from shared.money import MAX_AMOUNT, Money
from shared.orders import Order


class PaymentEvent(BaseModel):
    """What every provider's callback is turned into."""

    model_config = ConfigDict(frozen=True)

    provider: str
    event_id: str
    type: str
    order_id: str
    payment_id: str
    amount: Money


def sandbox_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `Sandbox-Signature` header value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_sandbox_signature(secret: str, header: str | None, body: bytes, now: int, tolerance: int) -> None:
    """Raise InvalidSignature unless `header` signs `body` with `secret` within `tolerance` seconds."""
    if not secret:
        raise InvalidSignature("no signing secret is configured; every callback is refused")
    if not header:
        raise InvalidSignature("missing Sandbox-Signature header")
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        raise InvalidSignature("signature header has no valid timestamp") from None
    if abs(now - timestamp) > tolerance:
        raise InvalidSignature("signature timestamp is outside the tolerance window")
    expected = sandbox_signature(secret, body, timestamp).split("v1=", 1)[1]
    # Compare bytes: compare_digest refuses non-ASCII str, and a hostile header must be a 400, not a 500.
    if not any(hmac.compare_digest(expected.encode(), c.encode()) for c in parts.get("v1", [])):
        raise InvalidSignature("signature does not match")


class _SandboxData(BaseModel):
    order_id: str = Field(min_length=1, max_length=64)
    payment_id: str = Field(min_length=1, max_length=128)
    amount: int = Field(ge=0, le=MAX_AMOUNT, strict=True)
    currency: str = Field(pattern=r"^[A-Z]{3}$")


class _SandboxBody(BaseModel):
    id: str = Field(min_length=1, max_length=128)
    type: Literal["payment.succeeded"]
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


def _first_error(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return "body is not JSON"
