"""Licenses over HTTP on the local runtime (docs/licenses.md): bought end to end, activated with exact
limits under real concurrency, refused as documented online and offline, surviving a key rotation, and
revoked by a refund; a leaked key retired and the licenses it signed reissued."""

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest

from shared.ids import new_id
from shared.licenses import (
    BadSignature,
    Expired,
    Keyring,
    LicensePayload,
    Malformed,
    UnknownKey,
    WrongMerchant,
    WrongProduct,
    sign_license,
    verify_activation,
    verify_license,
)
from shared.licenses.text import decode, encode
from tests.support import poll, stored_order

THREADS = 50


@pytest.fixture(scope="module")
def product_id(shop):
    return _license_product(shop, max_machines=3)


def _license_product(shop, key=None, **terms) -> str:
    created = shop.merchant(
        "POST",
        "/merchant/products",
        key=key,
        json={
            "name": "Editor Pro",
            "price": {"amount": 9900, "currency": "CNY"},
            "delivery": "license",
            "license": {"entitlements": ["pro", "updates:2027"], "valid_days": 365, **terms},
        },
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _bought(shop, product_id: str, quantity: int = 1) -> tuple[dict, list[str]]:
    """An order of the license product, paid through the sandbox and delivered: (order, its licenses)."""
    order = shop.buy(product_id, quantity)
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    body = shop.wait_for(order, "DELIVERED")
    return order, [item["code"] for item in body["items"]]


def _call(shop, route: str, **body):
    return shop.http.post(f"{shop.url}/api/licenses/{route}", json=body, timeout=30)


def _jwks(shop, merchant_id: str | None = None) -> dict:
    response = shop.http.get(f"{shop.url}/api/licenses/keys/{merchant_id or shop.runtime.info.merchant_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def _tampered(text: str) -> str:
    """The license with one byte of its signed payload changed, re-encoded as a valid text."""
    signed = decode(text, "license")
    raw = bytearray(signed.payload + signed.signature)
    raw[40] ^= 0x01  # inside the order id
    return f"{signed.prefix}-{base64.b32encode(bytes(raw)).decode().rstrip('=')}"


def test_a_bought_license_verifies_offline_against_the_published_keys(shop, product_id):
    order, (text,) = _bought(shop, product_id)
    response = shop.http.get(f"{shop.url}/api/licenses/keys/{shop.runtime.info.merchant_id}")
    assert response.headers["Cache-Control"] == "public, max-age=300"
    license = verify_license(
        text,
        Keyring.from_jwks(response.json()),
        now=datetime.now(UTC),
        merchant_id=shop.runtime.info.merchant_id,
    )
    assert (license.order_id, license.product_id, license.max_machines) == (order["order_id"], product_id, 3)
    assert license.entitlements == ("pro", "updates:2027")
    assert license.license_id in stored_order(order["order_id"]).history[-1].data["licenses"]


def test_fifty_threads_activating_one_license_with_three_places_exactly_three_win(shop, product_id):
    _, (text,) = _bought(shop, product_id)
    start = threading.Barrier(THREADS)

    def activate(n: int):
        start.wait()
        return _call(shop, "activate", license=text, machine=f"machine-{n}")

    with ThreadPoolExecutor(THREADS) as pool:
        answers = list(pool.map(activate, range(THREADS)))
    won = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code != 200]
    assert len(won) == 3, [a.text for a in answers[:5]]
    assert len(refused) == THREADS - 3
    assert {_error(a) for a in refused} == {(409, "activation_limit")}
    assert _call(shop, "validate", license=text).json()["activations"] == 3

    # The same machine again (a retry whose answer was lost, or the software starting again): counts once.
    winner = won[0].json()
    machine = verify_activation(
        winner["activation"], Keyring.from_jwks(_jwks(shop)), now=datetime.now(UTC)
    ).machine
    again = _call(shop, "activate", license=text, machine=machine)
    assert again.status_code == 200 and again.json()["activations"] == 3
    # Deactivating one frees its place for another machine.
    assert _call(shop, "deactivate", license=text, machine=machine).json()["activations"] == 2
    assert _call(shop, "activate", license=text, machine="newcomer").json()["activations"] == 3
    assert _error(_call(shop, "activate", license=text, machine="one-more")) == (409, "activation_limit")


def test_the_same_machine_activating_at_once_from_many_threads_counts_once(shop, product_id):
    _, (text,) = _bought(shop, product_id)
    start = threading.Barrier(20)

    def activate(_: int):
        start.wait()
        return _call(shop, "activate", license=text, machine="my-laptop")

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(activate, range(20)))
    assert {a.status_code for a in answers} == {200}
    assert _call(shop, "validate", license=text).json() | {"expires_at": None} == {
        "status": "active",
        "license_id": answers[0].json()["license_id"],
        "activations": 1,
        "max_machines": 3,
        "expires_at": None,
    }


def test_an_activation_is_signed_for_its_license_and_machine_and_verifies_offline(shop, product_id):
    _, (text,) = _bought(shop, product_id)
    answer = _call(shop, "activate", license=text, machine="build-box-7").json()
    keys, now = Keyring.from_jwks(_jwks(shop)), datetime.now(UTC)
    activation = verify_activation(
        answer["activation"], keys, now=now, license_id=answer["license_id"], machine="build-box-7"
    )
    assert activation.expires_at == datetime.fromisoformat(answer["expires_at"])
    assert timedelta(days=29) < activation.expires_at - now <= timedelta(days=30)


def _signed_by_the_shop(shop, **changes) -> str:
    """A license signed with the demo merchant's current key, for a unit the shop never sold."""
    from shared.adapters import license_keys

    kid, key = license_keys().signing(shop.runtime.info.merchant_id).signing_key()
    now = datetime.now(UTC).replace(microsecond=0)
    payload = {
        "license_id": new_id("lic"),
        "merchant_id": shop.runtime.info.merchant_id,
        "product_id": new_id("prd"),
        "order_id": new_id("ord"),
        "entitlements": ("pro",),
        "max_machines": 3,
        "expires_at": None,
        "issued_at": now,
        **changes,
    }
    return sign_license(LicensePayload(**payload), key, kid)


def test_refused_licenses_online_as_documented(shop, product_id):
    _, (text,) = _bought(shop, product_id)
    other_product = _license_product(shop, max_machines=1)
    now = datetime.now(UTC).replace(microsecond=0)
    expired = _signed_by_the_shop(shop, issued_at=now - timedelta(days=2), expires_at=now - timedelta(days=1))
    # Signed by the shop's key, but naming another merchant: checked with that merchant's keys.
    other_merchant = _signed_by_the_shop(shop, merchant_id=new_id("mer"))
    unknown = _signed_by_the_shop(shop)  # verifies, but the shop never recorded it
    cases = {
        "tampered": (_tampered(text), (422, "license_bad_signature")),
        "truncated": (text[:-9], (400, "license_malformed")),
        "not base32": (text[:20] + "0189" + text[24:], (400, "license_malformed")),
        "expired": (expired, (422, "license_expired")),
        "other merchant": (other_merchant, (422, "license_unknown_key")),
        "never recorded": (unknown, (404, "license_not_found")),
    }
    for name, (license, refusal) in cases.items():
        assert _error(_call(shop, "activate", license=license, machine="m1")) == refusal, name
    wrong = _call(shop, "activate", license=text, machine="m1", product_id=other_product)
    assert _error(wrong) == (422, "license_wrong_product")
    assert _error(_call(shop, "activate", license=text, machine="has space")) == (422, "invalid_machine")
    # validate: a genuine license's status; a refused one answered like activate.
    assert _call(shop, "validate", license=expired).json()["status"] == "expired"
    assert _call(shop, "validate", license=unknown).json()["status"] == "unknown"
    assert _error(_call(shop, "validate", license=_tampered(text))) == (422, "license_bad_signature")
    # Nothing refused was recorded: the genuine license has no activation.
    assert _call(shop, "validate", license=text).json()["activations"] == 0


def test_refused_licenses_offline_as_documented(shop, product_id):
    _, (text,) = _bought(shop, product_id)
    keys, now = Keyring.from_jwks(_jwks(shop)), datetime.now(UTC)
    merchant = shop.runtime.info.merchant_id
    for license, refusal in (
        (_tampered(text), BadSignature),
        (text[:-9], Malformed),
        ("LIC-" + text.partition("-")[2][:30], Malformed),
    ):
        with pytest.raises(refusal):
            verify_license(license, keys, now=now)
    with pytest.raises(Expired):
        verify_license(text, keys, now=now + timedelta(days=366))
    with pytest.raises(WrongProduct):
        verify_license(text, keys, now=now, product_id=new_id("prd"))
    with pytest.raises(WrongMerchant):
        verify_license(text, keys, now=now, merchant_id=new_id("mer"))
    # Another merchant's published keys do not verify it.
    from shared.adapters import license_keys, merchants

    other, _ = merchants().create_merchant("Other shop")
    license_keys().signing(other)
    with pytest.raises(UnknownKey):
        verify_license(text, Keyring.from_jwks(_jwks(shop, other)), now=now, merchant_id=merchant)


def test_a_license_signed_before_a_key_rotation_still_verifies_and_activates(shop, product_id):
    _, (before,) = _bought(shop, product_id)
    old_kid = decode(before, "license").payload[1:5].hex()
    rotated = shop.merchant("POST", "/merchant/license-keys/rotate")
    assert rotated.status_code == 200, rotated.text
    new_kid = rotated.json()["current"]
    assert new_kid != old_kid
    jwks = _jwks(shop)
    assert {old_kid, new_kid} <= {key["kid"] for key in jwks["keys"]}
    assert verify_license(before, Keyring.from_jwks(jwks), now=datetime.now(UTC)).kid == old_kid
    activated = _call(shop, "activate", license=before, machine="after-rotation")
    assert activated.status_code == 200, activated.text
    # The activation is signed with the new key; a license sold now too.
    assert (
        verify_activation(activated.json()["activation"], Keyring.from_jwks(jwks), now=datetime.now(UTC)).kid
        == new_kid
    )
    # A license sold after the rotation is signed with the new key (once the deliver function's
    # container has seen it: its keyring is kept KEYRING_CACHE_SECONDS; either key verifies meanwhile).
    _, (after,) = _bought(shop, product_id)
    assert verify_license(after, Keyring.from_jwks(_jwks(shop)), now=datetime.now(UTC)).kid in {
        new_kid,
        old_kid,
    }
    shown = shop.merchant("GET", "/merchant/license-keys").json()
    assert shown["current"] == new_kid and shown["url"].endswith(
        f"/api/licenses/keys/{shop.runtime.info.merchant_id}"
    )


def test_a_refund_revokes_the_orders_licenses(shop, product_id):
    order, texts = _bought(shop, product_id, quantity=2)
    assert _call(shop, "activate", license=texts[0], machine="before-refund").status_code == 200
    refunded = shop.merchant("POST", f"/merchant/orders/{order['order_id']}/refund", json={"reason": "asked"})
    assert refunded.status_code in (200, 202), refunded.text
    for text in texts:
        assert _call(shop, "validate", license=text).json()["status"] == "revoked"
        assert _error(_call(shop, "activate", license=text, machine="after-refund")) == (
            410,
            "license_revoked",
        )
    shop.wait_for(order, "REFUNDED", deadline=20)
    listed = shop.merchant("GET", f"/merchant/licenses?order_id={order['order_id']}").json()["licenses"]
    assert [(item["status"], item["revoked_by"]) for item in listed] == [("revoked", "refund")] * 2


def test_the_merchant_revokes_and_reinstates_a_license_and_sees_its_activations(shop, product_id):
    order, (text,) = _bought(shop, product_id)
    assert _call(shop, "activate", license=text, machine="office-pc").status_code == 200
    (listed,) = shop.merchant("GET", f"/merchant/licenses?order_id={order['order_id']}").json()["licenses"]
    license_id = listed["license_id"]
    shown = shop.merchant("GET", f"/merchant/licenses/{license_id}").json()
    assert shown["status"] == "active" and len(shown["activations"]) == 1
    assert "office-pc" not in str(shown)  # the machine's hash, never its name
    for _ in range(2):  # idempotent
        revoked = shop.merchant(
            "POST", f"/merchant/licenses/{license_id}/revoke", json={"reason": "chargeback"}
        )
        assert revoked.status_code == 200, revoked.text
        assert (revoked.json()["status"], revoked.json()["revoked_reason"]) == ("revoked", "chargeback")
    assert _error(_call(shop, "activate", license=text, machine="office-pc")) == (410, "license_revoked")
    assert _call(shop, "validate", license=text).json()["status"] == "revoked"
    for _ in range(2):
        reinstated = shop.merchant("POST", f"/merchant/licenses/{license_id}/reinstate")
        assert reinstated.status_code == 200 and reinstated.json()["status"] == "active"
    again = _call(shop, "activate", license=text, machine="office-pc")
    assert again.status_code == 200 and again.json()["activations"] == 1


def test_the_published_keys_of_an_unknown_merchant_are_404(shop):
    for merchant in (new_id("mer"), "nobody"):
        response = shop.http.get(f"{shop.url}/api/licenses/keys/{merchant}")
        assert _error(response) == (404, "keys_not_found")


def test_a_license_prefix_is_part_of_what_is_signed(shop, product_id):
    _, (text,) = _bought(shop, product_id)
    signed = decode(text, "license")
    renamed = f"ACME-{text.partition('-')[2]}"
    assert _error(_call(shop, "validate", license=renamed)) == (422, "license_bad_signature")
    # The same payload signed by another key (under the shop's key id) does not verify either.
    forged = encode("LIC", signed.payload, Keyring.new().signing_key()[1])
    assert _error(_call(shop, "validate", license=forged)) == (422, "license_bad_signature")


def test_a_refund_made_at_the_provider_revokes_when_its_callback_comes(shop, product_id):
    order, (text,) = _bought(shop, product_id)
    payment_id = stored_order(order["order_id"]).payment.payment_id
    refunded = shop.payment_event(order, payment_id=payment_id)  # refunded from the provider's dashboard
    refunded["type"] = "refund.succeeded"
    answer = shop.callback(refunded)
    assert (answer.status_code, answer.json()["outcome"]) == (200, "refunded"), answer.text
    assert _call(shop, "validate", license=text).json()["status"] == "revoked"
    assert _error(_call(shop, "activate", license=text, machine="m")) == (410, "license_revoked")


def test_a_merchants_keyring_made_by_many_at_once_has_one_current_key(runtime):
    from shared.adapters import cipher, merchants
    from shared.store.license_keys import LicenseKeyStore

    merchant, _ = merchants().create_merchant("Keyring race")
    stores = [LicenseKeyStore(cipher) for _ in range(12)]  # twelve containers, none has read it yet
    start = threading.Barrier(len(stores))

    def make(store: LicenseKeyStore) -> str:
        start.wait()
        return store.signing(merchant).current

    with ThreadPoolExecutor(len(stores)) as pool:
        currents = set(pool.map(make, stores))
    assert len(currents) == 1
    assert LicenseKeyStore(cipher).keyring(merchant, fresh=True).kids == tuple(currents)


def test_an_activation_whose_answer_was_lost_answers_success_not_activation_limit(shop, product_id):
    from shared.settings import settings
    from tests.faults_aws import key_prefix, lost_answer

    _, (text,) = _bought(shop, product_id)
    for machine in ("a", "b"):
        assert _call(shop, "activate", license=text, machine=machine).status_code == 200
    # The third place's write applies, its answer is lost, the SDK sends it again: it finds its own entry.
    with lost_answer("UpdateItem", key_prefix(settings().licenses_table, "pk", "lic#")) as fault:
        last = _call(shop, "activate", license=text, machine="c")
    assert (fault.hits, fault.seen) == (1, 2)
    assert (last.status_code, last.json()["activations"]) == (200, 3)
    assert _error(_call(shop, "activate", license=text, machine="d")) == (409, "activation_limit")


def test_a_keyring_made_rotated_or_retired_by_a_write_whose_answer_was_lost_changes_once(runtime):
    from shared.adapters import cipher, merchants
    from shared.settings import settings
    from shared.store.license_keys import LicenseKeyStore
    from tests.faults_aws import lost_answer, on_table

    merchant, _ = merchants().create_merchant("Lost keyring answers")
    keyring = on_table(settings().licenses_table, pk=f"keyring#{merchant}")
    with lost_answer("PutItem", keyring) as made:
        ring = LicenseKeyStore(cipher).signing(merchant)
    assert (made.hits, made.seen) == (1, 2)
    assert LicenseKeyStore(cipher).keyring(merchant, fresh=True).current == ring.current
    with lost_answer("UpdateItem", keyring) as rotated_fault:
        rotated = LicenseKeyStore(cipher).rotate(merchant)
    assert (rotated_fault.hits, rotated_fault.seen) == (1, 2)
    stored = LicenseKeyStore(cipher).keyring(merchant, fresh=True)
    assert stored.kids == (ring.current, rotated.current)  # one rotation, not two
    assert stored.current == rotated.current
    a_minute_on = datetime.now(UTC) + timedelta(minutes=1)  # every process has seen the rotation
    with lost_answer("UpdateItem", keyring) as retired_fault:
        LicenseKeyStore(cipher).retire(merchant, ring.current, a_minute_on)
    assert (retired_fault.hits, retired_fault.seen) == (1, 2)
    assert LicenseKeyStore(cipher).keyring(merchant, fresh=True).kids == (rotated.current,)
    assert list(LicenseKeyStore(cipher).retired(merchant)) == [ring.current]  # retired once


def test_the_python_snippet_verifies_a_bought_license_and_its_activation_against_the_published_keys(
    shop, product_id
):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "docs" / "snippets" / "verify_license.py"
    spec = importlib.util.spec_from_file_location("verify_license_snippet", path)
    assert spec is not None and spec.loader is not None
    snippet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(snippet)

    order, (text,) = _bought(shop, product_id)
    merchant = shop.runtime.info.merchant_id
    jwks = _jwks(shop)  # what the merchant's software fetches
    license = snippet.verify_license(text, jwks, merchant_id=merchant, product_id=product_id)
    assert (license["order_id"], license["max_machines"]) == (order["order_id"], 3)
    saved = _call(shop, "activate", license=text, machine="snippet-pc").json()["activation"]
    activation = snippet.verify_activation(
        saved, jwks, license_id=license["license_id"], machine="snippet-pc"
    )
    assert activation["machine"] == "snippet-pc"
    with pytest.raises(snippet.LicenseError) as refused:
        snippet.verify_license(_tampered(text), jwks)
    assert refused.value.kind == "bad_signature"


def test_a_machine_activated_again_keeps_the_time_it_was_first_activated(shop, product_id):
    from shared.adapters import licenses
    from shared.licensing import machine_hash

    _, (text,) = _bought(shop, product_id)
    license_id = _call(shop, "activate", license=text, machine="desk").json()["license_id"]
    machine, store = machine_hash(license_id, "desk"), licenses()
    first = store.get(license_id).machines[machine]

    again = store.activate(license_id, machine, first + timedelta(days=3), 3)

    assert again.machines[machine] == first and len(again.machines) == 1


def test_a_leaked_key_retired_stops_what_it_signed_and_a_reissue_gives_the_buyer_a_working_license(shop):
    from shared.adapters import merchants

    merchant, key = merchants().create_merchant("Leaked key")  # its own keys: the shop's stay as they are
    _, other = merchants().create_merchant("Someone else")
    product = _license_product(shop, key=key, max_machines=2)
    order, (text,) = _bought(shop, product)
    assert _call(shop, "activate", license=text, machine="pc-1").status_code == 200
    leaked = shop.merchant("GET", "/merchant/license-keys", key=key).json()["current"]
    assert _error(shop.merchant("POST", f"/merchant/license-keys/{leaked}/retire", key=key)) == (
        409,
        "license_key_current",
    )
    fresh = shop.merchant("POST", "/merchant/license-keys/rotate", key=key).json()["current"]
    # Another merchant's key id is as unknown as a key nobody has; neither changes anything.
    theirs = shop.merchant("POST", f"/merchant/license-keys/{leaked}/retire", key=other)
    nobodys = shop.merchant("POST", "/merchant/license-keys/00000000/retire", key=key)
    assert _error(theirs) == _error(nobodys) == (404, "license_key_not_found")
    assert theirs.json() == nobodys.json()
    assert verify_license(text, Keyring.from_jwks(_jwks(shop, merchant)), now=datetime.now(UTC)).kid == leaked

    # Right after the rotation a process may still sign with the leaked key: not yet (1 s + 2 s here).
    early = shop.merchant("POST", f"/merchant/license-keys/{leaked}/retire", key=key)
    assert _error(early) == (409, "license_key_recent") and int(early.headers["Retry-After"]) <= 3
    poll(
        lambda: shop.merchant("POST", f"/merchant/license-keys/{leaked}/retire", key=key).ok or None,
        deadline=10,
    )
    for _ in range(2):  # sent again, changes nothing
        retired = shop.merchant("POST", f"/merchant/license-keys/{leaked}/retire", key=key)
        assert retired.status_code == 200, retired.text
        assert [k["kid"] for k in retired.json()["keys"]] == [fresh]
        assert [r["kid"] for r in retired.json()["retired"]] == [leaked]
    assert [k["kid"] for k in _jwks(shop, merchant)["keys"]] == [fresh]
    with pytest.raises(UnknownKey):
        verify_license(text, Keyring.from_jwks(_jwks(shop, merchant)), now=datetime.now(UTC))
    assert _error(_call(shop, "activate", license=text, machine="pc-2")) == (422, "license_unknown_key")
    assert _error(_call(shop, "validate", license=text)) == (422, "license_unknown_key")

    (license,) = shop.merchant("GET", f"/merchant/licenses?order_id={order['order_id']}", key=key).json()[
        "licenses"
    ]
    assert _error(
        shop.merchant("POST", f"/merchant/licenses/{license['license_id']}/reissue", key=other)
    ) == (
        404,
        "license_not_found",
    )
    for _ in range(2):  # sent again, the same text
        reissued = shop.merchant("POST", f"/merchant/licenses/{license['license_id']}/reissue", key=key)
        assert reissued.status_code == 200, reissued.text
        assert reissued.json()["kid"] == fresh
        (new_text,) = [item["code"] for item in shop.wait_for(order, "DELIVERED")["items"]]
        assert new_text != text
    found = verify_license(new_text, Keyring.from_jwks(_jwks(shop, merchant)), now=datetime.now(UTC))
    assert (found.license_id, found.kid) == (license["license_id"], fresh)
    again = _call(shop, "activate", license=new_text, machine="pc-1")  # the same license: counts once
    assert (again.status_code, again.json()["activations"]) == (200, 1)
    reissues = [e for e in stored_order(order["order_id"]).history if e.type == "license.reissued"]
    assert [e.data for e in reissues] == [{"license_id": license["license_id"], "kid": fresh}]


def test_a_reissue_signs_with_the_key_current_now_not_one_its_process_kept(shop):
    import dataclasses

    from functions.merchant.reissue import reissue_license
    from shared.adapters import cipher, merchants, ports
    from shared.store.license_keys import LicenseKeyStore

    merchant, key = merchants().create_merchant("Stale keyring")
    order, (text,) = _bought(shop, _license_product(shop, key=key, max_machines=1))
    kept = LicenseKeyStore(cipher)  # a container that read the keys before the rotation, for 30 s
    leaked = kept.signing(merchant).current
    elsewhere = LicenseKeyStore(cipher, cache_seconds=0)
    fresh = elsewhere.rotate(merchant).current
    elsewhere.retire(merchant, leaked, datetime.now(UTC) + timedelta(minutes=1))
    assert kept.signing(merchant).current == leaked  # what this process would still sign with

    (license_id,) = stored_order(order["order_id"]).history[-1].data["licenses"]
    now = datetime.now(UTC)
    record = reissue_license(merchant, license_id, dataclasses.replace(ports(), license_keys=kept), now)

    (shown,) = [item["code"] for item in shop.wait_for(order, "DELIVERED")["items"]]
    assert record.kid == fresh and shown != text
    published = Keyring.from_jwks(elsewhere.keyring(merchant, fresh=True).jwks())
    assert verify_license(shown, published, now=now).kid == fresh


def test_a_rotation_racing_a_retirement_still_makes_a_fresh_key(runtime):
    from shared.adapters import cipher, merchants
    from shared.store.license_keys import KeyringItem, LicenseKeyStore

    class Interleaved(LicenseKeyStore):
        """Runs `between` once, after the rotation read the keyring and before it writes."""

        def __init__(self, between) -> None:
            super().__init__(cipher, cache_seconds=0)
            self._between = between

        def _open(self, merchant_id: str, item: KeyringItem):
            ring = super()._open(merchant_id, item)
            between, self._between = self._between, None
            if between is not None:
                between()
            return ring

    merchant, _ = merchants().create_merchant("Rotation racing a retirement")
    other = LicenseKeyStore(cipher, cache_seconds=0)
    first = other.signing(merchant).current
    second = other.rotate(merchant).current
    a_minute_on = datetime.now(UTC) + timedelta(minutes=1)

    third = Interleaved(lambda: other.retire(merchant, first, a_minute_on)).rotate(merchant).current

    stored = other.keyring(merchant, fresh=True)
    assert third not in (first, second) and stored.current == third  # rotated, not taken for done
    assert stored.kids == (second, third) and list(other.retired(merchant)) == [first]
