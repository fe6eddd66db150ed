"""A merchant's license keys (issue 21): rotation keeps old licenses verifying, a retired key stops
them, the published JWK Set loads back into a keyring that verifies, and the private half seals under
the merchant's data key as codes do, bound to its merchant and key id."""

import copy
from datetime import timedelta

import pytest
from cryptography.exceptions import InvalidTag

from shared.codes import CodeCipher
from shared.errors import Invalid
from shared.licenses import (
    Keyring,
    UnknownKey,
    private_bytes,
    private_key,
    public_bytes,
    seal_private_key,
    unseal_private_key,
    verify_license,
)
from tests.unit.test_licenses import NOW, make_payload, sign


def test_a_license_signed_before_a_rotation_still_verifies():
    before = Keyring.new()
    old_license = sign(make_payload(), before)
    after = before.rotate()
    assert after.current != before.current and after.kids == (before.current, after.current)
    new_license = sign(make_payload(), after)
    assert verify_license(old_license, after, now=NOW).kid == before.current
    assert verify_license(new_license, after, now=NOW).kid == after.current
    # The one before the rotation does not know the new key.
    with pytest.raises(UnknownKey):
        verify_license(new_license, before, now=NOW)


def test_a_rotation_keeps_only_the_current_private_half():
    ring = Keyring.new().rotate().rotate()
    kid, key = ring.signing_key()
    assert kid == ring.current and len(ring.kids) == 3
    assert public_bytes(key.public_key()) == public_bytes(ring.public_key(kid))


def test_a_retired_key_stops_its_licenses():
    first = Keyring.new()
    text = sign(make_payload(), first)
    ring = first.rotate().retire(first.current)
    assert first.current not in ring.kids
    with pytest.raises(UnknownKey):
        verify_license(text, ring, now=NOW)
    with pytest.raises(ValueError):
        ring.retire(ring.current)


def test_the_published_keys_load_back_and_verify_across_a_rotation():
    first = Keyring.new()
    old_license = sign(make_payload(), first)
    ring = first.rotate()
    document = ring.jwks()
    assert [key["kid"] for key in document["keys"]] == list(ring.kids)
    for key in document["keys"]:
        assert {k: key[k] for k in ("kty", "crv", "use", "alg")} == {
            "kty": "OKP",
            "crv": "Ed25519",
            "use": "sig",
            "alg": "EdDSA",
        }
        assert len(key["x"]) == 43 and "=" not in key["x"]  # 32 bytes, base64url without padding
    published = Keyring.from_jwks(document)
    assert published.kids == ring.kids
    assert verify_license(old_license, published, now=NOW).kid == first.current
    assert verify_license(sign(make_payload(), ring), published, now=NOW).kid == ring.current
    with pytest.raises(ValueError):
        published.signing_key()  # published keys verify; they cannot sign


def broken(change) -> dict:
    document = Keyring.new().rotate().jwks()
    change(document)
    return document


@pytest.mark.parametrize(
    "document",
    [
        {},
        {"keys": "none"},
        broken(lambda d: d["keys"][0].update(kty="EC")),
        broken(lambda d: d["keys"][0].update(crv="Ed448")),
        broken(lambda d: d["keys"][0].update(x=d["keys"][0]["x"][:-2])),
        broken(lambda d: d["keys"][0].update(x="!" + d["keys"][0]["x"][1:])),
        broken(lambda d: d["keys"][0].pop("kid")),
        broken(lambda d: d["keys"][0].update(kid="K-1")),
        broken(lambda d: d["keys"].append(copy.deepcopy(d["keys"][0]))),
    ],
    ids=["empty", "not-a-list", "kty", "crv", "short-x", "bad-x", "no-kid", "bad-kid", "same-kid-twice"],
)
def test_a_broken_key_document_is_refused(document):
    with pytest.raises(Invalid) as refused:
        Keyring.from_jwks(document)
    assert refused.value.code == "invalid_jwks"


def test_the_private_half_is_32_raw_bytes_sealed_under_the_merchants_data_key():
    ring = Keyring.new()
    kid, key = ring.signing_key()
    raw = private_bytes(key)
    assert len(raw) == 32
    assert public_bytes(private_key(raw).public_key()) == public_bytes(key.public_key())

    cipher = CodeCipher(bytes(range(32)))
    sealed = seal_private_key(cipher, "mer_1", kid, key)
    assert raw not in sealed
    restored = unseal_private_key(cipher, "mer_1", kid, sealed)
    # A keyring put back together from what a store keeps (public keys, current kid, sealed half) signs.
    again = Keyring({kid: ring.public_key(kid)}, kid, restored)
    assert verify_license(sign(make_payload(), again), ring, now=NOW + timedelta(days=1))
    # Bound to its merchant and key id, and to the merchant's own data key.
    for merchant, key_id, other in (("mer_2", kid, cipher), ("mer_1", "00000000", cipher)):
        with pytest.raises(InvalidTag):
            unseal_private_key(other, merchant, key_id, sealed)
    with pytest.raises(InvalidTag):
        unseal_private_key(CodeCipher(bytes(range(1, 33))), "mer_1", kid, sealed)


def test_a_keyring_whose_private_half_does_not_match_is_refused():
    ring, other = Keyring.new(), Keyring.new()
    with pytest.raises(ValueError):
        Keyring({ring.current: ring.public_key(ring.current)}, ring.current, other.signing_key()[1])
    with pytest.raises(ValueError):
        Keyring({ring.current: ring.public_key(ring.current)}, ring.current)
