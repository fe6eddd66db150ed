"""The webhook against the embedded AWS: only a verified payment of the order's exact amount and
currency, bound to that order, moves it to PAID (I3); a repeated callback is applied once (I5); a
payment of another amount is never applied, and given back through its provider once."""

import json
import threading
import time

import pytest

from functions.reconcile.run import reconcile
from shared.adapters import orders, payment_events
from shared.orders import utcnow
from shared.providers.signatures import sandbox_signature
from shared.settings import settings
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


# Past the 300 s window by a margin: a second boundary between signing and checking (a loaded
# machine) brings a timestamp from the future a second nearer.
@pytest.mark.parametrize("age", [301, -330], ids=["stale", "from_the_future"])
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
        ({"order_id": "ord_" + "0" * 20}, "unknown_order"),
        ({"amount": 19.99}, "bad_request"),
    ],
    ids=["unknown_order", "float_amount"],
)
def test_a_payment_that_does_not_match_is_refused(shop, order, change, code):
    before = count_items("PaymentEventsTable")
    response = shop.callback(shop.payment_event(order, **change))
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert_nothing_changed(shop, order, before)


@pytest.mark.parametrize(
    "change",
    [{"amount": 1998}, {"amount": 1}, {"amount": 2000}, {"currency": "USD"}],
    ids=["one_fen_short", "one_fen_total", "one_fen_over", "wrong_currency"],
)
def test_a_payment_of_another_amount_is_refunded_once_and_shown_to_buyer_and_merchant(shop, order, change):
    payment = shop.payment_event(order, **change)
    shop.runtime.sandbox.take(payment["data"])  # the provider took it: it can give it back
    paid = {"amount": order["total"]["amount"], "currency": order["total"]["currency"], **change}

    for _ in range(2):  # and the provider's copy of the callback
        response = shop.callback(payment)
        assert response.status_code == 200 and response.json()["outcome"] in ("wrong_amount", "duplicate")

    record = stored_order(order["order_id"])
    assert record.status == "PENDING_PAYMENT" and record.payment is None  # never applied (I3)
    noted = [e for e in record.history if e.type == "payment.wrong_amount"]
    assert len(noted) == 1 and noted[0].data == {
        "provider": "sandbox",
        "payment_id": payment["data"]["payment_id"],
        **paid,
    }
    assert orders().history_intact(order["order_id"])
    buyer = shop.http.get(
        f"{shop.url}/api/orders/{order['order_id']}",
        headers={"Authorization": f"Bearer {order['access_token']}"},
    ).json()
    assert [e["type"] for e in buyer["events"]] == ["order.created", "payment.wrong_amount"]
    merchant = shop.merchant("GET", f"/merchant/orders/{order['order_id']}").json()
    assert merchant["events"][-1]["type"] == "payment.wrong_amount"
    assert merchant["events"][-1]["data"]["amount"] == paid["amount"]

    for _ in range(2):  # reconcile's owed refunds, twice: the payment goes back once
        reconcile(settings(), utcnow())
    refunds = shop.runtime.sandbox.refunds_for(payment["data"]["payment_id"])
    assert [(r["amount"], r["status"]) for r in refunds] == [(paid["amount"], "succeeded")]
    assert not any(o.payment_id == payment["data"]["payment_id"] for o in payment_events().owed("sandbox"))
    # The right payment still pays the order.
    assert shop.callback(shop.payment_event(order)).json()["outcome"] == "applied"
    shop.wait_for(order, "DELIVERED")


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
