"""Generated codes (issue 21): the pattern language, its refusals, codes drawn only from each
position's class and evenly, 10,000 codes without a repeat, and the keyed fingerprint."""

import math
import random
from collections import Counter

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared import generated
from shared.codes import CodeCipher
from shared.errors import Invalid
from shared.generated import DIGITS, MIN_ENTROPY_BITS, SAFE_ALPHANUMERIC, SAFE_LETTERS

PATTERN = "GIFT-XXXX-XXXX-9999"
LOOK_ALIKES = "0O1IL"


def test_the_safe_alphabets_have_no_look_alikes():
    assert not set(LOOK_ALIKES) & set(SAFE_ALPHANUMERIC + SAFE_LETTERS)
    assert len(set(SAFE_ALPHANUMERIC)) == len(SAFE_ALPHANUMERIC) == 31
    assert len(set(SAFE_LETTERS)) == len(SAFE_LETTERS) == 23


def test_every_position_draws_only_from_its_class_and_evenly():
    codes = [generated.generate(PATTERN) for _ in range(10_000)]
    for code in codes:
        assert len(code) == len(PATTERN)
        assert code.startswith("GIFT-") and code[9] == "-" and code[14] == "-"
        assert set(code[5:9] + code[10:14]) <= set(SAFE_ALPHANUMERIC)
        assert set(code[15:]) <= set(DIGITS)
    for position, alphabet in ((5, SAFE_ALPHANUMERIC), (13, SAFE_ALPHANUMERIC), (15, DIGITS), (18, DIGITS)):
        seen = Counter(code[position] for code in codes)
        assert set(seen) == set(alphabet)  # every character of the class turns up
        expected = len(codes) / len(alphabet)
        # Seven standard deviations either side: a fair draw never fails it, a skewed one does.
        spread = 7 * math.sqrt(expected)
        assert all(abs(count - expected) < spread for count in seen.values()), seen


def test_letters_and_escapes():
    code = generated.generate(r"\X\A\9\\-AAAAAAAAAA")
    assert code.startswith("XA9\\-")
    assert set(code[5:]) <= set(SAFE_LETTERS)
    assert generated.parse(r"\X\A\9\\-AAAAAAAAAA").matches(code)


def test_ten_thousand_codes_from_one_pattern_are_all_different():
    codes = {generated.generate(PATTERN) for _ in range(10_000)}
    assert len(codes) == 10_000


def test_the_default_generator_is_the_operating_systems_and_another_can_be_injected():
    import secrets

    assert isinstance(generated.CSPRNG, secrets.SystemRandom)
    assert generated.generate(PATTERN, random.Random(7)) == generated.generate(PATTERN, random.Random(7))


@pytest.mark.parametrize(
    ("pattern", "bits"),
    [
        (PATTERN, 8 * math.log2(31) + 4 * math.log2(10)),
        ("XXXXXXXXXX", 10 * math.log2(31)),
        ("AAAAAAAAAA", 10 * math.log2(23)),
        ("9" * 13, 13 * math.log2(10)),
        (r"\X\A\9-LITER\AL", 0.0),
        ("CARD-XXXX", math.log2(23) + 4 * math.log2(31)),  # the A of CARD is a class: write C\ARD
    ],
)
def test_entropy_is_the_log_of_how_many_codes_a_pattern_can_make(pattern, bits):
    assert generated.entropy_bits(pattern) == pytest.approx(bits)


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("", "empty"),
        ("GIFT-XXXX-XXXX-9999\\", "lone '\\'"),
        ("GIFT XXXX-XXXX-XXXX", "' ' at position 5"),
        ("礼品-XXXX-XXXX-XXXX", "'礼' at position 1"),
        ("GIFT-XXXX-9999", "33.1 bits"),  # 4 X and 4 digits: about a billion codes, too few
        ("XXXXXXXX", "add 1 more X"),  # 39.6 bits, just short
        ("X" * 65, "65 characters; at most 64"),
        ("\\-" * 65, "longer than 128"),
    ],
)
def test_a_pattern_that_breaks_a_rule_is_refused_saying_which(pattern, says):
    with pytest.raises(Invalid) as refused:
        generated.generate(pattern)
    assert refused.value.status == 422 and refused.value.code == "invalid_code_pattern"
    assert says in refused.value.message


def test_the_minimum_is_enough_and_the_maximum_is_allowed():
    assert generated.entropy_bits("XXXXXXXXX") >= MIN_ENTROPY_BITS
    assert len(generated.generate("XXXXXXXXX")) == 9
    assert len(generated.generate("X" * 64)) == 64


def test_a_fingerprint_is_keyed_per_product_and_hides_the_code():
    key, other_key = bytes(range(32)), bytes(range(1, 33))
    code = generated.generate(PATTERN)
    print_ = generated.fingerprint("prd_1", code, key)
    assert print_ == generated.fingerprint("prd_1", code, key)
    assert print_ != generated.fingerprint("prd_2", code, key)
    assert print_ != generated.fingerprint("prd_1", code, other_key)
    assert code not in print_ and len(print_) == 64
    with pytest.raises(ValueError):
        generated.fingerprint("prd_1", code, b"short")


def test_the_merchants_code_cipher_makes_the_same_fingerprint():
    """So the wiring can fingerprint with the merchant's CodeCipher (its key derived from the data key)."""
    data_key = bytes(range(32))
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"miaofa/code-fingerprint").derive(
        data_key
    )
    code = generated.generate(PATTERN)
    assert CodeCipher(data_key).fingerprint(
        generated.fingerprint_message("prd_1", code)
    ) == generated.fingerprint("prd_1", code, derived)
