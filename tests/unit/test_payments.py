"""Sandbox payment callbacks: the Stripe-like signature, body parsing, and matching a payment to its order."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import BadInput, InvalidSignature, PaymentMismatch
from shared.money import Money
from shared.orders import Order, SlotRange, Status, chain_event
from shared.payments import PaymentEvent, check_payment_matches
from shared.providers.sandbox import parse_sandbox_event
from shared.providers.signatures import sandbox_signature, verify_sandbox_signature
from tests.support import event as load_event

SECRET = "whsec_unit_9f3c2a7e1b5d4c8a"
NOW = 1_795_320_000
TOLERANCE = 300
FIXTURE = load_event("sandbox_payment_succeeded")
BODY = json.dumps(FIXTURE).encode()


def verify(header: str | None, body: bytes = BODY, secret: str = SECRET, now: int = NOW) -> None:
    verify_sandbox_signature(secret, header, body, now=now, tolerance=TOLERANCE)


def mac_of(header: str) -> str:
    return header.split("v1=", 1)[1]


# ---------------------------------------------------------------- signature


def test_a_correctly_signed_callback_is_accepted():
    verify(sandbox_signature(SECRET, BODY, NOW))


def test_the_header_has_the_stripe_like_shape():
    header = sandbox_signature(SECRET, BODY, NOW)
    timestamp, mac = header.split(",")
    assert timestamp == f"t={NOW}"
    assert mac.startswith("v1=") and len(mac) == len("v1=") + 64


def test_a_tampered_body_is_refused():
    header = sandbox_signature(SECRET, BODY, NOW)
    tampered = BODY.replace(b"1999", b"1")
    assert tampered != BODY
    with pytest.raises(InvalidSignature):
        verify(header, body=tampered)


def test_a_signature_made_with_another_secret_is_refused():
    with pytest.raises(InvalidSignature):
        verify(sandbox_signature("whsec_someone_else", BODY, NOW))


def test_the_timestamp_is_covered_by_the_signature():
    header = f"t={NOW + 1},v1={mac_of(sandbox_signature(SECRET, BODY, NOW))}"
    with pytest.raises(InvalidSignature):
        verify(header)


@pytest.mark.parametrize("age", [0, 1, TOLERANCE], ids=["now", "1s old", "exactly at tolerance"])
def test_a_timestamp_within_the_tolerance_is_accepted(age):
    verify(sandbox_signature(SECRET, BODY, NOW - age))


def test_a_timestamp_older_than_the_tolerance_is_refused():
    with pytest.raises(InvalidSignature):
        verify(sandbox_signature(SECRET, BODY, NOW - TOLERANCE - 1))


def test_a_timestamp_in_the_future_within_the_tolerance_is_accepted():
    verify(sandbox_signature(SECRET, BODY, NOW + TOLERANCE))


def test_a_timestamp_in_the_future_beyond_the_tolerance_is_refused():
    with pytest.raises(InvalidSignature):
        verify(sandbox_signature(SECRET, BODY, NOW + TOLERANCE + 1))


@pytest.mark.parametrize("header", [None, ""], ids=["absent", "empty"])
def test_a_missing_header_is_refused(header):
    with pytest.raises(InvalidSignature):
        verify(header)


def test_a_header_without_timestamp_is_refused():
    header = f"v1={mac_of(sandbox_signature(SECRET, BODY, NOW))}"
    with pytest.raises(InvalidSignature):
        verify(header)


@pytest.mark.parametrize("timestamp", ["", "abc", "17953200.5"])
def test_a_header_with_a_non_integer_timestamp_is_refused(timestamp):
    header = f"t={timestamp},v1={mac_of(sandbox_signature(SECRET, BODY, NOW))}"
    with pytest.raises(InvalidSignature):
        verify(header)


def test_a_header_without_v1_is_refused():
    with pytest.raises(InvalidSignature):
        verify(f"t={NOW}")


def test_a_correct_mac_under_another_scheme_name_is_refused():
    header = f"t={NOW},v0={mac_of(sandbox_signature(SECRET, BODY, NOW))}"
    with pytest.raises(InvalidSignature):
        verify(header)


def test_an_empty_secret_refuses_even_a_header_signed_with_the_empty_secret():
    with pytest.raises(InvalidSignature):
        verify(sandbox_signature("", BODY, NOW), secret="")


@pytest.mark.parametrize("right_first", [True, False], ids=["right first", "right last"])
def test_several_v1_values_are_accepted_when_one_is_right(right_first):
    right = mac_of(sandbox_signature(SECRET, BODY, NOW))
    wrong = mac_of(sandbox_signature("whsec_rotated_out", BODY, NOW))
    macs = [right, wrong] if right_first else [wrong, right]
    verify(f"t={NOW},v1={macs[0]},v1={macs[1]}")


def test_several_v1_values_are_refused_when_none_is_right():
    wrong = [mac_of(sandbox_signature(f"whsec_old_{n}", BODY, NOW)) for n in range(2)]
    with pytest.raises(InvalidSignature):
        verify(f"t={NOW},v1={wrong[0]},v1={wrong[1]}")


def test_a_non_ascii_v1_value_is_refused_as_an_invalid_signature():
    with pytest.raises(InvalidSignature):
        verify(f"t={NOW},v1=\u00e9")


# ---------------------------------------------------------------- parsing


def body_with(**data_changes) -> bytes:
    changed = copy.deepcopy(FIXTURE)
    changed["data"].update(data_changes)
    return json.dumps(changed).encode()


def test_a_valid_body_becomes_a_payment_event_with_money():
    parsed = parse_sandbox_event(BODY)
    data = FIXTURE["data"]
    assert parsed == PaymentEvent(
        provider="sandbox",
        event_id=FIXTURE["id"],
        type="payment.succeeded",
        order_id=data["order_id"],
        payment_id=data["payment_id"],
        amount=Money(amount=data["amount"], currency=data["currency"]),
    )
    assert isinstance(parsed.amount.amount, int)


def without(key: str, *, in_data: bool = False) -> bytes:
    changed = copy.deepcopy(FIXTURE)
    del (changed["data"] if in_data else changed)[key]
    return json.dumps(changed).encode()


INVALID_BODIES = {
    "not JSON": b"payment succeeded",
    "empty": b"",
    "not UTF-8": b"\xff\xfe{}",
    "JSON list": b"[]",
    "missing data": without("data"),
    "missing id": without("id"),
    "missing order_id": without("order_id", in_data=True),
    "empty order_id": body_with(order_id=""),
    "float amount": body_with(amount=19.99),
    "integral float amount": body_with(amount=1999.0),
    "string amount": body_with(amount="1999"),
    "boolean amount": body_with(amount=True),
    "negative amount": body_with(amount=-1),
    "lowercase currency": body_with(currency="cny"),
    "two-letter currency": body_with(currency="CN"),
    "wrong type": json.dumps({**FIXTURE, "type": "payment.failed"}).encode(),
}


@pytest.mark.parametrize("body", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
def test_an_invalid_body_is_bad_input(body):
    with pytest.raises(BadInput):
        parse_sandbox_event(body)


def test_an_amount_above_the_money_cap_is_bad_input():
    with pytest.raises(BadInput):
        parse_sandbox_event(body_with(amount=10**12 + 1))


# ---------------------------------------------------------------- matching a payment to its order


def make_order(**changes) -> Order:
    created = datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    fields = dict(
        order_id="ord_fixture",
        merchant_id="mer_1",
        product_id="prd_1",
        quantity=1,
        total=Money(amount=1999, currency="CNY"),
        email="buyer@example.com",
        provider="sandbox",
        status=Status.PENDING_PAYMENT,
        access_token_hash="0" * 64,
        created_at=created,
        expires_at=created + timedelta(minutes=15),
        slots=[SlotRange(shard=0, start=0, count=1)],
        history=[chain_event("ord_fixture", [], "order.created", created, {"quantity": 1})],
    )
    fields.update(changes)
    return Order(**fields)


def make_payment(**changes) -> PaymentEvent:
    fields = dict(
        provider="sandbox",
        event_id="evt_1",
        type="payment.succeeded",
        order_id="ord_fixture",
        payment_id="pay_1",
        amount=Money(amount=1999, currency="CNY"),
    )
    fields.update(changes)
    return PaymentEvent(**fields)


def test_a_payment_for_the_exact_order_amount_and_currency_matches():
    check_payment_matches(make_order(), make_payment())


MISMATCHES = {
    "other order": make_payment(order_id="ord_other"),
    "other provider": make_payment(provider="stripe"),
    "other currency": make_payment(amount=Money(amount=1999, currency="USD")),
    "one minor unit more": make_payment(amount=Money(amount=2000, currency="CNY")),
    "one minor unit less": make_payment(amount=Money(amount=1998, currency="CNY")),
}


@pytest.mark.parametrize("payment", MISMATCHES.values(), ids=MISMATCHES.keys())
def test_a_payment_that_differs_from_its_order_is_a_mismatch(payment):
    with pytest.raises(PaymentMismatch):
        check_payment_matches(make_order(), payment)


def test_a_parsed_fixture_callback_matches_its_order():
    check_payment_matches(make_order(), parse_sandbox_event(BODY))
