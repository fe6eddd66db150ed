"""Signed activations (issue 21): one machine, one license, until a time; round trip, one bit changed
anywhere, a cut, the end passed, another license or machine, a rotation, and a license that tries to
pass for an activation."""

from datetime import timedelta

import pytest

from shared.errors import Invalid
from shared.licenses import (
    BadSignature,
    Expired,
    Keyring,
    LicenseRefused,
    Malformed,
    UnknownKey,
    WrongLicense,
    WrongMachine,
    new_license_id,
    sign_activation,
    verify_activation,
)
from tests.unit.test_licenses import NOW, make_payload, raw_of, sign, text_of

MACHINE = "4f9c2e6a-hostname:build-01"
UNTIL = NOW + timedelta(days=30)


@pytest.fixture(scope="module")
def keyring() -> Keyring:
    return Keyring.new()


def activate(keyring: Keyring, license_id: str, machine: str = MACHINE) -> str:
    kid, key = keyring.signing_key()
    return sign_activation(license_id, machine, NOW, UNTIL, key, kid)


def test_an_activation_round_trips(keyring):
    license_id = new_license_id()
    text = activate(keyring, license_id)
    assert text.startswith("ACT-")
    found = verify_activation(text, keyring, now=NOW, license_id=license_id, machine=MACHINE)
    assert (found.license_id, found.machine, found.issued_at, found.expires_at, found.kid) == (
        license_id,
        MACHINE,
        NOW,
        UNTIL,
        keyring.current,
    )


def test_one_bit_changed_anywhere_is_refused(keyring):
    text = activate(keyring, new_license_id())
    prefix, raw = raw_of(text)
    for at in range(len(raw)):
        altered = bytearray(raw)
        altered[at] ^= 0x04
        with pytest.raises(LicenseRefused) as refused:
            verify_activation(text_of(prefix, bytes(altered)), keyring, now=NOW)
        if at >= 5:  # past the format byte and the key id, nothing is read unsigned
            assert isinstance(refused.value, BadSignature)


def test_a_cut_activation_is_refused(keyring):
    text = activate(keyring, new_license_id())
    for length in range(len(text) - 1, 0, -3):
        with pytest.raises((Malformed, BadSignature)):
            verify_activation(text[:length], keyring, now=NOW)


def test_an_ended_activation_is_refused(keyring):
    text = activate(keyring, new_license_id())
    assert verify_activation(text, keyring, now=UNTIL - timedelta(seconds=1))
    with pytest.raises(Expired):
        verify_activation(text, keyring, now=UNTIL)


def test_another_license_or_machine_is_refused(keyring):
    license_id = new_license_id()
    text = activate(keyring, license_id)
    with pytest.raises(WrongLicense):
        verify_activation(text, keyring, now=NOW, license_id=new_license_id(), machine=MACHINE)
    with pytest.raises(WrongMachine):
        verify_activation(text, keyring, now=NOW, license_id=license_id, machine=MACHINE + "x")


def test_an_activation_made_before_a_rotation_verifies_and_an_unknown_key_does_not(keyring):
    license_id = new_license_id()
    text = activate(keyring, license_id)
    assert verify_activation(text, keyring.rotate(), now=NOW).license_id == license_id
    with pytest.raises(UnknownKey):
        verify_activation(text, Keyring.new(), now=NOW)


def test_a_license_does_not_pass_for_an_activation(keyring):
    license_text = sign(make_payload(), keyring)
    prefix, raw = raw_of(license_text)
    with pytest.raises(Malformed):
        verify_activation(text_of("ACT", raw), keyring, now=NOW)
    with pytest.raises(Malformed):
        verify_activation(license_text, keyring, now=NOW)


@pytest.mark.parametrize(
    ("license_id", "machine", "ends"),
    [
        ("lic_1", MACHINE, UNTIL),
        (None, "", UNTIL),
        (None, "has space", UNTIL),
        (None, "x" * 129, UNTIL),
        (None, "machine-é", UNTIL),
        (None, MACHINE, NOW),
    ],
)
def test_what_the_format_cannot_carry_is_refused_when_signing(keyring, license_id, machine, ends):
    kid, key = keyring.signing_key()
    with pytest.raises(Invalid) as refused:
        sign_activation(license_id or new_license_id(), machine, NOW, ends, key, kid)
    assert refused.value.code == "invalid_activation"


def test_the_longest_machine_name_fits(keyring):
    kid, key = keyring.signing_key()
    text = sign_activation(new_license_id(), "m" * 128, NOW, UNTIL, key, kid)
    assert verify_activation(text, keyring, now=NOW).machine == "m" * 128
