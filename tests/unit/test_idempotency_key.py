"""The Idempotency-Key strength rule (shared/idempotency.py): random keys of 128 bits and more pass,
short, counted and repetitive ones do not, however long."""

import base64
import secrets
import uuid

import pytest

from shared.errors import Invalid
from shared.idempotency import MIN_BITS, check_key, estimated_bits


def hex_key() -> str:
    """32 random hex digits, but not all 0-9 (1 in 3.4 million): those read as a decimal number, 106 bits
    (shared/idempotency.py), and 2,000 keys a run would fail about 1 run in 1,700."""
    while (key := secrets.token_hex(16)).isdigit():
        pass
    return key


RANDOM_KEYS = {
    "base64url of 16 bytes": lambda: secrets.token_urlsafe(16),
    "base64 of 16 bytes, padded": lambda: base64.b64encode(secrets.token_bytes(16)).decode(),
    "base32 of 16 bytes": lambda: base64.b32encode(secrets.token_bytes(16)).decode(),
    "hex of 16 bytes": lambda: hex_key(),
    "base64url of 32 bytes": lambda: secrets.token_urlsafe(32),
}
WEAK_KEYS = [
    "order-1",
    "12345",
    "k",
    secrets.token_hex(8),  # 64 bits
    str(uuid.uuid4())[:30],  # a cut UUID
    str(uuid.uuid4()),  # 122 random bits
    str(uuid.uuid4()).upper(),
    str(uuid.uuid1()),  # a clock and a node
    str(uuid.uuid5(uuid.NAMESPACE_DNS, "shop.example")),  # a name's hash
    "017f22e2-79b0-7cc3-98c4-dc0c0c07398f",  # a v7: a millisecond clock and 74 random bits
    secrets.token_urlsafe(15),  # 20 symbols: 120 bits
    "a" * 255,
    "a" * 200 + "b",
    "ab" * 100,
    "order-1" * 30,
    "0123456789" * 20,
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",  # walking the alphabet
    "00000000000000000000000000000000000000000000000001",
    "2024060112000000000000000000000000000000000000",
    "-" * 40,
    "=" * 40,
]


@pytest.mark.parametrize("make", RANDOM_KEYS.values(), ids=RANDOM_KEYS.keys())
def test_random_keys_of_128_bits_and_more_pass(make):
    for _ in range(2000):
        key = make()
        assert estimated_bits(key) >= MIN_BITS, key
        check_key(key)


def test_a_uuid_counts_its_random_bits_only():
    assert estimated_bits("65066474-9284-4519-8368-842106650317") == 122  # a v4, digits all decimal
    assert estimated_bits(str(uuid.uuid1())) == 0


@pytest.mark.parametrize("key", WEAK_KEYS, ids=range(len(WEAK_KEYS)))  # stable ids: xdist
def test_short_counted_and_repetitive_keys_are_refused_with_422(key):
    assert estimated_bits(key) < MIN_BITS
    with pytest.raises(Invalid) as refused:
        check_key(key)
    assert (refused.value.status, refused.value.code) == (422, "invalid_idempotency_key")
    assert "128 bits" in refused.value.message and "UUID" in refused.value.message


@pytest.mark.parametrize(
    "key", ["", "k" * 256, secrets.token_urlsafe(16) + "\n"], ids=["empty", "too-long", "newline"]
)
def test_a_malformed_key_is_still_422(key):
    with pytest.raises(Invalid) as refused:
        check_key(key)
    assert refused.value.code == "invalid_idempotency_key"


def test_no_key_is_no_check():
    check_key(None)
