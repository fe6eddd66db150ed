"""Signed license keys (issue 21): a license round-trips; one altered byte anywhere, a cut, an unknown
key id, an expiry passed, another merchant or product are each refused with the kind that says so;
and terms the format cannot carry are refused when signing."""

import base64
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import Invalid
from shared.ids import new_id
from shared.licenses import (
    BadSignature,
    Expired,
    Keyring,
    LicensePayload,
    LicenseRefused,
    Malformed,
    UnknownKey,
    WrongMerchant,
    WrongProduct,
    new_license_id,
    sign_activation,
    sign_license,
    verify_license,
)

NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def make_payload(**changes) -> LicensePayload:
    terms = LicensePayload(
        license_id=new_license_id(),
        merchant_id=new_id("mer"),
        product_id=new_id("prd"),
        order_id=new_id("ord"),
        entitlements=("pro", "updates:2027"),
        max_machines=3,
        expires_at=NOW + timedelta(days=365),
        issued_at=NOW,
    )
    return dataclasses.replace(terms, **changes)


def sign(payload: LicensePayload, keyring: Keyring, prefix: str = "LIC") -> str:
    kid, key = keyring.signing_key()
    return sign_license(payload, key, kid, prefix)


def raw_of(text: str) -> tuple[str, bytes]:
    prefix, _, body = text.partition("-")
    return prefix, base64.b32decode(body + "=" * (-len(body) % 8))


def text_of(prefix: str, raw: bytes) -> str:
    return f"{prefix}-{base64.b32encode(raw).decode().rstrip('=')}"


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.new()


def test_a_license_round_trips(keyring):
    payload = make_payload()
    text = sign(payload, keyring)
    assert text.startswith("LIC-") and len(text) < 230
    found = verify_license(
        text, keyring, now=NOW, merchant_id=payload.merchant_id, product_id=payload.product_id
    )
    assert dataclasses.asdict(found) == {**dataclasses.asdict(payload), "kid": keyring.current}


def test_no_expiry_no_machine_limit_no_entitlements_and_a_merchants_prefix(keyring):
    payload = make_payload(expires_at=None, max_machines=None, entitlements=())
    text = sign(payload, keyring, prefix="ACME2")
    found = verify_license(text, keyring, now=datetime(2100, 1, 1, tzinfo=UTC))
    assert (found.expires_at, found.max_machines, found.entitlements) == (None, None, ())
    assert text.startswith("ACME2-")


def test_case_and_whitespace_do_not_matter_when_pasted(keyring):
    payload = make_payload()
    text = sign(payload, keyring)
    wrapped = "  " + "\n".join(text[i : i + 60] for i in range(0, len(text), 60)).lower() + "\n"
    assert verify_license(wrapped, keyring, now=NOW).license_id == payload.license_id


def test_times_are_kept_to_the_second(keyring):
    payload = make_payload(issued_at=NOW + timedelta(microseconds=999_999))
    assert verify_license(sign(payload, keyring), keyring, now=NOW).issued_at == NOW


def test_one_bit_changed_anywhere_is_refused(keyring):
    text = sign(make_payload(), keyring)
    prefix, raw = raw_of(text)
    kinds = set()
    for at in range(len(raw)):
        for bit in (0x01, 0x80):
            altered = bytearray(raw)
            altered[at] ^= bit
            with pytest.raises(LicenseRefused) as refused:
                verify_license(text_of(prefix, bytes(altered)), keyring, now=NOW)
            kinds.add(type(refused.value))
            # The format byte is read first, the key id next; nothing after it is read unsigned.
            if at == 0:
                assert isinstance(refused.value, Malformed)
            elif 1 <= at <= 4:
                assert isinstance(refused.value, UnknownKey)
            else:
                assert isinstance(refused.value, BadSignature)
    assert kinds == {Malformed, UnknownKey, BadSignature}


def test_a_changed_prefix_is_refused(keyring):
    text = sign(make_payload(), keyring)
    with pytest.raises(BadSignature):
        verify_license("LIX" + text[3:], keyring, now=NOW)


def test_a_character_changed_in_the_text_is_refused(keyring):
    text = sign(make_payload(), keyring)
    for at in range(4, len(text), 7):
        changed = "B" if text[at] != "B" else "C"
        with pytest.raises(LicenseRefused):
            verify_license(text[:at] + changed + text[at + 1 :], keyring, now=NOW)


def test_a_license_cut_short_is_refused(keyring):
    text = sign(make_payload(), keyring)
    for length in range(len(text) - 1, 0, -1):
        with pytest.raises((Malformed, BadSignature)):
            verify_license(text[:length], keyring, now=NOW)
    # Whole bytes cut from the payload, the signature kept: the signature no longer matches.
    prefix, raw = raw_of(text)
    with pytest.raises(BadSignature):
        verify_license(text_of(prefix, raw[:50] + raw[-64:]), keyring, now=NOW)
    # Cut inside the key id: too short to name a key.
    with pytest.raises(Malformed):
        verify_license(text_of(prefix, raw[:3] + raw[-64:]), keyring, now=NOW)


@pytest.mark.parametrize(
    "text",
    ["", "LIC", "LIC-", "-AAAA", "LIC-ABC1", "LIC-A", "1LIC-AEAQ", "LIC-" + "A" * 8, "LIC-AE======"],
)
def test_what_is_not_a_license_is_malformed(keyring, text):
    with pytest.raises(Malformed) as refused:
        verify_license(text, keyring, now=NOW)
    assert refused.value.status == 400 and refused.value.kind == "malformed"


def test_an_unknown_key_id_is_refused(keyring):
    text = sign(make_payload(), Keyring.new())
    with pytest.raises(UnknownKey) as refused:
        verify_license(text, keyring, now=NOW)
    assert refused.value.code == "license_unknown_key"


def test_a_license_signed_by_another_key_under_a_known_key_id_is_a_bad_signature(keyring):
    stranger = Keyring.new()
    _, stranger_key = stranger.signing_key()
    text = sign_license(make_payload(), stranger_key, keyring.current)
    with pytest.raises(BadSignature):
        verify_license(text, keyring, now=NOW)


def test_an_expired_license_is_refused_from_its_last_second(keyring):
    payload = make_payload(expires_at=NOW + timedelta(days=30))
    text = sign(payload, keyring)
    assert verify_license(text, keyring, now=NOW + timedelta(days=30, seconds=-1))
    with pytest.raises(Expired) as refused:
        verify_license(text, keyring, now=NOW + timedelta(days=30))
    assert "2027-01-04" in refused.value.message


def test_another_merchants_or_products_license_is_refused(keyring):
    payload = make_payload()
    text = sign(payload, keyring)
    with pytest.raises(WrongMerchant):
        verify_license(text, keyring, now=NOW, merchant_id=new_id("mer"), product_id=payload.product_id)
    with pytest.raises(WrongProduct):
        verify_license(text, keyring, now=NOW, merchant_id=payload.merchant_id, product_id=new_id("prd"))


def test_an_activation_does_not_pass_for_a_license(keyring):
    kid, key = keyring.signing_key()
    activation = sign_activation(new_license_id(), "m-1", NOW, NOW + timedelta(days=1), key, kid)
    with pytest.raises(Malformed):
        verify_license("LIC" + activation[3:], keyring, now=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"license_id": "lic_1"},
        {"merchant_id": "prd_" + "0" * 20},
        {"product_id": "prd_" + "g" * 20},
        {"order_id": ""},
        {"entitlements": ("pro", "pro")},
        {"entitlements": tuple(f"e{i}" for i in range(17))},
        {"entitlements": ("has space",)},
        {"entitlements": ("x" * 33,)},
        {"max_machines": 0},
        {"max_machines": 65_536},
        {"expires_at": NOW},
        {"expires_at": datetime(2200, 1, 1, tzinfo=UTC)},
    ],
    ids=lambda changes: "-".join(changes),
)
def test_terms_the_format_cannot_carry_are_refused_when_signing(keyring, changes):
    with pytest.raises(Invalid) as refused:
        sign(make_payload(**changes), keyring)
    assert refused.value.status == 422 and refused.value.code == "invalid_license_terms"


def test_a_bad_prefix_or_key_id_is_a_programming_error(keyring):
    _, key = keyring.signing_key()
    with pytest.raises(ValueError):
        sign_license(make_payload(), key, keyring.current, prefix="lic-")
    with pytest.raises(Invalid):
        sign_license(make_payload(), key, "K1")
