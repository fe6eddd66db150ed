"""Stripe callbacks: the `Stripe-Signature` check, event parsing into the shop's events, and agreement
with Stripe's own SDK (an independent signer and verifier). No server: nothing here goes out."""

import copy
import json
import time
from typing import Any

import pytest
import stripe

from shared.errors import BadInput, InvalidSignature
from shared.money import Money
from shared.payments import PaymentEvent
from shared.providers.config import StripeConfig
from shared.providers.stripe import StripeProvider
from tests.providers.stripe import stripe_signature
from tests.support import event as load_event

WEBHOOK_SECRET = "whsec_unit_5b8e1f0c7a2d4e6f9a3b"
TEST_KEY = "sk_test_unit_51QhTyxLkdIwHu7ix0aB1cD2e"
LIVE_KEY = "sk_live_unit_51QhTyxLkdIwHu7ix0aB1cD2e"
NOW = 1_795_320_000
ORDER = "ord_4f1c2a9be07d3c5a8e61"
INTENT = "pi_3QhTyxLkdIwHu7ix1B2c3D4e"


def provider(secret_key: str = TEST_KEY, webhook_secret: str = WEBHOOK_SECRET) -> StripeProvider:
    config = StripeConfig(secret_key=secret_key, webhook_secret=webhook_secret, api_url="http://127.0.0.1:9")
    return StripeProvider(config, "https://shop.example.com/webhooks/stripe")


def body_of(fixture: str | dict[str, Any]) -> bytes:
    event = load_event(fixture) if isinstance(fixture, str) else fixture
    return json.dumps(event).encode()


def receive(body: bytes, header: str | None = None, now: int = NOW, **kwargs: str) -> list[PaymentEvent]:
    headers = {} if header is None else {"stripe-signature": header}
    return provider(**kwargs).verify_callback(headers, body, now=now)


def signed(body: bytes, now: int = NOW, **kwargs: str) -> list[PaymentEvent]:
    return receive(body, stripe_signature(WEBHOOK_SECRET, body, now), now=now, **kwargs)


def mutated(fixture: str, change) -> bytes:
    event = copy.deepcopy(load_event(fixture))
    change(event)
    return json.dumps(event).encode()


PAID = body_of("stripe_checkout_session_completed")


# ---------------------------------------------------------------- signature


def test_a_correctly_signed_checkout_is_a_payment_of_the_order():
    assert signed(PAID) == [
        PaymentEvent(
            provider="stripe",
            event_id="evt_1QhTz2LkdIwHu7ixR0oQm9Vd",
            type="payment.succeeded",
            order_id=ORDER,
            payment_id=INTENT,
            amount=Money(amount=1999, currency="CNY"),
        )
    ]


def test_a_body_changed_after_signing_is_refused():
    header = stripe_signature(WEBHOOK_SECRET, PAID, NOW)
    tampered = PAID.replace(b'"amount_total": 1999', b'"amount_total": 1')
    assert tampered != PAID
    with pytest.raises(InvalidSignature):
        receive(tampered, header)


def test_a_signature_made_with_another_secret_is_refused():
    with pytest.raises(InvalidSignature):
        receive(PAID, stripe_signature("whsec_someone_else_1a2b3c4d5e6f", PAID, NOW))


@pytest.mark.parametrize("age", [301, -301, 86_400, -86_400])
def test_a_signature_outside_five_minutes_either_way_is_refused(age):
    # A replay of an old capture, or a timestamp from the future (a wrong clock, or a forged window).
    with pytest.raises(InvalidSignature):
        receive(PAID, stripe_signature(WEBHOOK_SECRET, PAID, NOW - age))


@pytest.mark.parametrize("age", [300, -300, 0])
def test_a_signature_at_the_edge_of_the_window_is_accepted(age):
    assert len(receive(PAID, stripe_signature(WEBHOOK_SECRET, PAID, NOW - age))) == 1


def mac(header: str) -> str:
    return header.split("v1=", 1)[1]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "garbage",
        f"v1={'0' * 64}",  # no timestamp
        f"t=soon,v1={'0' * 64}",
        f"t={NOW}",  # no signature
        f"t={NOW},v0={mac(stripe_signature(WEBHOOK_SECRET, PAID, NOW))}",  # right MAC, unknown scheme
        f"t={NOW},v1=",
        f"t={NOW},v1={'é' * 64}",
    ],
)
def test_a_missing_or_garbled_header_is_refused(header):
    with pytest.raises(InvalidSignature):
        receive(PAID, header)


def test_an_empty_webhook_secret_refuses_everything():
    # The config never allows it; the check does not rely on that.
    unchecked = StripeConfig.model_construct(secret_key=TEST_KEY, webhook_secret="", api_url="http://x")
    forged = stripe_signature("", PAID, NOW)
    with pytest.raises(InvalidSignature):
        StripeProvider(unchecked, "").verify_callback({"stripe-signature": forged}, PAID, now=NOW)


def test_while_a_secret_is_rolled_any_one_of_several_signatures_is_enough():
    # Stripe signs with the old and the new secret for a while (one v1 each).
    old = mac(stripe_signature("whsec_old_secret_9f8e7d6c5b4a", PAID, NOW))
    new = mac(stripe_signature(WEBHOOK_SECRET, PAID, NOW))
    assert len(receive(PAID, f"t={NOW},v1={old},v1={new}")) == 1
    assert len(receive(PAID, f"t={NOW},v1={new},v1={old},v0={'a' * 64}")) == 1
    with pytest.raises(InvalidSignature):
        receive(PAID, f"t={NOW},v1={old},v1={'b' * 64}")


# ---------------------------------------------------------------- what each event means


def test_an_async_payment_that_succeeded_is_a_payment():
    [event] = signed(body_of("stripe_checkout_session_async_payment_succeeded"))
    assert (event.type, event.event_id, event.order_id, event.payment_id) == (
        "payment.succeeded",
        "evt_1QhZk9LkdIwHu7ixUo3PqRsT",
        ORDER,
        INTENT,
    )
    assert event.amount == Money(amount=1999, currency="EUR")


def test_an_async_payment_that_failed_is_a_failed_payment():
    [event] = signed(body_of("stripe_checkout_session_async_payment_failed"))
    assert (event.type, event.order_id, event.payment_id) == ("payment.failed", ORDER, INTENT)


@pytest.mark.parametrize(
    "fixture",
    [
        "stripe_checkout_session_completed_delayed",  # a bank debit is still on its way
        "stripe_checkout_session_expired",
        "stripe_payment_intent_succeeded",  # the session's own events say it, once
    ],
)
def test_a_verified_event_the_shop_does_not_act_on_is_acknowledged_with_nothing(fixture):
    assert signed(body_of(fixture)) == []


def test_a_session_completed_but_not_marked_paid_is_not_a_payment():
    for status in ("unpaid", "no_payment_required"):
        body = mutated(
            "stripe_checkout_session_completed",
            lambda e, s=status: e["data"]["object"].update(payment_status=s),
        )
        assert signed(body) == []


def test_a_refund_is_bound_to_the_order_through_the_charge_metadata():
    [event] = signed(body_of("stripe_charge_refunded"))
    assert event == PaymentEvent(
        provider="stripe",
        event_id="evt_3QhW7eLkdIwHu7ix0Zr1Tq9u",
        type="refund.succeeded",
        order_id=ORDER,
        payment_id=INTENT,  # the PaymentIntent, as the payment reported it: not the charge
        amount=Money(amount=1999, currency="CNY"),
        refund_id=None,  # a Charge of this API version does not list its refunds
    )


def test_a_refund_listed_on_an_older_charge_names_the_shops_refund():
    [event] = signed(body_of("stripe_charge_refunded_2020_08_27"))
    assert (event.type, event.refund_id, event.amount.amount) == (
        "refund.succeeded",
        "rf_ord_4f1c2a9be07d3c5a8e61",
        1999,
    )


def test_a_partial_refund_reports_what_was_given_back():
    [event] = signed(body_of("stripe_charge_refunded_partial"))
    assert event.amount == Money(amount=500, currency="CNY")


def test_a_refund_of_a_charge_that_no_checkout_of_the_shop_made_is_acknowledged_with_nothing():
    body = mutated("stripe_charge_refunded", lambda e: e["data"]["object"].update(metadata={}))
    assert signed(body) == []


def test_a_session_without_the_shops_order_reference_is_acknowledged_with_nothing():
    # A Payment Link or another integration on the same Stripe account.
    body = mutated(
        "stripe_checkout_session_completed",
        lambda e: e["data"]["object"].update(client_reference_id=None, metadata={}),
    )
    assert signed(body) == []


@pytest.mark.parametrize(
    "change",
    [
        {"metadata": {"order_id": "ord_someone_elses_order"}},
        {"client_reference_id": None},
    ],
)
def test_a_session_naming_two_orders_is_refused(change):
    body = mutated("stripe_checkout_session_completed", lambda e: e["data"]["object"].update(change))
    with pytest.raises(BadInput):
        signed(body)


def test_isk_amounts_are_read_in_stripes_two_decimal_units():
    def isk(event: dict[str, Any]) -> None:
        event["data"]["object"].update(currency="isk", amount_total=50000)

    [event] = signed(mutated("stripe_checkout_session_completed", isk))
    assert event.amount == Money(amount=500, currency="ISK")
    fractional = mutated(
        "stripe_checkout_session_completed",
        lambda e: (isk(e), e["data"]["object"].update(amount_total=50050)),
    )
    with pytest.raises(BadInput):
        signed(fractional)


# ---------------------------------------------------------------- live and test mode


def test_a_test_mode_event_is_refused_by_a_live_shop_and_the_other_way_round():
    with pytest.raises(BadInput):
        signed(PAID, secret_key=LIVE_KEY)
    live = mutated("stripe_checkout_session_completed", lambda e: e.update(livemode=True))
    with pytest.raises(BadInput):
        signed(live, secret_key=TEST_KEY)
    assert len(signed(live, secret_key=LIVE_KEY)) == 1
    assert len(signed(live, secret_key="rk_live_unit_51QhTyxLkdIwHu7ix0aB1cD2e")) == 1


# ---------------------------------------------------------------- hostile bodies (correctly signed)


def _deep(n: int) -> bytes:
    return (
        b'{"id": "evt_1", "object": "event", "livemode": false, "type": "x", "data": {"object": '
        + b"[" * n
        + b"]" * n
        + b"}}"
    )


def _huge_id(event: dict[str, Any]) -> None:
    event["data"]["object"]["payment_intent"] = "pi_" + "A" * 100_000


def _set(path: str, value: Any):
    def change(event: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = event
        for part in parents:
            node = node[part]
        node[last] = value

    return change


HOSTILE = {
    "deep nesting": _deep(100_000),
    "moderately deep nesting in the object": _deep(2_000),
    "not JSON": b"\xff\xfe not json",
    "a JSON array": b"[]",
    "a JSON string": b'"checkout.session.completed"',
    "empty": b"",
    "huge integer": b'{"id": "evt_1", "object": "event", "livemode": false, "type": "x", "data": {"object": {}}, "created": 1'
    + b"0" * 5000
    + b"}",
    "over the size cap": mutated(
        "stripe_checkout_session_completed", _set("data.object.custom_text", {"submit": "x" * 300_000})
    ),
    "huge id": mutated("stripe_checkout_session_completed", _huge_id),
    "huge event id": mutated("stripe_checkout_session_completed", _set("id", "evt_" + "9" * 5000)),
    "amount as a string": mutated(
        "stripe_checkout_session_completed", _set("data.object.amount_total", "1999")
    ),
    "amount as a float": mutated(
        "stripe_checkout_session_completed", _set("data.object.amount_total", 19.99)
    ),
    "amount as a bool": mutated("stripe_checkout_session_completed", _set("data.object.amount_total", True)),
    "negative amount": mutated("stripe_checkout_session_completed", _set("data.object.amount_total", -1999)),
    "amount beyond any price": mutated(
        "stripe_checkout_session_completed", _set("data.object.amount_total", 10**30)
    ),
    "amount missing when paid": mutated(
        "stripe_checkout_session_completed", _set("data.object.amount_total", None)
    ),
    "currency upper-case": mutated("stripe_checkout_session_completed", _set("data.object.currency", "CNY")),
    "currency a number": mutated("stripe_checkout_session_completed", _set("data.object.currency", 156)),
    "payment intent an object": mutated(
        "stripe_checkout_session_completed", _set("data.object.payment_intent", {"id": INTENT})
    ),
    "payment intent missing when paid": mutated(
        "stripe_checkout_session_completed", _set("data.object.payment_intent", None)
    ),
    "metadata a list": mutated("stripe_checkout_session_completed", _set("data.object.metadata", [ORDER])),
    "metadata value a number": mutated(
        "stripe_checkout_session_completed", _set("data.object.metadata", {"order_id": 7})
    ),
    "order reference a number": mutated(
        "stripe_checkout_session_completed", _set("data.object.client_reference_id", 7)
    ),
    "livemode a string": mutated("stripe_checkout_session_completed", _set("livemode", "false")),
    "type missing": mutated("stripe_checkout_session_completed", lambda e: e.pop("type")),
    "object a string": mutated("stripe_checkout_session_completed", _set("data.object", "cs_test_1")),
    "not a session": mutated("stripe_checkout_session_completed", _set("data.object.object", "charge")),
    "unknown payment status": mutated(
        "stripe_checkout_session_completed", _set("data.object.payment_status", "kinda")
    ),
    "refund amount a string": mutated("stripe_charge_refunded", _set("data.object.amount_refunded", "1999")),
    "refunds list not a list": mutated(
        "stripe_charge_refunded_2020_08_27", _set("data.object.refunds.data", {"0": {}})
    ),
    "not an event": mutated("stripe_checkout_session_completed", _set("object", "checkout.session")),
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_signed_but_hostile_body_is_bad_input_not_a_crash(body):
    with pytest.raises(BadInput):
        signed(body)


# ---------------------------------------------------------------- the Stripe SDK as an independent peer


def test_a_header_the_stripe_sdk_makes_verifies_in_the_shop():
    # WebhookSignature.generate_signature_header is the SDK's public signer ("for unit tests").
    header = stripe.WebhookSignature.generate_signature_header(PAID.decode(), WEBHOOK_SECRET, timestamp=NOW)
    assert len(receive(PAID, header)) == 1
    other = stripe.WebhookSignature.generate_signature_header(
        PAID.decode(), "whsec_other_1a2b3c4d5e", timestamp=NOW
    )
    with pytest.raises(InvalidSignature):
        receive(PAID, other)


def test_a_header_the_kit_makes_is_accepted_by_the_stripe_sdk():
    # construct_event checks its window against the real clock, so this one is signed now.
    now = int(time.time())
    header = stripe_signature(WEBHOOK_SECRET, PAID, now)
    event = stripe.Webhook.construct_event(PAID, header, WEBHOOK_SECRET)
    assert (event.id, event.type, event.data.object.client_reference_id) == (
        "evt_1QhTz2LkdIwHu7ixR0oQm9Vd",
        "checkout.session.completed",
        ORDER,
    )
    assert len(receive(PAID, header, now=now)) == 1  # and by the shop, the same header


def test_a_tampered_body_is_rejected_by_both_the_sdk_and_the_shop():
    now = int(time.time())
    header = stripe_signature(WEBHOOK_SECRET, PAID, now)
    tampered = PAID.replace(ORDER.encode(), b"ord_00000000000000000000")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(tampered, header, WEBHOOK_SECRET)
    with pytest.raises(InvalidSignature):
        receive(tampered, header, now=now)


def test_the_provider_never_shows_a_secret():
    shown = repr(provider()) + str(provider())
    assert TEST_KEY not in shown and WEBHOOK_SECRET not in shown
