"""Who may see an order: the holder of its access token, or of a magic link to it (shared/links.py).

One rule for every door to an order (`GET /api/orders/{id}`, the order page's WebSocket `watch`), so a
token that opens one opens the other, and nothing else does."""

import hashlib
import hmac
from datetime import datetime

from shared import links
from shared.orders import Order


def token_hash(token: str) -> str:
    """What the order stores of its access token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(order: Order, token: str | None) -> bool:
    """Whether `token` is the order's access token (constant-time)."""
    return bool(token) and hmac.compare_digest(order.access_token_hash, token_hash(token or ""))


def opens(order: Order, token: str | None, now: datetime, secret: str) -> bool:
    """Whether `token` opens this order: its access token, or an unexpired magic link signed for it."""
    return token_matches(order, token) or (
        token is not None and links.opens(token, order.order_id, now, secret)
    )
