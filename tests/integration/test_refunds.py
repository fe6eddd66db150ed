"""Refunds against the sandbox on the local runtime: every payment the shop cannot fulfil goes back
to the buyer exactly once — automatically through reconcile, or when the merchant asks — however
often it is attempted, and after a crash between sending a refund and recording its answer."""

import secrets
from datetime import timedelta

import pytest

from functions.reconcile.expiry import expire_reservations
from functions.reconcile.run import reconcile
from shared import faults
from shared.adapters import orders, payment_events, stock
from shared.adapters import shop as shop_store
from shared.orders import Payment, utcnow
from shared.settings import settings
from tests.support import new_codes, poll, stored_order


def paid_after_it_sold_out(shop) -> tuple[dict, str]:
    """An order paid after its reservation expired and its only code went to someone else: REFUNDING."""
    product_id = shop.new_product(new_codes(1), shards=1)
    order = shop.buy(product_id)
    expire_reservations(orders(), stock(), now=utcnow() + timedelta(minutes=16))
    shop.buy(product_id)  # the code goes to another buyer
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    (payment_id,) = shop.runtime.sandbox.payments_for(order["order_id"])
    assert poll(lambda: stored_order(order["order_id"]).status == "REFUNDING")
    return order, payment_id


def test_an_order_that_cannot_be_fulfilled_is_refunded_once_by_reconcile(shop):
    order, payment_id = paid_after_it_sold_out(shop)

    first = reconcile(settings(), utcnow())
    again = reconcile(settings(), utcnow() + timedelta(minutes=5))

    assert first["refunded"] >= 1 and "refunds" not in first["failed_steps"]
    (refund,) = shop.runtime.sandbox.refunds_for(payment_id)
    assert (refund["amount"], refund["refund_id"]) == (order["total"]["amount"], f"rf_{order['order_id']}")
    assert again["failed_steps"] == []
    assert stored_order(order["order_id"]).status == "REFUNDED"
    assert shop.order(order["order_id"], order["access_token"]).json()["status"] == "REFUNDED"
    # The payment kept for refund is the order's own: refunded with it, no longer owed.
    assert not any(order["order_id"] in key for key in payment_events().refunds_due("sandbox"))


def test_a_crash_after_sending_a_refund_does_not_refund_twice(shop):
    order, payment_id = paid_after_it_sold_out(shop)
    faults.arm("refund:after-sent")

    crashed = reconcile(settings(), utcnow())
    assert "refunds" in crashed["failed_steps"] and faults.armed() == set()
    assert stored_order(order["order_id"]).status == "REFUNDING"  # the answer was never recorded
    reconcile(settings(), utcnow() + timedelta(minutes=5))

    assert stored_order(order["order_id"]).status == "REFUNDED"
    assert len(shop.runtime.sandbox.refunds_for(payment_id)) == 1


def test_a_second_payment_for_one_order_is_given_back(shop):
    order = shop.buy(shop.new_product(new_codes(2)))
    sandbox = shop.runtime.sandbox
    assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    assert sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")  # the buyer paid twice
    kept = stored_order(order["order_id"]).payment.payment_id
    (extra,) = [payment_id for payment_id in sandbox.payments_for(order["order_id"]) if payment_id != kept]

    report = reconcile(settings(), utcnow())
    reconcile(settings(), utcnow() + timedelta(minutes=5))

    assert report["owed_refunded"] >= 1
    assert sandbox.refunds_for(kept) == []  # the delivered order's payment stays
    (refund,) = sandbox.refunds_for(extra)
    assert refund["amount"] == order["total"]["amount"]
    assert stored_order(order["order_id"]).status == "DELIVERED"


# ---------------------------------------------------------------- the merchant asks


def refund(shop, order_id: str, key: str | None = None, **kwargs):
    return shop.merchant("POST", f"/merchant/orders/{order_id}/refund", key=key, **kwargs)


def paid_not_delivered(shop, order: dict) -> None:
    """Paid at the sandbox, its delivery not yet run (as while the delivery message is in flight)."""
    record = stored_order(order["order_id"])
    payment_id = f"pay_{secrets.token_hex(6)}"
    with shop.runtime.sandbox._lock:
        shop.runtime.sandbox.payments[payment_id] = {
            "order_id": order["order_id"],
            "payment_id": payment_id,
            "amount": order["total"]["amount"],
            "currency": "CNY",
        }
    payment = Payment(
        provider="sandbox", payment_id=payment_id, event_id=f"evt_{payment_id}", amount=record.total
    )
    orders().transition(record, "payment.succeeded", utcnow(), payment=payment, due_in=timedelta(minutes=2))


def test_a_merchant_refund_of_a_paid_order_returns_its_unbound_stock(shop):
    product_id = shop.new_product(new_codes(2))
    order = shop.buy(product_id)
    paid_not_delivered(shop, order)

    response = refund(shop, order["order_id"], json={"reason": "duplicate purchase"})

    assert (response.status_code, response.json()["status"]) == (200, "REFUNDED"), response.text
    assert shop.stock(product_id)["available"] == 2 and shop.stock(product_id)["reserved"] == 0
    events = [e.type for e in stored_order(order["order_id"]).history]
    assert events[-2:] == ["refund.requested", "refund.confirmed"]


def test_another_merchants_order_is_not_found_and_unchanged(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    _, other_key = shop_store().create_merchant("Merchant C")

    response = refund(shop, order["order_id"], key=other_key)

    assert (response.status_code, response.json()["error"]["code"]) == (404, "order_not_found")
    assert stored_order(order["order_id"]).status == "DELIVERED"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"reason": "x" * 201}, 422, "invalid_reason"),
        ({"refund_everything": True}, 422, "invalid_refund_everything"),
        ("not json", 400, "malformed_json"),
    ],
)
def test_a_bad_refund_request_changes_nothing(shop, body, status, code):
    order = shop.buy(shop.new_product(new_codes(1)))
    assert shop.runtime.sandbox.pay(order["order_id"], order["total"]["amount"], "CNY")
    shop.wait_for(order, "DELIVERED")
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}

    response = refund(shop, order["order_id"], **kwargs)

    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert stored_order(order["order_id"]).status == "DELIVERED"


def test_an_unpaid_order_cannot_be_refunded(shop):
    order = shop.buy(shop.new_product(new_codes(1)))
    response = refund(shop, order["order_id"])
    assert (response.status_code, response.json()["error"]["code"]) == (409, "not_refundable")
    assert stored_order(order["order_id"]).status == "PENDING_PAYMENT"
