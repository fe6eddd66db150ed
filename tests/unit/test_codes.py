"""Codes at rest: AES-GCM bound to a slot, and a keyed fingerprint for duplicates."""

import pytest
from cryptography.exceptions import InvalidTag

from shared.codes import NONCE_BYTES, CodeCipher, slot_identity

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
SLOT = slot_identity("prd_1", 0, 7)

CODES = ["ABCD-1234-EFGH", "兑换码-礼品卡-🎁🎉"]


@pytest.fixture
def cipher() -> CodeCipher:
    return CodeCipher(KEY)


@pytest.mark.parametrize("code", CODES, ids=["ascii", "chinese+emoji"])
def test_a_code_round_trips(cipher, code):
    assert cipher.decrypt(cipher.encrypt(code, SLOT), SLOT) == code


@pytest.mark.parametrize("code", CODES, ids=["ascii", "chinese+emoji"])
def test_the_ciphertext_does_not_contain_the_plaintext(cipher, code):
    assert code.encode() not in cipher.encrypt(code, SLOT)


def test_two_encryptions_of_the_same_code_differ(cipher):
    first, second = cipher.encrypt(CODES[0], SLOT), cipher.encrypt(CODES[0], SLOT)
    assert first != second
    assert first[:NONCE_BYTES] != second[:NONCE_BYTES]


@pytest.mark.parametrize(
    "other_slot",
    [slot_identity("prd_1", 0, 8), slot_identity("prd_1", 1, 7), slot_identity("prd_2", 0, 7)],
    ids=["other slot", "other shard", "other product"],
)
def test_a_ciphertext_moved_to_another_slot_does_not_decrypt(cipher, other_slot):
    blob = cipher.encrypt(CODES[0], SLOT)
    with pytest.raises(InvalidTag):
        cipher.decrypt(blob, other_slot)


def test_another_data_key_cannot_decrypt(cipher):
    blob = cipher.encrypt(CODES[0], SLOT)
    with pytest.raises(InvalidTag):
        CodeCipher(OTHER_KEY).decrypt(blob, SLOT)


def test_a_flipped_ciphertext_byte_does_not_decrypt(cipher):
    blob = bytearray(cipher.encrypt(CODES[0], SLOT))
    blob[NONCE_BYTES] ^= 0x01
    with pytest.raises(InvalidTag):
        cipher.decrypt(bytes(blob), SLOT)


def test_slot_identities_differ_for_each_component():
    identities = {
        slot_identity("prd_1", 0, 7),
        slot_identity("prd_1", 0, 8),
        slot_identity("prd_1", 1, 7),
        slot_identity("prd_2", 0, 7),
    }
    assert len(identities) == 4


def test_the_fingerprint_is_deterministic_for_one_key(cipher):
    assert cipher.fingerprint(CODES[0]) == CodeCipher(KEY).fingerprint(CODES[0])


def test_the_fingerprint_differs_between_keys(cipher):
    assert cipher.fingerprint(CODES[0]) != CodeCipher(OTHER_KEY).fingerprint(CODES[0])


def test_the_fingerprint_differs_between_codes(cipher):
    assert cipher.fingerprint(CODES[0]) != cipher.fingerprint(CODES[1])


def test_the_fingerprint_does_not_contain_the_code(cipher):
    assert CODES[0] not in cipher.fingerprint(CODES[0])


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_a_data_key_of_the_wrong_length_is_refused(length):
    with pytest.raises(ValueError):
        CodeCipher(bytes(length))
