"""The webhook against the embedded AWS: only a verified payment of the order's exact amount and
currency, bound to that order, moves it to PAID (I3); a repeated callback is applied once (I5)."""

import json
import threading
import time

import pytest

from shared.adapters import payment_events
from shared.providers.signatures import sandbox_signature
from tests.support import count_items, new_codes, stored_order


@pytest.fixture
def order(shop):
    return shop.buy(shop.new_product(new_codes(2)))


def assert_nothing_changed(shop, order, events_before):
    record = stored_order(order["order_id"])
    assert record.status == "PENDING_PAYMENT" and record.payment is None and len(record.history) == 1
    assert count_items("PaymentEventsTable") == events_before


def test_forged_signature_is_400_and_changes_nothing(shop, order):
    before = count_items("PaymentEventsTable")
    response = shop.callback(shop.payment_event(order), secret="not-the-secret")
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_signature")
    assert_nothing_changed(shop, order, before)


def test_tampered_body_is_400_and_changes_nothing(shop, order):
    before = count_items("PaymentEventsTable")
    body = shop.payment_event(order)
    header = sandbox_signature(shop.runtime.sandbox_secret, json.dumps(body).encode(), int(time.time()))
    body["data"]["amount"] = 1
    response = shop.callback(body, signature=header)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_signature")
    assert_nothing_changed(shop, order, before)


@pytest.mark.parametrize("age", [301, -301], ids=["stale", "from_the_future"])
def test_signature_outside_the_window_is_400(shop, order, age):
    before = count_items("PaymentEventsTable")
    response = shop.callback(shop.payment_event(order), timestamp=int(time.time()) - age)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_signature")
    assert_nothing_changed(shop, order, before)


def test_missing_signature_is_400(shop, order):
    before = count_items("PaymentEventsTable")
    response = shop.http.post(f"{shop.url}/webhooks/sandbox", json=shop.payment_event(order))
    assert (response.status_code, response.json()["error"]["code"]) == (400, "invalid_signature")
    assert_nothing_changed(shop, order, before)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"amount": 1998}, "payment_mismatch"),
        ({"amount": 1}, "payment_mismatch"),
        ({"currency": "USD"}, "payment_mismatch"),
        ({"order_id": "ord_" + "0" * 20}, "unknown_order"),
        ({"amount": 19.99}, "bad_request"),
    ],
    ids=["one_fen_short", "one_fen_total", "wrong_currency", "unknown_order", "float_amount"],
)
def test_a_payment_that_does_not_match_is_refused(shop, order, change, code):
    before = count_items("PaymentEventsTable")
    response = shop.callback(shop.payment_event(order, **change))
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert_nothing_changed(shop, order, before)


def test_a_payment_for_another_order_pays_only_that_order(shop, order):
    other = shop.buy(shop.new_product(new_codes(1), price=1999))
    response = shop.callback(shop.payment_event(order, order_id=other["order_id"]))
    assert response.status_code == 200
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"
    shop.wait_for(other, "DELIVERED")


def test_malformed_body_with_a_valid_signature_is_400(shop, order):
    body = b'{"id": "evt_1", "type": "payment.succeeded"'
    response = shop.callback(body)
    assert (response.status_code, response.json()["error"]["code"]) == (400, "bad_request")


def test_concurrent_copies_of_one_callback_pay_and_deliver_once(shop, order):
    body = shop.payment_event(order)
    statuses: list[int] = []
    threads = [
        threading.Thread(target=lambda: statuses.append(shop.callback(body).status_code)) for _ in range(10)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    delivered = shop.wait_for(order, "DELIVERED")
    assert statuses == [200] * 10
    types = [e["type"] for e in delivered["events"]]
    assert types.count("payment.succeeded") == 1 and types.count("order.delivered") == 1
    assert shop.callback(body).json()["outcome"] == "duplicate"


def test_a_second_different_payment_is_kept_for_a_refund_and_delivers_nothing(shop, order):
    first, second = shop.payment_event(order), shop.payment_event(order)
    assert shop.callback(first).json()["outcome"] == "applied"
    delivered = shop.wait_for(order, "DELIVERED")

    response = shop.callback(second)

    assert response.status_code == 200 and response.json()["outcome"] == "needs_refund"
    owed = f"sandbox#{order['order_id']}#{second['data']['payment_id']}"  # by payment, not by event
    assert owed in payment_events().refunds_due("sandbox")
    again = shop.order(order["order_id"], order["access_token"]).json()
    assert again["items"] == delivered["items"] and again["events"] == delivered["events"]
    assert stored_order(order["order_id"]).payment.payment_id == first["data"]["payment_id"]
