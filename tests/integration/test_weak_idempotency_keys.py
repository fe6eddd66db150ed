"""A checkout's Idempotency-Key stands for its order's access token (the order id and token derive
from it), so a guessable key is refused (422, as a malformed one) before anything is taken; random keys (
base64url or hex of 16 random bytes) are taken, and a retry with one replays its order."""

import base64
import secrets
import uuid

import pytest
import requests

from tests.support import new_codes


def hex_key() -> str:
    """32 random hex digits, not all 0-9 (1 in 3.4 million reads as a 106-bit decimal number)."""
    while (key := secrets.token_hex(16)).isdigit():
        pass
    return key


WEAK = ["order-1", "12345", secrets.token_hex(8), "a" * 64, "ab" * 32, str(uuid.uuid4()), str(uuid.uuid1())]


def checkout(shop, product_id: str, key: str) -> requests.Response:
    return shop.http.post(
        f"{shop.url}/api/orders",
        timeout=30,
        headers={"Idempotency-Key": key},
        json={"product_id": product_id, "quantity": 1, "email": "strong-keys@example.com"},
    )


@pytest.fixture(scope="module")
def product_id(shop) -> str:
    return shop.new_product(new_codes(12))


@pytest.mark.parametrize("key", WEAK, ids=range(len(WEAK)))  # stable ids for xdist
def test_a_guessable_key_is_422_and_takes_nothing(shop, product_id, key):
    before = shop.stock(product_id)

    refused = checkout(shop, product_id, key)

    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid_idempotency_key"
    assert "128 bits" in error["message"] and "16+ random bytes" in error["message"]
    assert shop.stock(product_id) == before


@pytest.mark.parametrize(
    "key",
    [
        hex_key(),
        secrets.token_urlsafe(16),
        base64.urlsafe_b64encode(secrets.token_bytes(16)).decode(),
    ],
    ids=["hex", "base64url", "base64"],
)
def test_a_random_key_is_taken_and_replays_its_order(shop, product_id, key):
    first, again = checkout(shop, product_id, key), checkout(shop, product_id, key)

    assert first.status_code == again.status_code == 201, first.text
    assert first.json()["order_id"] == again.json()["order_id"]
