"""Reservations expire and their stock comes back (I4); a payment that arrives late is fulfilled
from stock if any is left, else the order goes to REFUNDING with the payment kept (I2)."""

import threading
from datetime import timedelta

from shared.adapters import allocation, payment_events
from shared.orders import utcnow
from tests.support import expire_all, new_codes, stored_order

AFTER_EXPIRY = timedelta(minutes=16)


def expire_now() -> tuple[int, int]:
    return expire_all(utcnow() + AFTER_EXPIRY)


def levels(shop, product_id):
    got = shop.stock(product_id)
    assert got["available"] + got["reserved"] + got["sold"] + got["returned"] == got["imported"]  # I4
    assert min(got.values()) >= 0
    return got


def test_an_expired_reservation_returns_its_code_to_the_next_buyer(shop):
    codes = new_codes(1)
    product_id = shop.new_product(codes)
    first = shop.buy(product_id)
    assert shop.checkout(product_id).status_code == 409

    expire_now()

    assert stored_order(first["order_id"]).status == "EXPIRED"
    assert levels(shop, product_id)["available"] == 1
    second = shop.buy(product_id)
    shop.runtime.sandbox.pay(second["order_id"], second["total"]["amount"], "CNY")
    assert [i["code"] for i in shop.wait_for(second, "DELIVERED")["items"]] == codes
    assert levels(shop, product_id) == {
        "available": 0,
        "reserved": 0,
        "sold": 1,
        "returned": 0,
        "imported": 1,
    }


def test_two_reconcile_runs_at_once_expire_and_return_once(shop):
    product_id = shop.new_product(new_codes(3))
    order = shop.buy(product_id, quantity=2)
    start = threading.Barrier(2)

    def run():
        start.wait()
        expire_now()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    history = [e.type for e in stored_order(order["order_id"]).history]
    assert history == ["order.created", "reservation.expired"]
    assert levels(shop, product_id)["available"] == 3


def test_releasing_again_after_the_slot_was_sold_on_changes_nothing(shop):
    product_id = shop.new_product(new_codes(1))
    first = shop.buy(product_id)
    expire_now()
    second = shop.buy(product_id)

    again = allocation().release(product_id, stored_order(first["order_id"]).slots, first["order_id"])

    assert again == 0
    shop.runtime.sandbox.pay(second["order_id"], second["total"]["amount"], "CNY")
    assert len(shop.wait_for(second, "DELIVERED")["items"]) == 1
    assert levels(shop, product_id)["sold"] == 1


def test_a_late_payment_with_stock_left_is_delivered(shop):
    product_id = shop.new_product(new_codes(2))
    order = shop.buy(product_id)
    expire_now()

    assert shop.callback(shop.payment_event(order)).json()["outcome"] == "applied"

    delivered = shop.wait_for(order, "DELIVERED")
    assert [e["type"] for e in delivered["events"]] == [
        "order.created",
        "reservation.expired",
        "payment.succeeded",
        "order.delivered",
    ]
    assert len(delivered["items"]) == 1
    assert levels(shop, product_id) == {
        "available": 1,
        "reserved": 0,
        "sold": 1,
        "returned": 0,
        "imported": 2,
    }


def test_a_late_payment_when_sold_out_is_kept_for_refund_and_delivers_nothing(shop):
    product_id = shop.new_product(new_codes(1))
    late = shop.buy(product_id)
    expire_now()
    other = shop.buy(product_id)
    shop.runtime.sandbox.pay(other["order_id"], other["total"]["amount"], "CNY")
    shop.wait_for(other, "DELIVERED")
    payment = shop.payment_event(late)

    response = shop.callback(payment)

    assert response.json()["outcome"] == "needs_refund"
    record = stored_order(late["order_id"])
    assert record.status == "REFUNDING" and record.payment.payment_id == payment["data"]["payment_id"]
    owed = f"sandbox#{late['order_id']}#{payment['data']['payment_id']}"
    assert owed in payment_events().refunds_due("sandbox")
    assert "items" not in shop.order(late["order_id"], late["access_token"]).json()
    assert levels(shop, product_id)["sold"] == 1


def test_a_claim_that_cannot_be_completed_puts_returned_slots_back(shop):
    product_id = shop.new_product(new_codes(2), max_per_order=3)
    first, second = shop.buy(product_id), shop.buy(product_id)
    shop.runtime.sandbox.pay(second["order_id"], second["total"]["amount"], "CNY")
    expire_now()  # the first order's slot goes back; one code is sold
    assert levels(shop, product_id)["available"] == 1

    refused = shop.checkout(product_id, quantity=2)

    assert refused.status_code == 409
    assert levels(shop, product_id)["available"] == 1
    assert stored_order(first["order_id"]).status == "EXPIRED"
