"""Checking a provider's signature: constant-time comparison, a timestamp window, and the timestamped
HMAC of Stripe's `Stripe-Signature` (`t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`), which
the sandbox's `Sandbox-Signature` copies, so the sandbox and Stripe share one verification path.
"""

import hashlib
import hmac

from shared.errors import InvalidSignature


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
