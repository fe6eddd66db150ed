"""Idempotency-Key retries get the same order id and token, derived under a server secret."""

from functions.storefront.checkout import idempotent_identity, token_hash
from shared.ids import is_id


def test_the_same_key_gives_the_same_order_and_token():
    assert idempotent_identity("k-1", "server-secret-0001") == idempotent_identity(
        "k-1", "server-secret-0001"
    )


def test_another_key_or_secret_gives_another_order_and_token():
    base = idempotent_identity("k-1", "server-secret-0001")
    assert idempotent_identity("k-2", "server-secret-0001")[0] != base[0]
    other = idempotent_identity("k-1", "server-secret-0002")
    assert other[0] != base[0] and other[1] != base[1]


def test_the_order_id_is_a_valid_id_and_does_not_contain_the_token():
    order_id, token = idempotent_identity("k-1", "server-secret-0001")
    assert is_id(order_id, "ord")
    assert order_id.removeprefix("ord_") not in token_hash(token) and len(token) >= 40
