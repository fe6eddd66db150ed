"""Licenses issued, revoked and checked, with in-memory fakes (functions/deliver/licenses.py,
shared/licensing.py, functions/storefront/licenses.py): one license per unit, the same on every
attempt; a refund revokes at its request (best effort) and before its confirmation (required: the
order stays REFUNDING until they are revoked); the public calls verify
before they touch the store, and answer statuses in their documented order."""

import dataclasses
import logging
from datetime import timedelta

import pytest

from functions.deliver.licenses import issue_licenses
from functions.deliver.made import deliver_made
from functions.merchant.refund import refund_order
from functions.merchant.reissue import reissue_license
from functions.storefront import licenses as calls
from shared.errors import StateConflict
from shared.fulfilment import open_fulfilment
from shared.licenses import BadSignature, Keyring, LicenseRefused, Malformed, UnknownKey, verify_license
from shared.licensing import (
    ActivationLimit,
    LicenseRevoked,
    LicenseUnknown,
    license_id_for,
    order_license_ids,
    revoke_order_licenses,
)
from shared.orders import Order, Status
from shared.refunds import confirm_refund
from tests.fakes import MERCHANT_ID, FakePorts, fake_ports, history, raises, stored
from tests.fakes.licenses import FakeLicenseKeys, FakeLicenses


@pytest.fixture
def fakes() -> FakePorts:
    return dataclasses.replace(fake_ports(), licenses=FakeLicenses(), license_keys=FakeLicenseKeys())


def _product(fakes: FakePorts, **terms):
    # Codes only so that the fake checkout's claim passes: a license order binds none.
    return fakes.add_product(
        5,
        delivery="license",
        license={"entitlements": ["pro"], "max_machines": 2, "valid_days": 30, **terms},
    )


def _delivered(fakes: FakePorts, quantity: int = 2) -> tuple[Order, list[str]]:
    """A license order delivered as functions/deliver/delivery.py delivers it: (order, license texts)."""
    product = _product(fakes)
    order = fakes.add_order(product, Status.PAID, quantity=quantity)
    texts, data = issue_licenses(order, product, fakes, fakes.clock())
    order = fakes.orders.transition(order, "order.delivered", fakes.clock(), {"quantity": quantity, **data})
    return order, texts


def test_one_license_per_unit_with_ids_from_the_order_and_unit(fakes):
    order, texts = _delivered(fakes, quantity=3)
    ring = fakes.license_keys.signing(MERCHANT_ID)
    found = [verify_license(t, ring, now=fakes.clock(), merchant_id=MERCHANT_ID) for t in texts]
    assert [f.license_id for f in found] == [license_id_for(order.order_id, u) for u in range(3)]
    assert order_license_ids(order) == [f.license_id for f in found]
    assert {(f.max_machines, f.entitlements, f.expires_at - f.issued_at) for f in found} == {
        (2, ("pro",), timedelta(days=30))
    }


def test_a_retried_issue_gives_the_same_texts_and_after_a_rotation_resigns_the_same_records(fakes):
    product = _product(fakes)
    order = fakes.add_order(product, Status.PAID, quantity=2)
    first, data = issue_licenses(order, product, fakes, fakes.clock())
    fakes.clock.advance(minutes=5)  # a redriven delivery, later: the records keep their issue time
    again, same = issue_licenses(order, product, fakes, fakes.clock())
    assert (again, same) == (first, data)
    assert len(fakes.licenses.records) == 2
    old = fakes.license_keys.signing(MERCHANT_ID).current
    ring = fakes.license_keys.rotate(MERCHANT_ID)
    rotated, _ = issue_licenses(order, product, fakes, fakes.clock())
    assert [verify_license(t, ring, now=fakes.clock()).kid for t in rotated] == [ring.current] * 2
    assert [verify_license(t, ring, now=fakes.clock()).kid for t in first] == [old] * 2  # still verify
    assert {r.kid for r in fakes.licenses.records.values()} == {ring.current}


def test_a_merchant_refund_revokes_at_its_request_and_again_at_its_confirmation(fakes):
    order, _ = _delivered(fakes)
    refund_order(MERCHANT_ID, order.order_id, "asked", fakes, fakes.clock())
    records = fakes.licenses.records.values()
    assert {(r.status, r.revoked_by) for r in records} == {("revoked", "refund")}
    revoked_at = {r.revoked_at for r in records}
    fakes.clock.advance(minutes=3)
    confirm_refund(stored(fakes, order), fakes, fakes.clock(), {"via": "test"})
    assert {r.revoked_at for r in fakes.licenses.records.values()} == revoked_at  # idempotent


def test_a_revocation_missed_at_the_request_is_made_at_the_confirmation_and_never_fails_the_refund(
    fakes, caplog
):
    order, _ = _delivered(fakes)
    fakes.licenses.before("revoke", raises(RuntimeError("throttled")), times=2)  # the request's two
    with caplog.at_level(logging.ERROR):
        refunded = refund_order(MERCHANT_ID, order.order_id, "asked", fakes, fakes.clock())
    # The sandbox confirmed at once: the confirmation revoked what the request could not.
    assert refunded.status == Status.REFUNDED
    assert "license not revoked" in caplog.text
    assert {r.status for r in fakes.licenses.records.values()} == {"revoked"}


def test_a_refund_is_not_confirmed_while_its_licenses_cannot_be_revoked(fakes):
    order, _ = _delivered(fakes)
    fakes.licenses.before("revoke", raises(RuntimeError("throttled")), times=4)  # request 2, confirmation 2

    waiting = refund_order(MERCHANT_ID, order.order_id, "asked", fakes, fakes.clock())

    # The money is back at the provider; the order stays REFUNDING (due again) until they are revoked.
    assert waiting.status == Status.REFUNDING
    assert {r.status for r in fakes.licenses.records.values()} == {"active"}
    confirmed = confirm_refund(stored(fakes, order), fakes, fakes.clock(), {"via": "reconcile"})
    assert confirmed.status == Status.REFUNDED
    assert {r.status for r in fakes.licenses.records.values()} == {"revoked"}


def test_an_order_without_licenses_costs_no_revocation(fakes):
    product = fakes.add_product(3)
    order = fakes.add_order(product, Status.DELIVERED)
    assert revoke_order_licenses(order, fakes.licenses, fakes.clock(), "refund") == 0
    assert fakes.licenses.calls == []


def test_public_calls_verify_before_the_store_and_count_machines_exactly(fakes):
    order, (text, _) = _delivered(fakes)
    keys, records, now = fakes.license_keys, fakes.licenses, fakes.clock()
    fakes.licenses.calls.clear()
    # Cut by 9 characters, the base32 cannot be whole (Malformed); cut by a whole group of 8 it may
    # decode, then its last 64 bytes are no signature of the rest (BadSignature): refused either way.
    cut_short, group_cut = text[:-9], text[:-8]
    tampered = text.replace("A", "B", 1)[:40] + text[40:]
    for bad, refusal in ((cut_short, Malformed), (group_cut, LicenseRefused), (tampered, LicenseRefused)):
        with pytest.raises(refusal):
            calls.activate(calls.MachineCall(license=bad, machine="m"), keys, records, now, 30)
    assert [c.method for c in fakes.licenses.calls] == []  # nothing touched
    for machine in ("a", "b", "a"):
        answer = calls.activate(calls.MachineCall(license=text, machine=machine), keys, records, now, 30)
    assert answer.activations == 2
    with pytest.raises(ActivationLimit):
        calls.activate(calls.MachineCall(license=text, machine="c"), keys, records, now, 30)
    assert answer.expires_at == now.replace(microsecond=0) + timedelta(days=30)


def test_validate_says_revoked_before_expired_before_unknown(fakes):
    order, (text, _) = _delivered(fakes)
    keys, records, now = fakes.license_keys, fakes.licenses, fakes.clock()
    call = calls.LicenseCall(license=text)
    assert calls.validate(call, keys, records, now).status == "active"
    assert calls.validate(call, keys, records, now + timedelta(days=31)).status == "expired"
    records.revoke(license_id_for(order.order_id, 0), "merchant", "test", now)
    assert calls.validate(call, keys, records, now + timedelta(days=31)).status == "revoked"
    with pytest.raises(LicenseRevoked):
        calls.activate(calls.MachineCall(license=text, machine="m"), keys, records, now, 30)
    records.records.clear()
    assert calls.validate(call, keys, records, now).status == "unknown"


def test_the_merchant_a_license_names_is_trusted_only_once_its_keys_verify_it(fakes):
    _, (text, _) = _delivered(fakes)
    assert calls.claimed_merchant(text) == MERCHANT_ID
    other = FakeLicenseKeys()
    other.rings[MERCHANT_ID] = Keyring.new()  # another key under the same merchant: no match
    with pytest.raises((UnknownKey, BadSignature)):
        calls.verified(text, other, fakes.clock(), None)
    with pytest.raises(UnknownKey):
        calls.verified(text, FakeLicenseKeys(), fakes.clock(), None)


def _delivered_sealed(fakes: FakePorts, quantity: int = 2) -> Order:
    """A license order delivered with its texts sealed on it, as the deliver function leaves it."""
    product = _product(fakes)
    order = fakes.add_order(product, Status.PAID, quantity=quantity)
    texts, data = issue_licenses(order, product, fakes, fakes.clock())
    deliver_made(order, texts, fakes, fakes.clock(), data)
    return stored(fakes, order)


def _shown(fakes: FakePorts, order: Order) -> list[str]:
    """The license texts the buyer's order page shows (the order's sealed delivery)."""
    delivered = open_fulfilment(stored(fakes, order), fakes.ciphers(MERCHANT_ID))
    assert delivered is not None
    return delivered.codes


def _leaked(fakes: FakePorts) -> tuple[str, Keyring]:
    """The merchant's first key leaked: rotated out and retired. (its id, the keyring now)"""
    old = fakes.license_keys.signing(MERCHANT_ID).current
    fakes.license_keys.rotate(MERCHANT_ID)
    return old, fakes.license_keys.retire(MERCHANT_ID, old, fakes.clock())


def test_a_reissued_license_is_the_same_license_under_the_current_key_and_the_order_shows_it(fakes):
    order = _delivered_sealed(fakes)
    first, second = _shown(fakes, order)
    original = verify_license(first, fakes.license_keys.signing(MERCHANT_ID), now=fakes.clock())
    old, ring = _leaked(fakes)
    with pytest.raises(UnknownKey):
        verify_license(first, ring, now=fakes.clock())

    record = reissue_license(MERCHANT_ID, original.license_id, fakes, fakes.clock())

    new_first, same_second = _shown(fakes, order)
    assert same_second == second  # only the reissued unit's text changes
    reissued = verify_license(new_first, ring, now=fakes.clock(), merchant_id=MERCHANT_ID)
    assert reissued.kid == ring.current == record.kid == fakes.licenses.records[record.license_id].kid != old
    assert dataclasses.replace(reissued, kid=old) == original  # the same license: id, grants, times
    entries = [e for e in stored(fakes, order).history if e.type == "license.reissued"]
    assert [e.data for e in entries] == [{"license_id": original.license_id, "kid": ring.current}]
    assert stored(fakes, order).status == Status.DELIVERED


def test_a_reissue_sent_again_or_whose_answer_was_lost_changes_nothing_more(fakes):
    order = _delivered_sealed(fakes, quantity=1)
    _leaked(fakes)
    license_id = license_id_for(order.order_id, 0)
    # The note applied, its answer lost: the SDK's retry finds the history moved on (StateConflict).
    fakes.orders.after("note", raises(StateConflict("changed")), times=1)
    reissue_license(MERCHANT_ID, license_id, fakes, fakes.clock())
    shown = _shown(fakes, order)
    reissue_license(MERCHANT_ID, license_id, fakes, fakes.clock())
    assert _shown(fakes, order) == shown
    assert [e.type for e in stored(fakes, order).history].count("license.reissued") == 1


def test_a_reissue_is_refused_for_a_revoked_license_a_refunded_order_and_another_merchant(fakes):
    order = _delivered_sealed(fakes)
    revoked, kept = license_id_for(order.order_id, 0), license_id_for(order.order_id, 1)
    fakes.licenses.revoke(revoked, "merchant", "chargeback", fakes.clock())
    with pytest.raises(LicenseRevoked):
        reissue_license(MERCHANT_ID, revoked, fakes, fakes.clock())
    for unknown in (kept, "lic_" + "0" * 20, "not-an-id"):
        with pytest.raises(LicenseUnknown):
            reissue_license(
                "mer_" + "1" * 20 if unknown == kept else MERCHANT_ID, unknown, fakes, fakes.clock()
            )
    shown = _shown(fakes, order)
    refund_order(MERCHANT_ID, order.order_id, "asked", fakes, fakes.clock())  # revokes every license
    with pytest.raises(LicenseRevoked):
        reissue_license(MERCHANT_ID, kept, fakes, fakes.clock())
    assert _shown(fakes, order) == shown


def test_a_license_whose_order_is_no_longer_delivered_is_not_reissued(fakes):
    order = _delivered_sealed(fakes, quantity=1)
    license_id = license_id_for(order.order_id, 0)
    fakes.licenses.before("revoke", raises(RuntimeError("throttled")))  # the refund's revocation fails
    refund_order(MERCHANT_ID, order.order_id, "asked", fakes, fakes.clock())
    assert (
        stored(fakes, order).status == Status.REFUNDING
        and fakes.licenses.records[license_id].status == "active"
    )
    shown = _shown(fakes, order)
    with pytest.raises(StateConflict) as refused:
        reissue_license(MERCHANT_ID, license_id, fakes, fakes.clock())
    assert refused.value.code == "order_not_delivered"
    assert _shown(fakes, order) == shown and "license.reissued" not in history(fakes, order)
