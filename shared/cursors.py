"""Opaque page cursors: a position signed under the server secret, bound to one purpose and to who
asked with which filters, so a cursor can be neither forged nor replayed by another merchant."""

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from shared.errors import BadInput

MAX_CURSOR_LENGTH = 512


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _mac(purpose: bytes, binding: dict[str, Any], payload: bytes, secret: str) -> bytes:
    if not secret:
        raise RuntimeError("ORDER_TOKEN_SECRET is not set; cursors cannot be signed")
    bound = json.dumps(binding, sort_keys=True, separators=(",", ":")).encode()
    message = purpose + b"\0" + hashlib.sha256(bound).digest() + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def sign_cursor(purpose: bytes, binding: dict[str, Any], payload: bytes, secret: str) -> str:
    return f"{_b64(payload)}.{_b64(_mac(purpose, binding, payload, secret))}"


def read_cursor(purpose: bytes, binding: dict[str, Any], cursor: str, secret: str) -> bytes:
    """The payload a cursor carries, or 400 invalid_cursor if it was not signed for this binding."""
    refused = BadInput("cursor is not valid for this listing; start again without it", code="invalid_cursor")
    payload_text, _, mac_text = cursor.partition(".")
    if len(cursor) > MAX_CURSOR_LENGTH or not payload_text or not mac_text:
        raise refused
    try:
        payload = base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4))
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except (binascii.Error, ValueError):
        raise refused from None
    if not hmac.compare_digest(mac, _mac(purpose, binding, payload, secret)):
        raise refused
    return payload
